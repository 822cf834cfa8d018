/**
 * The replica process: `node replica/main.js` (or `tsx replica/main.ts`) with DAFTKA_* env or
 * flags (replica/config.ts). Crash-only: a fatal fault (storage corruption, invariant violation,
 * a dead storage worker) logs and exits non-zero for the supervisor to restart; SIGTERM hands
 * leadership over, flushes and exits 0 within the shutdown timeout.
 */
import { renameSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { boundsSummary, ConfigError } from '../common/config';
import { classify } from '../common/crash-policy';
import { createLogger } from '../common/log';
import { createRegistry } from '../common/metrics';
import { startHealthServer } from '../common/health-server';
import { adminKeyOf, clientKeyOf, dirKeyring } from '../protocol/rpc-auth';
import { RpcServer } from '../protocol/rpc-server';
import { servePartition } from '../protocol/serve';
import { Announcer } from './control/announcer';
import { TopicWriter } from './control/topic-writer';
import { resolveReplicaConfig } from './config';
import { clientTlsOf, TlsSource, tlsDirFiles } from '../common/tls';
import { PartitionReplica } from './replica';

async function main(): Promise<void> {
  let rc;
  try {
    rc = resolveReplicaConfig(process.env, process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(
        JSON.stringify({ level: 'error', message: 'config_invalid', key: err.key, error: err.message }) + '\n',
      );
      process.exit(2);
    }
    throw err;
  }
  const { cfg, self } = rc;
  // V8 lets the old generation grow up to 4× its live size between full collections when the
  // machine has lots of memory (its heap limit follows physical RAM, not the pod's limit). A
  // replica's live heap is ~35 MB, but produce promotes ~14 MB/s of short-lived request objects,
  // so the heap sat at 140–160 MB (issue 20, --trace-gc). A fixed factor keeps it near the live
  // size; the flag is read at each collection, so setting it here applies to every launcher, and
  // to the storage worker's isolate (started later). Not a hard limit: nothing fails at a bound.
  if (cfg.heapGrowingPercent > 0) setFlagsFromString(`--heap-growing-percent=${cfg.heapGrowingPercent}`);
  // The semi-space flag (common/replica-process.ts) sized this isolate's young generation when the
  // process started; V8 would apply it to the storage worker's isolate too, over the worker's own
  // smaller limit (replica/storage/channel.ts). Unset it before the worker starts.
  setFlagsFromString('--max-semi-space-size=0');
  const logger = createLogger('replica', {
    level: cfg.logLevel,
    fields: { topic: cfg.topic, partition: cfg.partition, ordinal: cfg.ordinal },
  });
  const registry = createRegistry('replica');
  // TLS for both ports, checked before anything listens: a missing file or a key that does not
  // match its certificate is a config error naming DAFTKA_TLS_DIR (exit 2), not a crash loop later.
  if (cfg.tlsDir !== '') {
    try {
      rc.tls = TlsSource.open(
        tlsDirFiles(cfg.tlsDir),
        { key: 'tlsDir', env: 'DAFTKA_TLS_DIR' },
        { kind: 'replica', reloadIntervalMs: cfg.tlsReloadIntervalMs, logger, registry },
      );
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      logger.error('config_invalid', { setting: err.key, error: err.message }); // a field named key is redacted
      process.exit(2);
    }
  }
  let exiting = false;
  const die = (err: unknown) => {
    if (exiting) return;
    exiting = true;
    const c = classify(err);
    logger.error('fatal', { kind: c.kind, class: c.class, error: (err as Error)?.message ?? String(err) });
    // Crash-only: exit now, let the supervisor restart us; nothing half-done is trusted.
    setTimeout(() => process.exit(1), 50).unref();
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);

  if (cfg.peerSecret === '')
    logger.warn('peer_auth_disabled', {
      detail: 'DAFTKA_PEER_SECRET is empty: any process that reaches the peer port can pose as a replica',
    });
  logger.info('replica_starting', {
    peer_auth: cfg.peerSecret !== '',
    client_auth: cfg.peerSecret !== '' && cfg.clientAuth === 'required',
    admin_auth: cfg.adminSecret !== '',
    tls: rc.tls ? { fingerprint256: rc.tls.current.fingerprint256, server_name: cfg.tlsServerName || 'host' } : 'off',
    bounds: boundsSummary(cfg, [
      'fsync',
      'electionTimeoutMs',
      'heartbeatMs',
      'maxInflightMsgs',
      'maxInflightBytes',
      'maxUncommittedBytes',
      'maxCommittedBytesPerReady',
      'snapshotChunkBytes',
      'entryCacheBytes',
      'heapGrowingPercent',
      'maxFetchWaiters',
      'maxBatchRecords',
      'maxRecordBytes',
      'shutdownTimeoutMs',
    ]),
  });

  let replica: PartitionReplica;
  try {
    replica = await PartitionReplica.open(rc, logger, registry, die);
  } catch (err) {
    // Damaged acknowledged data: this replica must not vote with it. Move it aside so the
    // restart is a new incarnation (learner, catch-up from the leader); keep it for a post-mortem.
    if (classify(err).kind === 'storage_corruption' && cfg.corruptDataPolicy === 'quarantine') {
      const aside = `${cfg.dataDir}.corrupt-${Date.now()}`;
      try {
        renameSync(cfg.dataDir, aside);
        logger.error('data_quarantined', { error: (err as Error).message, moved_to: aside });
      } catch (e) {
        logger.error('data_quarantine_failed', { error: (e as Error).message });
      }
    }
    throw err;
  }
  // Admission on the client port: the topic's client key (derived from the peer secret) for every
  // method but membership and leadership, which need the operator's admin key.
  const peerKey = cfg.peerSecret !== '' ? clientKeyOf(cfg.peerSecret, cfg.topic) : null;
  const topicKey = cfg.clientAuth === 'required' ? peerKey : null;
  const adminKey = cfg.adminSecret !== '' ? adminKeyOf(cfg.adminSecret) : null;
  const rpc = new RpcServer({
    host: cfg.listenHost,
    port: self.clientPort,
    logger,
    registry,
    auth: { topic: cfg.topic, topicKey, adminKey },
    idleTimeoutMs: cfg.rpcIdleTimeoutMs,
    partialFrameTimeoutMs: cfg.rpcPartialFrameTimeoutMs,
    maxBufferedBytes: cfg.rpcMaxBufferedBytes,
    ...(rc.tls ? { tls: rc.tls } : {}),
  });
  // One port, three services; each method of the table is served by exactly one of them.
  servePartition(rpc, replica.partition);
  servePartition(rpc, replica.membership);
  servePartition(rpc, replica.leased);
  await rpc.start();
  const health = await startHealthServer({
    host: cfg.listenHost,
    port: cfg.httpPort,
    registry,
    readiness: () => replica.readiness(),
  });
  await replica.run();
  const announcer = cfg.natsUrl
    ? new Announcer(replica, {
        url: cfg.natsUrl,
        topic: cfg.topic,
        partition: cfg.partition,
        intervalMs: cfg.announceIntervalMs,
        clientEndpoint: `${self.host}:${self.clientPort}`,
        logger,
        ...(peerKey ? { signKey: peerKey } : {}),
        ...(adminKey ? { controlKey: adminKey } : {}),
      })
    : null;
  await announcer?.start();
  const keyring = cfg.clientKeysDir !== '' ? dirKeyring(cfg.clientKeysDir) : () => undefined;
  const topicWriter = announcer
    ? new TopicWriter({
        nats: () => announcer.connection(),
        logger,
        auth: { keyFor: (t) => (t === cfg.topic && peerKey ? peerKey : keyring(t)) },
        ...(rc.tls ? { tls: clientTlsOf(rc.tls, cfg.tlsServerName || undefined) } : {}),
      })
    : null;
  replica.topicWriter = topicWriter;
  logger.info('replica_started', {
    replica: replica.id,
    peer_port: self.peerPort,
    client_port: self.clientPort,
    http_port: health.port,
  });

  const shutdown = async (signal: string) => {
    if (exiting) return;
    exiting = true;
    logger.info('replica_stopping', { signal });
    const hard = setTimeout(() => process.exit(1), cfg.shutdownTimeoutMs + 2000);
    hard.unref();
    try {
      await replica.shutdown();
      topicWriter?.close();
      await announcer?.close();
      await rpc.close();
      await health.close();
      logger.info('replica_stopped', {});
      process.exit(0);
    } catch (err) {
      logger.error('shutdown_failed', { error: (err as Error).message });
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(
    JSON.stringify({ level: 'error', message: 'replica_start_failed', error: (err as Error)?.stack ?? String(err) }) +
      '\n',
  );
  process.exit(1);
});

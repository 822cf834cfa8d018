import type { ReplicaClient } from '../protocol/methods';
import { unwatchFile, watchFile } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../common/config';
import { parseEndpoint, type Endpoint } from '../common/names';
import { createLogger, type Logger } from '../common/log';
import { createRegistry } from '../common/metrics';
import { clientTlsOf, TLS_CERT_FILE, TLS_KEY_FILE, TlsSource } from '../common/tls';
import { join } from 'node:path';

import { RemotePartitionClient } from '../protocol/partition-client';
import { dirKeyring } from '../protocol/rpc-auth';
import { RpcClient } from '../protocol/rpc-client';
import { createGatewayApp } from './app';
import { AuthConfigError, NoAuthenticator, TokenAuthenticator, type Authenticator } from './auth';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../common/kube';
import { counter } from '../common/metrics';
import { CatalogError, StaticCatalog, type TopicCatalog } from './catalog';
import { ConfigMapCatalog } from './kube-catalog';
import { SecretKeyring } from './kube-keyring';
import { startHealthServer } from '../common/health-server';
import { gatewayBounds, loadGatewayConfig, type GatewayConfig } from './config';
import { NatsLeaderFeed } from './leader-feed';
import { QuotaManager } from './quotas';
import { PartitionRouter } from '../protocol/leader-router';
import { routerMetrics } from './metrics';
import { LeaseTokens, MIN_SECRET_CHARS } from './lease-token';
import { StatusReportFeed } from './readiness-feed';
import { ReadinessService } from './readiness-service';

/**
 * The gateway process: config → catalog, auth, quotas, router (+ NATS leader feed) → HTTP.
 * Invalid configuration exits with status 2 and a message naming the key; otherwise one
 * start-up line lists the bounds it runs with. SIGTERM/SIGINT: stop accepting, let requests in
 * flight finish within shutdownGraceMs, close, exit 0.
 */

export interface RunningGateway {
  /** `http://host:port` (`https://` with tlsDir) actually bound. */
  url: string;
  port: number;
  /** `http://host:port` of /metrics (its own port, metricsPort). */
  metricsUrl: string;
  router: PartitionRouter;
  feed?: NatsLeaderFeed;
  close(): Promise<void>;
}

export interface RunOptions {
  /** Replica client factory; default: the binary client protocol (RemotePartitionClient). */
  connect?: (endpoint: string) => ReplicaClient;
  logger?: Logger;
  /** How often the topics file is checked for changes, in ms; 0 = never. Default 2000. */
  topicsReloadMs?: number;
  /** Where the API is, for catalogConfigMap (default: in-cluster service account, else ~/.kube/config). */
  kubeConfig?: KubeConfig;
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}

/** The router connects only to endpoints it has checked (topics file, announcements, hints). */
function splitEndpoint(endpoint: string): Endpoint {
  const e = parseEndpoint(endpoint);
  if (e === undefined) throw new Error(`not a host:port endpoint: ${JSON.stringify(endpoint)}`);
  return e;
}

export async function runGateway(cfg: GatewayConfig, opts: RunOptions = {}): Promise<RunningGateway> {
  const logger = opts.logger ?? createLogger('gateway', { level: cfg.logLevel });
  // Checked here, not by the schema, so that the error never echoes the secret.
  if (cfg.leaseSecret !== '' && cfg.leaseSecret.length < MIN_SECRET_CHARS)
    throw new ConfigError(
      'leaseSecret',
      `invalid config leaseSecret (DAFTKA_GATEWAY_LEASE_SECRET): must be at least ${MIN_SECRET_CHARS} characters (e.g. openssl rand -hex 32)`,
    );
  const registry = createRegistry('gateway');
  const catalogReloads = counter(registry, {
    name: 'daftka_gateway_catalog_reloads_total',
    help: 'Topic catalog documents taken (ok) or refused and ignored (rejected)',
    labelNames: ['result'] as const,
  });
  // The topics: a file (local mode), or the operator's ConfigMap watched through the API.
  let onCatalogChange = () => {};
  const fromConfigMap = cfg.catalogConfigMap !== '';
  let kube: KubeClient | undefined;
  const kubeClient = () =>
    (kube ??= new KubeClient({ kubeConfig: opts.kubeConfig ?? defaultKubeConfig(), userAgent: 'daftka-gateway' }));
  const catalog: StaticCatalog | ConfigMapCatalog = fromConfigMap
    ? new ConfigMapCatalog({
        kube: kubeClient(),
        namespace: cfg.catalogConfigMap.split('/')[0],
        name: cfg.catalogConfigMap.split('/')[1],
        logger,
        onReload: (r) => {
          catalogReloads.inc({ result: r.ok ? 'ok' : 'rejected' });
          if (r.ok) onCatalogChange();
        },
      })
    : StaticCatalog.fromFile(cfg.topicsFile);
  const auth: Authenticator =
    cfg.auth === 'tokens' ? TokenAuthenticator.fromFile(cfg.tokensFile) : new NoAuthenticator();

  // TLS: the API's certificate (HTTPS), and the CA replica certificates must chain to. Both are
  // checked now (ConfigError naming the key) and followed on disk afterwards (rotation).
  const tlsOpts = { reloadIntervalMs: cfg.tlsReloadIntervalMs, logger, registry };
  const apiTls =
    cfg.tlsDir !== ''
      ? TlsSource.open(
          { certFile: join(cfg.tlsDir, TLS_CERT_FILE), keyFile: join(cfg.tlsDir, TLS_KEY_FILE) },
          { key: 'tlsDir', env: 'DAFTKA_GATEWAY_TLS_DIR' },
          { kind: 'gateway_api', ...tlsOpts },
        )
      : undefined;
  const replicaCa =
    cfg.replicaCaFile !== ''
      ? TlsSource.open(
          { caFile: cfg.replicaCaFile },
          { key: 'replicaCaFile', env: 'DAFTKA_GATEWAY_REPLICA_CA_FILE' },
          { kind: 'replica_ca', ...tlsOpts },
        )
      : undefined;
  const replicaTls = replicaCa ? clientTlsOf(replicaCa, cfg.replicaTlsServerName || undefined) : undefined;

  const rpcClients: RpcClient[] = [];
  // Client keys: the operator's Secret watched through the API (Kubernetes), or a folder (local mode).
  const keyring =
    cfg.clientKeysSecret !== ''
      ? new SecretKeyring({
          kube: kubeClient(),
          namespace: cfg.clientKeysSecret.split('/')[0],
          name: cfg.clientKeysSecret.split('/')[1],
          logger,
        })
      : undefined;
  const keyFor = keyring ? keyring.keyFor : cfg.clientKeysDir !== '' ? dirKeyring(cfg.clientKeysDir) : undefined;
  // Ready (/readyz) once the topics and, when they come from the API, the client keys are loaded.
  const served: TopicCatalog = keyring
    ? { list: () => catalog.list(), get: (n) => catalog.get(n), ready: () => catalog.ready() && keyring.ready() }
    : catalog;
  const connect =
    opts.connect ??
    ((endpoint: string) => {
      // The router enforces the in-flight bounds; the RPC client's own bound only backs them up.
      const rpc = new RpcClient({
        ...splitEndpoint(endpoint),
        logger,
        registry,
        maxInflight: cfg.maxInflightPerEndpoint + cfg.maxInflightFetchesPerEndpoint,
        ...(keyFor ? { auth: { keyFor } } : {}),
        ...(replicaTls ? { tls: replicaTls } : {}),
      });
      rpcClients.push(rpc);
      return new RemotePartitionClient(rpc, { defaultTimeoutMs: cfg.requestTimeoutMs });
    });
  const router: PartitionRouter = new PartitionRouter({
    directory: catalog,
    connect,
    logger,
    metrics: routerMetrics(registry, (): number => router.table.size),
    requestTimeoutMs: cfg.requestTimeoutMs,
    maxRedirects: cfg.maxRedirects,
    maxInflightPerEndpoint: cfg.maxInflightPerEndpoint,
    maxInflightFetchesPerEndpoint: cfg.maxInflightFetchesPerEndpoint,
  });
  const feed =
    cfg.natsUrl === 'off'
      ? undefined
      : new NatsLeaderFeed({
          servers: cfg.natsUrl.split(','),
          sink: router,
          catalog,
          logger,
          registry,
          discoverTimeoutMs: cfg.discoverTimeoutMs,
          reconnectTimeWaitMs: cfg.natsReconnectWaitMs,
          ...(keyFor ? { keyFor } : {}),
        });
  // Not awaited: the gateway serves without NATS (from seeds and redirects) and reports degraded.
  void feed?.start();
  // The launch-readiness report (docs/readiness.md): replica status reports from NATS, periodic snapshots.
  const statusReports =
    cfg.natsUrl === 'off'
      ? undefined
      : new StatusReportFeed({
          servers: cfg.natsUrl.split(','),
          catalog,
          logger,
          reconnectTimeWaitMs: cfg.natsReconnectWaitMs,
          ...(keyFor ? { keyFor } : {}),
        });
  statusReports?.start();
  const readiness = new ReadinessService({
    catalog,
    router,
    leased: router,
    registry,
    logger,
    ...(feed ? { nats: feed } : {}),
    ...(statusReports ? { reports: statusReports } : {}),
    intervalMs: cfg.readinessIntervalMs,
    historySize: cfg.readinessHistorySize,
    windowMs: cfg.readinessWindowMs,
    growthWindowMs: cfg.readinessDeadLetterGrowthWindowMs,
    thresholds: {
      lagWarnEntries: cfg.readinessLagWarnEntries,
      lagNotReadyEntries: cfg.readinessLagNotReadyEntries,
      produceErrorWarnRatio: cfg.readinessProduceErrorWarnRatio,
      produceErrorNotReadyRatio: cfg.readinessProduceErrorNotReadyRatio,
      produceSlowWarnRatio: cfg.readinessProduceSlowWarnRatio,
      produceSlowNotReadyRatio: cfg.readinessProduceSlowNotReadyRatio,
      shedWarnRatio: cfg.readinessShedWarnRatio,
      shedNotReadyRatio: cfg.readinessShedNotReadyRatio,
      throttleWarnRatio: cfg.readinessThrottleWarnRatio,
      freeDiskWarnRatio: cfg.readinessFreeDiskWarnRatio,
      deadLetterWarnEntries: cfg.readinessDeadLetterWarnEntries,
      deadLetterGrowthWarnPerHour: cfg.readinessDeadLetterGrowthWarnPerHour,
      minRequests: cfg.readinessMinRequests,
    },
  });

  const app = createGatewayApp({
    catalog: served,
    router,
    auth,
    quotas: new QuotaManager({ maxBuckets: cfg.quotaMaxBuckets, burstSeconds: cfg.quotaBurstSeconds }),
    logger,
    registry,
    limits: {
      maxBodyBytes: cfg.maxBodyBytes,
      maxBodyBytesInFlight: cfg.maxBodyBytesInFlight,
      maxRecordsPerRequest: cfg.maxRecordsPerRequest,
      fetchMaxRecords: cfg.fetchMaxRecords,
      fetchMaxBytes: cfg.fetchMaxBytes,
      requestTimeoutMs: cfg.requestTimeoutMs,
      minUploadBytesPerSecond: cfg.minUploadBytesPerSecond,
      uploadGraceMs: cfg.uploadGraceMs,
    },
    coalesce: {
      maxWaiting: cfg.produceMaxWaitingPerPartition,
      maxBatchesInFlight: cfg.produceCallsPerPartition,
      maxBytes: cfg.produceBatchMaxBytes,
      maxRecords: cfg.maxRecordsPerRequest,
    },
    ...(feed ? { nats: feed } : {}),
    leased: {
      client: router,
      tokens: cfg.leaseSecret === '' ? null : new LeaseTokens(cfg.leaseSecret),
    },
    readiness,
    serveMetrics: cfg.metricsOnApiPort,
  });

  onCatalogChange = () => {
    router.prune();
    void feed?.discover();
  };
  const reloadMs = opts.topicsReloadMs ?? 2000;
  keyring?.start();
  if (catalog instanceof ConfigMapCatalog) catalog.start();
  else if (reloadMs > 0)
    watchFile(cfg.topicsFile, { interval: reloadMs, persistent: false }, () => {
      try {
        catalog.replace(StaticCatalog.fromFile(cfg.topicsFile).list());
        logger.info('topics_reloaded', { topics: catalog.list().length });
        catalogReloads.inc({ result: 'ok' });
        onCatalogChange();
      } catch (err) {
        // Keep serving the last good catalog.
        logger.warn('topics_reload_failed', { error: (err as Error).message });
        catalogReloads.inc({ result: 'rejected' });
      }
    });

  // Slow clients cannot hold a connection and its body budget: headers and the whole request
  // have deadlines (408, connection closed), checked every second rather than Node's 30 s.
  const httpOpts = {
    headersTimeout: cfg.headersTimeoutMs,
    requestTimeout: cfg.uploadTimeoutMs,
    connectionsCheckingInterval: 1000,
  };
  let server: Server;
  if (apiTls) {
    const https = createHttpsServer(
      { ...httpOpts, ...apiTls.serverOptions(), handshakeTimeout: cfg.headersTimeoutMs },
      app,
    );
    // New connections get a rotated certificate; open ones keep theirs until they close.
    apiTls.onReload(() => https.setSecureContext(apiTls.serverOptions()));
    https.on('tlsClientError', (_err, socket) => {
      apiTls.handshakeFailed('gateway_api');
      socket.destroy();
    });
    server = https;
  } else server = createServer(httpOpts, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // /metrics on a port of its own: a NetworkPolicy keeps it to monitoring, the API port to clients.
  const metricsServer = await startHealthServer({
    host: cfg.host,
    port: cfg.metricsPort,
    registry,
    readiness: () =>
      served.ready() ? { ready: true, reason: 'serving' } : { ready: false, reason: 'topic metadata not loaded yet' },
  });
  readiness.start();
  logger.info('gateway_started', {
    host: cfg.host,
    port,
    metrics_port: metricsServer.port,
    metrics_on_api_port: cfg.metricsOnApiPort,
    tls: apiTls ? { fingerprint256: apiTls.current.fingerprint256 } : 'off',
    replica_tls: replicaCa ? { server_name: cfg.replicaTlsServerName || 'endpoint host' } : 'off',
    client_keys: keyring ? `secret ${cfg.clientKeysSecret}` : cfg.clientKeysDir !== '' ? 'folder' : 'none',
    nats: cfg.natsUrl === 'off' ? 'off' : 'on',
    auth: cfg.auth,
    catalog: fromConfigMap ? `configmap ${cfg.catalogConfigMap}` : `file ${cfg.topicsFile}`,
    topics: catalog.list().length,
    ...gatewayBounds(cfg),
  });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      if (catalog instanceof ConfigMapCatalog) await catalog.stop();
      else unwatchFile(cfg.topicsFile);
      await keyring?.stop();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = new Promise<void>((resolve) => setTimeout(resolve, cfg.shutdownGraceMs).unref());
      await Promise.race([stopped, grace]);
      server.closeAllConnections();
      readiness.stop();
      await statusReports?.close();
      await feed?.close();
      await router.close();
      for (const rpc of rpcClients) rpc.close();
      apiTls?.close();
      replicaCa?.close();
      metricsServer.server.closeAllConnections();
      await metricsServer.close();
      kube?.close();
      logger.info('gateway_stopped', {});
    })());

  const host = cfg.host === '0.0.0.0' || cfg.host === '::' ? '127.0.0.1' : cfg.host;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${apiTls ? 'https' : 'http'}://${hostPart}:${port}`,
    port,
    metricsUrl: `http://${hostPart}:${metricsServer.port}`,
    router,
    feed,
    close,
  };
}

/** Entry point: exit 2 on invalid configuration, 0 after a clean shutdown. */
export async function main(argv: readonly string[] = process.argv.slice(2), env = process.env): Promise<void> {
  let gw: RunningGateway;
  try {
    gw = await runGateway(loadGatewayConfig(env, argv));
  } catch (err) {
    if (err instanceof ConfigError || err instanceof CatalogError || err instanceof AuthConfigError) {
      process.stderr.write(`daftka gateway: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const stop = (signal: string) => {
    process.stderr.write(`daftka gateway: ${signal}, shutting down\n`);
    void gw.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

if (require.main === module) void main();

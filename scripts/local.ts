/**
 * `npm run local`: Daftka on this machine, no Kubernetes. Starts nats-server, the replicas of the
 * configured topics (default: `events`, 3 partitions × RF 3) as child processes and the gateway,
 * all on loopback, with data and per-process logs under ./data. Ctrl-C stops everything cleanly;
 * running it again resumes from the data. The replica plan comes from common/topic-spec.ts — the
 * same desired-state code the operator uses — with a process driver in place of StatefulSets.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { ConfigError, configDocs, loadConfig } from '../common/config';
import { localSchema } from './local-config';
import { createLogger } from '../common/log';
import { catalogEntry, desiredReplicas, type DesiredReplica, type TopicSpec } from '../common/topic-spec';
import { ProcessDriver } from './process-driver';

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  alive: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`${what}: a process it needs exited; see the logs under the data dir`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not ready within ${timeoutMs / 1000} s; see the logs under the data dir`);
}

async function main(): Promise<void> {
  let cfg;
  try {
    cfg = loadConfig(localSchema, process.env, process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`${err.message}\n\nLocal mode settings:\n${configDocs(localSchema)}`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('local');
  const root = resolve(process.cwd());
  const dataDir = resolve(cfg.dataDir);
  const logDir = join(dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });

  const topics = cfg.topics.map((t) => {
    const [name, p, rf] = t.split(':');
    return {
      name,
      spec: {
        partitions: Number(p),
        replicationFactor: Number(rf) as TopicSpec['replicationFactor'],
      } satisfies TopicSpec,
    };
  });

  // Ports: fixed layout from basePort, so a re-run finds the same endpoints.
  let next = cfg.basePort;
  const replicas: DesiredReplica[] = [];
  const natsUrl = `nats://127.0.0.1:${cfg.natsPort}`;
  for (const t of topics) {
    const ports = new Map<string, { host: string; peerPort: number; clientPort: number; httpPort: number }>();
    const addressOf = (p: number, o: number) => {
      const k = `${p}/${o}`;
      if (!ports.has(k)) {
        ports.set(k, { host: '127.0.0.1', peerPort: next, clientPort: next + 1, httpPort: next + 2 });
        next += 3;
      }
      return ports.get(k)!;
    };
    replicas.push(
      ...desiredReplicas(t.name, t.spec, addressOf, {
        natsUrl,
        listenHost: '127.0.0.1',
        dataDir: (p, o) => join(dataDir, 'replicas', `${t.name}-${p}-${o}`),
        extraEnv: { DAFTKA_FSYNC: cfg.fsync },
      }),
    );
  }
  const needed = [
    cfg.natsPort,
    cfg.gatewayPort,
    ...replicas.flatMap((r) => [r.address.peerPort, r.address.clientPort, r.address.httpPort]),
  ];
  for (const p of needed)
    if (!(await portFree(p))) {
      console.error(
        `port ${p} on 127.0.0.1 is in use. Is another Daftka running? Stop it, or move ours with DAFTKA_LOCAL_GATEWAY_PORT, DAFTKA_LOCAL_NATS_PORT or DAFTKA_LOCAL_BASE_PORT.`,
      );
      process.exit(2);
    }

  const topicsFile = join(dataDir, 'topics.json');
  writeFileSync(
    topicsFile,
    JSON.stringify({ topics: topics.map((t) => catalogEntry(t.name, t.spec, replicas)) }, null, 2),
  );

  const natsBin = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim();
  if (!natsBin) {
    console.error('nats-server is not installed: run scripts/ensure-deps.sh (npm run local does this for you)');
    process.exit(2);
  }
  const driver = new ProcessDriver(logDir, logger);
  const tsx = ['--import', 'tsx'];
  driver.start({
    name: 'nats-server',
    command: natsBin,
    args: ['-a', '127.0.0.1', '-p', String(cfg.natsPort)],
    env: {},
  });
  for (const r of replicas)
    driver.start({
      name: r.name,
      command: process.execPath,
      args: [...tsx, join(root, 'replica/main.ts')],
      env: r.env,
    });
  driver.start({
    name: 'gateway',
    command: process.execPath,
    args: [...tsx, join(root, 'gateway/main.ts')],
    env: {
      DAFTKA_GATEWAY_HOST: '127.0.0.1',
      DAFTKA_GATEWAY_PORT: String(cfg.gatewayPort),
      DAFTKA_GATEWAY_TOPICS_FILE: topicsFile,
      DAFTKA_NATS_URL: natsUrl,
    },
  });

  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping Daftka (gateway, then replicas with leadership transfer, then nats-server)…');
    await driver.stopAll([(n) => n === 'gateway', (n) => n !== 'nats-server', () => true]);
    console.log('stopped.');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  const base = `http://127.0.0.1:${cfg.gatewayPort}`;
  const alive = () => !Object.values(driver.states()).includes('crash-loop');
  try {
    await waitFor('gateway', async () => (await fetch(`${base}/healthz`)).ok, 90_000, alive);
    for (const t of topics)
      await waitFor(
        `topic ${t.name}`,
        async () => {
          const res = await fetch(`${base}/v1/topics/${t.name}`);
          if (!res.ok) return false;
          const body = (await res.json()) as { partitions?: Array<{ leader?: unknown }> };
          return (
            Array.isArray(body.partitions) &&
            body.partitions.length === t.spec.partitions &&
            body.partitions.every((p) => p.leader)
          );
        },
        120_000,
        alive,
      );
  } catch (err) {
    console.error(String((err as Error).message));
    await stop(1);
    return;
  }
  const t0 = topics[0].name;
  console.log(`
Daftka is running (local mode).
  gateway   ${base}        (OpenAPI: ${base}/v1/openapi.json)
  nats      ${natsUrl}
  topics    ${topics.map((t) => `${t.name} (${t.spec.partitions} partitions × RF ${t.spec.replicationFactor})`).join(', ')}
  data      ${dataDir}   logs: ${logDir}

Try:
  curl -s -X POST ${base}/v1/topics/${t0}/records -H 'content-type: application/json' \\
       -d '{"records":[{"key":"user-1","value":"hello"}]}'
  curl -s '${base}/v1/topics/${t0}/partitions/0/records?offset=0'

Ctrl-C stops everything; running it again resumes from the data.
READY`);
  if (cfg.exitAfterReady) await stop(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

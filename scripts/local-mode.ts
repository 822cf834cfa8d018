/**
 * Local mode's machinery, shared by the `npm run local` CLI (scripts/local.ts), the integration
 * test harness (test/helpers/local-stack.ts) and the gateway benchmark: topics → replica plan
 * (common/topic-spec.ts, the operator's desired-state code) → a ProcessDriver running
 * nats-server, every replica and the gateway on loopback, with data and logs under one folder.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { ConfigError, type ConfigOf } from '../common/config';
import type { Logger } from '../common/log';
import {
  catalogEntry,
  desiredReplicas,
  validateTopic,
  type DesiredReplica,
  type TopicSpec,
} from '../common/topic-spec';
import type { PartitionStatus } from '../common/partition-api';
import { RemotePartitionClient } from '../protocol/partition-client';
import { RpcClient } from '../protocol/rpc-client';
import { adminKeyOf, clientKeyOf, dirKeyring, type RpcClientAuth } from '../protocol/rpc-auth';
import type { localSchema } from './local-config';
import { ProcessDriver, type ProcessDriverOptions } from './process-driver';

export type LocalConfig = ConfigOf<typeof localSchema>;

export interface LocalTopic {
  name: string;
  spec: TopicSpec;
}

const REPO_ROOT = resolve(__dirname, '..');

const QUOTA_KEYS = ['produceBytesPerSecond', 'fetchBytesPerSecond', 'recordsPerSecond'] as const;

/**
 * The topics to run: `topicsJson` (a JSON list of Topic specs with a `name`) when set, else the
 * `name:partitions:rf` list. Throws ConfigError naming the key when a topic is invalid.
 */
export function localTopics(cfg: Pick<LocalConfig, 'topics' | 'topicsJson'>): LocalTopic[] {
  const out: LocalTopic[] = [];
  if (cfg.topicsJson !== '') {
    let doc: unknown;
    try {
      doc = JSON.parse(cfg.topicsJson);
    } catch (err) {
      throw new ConfigError('topicsJson', `invalid config topicsJson: not JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(doc) || doc.length === 0)
      throw new ConfigError('topicsJson', 'invalid config topicsJson: expected a non-empty JSON list of topics');
    for (const [i, t] of doc.entries()) {
      const bad = (why: string) => new ConfigError('topicsJson', `invalid config topicsJson: topic ${i}: ${why}`);
      if (t === null || typeof t !== 'object' || Array.isArray(t)) throw bad('expected an object');
      const { name, ...spec } = t as { name?: unknown } & TopicSpec;
      if (typeof name !== 'string') throw bad('"name" must be a string');
      spec.partitions ??= 3;
      spec.replicationFactor ??= 3;
      const invalid = validateTopic(name, spec);
      if (invalid) throw bad(invalid);
      if (spec.maxRecordBytes !== undefined && !(Number.isSafeInteger(spec.maxRecordBytes) && spec.maxRecordBytes >= 1))
        throw bad('maxRecordBytes must be a positive integer');
      if (spec.quotas !== undefined) {
        if (spec.quotas === null || typeof spec.quotas !== 'object') throw bad('quotas must be an object');
        for (const [k, v] of Object.entries(spec.quotas)) {
          if (!(QUOTA_KEYS as readonly string[]).includes(k)) throw bad(`unknown quota ${k}`);
          if (typeof v !== 'number' || !(v > 0)) throw bad(`quota ${k} must be a positive number`);
        }
      }
      out.push({ name, spec });
    }
  } else {
    for (const item of cfg.topics) {
      const [name, p, rf] = item.split(':');
      out.push({
        name,
        spec: { partitions: Number(p), replicationFactor: Number(rf) as TopicSpec['replicationFactor'] },
      });
    }
  }
  const names = out.map((t) => t.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined)
    throw new ConfigError(
      cfg.topicsJson !== '' ? 'topicsJson' : 'topics',
      `invalid config: topic ${dup} appears twice`,
    );
  return out;
}

export interface LocalPlan {
  dataDir: string;
  logDir: string;
  topicsFile: string;
  topics: LocalTopic[];
  replicas: DesiredReplica[];
  natsPort: number;
  natsUrl: string;
  gatewayPort: number;
  gatewayUrl: string;
  /** `tokens`: the gateway authenticates (local-admin's token is kept in the data dir). */
  auth: 'none' | 'tokens';
}

/** The principal local mode makes a token for when auth is on: an admin of every topic. */
export const LOCAL_ADMIN = 'local-admin';

/** Ports laid out from basePort (3 per replica: peer, client, http, in topic/partition/ordinal order). */
export function planLocal(cfg: LocalConfig): LocalPlan {
  const dataDir = resolve(cfg.dataDir);
  const topics = localTopics(cfg);
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
  if (next - 1 > 65535)
    throw new ConfigError(
      'basePort',
      `invalid config basePort: ${replicas.length} replicas need ports up to ${next - 1}`,
    );
  return {
    dataDir,
    logDir: join(dataDir, 'logs'),
    topicsFile: join(dataDir, 'topics.json'),
    topics,
    replicas,
    natsPort: cfg.natsPort,
    natsUrl,
    gatewayPort: cfg.gatewayPort,
    gatewayUrl: `http://127.0.0.1:${cfg.gatewayPort}`,
    auth: cfg.auth,
  };
}

/** Every port the plan listens on. */
export function planPorts(plan: LocalPlan): number[] {
  return [
    plan.natsPort,
    plan.gatewayPort,
    ...plan.replicas.flatMap((r) => [r.address.peerPort, r.address.clientPort, r.address.httpPort]),
  ];
}

export function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** The first port of the plan that is taken, or null when all are free. */
export async function firstBusyPort(plan: LocalPlan): Promise<number | null> {
  for (const p of planPorts(plan)) if (!(await portFree(p))) return p;
  return null;
}

export function natsServerPath(): string | null {
  const out = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim();
  return out === '' ? null : out;
}

export interface StartOptions {
  logger: Logger;
  natsBin: string;
  /** Extra environment for the gateway (e.g. lower in-flight bounds in a test). */
  gatewayEnv?: Record<string, string>;
  /** Extra environment for every replica. */
  replicaEnv?: Record<string, string>;
  driver?: Partial<ProcessDriverOptions>;
  /** With auth `tokens`: more bearer tokens (token → principal) next to local-admin's. */
  tokens?: Record<string, string>;
}

export interface LocalRun {
  plan: LocalPlan;
  driver: ProcessDriver;
  /** Resolves when the gateway serves and every partition of every topic has a leader. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Ordered stop: the gateway, then the replicas (leadership transfer), then nats-server. */
  stop(): Promise<void>;
}

/** A replica's own status over its client port (role, term, voters, learners, watermarks). */
export async function replicaStatus(
  clientPort: number,
  topic: string,
  partition: number,
  auth?: RpcClientAuth,
): Promise<PartitionStatus> {
  const rpc = new RpcClient({
    host: '127.0.0.1',
    port: clientPort,
    connectTimeoutMs: 1000,
    defaultTimeoutMs: 2000,
    ...(auth ? { auth } : {}),
  });
  try {
    return await new RemotePartitionClient(rpc, { defaultTimeoutMs: 2000 }).status({
      topic,
      partition,
      requestId: 'local-mode-ready',
    });
  } finally {
    rpc.close();
  }
}

export const GATEWAY = 'gateway';
export const NATS = 'nats-server';

/** A secret of this local installation: 256 random bits, made once and kept in the data dir (0600). */
function keptSecret(dataDir: string, file: string): string {
  const f = join(dataDir, file);
  if (existsSync(f)) return readFileSync(f, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  writeFileSync(f, secret, { mode: 0o600 });
  return secret;
}

/** The lease-token secret: every gateway started on this data dir — and a restart — verifies the tokens of the others. */
export function localLeaseSecret(dataDir: string): string {
  return keptSecret(dataDir, 'lease-secret');
}

/** The peer secret of a topic's replicas, as the operator gives each Topic its own; a restart finds the same one. */
export function localPeerSecret(dataDir: string, topic: string): string {
  return keptSecret(dataDir, `peer-secret-${topic}`);
}

/** The admin secret of this installation (the operator's credential on the client ports). */
export function localAdminSecret(dataDir: string): string {
  return keptSecret(dataDir, 'admin-secret');
}

/** Where local mode keeps each topic's client key (a file per topic): the gateway's and the replicas' keyring. */
export function localClientKeysDir(dataDir: string): string {
  return join(dataDir, 'client-keys');
}

/** A client credential of this installation: every topic's client key (tools, tests). */
export function localClientAuth(dataDir: string): RpcClientAuth {
  return { keyFor: dirKeyring(localClientKeysDir(dataDir)) };
}

/** The operator's credential of this installation (admin methods: membership, leadership). */
export function localAdminAuth(dataDir: string): RpcClientAuth {
  return { adminKey: adminKeyOf(localAdminSecret(dataDir)) };
}

/** What the replicas of a topic and the gateway need to authenticate to each other (local mode, benches). */
export interface LocalSecurityEnv {
  replica(topic: string): Record<string, string>;
  gateway: Record<string, string>;
  /** nats-server's configuration (when a NATS URL was given): listen address and the role users. */
  natsConfig?: string;
}

/** The NATS users of a local installation: one per role, as the chart has (helm/daftka/templates/nats.yaml). */
export type LocalNatsRole = 'replica' | 'gateway' | 'observer';

/** `nats://host:port` with `role`'s credentials in it (common/nats-servers.ts takes them out again). */
export function localNatsUrl(dataDir: string, natsUrl: string, role: LocalNatsRole): string {
  return natsUrl.replace('://', `://${role}:${keptSecret(dataDir, `nats-${role}-password`)}@`);
}

/**
 * nats-server's configuration for local mode: loopback only, and the chart's least-privilege
 * users — replicas publish announcements and status and answer control and discovery requests;
 * the gateway subscribes to announcements and status and asks discovery; `observer` (tests and
 * tools) may only listen. Nobody else can connect.
 */
function localNatsConfig(dataDir: string, natsUrl: string): string {
  const port = Number(new URL(natsUrl).port);
  const pw = (role: LocalNatsRole) => JSON.stringify(keptSecret(dataDir, `nats-${role}-password`));
  return `listen: "127.0.0.1:${port}"
max_payload: 1MB
authorization {
  users: [
    {
      user: "replica", password: ${pw('replica')}
      permissions: {
        publish: { allow: ["daftka.v1.leader.>", "daftka.v1.status.>", "daftka.v1.discover.>"] }
        subscribe: { allow: ["daftka.v1.ctl.>", "daftka.v1.discover.>", "_INBOX_replica.>"] }
        allow_responses: true
      }
    }
    {
      user: "gateway", password: ${pw('gateway')}
      permissions: {
        publish: { allow: ["daftka.v1.discover.>"] }
        subscribe: { allow: ["daftka.v1.leader.>", "daftka.v1.status.>", "daftka.v1.operator.>", "_INBOX.>"] }
      }
    }
    {
      user: "observer", password: ${pw('observer')}
      permissions: {
        publish: { deny: [">"] }
        subscribe: { allow: ["daftka.v1.leader.>", "daftka.v1.status.>"] }
      }
    }
  ]
}
`;
}

/**
 * The credentials of a local installation on `dataDir`: each topic's peer secret and client key
 * (derived from it: what the operator's Secret holds; written as a file per topic, the keyring of
 * the gateway and the replicas), the admin secret and the lease secret. Made once, kept (0600).
 */
export function localSecurityEnv(dataDir: string, topics: string[], natsUrl?: string): LocalSecurityEnv {
  const dir = localClientKeysDir(dataDir);
  const nats = (role: LocalNatsRole): Record<string, string> =>
    natsUrl === undefined ? {} : { DAFTKA_NATS_URL: localNatsUrl(dataDir, natsUrl, role) };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const t of topics)
    writeFileSync(join(dir, t), clientKeyOf(localPeerSecret(dataDir, t), t).toString('hex'), { mode: 0o600 });
  return {
    replica: (topic) => ({
      DAFTKA_PEER_SECRET: localPeerSecret(dataDir, topic),
      DAFTKA_ADMIN_SECRET: localAdminSecret(dataDir),
      DAFTKA_CLIENT_KEYS_DIR: dir,
      ...nats('replica'),
    }),
    gateway: {
      DAFTKA_GATEWAY_LEASE_SECRET: localLeaseSecret(dataDir),
      DAFTKA_GATEWAY_CLIENT_KEYS_DIR: dir,
      ...nats('gateway'),
    },
    ...(natsUrl !== undefined ? { natsConfig: localNatsConfig(dataDir, natsUrl) } : {}),
  };
}

/** local-admin's bearer token (auth `tokens`): made once, kept in the data dir (0600). */
export function localAdminToken(dataDir: string): string {
  return keptSecret(dataDir, 'admin-token');
}

/**
 * The gateway's auth environment: none (the anonymous principal holds every right), or a tokens
 * file with local-admin's token and `extra`, written next to the topics file.
 */
function gatewayAuthEnv(plan: LocalPlan, extra: Record<string, string>): Record<string, string> {
  if (plan.auth === 'none') return {};
  const file = join(plan.dataDir, 'tokens.json');
  writeFileSync(file, JSON.stringify({ tokens: { ...extra, [localAdminToken(plan.dataDir)]: LOCAL_ADMIN } }), {
    mode: 0o600,
  });
  return { DAFTKA_GATEWAY_AUTH: 'tokens', DAFTKA_GATEWAY_TOKENS_FILE: file };
}

/** Write the topics file and start nats-server, the replicas and the gateway. */
export function startLocal(plan: LocalPlan, opts: StartOptions): LocalRun {
  mkdirSync(plan.logDir, { recursive: true });
  const entries = plan.topics.map((t) => {
    const e = catalogEntry(t.name, t.spec, plan.replicas);
    // With auth on, local-admin administers every topic (closed by default leaves the rest as the spec says).
    if (plan.auth === 'tokens' && !e.access.admins.includes(LOCAL_ADMIN)) e.access.admins.push(LOCAL_ADMIN);
    return e;
  });
  writeFileSync(plan.topicsFile, JSON.stringify({ topics: entries }, null, 2));
  const authEnv = gatewayAuthEnv(plan, opts.tokens ?? {});
  const security = localSecurityEnv(
    plan.dataDir,
    plan.topics.map((t) => t.name),
    plan.natsUrl,
  );
  const natsConf = join(plan.dataDir, 'nats.conf');
  writeFileSync(natsConf, security.natsConfig!, { mode: 0o600 });
  const clientAuth = localClientAuth(plan.dataDir);
  const authHeaders: Record<string, string> =
    plan.auth === 'tokens' ? { authorization: `Bearer ${localAdminToken(plan.dataDir)}` } : {};
  const driver = new ProcessDriver(plan.logDir, opts.logger, opts.driver);
  const tsx = ['--import', 'tsx'];
  driver.start({ name: NATS, command: opts.natsBin, args: ['-c', natsConf], env: {} });
  for (const r of plan.replicas)
    driver.start({
      name: r.name,
      command: process.execPath,
      args: [...tsx, join(REPO_ROOT, 'replica/main.ts')],
      env: {
        ...r.env,
        ...security.replica(r.topic),
        ...(opts.replicaEnv ?? {}),
      },
    });
  driver.start({
    name: GATEWAY,
    command: process.execPath,
    args: [...tsx, join(REPO_ROOT, 'gateway/main.ts')],
    env: {
      DAFTKA_GATEWAY_HOST: '127.0.0.1',
      DAFTKA_GATEWAY_PORT: String(plan.gatewayPort),
      DAFTKA_GATEWAY_TOPICS_FILE: plan.topicsFile,
      DAFTKA_NATS_URL: plan.natsUrl,
      // Loopback only: /metrics stays on the API URL too (tools and tests scrape it there); the
      // metrics listener takes any free port so several stacks can run side by side.
      DAFTKA_GATEWAY_METRICS_PORT: '0',
      DAFTKA_GATEWAY_METRICS_ON_API_PORT: 'true',
      ...security.gateway,
      ...authEnv,
      ...(opts.gatewayEnv ?? {}),
    },
  });

  const alive = () => !Object.values(driver.states()).includes('crash-loop');
  const waitFor = async (what: string, check: () => Promise<boolean>, deadline: number) => {
    while (Date.now() < deadline) {
      if (!alive()) throw new Error(`${what}: a process it needs exited; see the logs in ${plan.logDir}`);
      if (await check().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${what}: not ready in time; see the logs in ${plan.logDir}`);
  };
  const waitReady = async (timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs;
    const base = plan.gatewayUrl;
    // A leader alone is not enough: a new group is founded by ordinal 0 alone and refuses
    // writes (NO_QUORUM) until a majority of it are voters. Ready = every group whole.
    for (const t of plan.topics)
      for (let p = 0; p < t.spec.partitions; p++) {
        const members = plan.replicas.filter((r) => r.topic === t.name && r.partition === p);
        await waitFor(
          `partition ${t.name}/${p} (all ${t.spec.replicationFactor} replicas voters)`,
          async () => {
            for (const r of members) {
              const s = await replicaStatus(r.address.clientPort, t.name, p, clientAuth).catch(() => null);
              if (s?.role === 'leader' && s.voters.length === t.spec.replicationFactor) return true;
            }
            return false;
          },
          deadline,
        );
      }
    await waitFor('gateway', async () => (await fetch(`${base}/healthz`)).ok, deadline);
    for (const t of plan.topics)
      await waitFor(
        `topic ${t.name}`,
        async () => {
          const res = await fetch(`${base}/v1/topics/${t.name}`, { headers: authHeaders });
          if (!res.ok) return false;
          const body = (await res.json()) as { partitions?: Array<{ leader?: unknown }> };
          return (
            Array.isArray(body.partitions) &&
            body.partitions.length === t.spec.partitions &&
            body.partitions.every((p) => p.leader)
          );
        },
        deadline,
      );
  };
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= driver.stopAll([(n) => n === GATEWAY, (n) => n !== NATS, () => true]));
  return { plan, driver, waitReady, stop };
}

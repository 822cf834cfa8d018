import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DaftkaError } from '../../common/errors';
import { REPLICA_NODE_FLAGS, REPLICA_PROCESS_ENV } from '../../common/replica-process';
import type { PartitionStatus } from '../../common/partition-api';
import { RemotePartitionClient } from '../../protocol/partition-client';
import { RpcClient } from '../../protocol/rpc-client';
import { adminKeyOf, clientKeyOf, type RpcClientAuth } from '../../protocol/rpc-auth';
import type { ClientTls } from '../../common/tls';
import { freePort } from './free-port';

/**
 * Real replica processes on loopback for integration tests and benchmarks: N processes of
 * `node --import tsx replica/main.ts`, each with its own free peer/client/http ports, temp data
 * dir and log file (stdout and stderr of every incarnation, appended). Helpers to wait until the
 * group has formed, find the leader (status over the client port), kill -9 / SIGTERM / restart /
 * wipe one replica, and read /readyz and /metrics.
 *
 * Every child is killed on `stop()`; and each child kills itself when this process goes away,
 * however it ends (its stdin is a pipe from us, see parent-watchdog.cjs), so a failing or killed
 * test run never leaves replicas behind.
 */

const REPO_ROOT = resolve(__dirname, '..', '..');
const MAIN = join(REPO_ROOT, 'replica', 'main.ts');
const WATCHDOG = join(__dirname, 'parent-watchdog.cjs');

/**
 * How replica processes are started:
 *  - 'bundle' (the default): the current sources bundled by esbuild (the transpiler tsx itself
 *    uses) into node_modules/.cache once per test file, then `node <bundle>/main.js` — the
 *    semantics of compiled JS, like the image's `dist/`. A group forms in about half the time:
 *    no process transpiles ~150 modules through tsx's loader thread (seconds of CPU each on a
 *    loaded 2-core machine; measured 9–12 s vs 21–24 s to a formed group at load ≈ 25);
 *  - 'tsx': `node --import tsx replica/main.ts`, exactly the development command
 *    (DAFTKA_TEST_REPLICA_RUNNER=tsx). test/integration/replica/config.test.ts always uses it.
 */
export type ReplicaRunner = 'tsx' | 'bundle';
let bundleDir: string | null = null;
/** Clusters started and not stopped: the bundle is removed when the last one stops. */
let activeClusters = 0;

function bundleReplica(): string {
  if (bundleDir !== null) return bundleDir;
  const dir = join(REPO_ROOT, 'node_modules', '.cache', `daftka-replica-${process.pid}`);
  // esbuild is tsx's own transpiler (a dependency of tsx).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const esbuild = require('esbuild') as typeof import('esbuild');
  esbuild.buildSync({
    // The storage worker is started from `${__dirname}/worker` (replica/storage/channel.ts).
    entryPoints: { main: MAIN, worker: join(REPO_ROOT, 'replica', 'storage', 'worker.ts') },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outdir: dir,
    external: ['@nxtedition/rocksdb'],
    // A linked map without the sources: an inline one (sources included) made the bundle's text
    // ~4.8 MB, held by the replica as a two-byte string plus the parsed map (~14 MB of heap).
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'error',
  });
  bundleDir = dir;
  return dir;
}

function replicaCommand(runner: ReplicaRunner): string[] {
  return runner === 'bundle' ? ['--enable-source-maps', join(bundleReplica(), 'main.js')] : ['--import', 'tsx', MAIN];
}

/** Every replica child spawned by this process; killed on exit whatever happened. */
const LIVE = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of LIVE) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

export interface ReplicaClusterOptions {
  /** Number of replica processes (= DAFTKA_REPLICAS entries). Default 3. */
  size?: number;
  /** DAFTKA_REPLICATION_FACTOR. Default `size`. */
  replicationFactor?: number;
  topic?: string;
  partition?: number;
  /** DAFTKA_NATS_URL (empty: no announcements). */
  natsUrl?: string;
  /** Extra DAFTKA_* env for every replica (e.g. DAFTKA_ELECTION_TIMEOUT_MS). */
  env?: Record<string, string>;
  /** Extra env for one ordinal (overrides `env`). */
  envFor?: (ordinal: number) => Record<string, string>;
  /** Extra node flags for one ordinal's process (e.g. `--cpu-prof --cpu-prof-dir=…` to profile it). */
  nodeArgsFor?: (ordinal: number) => string[];
  /** 'bundle' or 'tsx' (see ReplicaRunner); default DAFTKA_TEST_REPLICA_RUNNER, else 'bundle'. */
  runner?: ReplicaRunner;
  /** Start only these ordinals at first (default all). */
  startOrdinals?: number[];
  /** Where log files go; default a temp dir kept after `stop()` when `keepLogs` (or DAFTKA_KEEP_LOGS=1). */
  logDir?: string;
  keepLogs?: boolean;
  /** TLS for `client()` (replicas started with DAFTKA_TLS_DIR in `env`). */
  clientTls?: ClientTls;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One ordinal's slot: stable ports and data dir across restarts, one process at a time. */
export class ReplicaSlot {
  proc: ChildProcess | null = null;
  exited: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  lastExit: ExitInfo | null = null;
  /** How many processes were started in this slot. */
  starts = 0;
  private rpc: RpcClient | null = null;
  private clientCache: RemotePartitionClient | null = null;
  /** The credential `client()` proves (set by the cluster: its admin key, which admits every method). */
  auth: RpcClientAuth | undefined;
  /** TLS of `client()`, when the replicas serve it. */
  tls: ClientTls | undefined;

  constructor(
    readonly ordinal: number,
    readonly peerPort: number,
    readonly clientPort: number,
    readonly httpPort: number,
    readonly dataDir: string,
    readonly logFile: string,
  ) {}

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get clientEndpoint(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  /** A client for this replica's client port (one connection, reused; reconnects by itself). */
  client(): RemotePartitionClient {
    if (this.clientCache === null) {
      this.rpc = new RpcClient({
        host: '127.0.0.1',
        port: this.clientPort,
        connectTimeoutMs: 1000,
        ...(this.auth ? { auth: this.auth } : {}),
        ...(this.tls ? { tls: this.tls } : {}),
      });
      this.clientCache = new RemotePartitionClient(this.rpc, { defaultTimeoutMs: 2000 });
    }
    return this.clientCache;
  }

  closeClient(): void {
    this.rpc?.close();
    this.rpc = null;
    this.clientCache = null;
  }

  /** The last `lines` lines of this slot's log file. */
  logTail(lines = 40): string {
    if (!existsSync(this.logFile)) return '(no log)';
    const all = readFileSync(this.logFile, 'utf8').split('\n');
    return all.slice(-lines - 1).join('\n');
  }

  /** Parsed JSON log lines of this slot (every incarnation), non-JSON lines skipped. */
  logEvents(): Array<Record<string, unknown>> {
    if (!existsSync(this.logFile)) return [];
    const out: Array<Record<string, unknown>> = [];
    for (const line of readFileSync(this.logFile, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* a partial last line */
      }
    }
    return out;
  }
}

export class ReplicaCluster {
  readonly topic: string;
  readonly partition: number;
  readonly slots: ReplicaSlot[];
  private readonly replicasEnv: string;
  private stopped = false;

  private constructor(
    private readonly opts: ReplicaClusterOptions,
    slots: ReplicaSlot[],
    readonly baseDir: string,
    readonly logDir: string,
  ) {
    this.topic = opts.topic ?? 'orders';
    this.partition = opts.partition ?? 0;
    this.slots = slots;
    this.replicasEnv = slots.map((s) => `127.0.0.1:${s.peerPort}:${s.clientPort}`).join(',');
  }

  /** Allocate ports and dirs, start the replicas (all, or `startOrdinals`). Does not wait for the group. */
  static async start(opts: ReplicaClusterOptions = {}): Promise<ReplicaCluster> {
    installExitHook();
    activeClusters++;
    const size = opts.size ?? 3;
    const baseDir = mkdtempSync(join(tmpdir(), 'daftka-replicas-'));
    const logDir = opts.logDir ?? join(baseDir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const slots: ReplicaSlot[] = [];
    const used = new Set<number>();
    const port = async () => {
      for (;;) {
        const p = await freePort();
        if (!used.has(p)) {
          used.add(p);
          return p;
        }
      }
    };
    for (let o = 0; o < size; o++)
      slots.push(
        new ReplicaSlot(
          o,
          await port(),
          await port(),
          await port(),
          join(baseDir, `data-${o}`),
          join(logDir, `replica-${o}.log`),
        ),
      );
    const cluster = new ReplicaCluster(opts, slots, baseDir, logDir);
    for (const s of slots) {
      s.auth = cluster.adminAuth;
      s.tls = opts.clientTls;
    }
    for (const o of opts.startOrdinals ?? slots.map((s) => s.ordinal)) cluster.spawn(o);
    return cluster;
  }

  /** The group's peer secret (DAFTKA_PEER_SECRET of every replica, unless `env` overrides it). */
  readonly peerSecret = randomBytes(32).toString('base64');
  /** The operator's secret (DAFTKA_ADMIN_SECRET of every replica): admin methods on the client port. */
  readonly adminSecret = randomBytes(32).toString('base64');

  /** The topic's client credential: what the gateway proves (every method but admin ones). */
  get clientAuth(): RpcClientAuth {
    return { keyFor: (t) => (t === this.topic ? clientKeyOf(this.peerSecret, t) : undefined) };
  }
  /** The operator's credential: every method. */
  get adminAuth(): RpcClientAuth {
    return { adminKey: adminKeyOf(this.adminSecret) };
  }

  /** The environment a replica of `ordinal` is started with. */
  envOf(ordinal: number): Record<string, string> {
    const s = this.slots[ordinal];
    return {
      DAFTKA_TOPIC: this.topic,
      DAFTKA_PARTITION: String(this.partition),
      DAFTKA_ORDINAL: String(ordinal),
      DAFTKA_REPLICAS: this.replicasEnv,
      DAFTKA_REPLICATION_FACTOR: String(this.opts.replicationFactor ?? this.slots.length),
      DAFTKA_DATA_DIR: s.dataDir,
      DAFTKA_HTTP_PORT: String(s.httpPort),
      DAFTKA_NATS_URL: this.opts.natsUrl ?? '',
      DAFTKA_LOG_LEVEL: 'info',
      // Peers authenticate as they do under the operator (a secret per group).
      DAFTKA_PEER_SECRET: this.peerSecret,
      DAFTKA_ADMIN_SECRET: this.adminSecret,
      ...(this.opts.env ?? {}),
      ...(this.opts.envFor?.(ordinal) ?? {}),
    };
  }

  private spawn(ordinal: number, extraEnv: Record<string, string> = {}): void {
    if (this.stopped) throw new Error('cluster is stopped');
    const s = this.slots[ordinal];
    if (s.running) throw new Error(`replica ${ordinal} is already running (pid ${s.pid})`);
    const fd = openSync(s.logFile, 'a');
    // Started as every launcher should start a replica (common/replica-process.ts); the caller's
    // environment and node args come after, so a bench can compare other settings.
    const env: Record<string, string> = { ...REPLICA_PROCESS_ENV };
    // Inherit the basics (PATH, HOME, NODE_OPTIONS…), never a stray DAFTKA_* from the caller.
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('DAFTKA_')) env[k] = v;
    Object.assign(env, this.envOf(ordinal), extraEnv);
    const runner = this.opts.runner ?? (process.env.DAFTKA_TEST_REPLICA_RUNNER === 'tsx' ? 'tsx' : 'bundle');
    const args = [
      ...REPLICA_NODE_FLAGS,
      ...(this.opts.nodeArgsFor?.(ordinal) ?? []),
      '--require',
      WATCHDOG,
      ...replicaCommand(runner),
    ];
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env,
      // stdin is a pipe from us: the watchdog kills the child when we go away (see parent-watchdog.cjs).
      stdio: ['pipe', fd, fd],
    });
    closeSync(fd);
    LIVE.add(child);
    s.proc = child;
    s.starts++;
    s.exited = new Promise<ExitInfo>((res) => {
      child.once('exit', (code, signal) => {
        LIVE.delete(child);
        s.lastExit = { code, signal };
        res({ code, signal });
      });
    });
  }

  // ---- process control ----

  /** Send `signal` and wait for the exit (SIGKILL after `timeoutMs`). */
  async kill(ordinal: number, signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 15_000): Promise<ExitInfo> {
    const s = this.slots[ordinal];
    s.closeClient();
    if (!s.running) return s.lastExit ?? { code: null, signal: null };
    s.proc!.kill(signal);
    const t = setTimeout(() => s.proc?.kill('SIGKILL'), timeoutMs);
    const info = await s.exited;
    clearTimeout(t);
    return info;
  }

  /** SIGTERM (graceful: leadership transfer, flush) and wait for the exit. */
  sigterm(ordinal: number, timeoutMs = 15_000): Promise<ExitInfo> {
    return this.kill(ordinal, 'SIGTERM', timeoutMs);
  }

  /** Start the replica of `ordinal` again (same ports; same data dir unless `wipe`). */
  async restart(ordinal: number, opts: { wipe?: boolean; env?: Record<string, string> } = {}): Promise<void> {
    const s = this.slots[ordinal];
    if (s.running) await this.kill(ordinal, 'SIGKILL');
    if (opts.wipe) this.wipe(ordinal);
    this.spawn(ordinal, opts.env);
  }

  /** Delete a (stopped) replica's data dir: it comes back as a new incarnation. */
  wipe(ordinal: number): void {
    const s = this.slots[ordinal];
    if (s.running) throw new Error(`wipe of running replica ${ordinal}`);
    rmSync(s.dataDir, { recursive: true, force: true });
  }

  /** Kill every replica (SIGKILL), close clients; remove dirs unless logs are to be kept. */
  async stop(opts: { keepLogs?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.slots.map((s) => this.kill(s.ordinal, 'SIGKILL', 5000)));
    if (--activeClusters === 0 && bundleDir !== null) {
      rmSync(bundleDir, { recursive: true, force: true });
      bundleDir = null;
    }
    const keep = opts.keepLogs ?? this.opts.keepLogs ?? process.env.DAFTKA_KEEP_LOGS === '1';
    for (const s of this.slots) rmSync(s.dataDir, { recursive: true, force: true });
    if (!keep && this.opts.logDir === undefined) rmSync(this.baseDir, { recursive: true, force: true });
  }

  // ---- observation ----

  client(ordinal: number): RemotePartitionClient {
    return this.slots[ordinal].client();
  }

  /** Status over the client port, or null when the replica does not answer. */
  async status(ordinal: number, timeoutMs = 1000): Promise<PartitionStatus | null> {
    const s = this.slots[ordinal];
    if (!s.running) return null;
    try {
      return await withTimeout(
        s.client().status({ topic: this.topic, partition: this.partition, requestId: `test-status-${ordinal}` }),
        timeoutMs,
      );
    } catch {
      return null;
    }
  }

  async statuses(): Promise<Array<PartitionStatus | null>> {
    return Promise.all(this.slots.map((s) => this.status(s.ordinal)));
  }

  /** The running replica that says it leads, with the highest term; null when none does. */
  async leader(): Promise<{ ordinal: number; status: PartitionStatus } | null> {
    const all = await this.statuses();
    let best: { ordinal: number; status: PartitionStatus } | null = null;
    all.forEach((st, ordinal) => {
      if (st && st.role === 'leader' && (best === null || st.term > best.status.term)) best = { ordinal, status: st };
    });
    return best;
  }

  async waitForLeader(
    timeoutMs = 20_000,
    exclude: number[] = [],
  ): Promise<{ ordinal: number; status: PartitionStatus }> {
    let found: { ordinal: number; status: PartitionStatus } | null = null;
    await this.waitFor(
      async () => {
        found = await this.leader();
        return found !== null && !exclude.includes(found.ordinal);
      },
      timeoutMs,
      `a leader${exclude.length ? ` other than ${exclude.join(',')}` : ''}`,
    );
    return found!;
  }

  /**
   * Wait until the group has formed: a leader whose voters are exactly one id per ordinal in
   * `ordinals` (default all) — the ids those replicas report now —, no learners, and each of
   * them ready (/readyz 200) and applied up to the leader's commit.
   */
  async waitFormed(timeoutMs = 30_000, ordinals = this.slots.map((s) => s.ordinal)): Promise<PartitionStatus> {
    let leaderStatus: PartitionStatus | null = null;
    await this.waitFor(
      async () => {
        const all = await this.statuses();
        const l = all.find((st) => st?.role === 'leader');
        if (!l) return false;
        const ids = ordinals.map((o) => all[o]?.replicaId);
        if (ids.some((id) => id === undefined)) return false;
        if (l.learners.length > 0 || l.voters.length !== ids.length) return false;
        if (!ids.every((id) => l.voters.includes(id!))) return false;
        for (const o of ordinals) {
          if (all[o]!.appliedIndex < l.commitIndex) return false;
          if ((await this.readyz(o)).status !== 200) return false;
        }
        leaderStatus = l;
        return true;
      },
      timeoutMs,
      `the group to form with ordinals ${ordinals.join(',')}`,
    );
    return leaderStatus!;
  }

  /** GET /readyz: status code and body (status 0 when the port does not answer). */
  async readyz(ordinal: number): Promise<{ status: number; body: Record<string, unknown> }> {
    try {
      const r = await httpGet(this.slots[ordinal].httpPort, '/readyz');
      return { status: r.status, body: JSON.parse(r.body) as Record<string, unknown> };
    } catch {
      return { status: 0, body: {} };
    }
  }

  /** GET /metrics text. */
  async metricsText(ordinal: number): Promise<string> {
    return (await httpGet(this.slots[ordinal].httpPort, '/metrics')).body;
  }

  /** Sum of the samples of one metric (optionally only those whose labels include `labels`). */
  async metric(ordinal: number, name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricFromText(await this.metricsText(ordinal), name, labels);
  }

  /** Poll `check` until it returns true; on timeout the error includes every replica's log tail. */
  async waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last: unknown = null;
    while (Date.now() < until) {
      try {
        if (await check()) return;
        last = null;
      } catch (e) {
        last = e;
      }
      await sleep(50);
    }
    throw new Error(
      `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}\n${this.describe()}`,
    );
  }

  /** Log tails of every replica, for failure messages. */
  describe(lines = 15): string {
    return this.slots
      .map(
        (s) =>
          `--- replica ${s.ordinal} (${s.running ? `pid ${s.pid}` : `exited ${JSON.stringify(s.lastExit)}`}, ${s.logFile}) ---\n${s.logTail(lines)}`,
      )
      .join('\n');
  }
}

// ---- small utilities (also used by the tests) ----

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new DaftkaError('TIMEOUT', `no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export function httpGet(port: number, path: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Sum of the samples of `name` in Prometheus text whose labels include `labels`. */
export function metricFromText(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const kv of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[kv[1]] = kv[2];
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

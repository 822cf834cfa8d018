import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../common/config';
import { createLogger } from '../../common/log';
import type { TopicSpec } from '../../common/topic-spec';
import type { RpcClientAuth } from '../../protocol/rpc-auth';
import { localSchema } from '../../scripts/local-config';
import {
  firstBusyPort,
  GATEWAY,
  localAdminAuth,
  localAdminToken,
  localClientAuth,
  localNatsUrl,
  NATS,
  natsServerPath,
  planLocal,
  replicaStatus,
  startLocal,
  type LocalNatsRole,
  type LocalPlan,
  type LocalRun,
} from '../../scripts/local-mode';

/**
 * The whole Daftka stack on loopback for integration tests and benchmarks: nats-server, every
 * replica of the given topics and the gateway, started by the same code as `npm run local`
 * (scripts/local-mode.ts: topic spec → replica plan → process driver), with a temp data dir and
 * free ports. Exposes each process's pid and ports so a test can kill -9 a leader (the driver
 * restarts it, as Kubernetes would) or stop NATS and keep it down, and always cleans up: `stop()`
 * stops everything in order (SIGKILL after a grace); if the test process exits without it, its
 * 'exit' hook kills every child's process group; and if it dies without running even that
 * (SIGKILL, jest skipping 'exit' listeners), a detached reaper does.
 *
 * Logs stay under `<dataDir>/logs/<process>.log`; the data dir is removed by `stop()` unless
 * `keepData` or DAFTKA_KEEP_LOGS=1 (then its path is printed).
 */

export type TopicDef = { name: string } & Partial<TopicSpec>;

export interface LocalStackOptions {
  /** Default: one topic `t`, 2 partitions × RF 3. */
  topics?: TopicDef[];
  /** Extra environment for the gateway (e.g. DAFTKA_GATEWAY_MAX_INFLIGHT_PER_ENDPOINT). */
  gatewayEnv?: Record<string, string>;
  /** Extra environment for every replica. */
  replicaEnv?: Record<string, string>;
  fsync?: 'always' | 'interval';
  /** Until every partition has a leader. Default 120 s (a loaded 2-core machine). */
  readyTimeoutMs?: number;
  /**
   * Gateway auth on: bearer tokens (token → principal) next to local-admin's (an admin of every
   * topic; `adminToken`). Absent: auth off, every request is the anonymous principal.
   */
  tokens?: Record<string, string>;
  /** Keep the data dir (and logs) after stop. Default: DAFTKA_KEEP_LOGS=1. */
  keepData?: boolean;
  /** SIGTERM → SIGKILL grace per process on stop. Default 8 s. */
  graceMs?: number;
  /**
   * For scripts run from a terminal (benchmarks): on SIGINT/SIGTERM/SIGHUP, stop the stack and
   * exit 130. The children run in their own process groups, so a Ctrl-C reaches only this
   * process; without this they would outlive it. Leave off under jest (it has its own handling;
   * the exit hook still kills every child).
   */
  exitOnSignal?: boolean;
  /**
   * Called with the plan before any process starts: e.g. to mount a size-limited filesystem on a
   * replica's data directory (`replica.env.DAFTKA_DATA_DIR`). Unmount after `stop()` (use
   * `keepData`: the data dir cannot be removed while something is mounted in it).
   */
  beforeStart?: (plan: LocalPlan) => void;
}

export interface ReplicaInfo {
  name: string;
  topic: string;
  partition: number;
  ordinal: number;
  peerPort: number;
  clientPort: number;
  httpPort: number;
  /** `127.0.0.1:<clientPort>`: what NOT_LEADER hints and the topics file name. */
  endpoint: string;
}

export interface HttpAnswer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  /** Milliseconds from sending to the complete answer. */
  ms: number;
}

export interface LeaderInfo extends ReplicaInfo {
  term: number;
  pid: number | undefined;
}

/** Pick a base port below the ephemeral range (32768+) so outgoing connections cannot take ours. */
async function freeLayout(cfgFor: (base: number, nats: number, gw: number) => LocalPlan): Promise<LocalPlan> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 11_000);
    const plan = cfgFor(base, base - 2, base - 1);
    if (plan.replicas.length * 3 + base > 32_000) continue;
    if ((await firstBusyPort(plan)) === null) return plan;
  }
  throw new Error('no free port range for the local stack');
}

/**
 * The last line of clean-up: a detached `sh` that holds a pipe from this process and, when the
 * pipe closes without a word (this process died — SIGKILL, a CI timeout, jest going away without
 * running 'exit' listeners), SIGKILLs the process group of every pid listed in `pidFile`. The
 * children run in their own process groups (a Ctrl-C must reach only the driver), so nothing else
 * would stop them; nats-server cannot preload a Node watchdog. `disarm()` (after a normal stop)
 * empties the list first, so a pid reused meanwhile is never hit.
 */
class Reaper {
  private readonly child: ChildProcess;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pidFile: string,
    private readonly pids: () => number[],
  ) {
    this.refresh();
    this.child = spawn(
      'sh',
      ['-c', 'cat >/dev/null; for p in $(cat "$1" 2>/dev/null); do kill -9 "-$p" 2>/dev/null; done', 'reaper', pidFile],
      { stdio: ['pipe', 'ignore', 'ignore'], detached: true },
    );
    this.child.unref();
    (this.child.stdin as { unref?: () => void } | null)?.unref?.();
    // The driver restarts killed processes with new pids: keep the list current.
    this.timer = setInterval(() => this.refresh(), 500);
    this.timer.unref();
  }

  private refresh(): void {
    writeFileSync(this.pidFile, this.pids().join('\n'));
  }

  disarm(): void {
    clearInterval(this.timer);
    writeFileSync(this.pidFile, '');
    this.child.stdin?.end();
  }
}

export class LocalStack {
  readonly url: string;
  private stopped = false;
  private reaper: Reaper | null = null;

  private constructor(
    readonly plan: LocalPlan,
    readonly run: LocalRun,
    private readonly keepData: boolean,
  ) {
    this.url = plan.gatewayUrl;
  }

  static async start(opts: LocalStackOptions = {}): Promise<LocalStack> {
    const natsBin = natsServerPath();
    if (natsBin === null)
      throw new Error('nats-server is not installed: run scripts/ensure-deps.sh (apt-get install nats-server)');
    const dataDir = mkdtempSync(join(tmpdir(), 'daftka-stack-'));
    const topics = opts.topics ?? [{ name: 't', partitions: 2, replicationFactor: 3 }];
    const plan = await freeLayout((base, nats, gw) =>
      planLocal(
        loadConfig(localSchema, {
          DAFTKA_LOCAL_DATA_DIR: dataDir,
          DAFTKA_LOCAL_TOPICS_JSON: JSON.stringify(topics),
          DAFTKA_LOCAL_BASE_PORT: String(base),
          DAFTKA_LOCAL_NATS_PORT: String(nats),
          DAFTKA_LOCAL_GATEWAY_PORT: String(gw),
          DAFTKA_FSYNC: opts.fsync ?? 'always',
          DAFTKA_LOCAL_AUTH: opts.tokens ? 'tokens' : 'none',
        }),
      ),
    );
    mkdirSync(plan.logDir, { recursive: true });
    opts.beforeStart?.(plan);
    // The driver's own lines (restarts, crash loops) go next to the process logs, not to the test output.
    const logger = createLogger('local-stack', { stream: createWriteStream(join(plan.logDir, 'driver.log')) });
    const run = startLocal(plan, {
      logger,
      natsBin,
      gatewayEnv: { DAFTKA_LOG_LEVEL: 'warn', ...(opts.gatewayEnv ?? {}) },
      replicaEnv: opts.replicaEnv,
      tokens: opts.tokens,
      driver: { graceMs: opts.graceMs ?? 8000, maxRestarts: 20 },
    });
    const stack = new LocalStack(plan, run, opts.keepData ?? process.env.DAFTKA_KEEP_LOGS === '1');
    stack.reaper = new Reaper(join(plan.dataDir, 'pids'), () =>
      run.driver.names().flatMap((n) => run.driver.pid(n) ?? []),
    );
    if (opts.exitOnSignal)
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
        process.once(sig, () => {
          process.stderr.write(`\n${sig}: stopping the local stack\n`);
          void stack.stop(true).finally(() => process.exit(130));
        });
    try {
      await run.waitReady(opts.readyTimeoutMs ?? 120_000);
    } catch (err) {
      const tails = ['gateway', ...plan.replicas.map((r) => r.name)].map((n) => `--- ${n}\n${stack.logTail(n, 1500)}`);
      await stack.stop(true);
      throw new Error(`${(err as Error).message}\n${tails.join('\n')}`);
    }
    return stack;
  }

  get dataDir(): string {
    return this.plan.dataDir;
  }
  /** Every topic's client key (client-port admission): what the gateway proves. */
  get clientAuth(): RpcClientAuth {
    return localClientAuth(this.plan.dataDir);
  }
  /** The operator's admin credential on the client ports. */
  get adminAuth(): RpcClientAuth {
    return localAdminAuth(this.plan.dataDir);
  }
  /** local-admin's bearer token when the stack runs with `tokens` (auth on). */
  get adminToken(): string {
    return localAdminToken(this.plan.dataDir);
  }
  get natsPort(): number {
    return this.plan.natsPort;
  }
  /** NATS without credentials: local mode's nats-server refuses it (use natsUrlAs). */
  get natsUrl(): string {
    return this.plan.natsUrl;
  }
  /** NATS with a role's credentials (scripts/local-mode.ts localNatsUrl). */
  natsUrlAs(role: LocalNatsRole): string {
    return localNatsUrl(this.plan.dataDir, this.plan.natsUrl, role);
  }
  get gatewayPort(): number {
    return this.plan.gatewayPort;
  }

  replicas(topic?: string, partition?: number): ReplicaInfo[] {
    return this.plan.replicas
      .filter(
        (r) => (topic === undefined || r.topic === topic) && (partition === undefined || r.partition === partition),
      )
      .map((r) => ({
        name: r.name,
        topic: r.topic,
        partition: r.partition,
        ordinal: r.ordinal,
        peerPort: r.address.peerPort,
        clientPort: r.address.clientPort,
        httpPort: r.address.httpPort,
        endpoint: `127.0.0.1:${r.address.clientPort}`,
      }));
  }

  /** Current pid of a process (`gateway`, `nats-server` or a replica name), undefined while it is down. */
  pid(name: string): number | undefined {
    return this.run.driver.pid(name);
  }
  get gatewayPid(): number | undefined {
    return this.pid(GATEWAY);
  }
  get natsPid(): number | undefined {
    return this.pid(NATS);
  }
  restarts(name: string): number {
    return this.run.driver.restarts(name);
  }

  /** Signal a process (default SIGKILL); the driver restarts it after its backoff, as Kubernetes would. */
  kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): number {
    const pid = this.pid(name);
    if (pid === undefined) throw new Error(`${name} is not running`);
    process.kill(pid, signal);
    return pid;
  }

  /** Stop a process and keep it down (SIGTERM, or SIGKILL) until `resume(name)`. */
  stopProcess(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    return this.run.driver.stop(name, signal);
  }
  resume(name: string): void {
    this.run.driver.resume(name);
  }
  stopNats(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.stopProcess(NATS, signal);
  }
  startNats(): void {
    this.resume(NATS);
  }

  /** The replica that says it leads `topic/partition` (its own status over the client port), highest term wins. */
  async leader(topic: string, partition: number): Promise<LeaderInfo | null> {
    let best: LeaderInfo | null = null;
    await Promise.all(
      this.replicas(topic, partition).map(async (r) => {
        const s = await replicaStatus(r.clientPort, topic, partition, this.clientAuth).catch(() => null);
        if (s === null || s.role !== 'leader') return;
        if (best === null || s.term > best.term) best = { ...r, term: s.term, pid: this.pid(r.name) };
      }),
    );
    return best;
  }

  /** Wait until a leader other than `not` (a replica name) leads the partition. */
  async waitForLeader(
    topic: string,
    partition: number,
    opts: { not?: string; timeoutMs?: number } = {},
  ): Promise<LeaderInfo> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      const l = await this.leader(topic, partition);
      if (l !== null && l.name !== opts.not) return l;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no leader for ${topic}/${partition}${opts.not ? ` other than ${opts.not}` : ''} in time`);
  }

  /**
   * Wait until the partition's group is whole again: every replica answers status, a leader has
   * all RF replicas as voters, and every replica has applied up to the leader's commit index.
   * Use it between failures, so two kills do not overlap (a SIGKILLed replica takes a few
   * seconds to come back under tsx on a loaded machine).
   */
  async waitForGroup(topic: string, partition: number, timeoutMs = 60_000): Promise<LeaderInfo> {
    const members = this.replicas(topic, partition);
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    while (Date.now() < deadline) {
      const st = await Promise.all(
        members.map((r) => replicaStatus(r.clientPort, topic, partition, this.clientAuth).catch(() => null)),
      );
      const leaderIdx = st.findIndex((x) => x?.role === 'leader');
      const leader = leaderIdx >= 0 ? st[leaderIdx] : null;
      if (st.some((x) => x === null)) last = `${st.filter((x) => x === null).length} replica(s) not answering`;
      else if (leader === null || leader === undefined) last = 'no leader';
      else if (leader.voters.length !== members.length) last = `${leader.voters.length} voters`;
      else if (st.some((x) => x!.appliedIndex < leader.commitIndex)) last = 'replicas catching up';
      else return { ...members[leaderIdx], term: leader.term, pid: this.pid(members[leaderIdx].name) };
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${topic}/${partition} not whole within ${timeoutMs} ms: ${last}`);
  }

  /** One HTTP call to the gateway; the body is parsed as JSON when it is JSON. */
  async http<T = unknown>(
    method: string,
    path: string,
    opts: { body?: unknown; rawBody?: string | Uint8Array; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<HttpAnswer<T>> {
    const t0 = performance.now();
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    let body: string | Uint8Array | undefined = opts.rawBody;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers,
      body,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text !== '') parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed as T, ms: performance.now() - t0 };
  }

  /** Resident set size of a process in bytes (/proc/<pid>/status VmRSS). */
  rssBytes(name: string): number {
    const pid = this.pid(name);
    if (pid === undefined) throw new Error(`${name} is not running`);
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (!m) throw new Error(`no VmRSS for ${name} (pid ${pid})`);
    return Number(m[1]) * 1024;
  }

  logTail(name: string, chars = 4000): string {
    const f = join(this.plan.logDir, `${name}.log`);
    if (!existsSync(f)) return '(no log)';
    const s = readFileSync(f, 'utf8');
    return s.slice(-chars);
  }

  /** Stop everything (gateway, replicas, nats-server; SIGKILL after the grace) and remove the data dir. Idempotent. */
  async stop(quiet = false): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.run.stop();
    this.reaper?.disarm();
    if (this.keepData) {
      if (!quiet) process.stderr.write(`local stack data and logs kept in ${this.dataDir}\n`);
    } else rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/** A value of a Prometheus text exposition (first sample whose labels contain `labels`). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const ls = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => ls.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return undefined;
}

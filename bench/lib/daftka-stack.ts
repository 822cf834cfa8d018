/**
 * Daftka in local mode for a benchmark: the same plan `npm run local` runs (common/topic-spec.ts
 * → replicas, catalogEntry → the gateway's topics file; a control-plane nats-server), but on free
 * loopback ports and a temp data dir, with every pid known to the harness (CPU accounting,
 * kill -9 of a leader) and optional extra node flags per process (--cpu-prof).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { catalogEntry, desiredReplicas, type DesiredReplica, type TopicSpec } from '../../common/topic-spec';
import { localSecurityEnv } from '../../scripts/local-mode';
import { freePort, killProc, sleep, startProc, stopProc, tempDirRemovedAtExit, type Proc } from './procs';
import { httpJson } from './http';

const ROOT = resolve(__dirname, '..', '..');

export interface DaftkaStackOptions {
  topic: string;
  partitions: number;
  fsync: 'always' | 'interval';
  /** Extra node flags for the gateway / every replica (e.g. --cpu-prof). */
  gatewayNodeArgs?: string[];
  replicaNodeArgs?: string[];
  extraReplicaEnv?: Record<string, string>;
  extraGatewayEnv?: Record<string, string>;
  readyTimeoutMs?: number;
}

export interface PartitionInfo {
  partition: number;
  leader: string | null;
  term?: number;
  high_watermark?: number;
}

export function natsServerBinary(): string {
  const p = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim();
  if (!p) throw new Error('nats-server is not installed (scripts/ensure-deps.sh installs it)');
  return p;
}

export class DaftkaStack {
  readonly replicaProcs = new Map<string, Proc>();
  gateway!: Proc;
  nats!: Proc;
  baseUrl = '';
  gatewayPort = 0;

  private constructor(
    readonly opts: DaftkaStackOptions,
    readonly dir: string,
    readonly replicas: DesiredReplica[],
  ) {}

  static async start(opts: DaftkaStackOptions): Promise<DaftkaStack> {
    const dir = tempDirRemovedAtExit(mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'daftka-bench-')));
    const logDir = join(dir, 'logs');
    mkdirSync(logDir, { recursive: true });
    const natsPort = await freePort();
    const natsUrl = `nats://127.0.0.1:${natsPort}`;
    const spec: TopicSpec = { partitions: opts.partitions, replicationFactor: 3 };
    const addrs = new Map<string, { host: string; peerPort: number; clientPort: number; httpPort: number }>();
    for (let p = 0; p < opts.partitions; p++)
      for (let o = 0; o < 3; o++)
        addrs.set(`${p}/${o}`, {
          host: '127.0.0.1',
          peerPort: await freePort(),
          clientPort: await freePort(),
          httpPort: await freePort(),
        });
    // The credentials npm run local uses: peer secret, client keys, admin and lease secrets.
    const security = localSecurityEnv(dir, [opts.topic], natsUrl);
    const natsConf = join(dir, 'nats.conf');
    writeFileSync(natsConf, security.natsConfig!, { mode: 0o600 });
    const replicas = desiredReplicas(opts.topic, spec, (p, o) => addrs.get(`${p}/${o}`)!, {
      natsUrl,
      listenHost: '127.0.0.1',
      dataDir: (p, o) => join(dir, 'replicas', `${opts.topic}-${p}-${o}`),
      extraEnv: { DAFTKA_FSYNC: opts.fsync, ...security.replica(opts.topic), ...(opts.extraReplicaEnv ?? {}) },
    });
    const stack = new DaftkaStack(opts, dir, replicas);
    const topicsFile = join(dir, 'topics.json');
    writeFileSync(topicsFile, JSON.stringify({ topics: [catalogEntry(opts.topic, spec, replicas)] }, null, 2));

    stack.nats = startProc('nats-server', natsServerBinary(), ['-c', natsConf], {}, join(logDir, 'nats-server.log'));
    for (const r of replicas) stack.spawnReplica(r);
    stack.gatewayPort = await freePort();
    stack.baseUrl = `http://127.0.0.1:${stack.gatewayPort}`;
    stack.gateway = startProc(
      'gateway',
      process.execPath,
      [...(opts.gatewayNodeArgs ?? []), '--import', 'tsx', join(ROOT, 'gateway/main.ts')],
      {
        DAFTKA_GATEWAY_HOST: '127.0.0.1',
        DAFTKA_GATEWAY_PORT: String(stack.gatewayPort),
        DAFTKA_GATEWAY_METRICS_PORT: '0',
        DAFTKA_GATEWAY_TOPICS_FILE: topicsFile,
        DAFTKA_NATS_URL: natsUrl,
        ...security.gateway,
        ...(opts.extraGatewayEnv ?? {}),
      },
      join(logDir, 'gateway.log'),
    );
    try {
      await stack.waitReady(opts.readyTimeoutMs ?? 180_000);
    } catch (err) {
      await stack.stop();
      throw err;
    }
    return stack;
  }

  private spawnReplica(r: DesiredReplica): void {
    this.replicaProcs.set(
      r.name,
      startProc(
        r.name,
        process.execPath,
        [...(this.opts.replicaNodeArgs ?? []), '--import', 'tsx', join(ROOT, 'replica/main.ts')],
        r.env,
        join(this.dir, 'logs', `${r.name}.log`),
      ),
    );
  }

  /** Every process of the stack by role name (for CPU accounting). */
  procs(): Proc[] {
    return [this.gateway, ...this.replicaProcs.values(), this.nats];
  }

  async partitions(): Promise<PartitionInfo[]> {
    const r = await httpJson('GET', `${this.baseUrl}/v1/topics/${this.opts.topic}`, undefined, 5000);
    if (r.status !== 200) throw new Error(`GET topic: ${r.status}`);
    return (r.body as { partitions: PartitionInfo[] }).partitions;
  }

  /** The replica process name (`topic-p-o`) leading a partition, from the leader id `ordinal.incarnation`. */
  async leaderOf(partition: number): Promise<string | null> {
    const p = (await this.partitions()).find((x) => x.partition === partition);
    const m = p?.leader ? /^(\d+)\./.exec(p.leader) : null;
    return m ? `${this.opts.topic}-${partition}-${m[1]}` : null;
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const check = (what: string) => {
      for (const p of this.procs()) if (!p.alive()) throw new Error(`${what}: ${p.name} exited; see ${p.logFile}`);
      if (Date.now() > deadline) throw new Error(`${what}: not ready within ${timeoutMs} ms; logs in ${this.dir}/logs`);
    };
    // Every partition has a leader and takes a write (the group has its quorum of members).
    for (;;) {
      check('daftka stack');
      try {
        const parts = await this.partitions();
        if (parts.length === this.opts.partitions && parts.every((p) => p.leader)) break;
      } catch {
        /* gateway not up yet */
      }
      await sleep(250);
    }
    for (let p = 0; p < this.opts.partitions; p++)
      for (;;) {
        check(`partition ${p}`);
        const r = await httpJson(
          'POST',
          `${this.baseUrl}/v1/topics/${this.opts.topic}/records`,
          { records: [{ value: 'warm', partition: p }] },
          5000,
        ).catch(() => null);
        if (r?.status === 200) break;
        await sleep(250);
      }
  }

  async killReplica(name: string): Promise<void> {
    const p = this.replicaProcs.get(name);
    if (p) await killProc(p);
  }

  async restartReplica(name: string): Promise<void> {
    const r = this.replicas.find((x) => x.name === name);
    if (!r) throw new Error(`no replica ${name}`);
    this.spawnReplica(r);
  }

  /** Until a replica answers /readyz 200 (storage recovered, member of the group, caught up). */
  async waitReplicaReady(name: string, timeoutMs = 60_000): Promise<void> {
    const r = this.replicas.find((x) => x.name === name);
    if (!r) throw new Error(`no replica ${name}`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const a = await httpJson('GET', `http://127.0.0.1:${r.address.httpPort}/readyz`, undefined, 2000).catch(
        () => null,
      );
      if (a?.status === 200) return;
      if (Date.now() > deadline) throw new Error(`replica ${name} not ready within ${timeoutMs} ms`);
      await sleep(200);
    }
  }

  /**
   * kill -9 everything (the data is thrown away), or with `graceful` the order of `npm run local`:
   * gateway, replicas (SIGTERM: leadership transfer, flush; --cpu-prof writes its profile), nats.
   * The data dir is removed unless `keep` (BENCH_KEEP=1).
   */
  async stop(opts: { graceful?: boolean; keep?: boolean } = {}): Promise<void> {
    const keep = opts.keep ?? process.env.BENCH_KEEP === '1';
    if (opts.graceful) {
      if (this.gateway) await stopProc(this.gateway);
      await Promise.all([...this.replicaProcs.values()].map((p) => stopProc(p, 15_000)));
      if (this.nats) await stopProc(this.nats);
    } else
      await Promise.all(
        this.procs()
          .filter(Boolean)
          .map((p) => killProc(p)),
      );
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

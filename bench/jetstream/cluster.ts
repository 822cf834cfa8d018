/**
 * A 3-node NATS JetStream cluster on loopback for the comparison: three nats-server processes
 * (server names n0..n2, one cluster name, full mesh of routes, JetStream on, separate store dirs),
 * and a file-storage stream with 3 replicas. The stream leader is found with `jsm.streams.info`
 * (`cluster.leader`), so a benchmark can kill -9 exactly that server.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, RetentionPolicy, StorageType, type JetStreamManager, type NatsConnection } from 'nats';
import { natsServerBinary } from '../lib/daftka-stack';
import { freePort, killProc, sleep, startProc, tempDirRemovedAtExit, type Proc } from '../lib/procs';

export interface JsServer {
  name: string;
  port: number;
  clusterPort: number;
  storeDir: string;
  args: string[];
  proc: Proc;
}

export class JetStreamCluster {
  private constructor(
    readonly dir: string,
    readonly servers: JsServer[],
  ) {}

  static async start(size = 3): Promise<JetStreamCluster> {
    const dir = tempDirRemovedAtExit(mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'daftka-bench-js-')));
    const bin = natsServerBinary();
    const ports: Array<{ port: number; clusterPort: number }> = [];
    for (let i = 0; i < size; i++) ports.push({ port: await freePort(), clusterPort: await freePort() });
    const servers: JsServer[] = ports.map((p, i) => {
      const storeDir = join(dir, `n${i}`);
      mkdirSync(storeDir, { recursive: true });
      const routes = ports
        .filter((_, j) => j !== i)
        .map((q) => `nats://127.0.0.1:${q.clusterPort}`)
        .join(',');
      const args = [
        '-a',
        '127.0.0.1',
        '-p',
        String(p.port),
        '-n',
        `n${i}`,
        '-js',
        '-sd',
        storeDir,
        '--cluster_name',
        'daftka-bench',
        '--cluster',
        `nats://127.0.0.1:${p.clusterPort}`,
        '--routes',
        routes,
      ];
      return {
        name: `n${i}`,
        port: p.port,
        clusterPort: p.clusterPort,
        storeDir,
        args,
        proc: startProc(`nats-js-n${i}`, bin, args, {}, join(dir, `n${i}.log`)),
      };
    });
    return new JetStreamCluster(dir, servers);
  }

  urls(except?: string): string[] {
    return this.servers.filter((s) => s.name !== except).map((s) => `127.0.0.1:${s.port}`);
  }

  procs(): Proc[] {
    return this.servers.map((s) => s.proc);
  }

  /** Connect to the given servers (the first one is tried first; no shuffling). */
  async connect(servers = this.urls(), name = 'bench'): Promise<NatsConnection> {
    return connect({
      servers,
      name,
      noRandomize: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
      timeout: 5000,
    });
  }

  /** Create (or re-create) a file-storage R3 stream once the cluster has a JetStream meta leader. */
  async createStream(name: string, subject: string, timeoutMs = 60_000): Promise<void> {
    const nc = await this.connect();
    try {
      const jsm = await nc.jetstreamManager({ checkAPI: false });
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          await jsm.getAccountInfo(); // fails until the JetStream meta group has a leader
          await jsm.streams.delete(name).catch(() => undefined);
          await jsm.streams.add({
            name,
            subjects: [subject],
            storage: StorageType.File,
            num_replicas: 3,
            retention: RetentionPolicy.Limits,
          });
          break;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`JetStream stream ${name} not created: ${String(err)}`);
          await sleep(500);
        }
      }
    } finally {
      await nc.close();
    }
    await this.waitStreamHealthy(name, timeoutMs);
  }

  async streamLeader(jsm: JetStreamManager, stream: string): Promise<JsServer | undefined> {
    const info = await jsm.streams.info(stream);
    return this.servers.find((s) => s.name === info.cluster?.leader);
  }

  async kill(server: JsServer): Promise<void> {
    await killProc(server.proc);
  }

  /** Start a killed server again on its ports and store dir. */
  restart(server: JsServer): void {
    server.proc = startProc(
      `nats-js-${server.name}`,
      natsServerBinary(),
      server.args,
      {},
      join(this.dir, `${server.name}.log`),
    );
  }

  /** Until the stream has a leader and both followers are current. */
  async waitStreamHealthy(stream: string, timeoutMs = 60_000): Promise<void> {
    const nc = await this.connect();
    try {
      const jsm = await nc.jetstreamManager({ checkAPI: false });
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const info = await jsm.streams.info(stream).catch(() => null);
        const c = info?.cluster;
        if (c?.leader && (c.replicas ?? []).length === 2 && (c.replicas ?? []).every((r) => r.current && !r.offline))
          return;
        if (Date.now() > deadline) throw new Error(`JetStream stream ${stream} not healthy within ${timeoutMs} ms`);
        await sleep(250);
      }
    } finally {
      await nc.close();
    }
  }

  /** kill -9 all servers (the store is thrown away) and remove the dir unless BENCH_KEEP=1. */
  async stop(keep = process.env.BENCH_KEEP === '1'): Promise<void> {
    await Promise.all(this.servers.map((s) => killProc(s.proc)));
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

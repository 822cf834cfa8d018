import { randomInt } from 'node:crypto';
import { DaftkaError, isDaftkaError } from '../../common/errors';
import type { RecordIn } from '../../common/partition-api';
import { RemotePartitionClient } from '../../protocol/partition-client';
import { RpcClient } from '../../protocol/rpc-client';
import type { ProxyMesh } from './fault-proxy';
import type { HistoryRecorder } from './history';
import { record, text } from './records';
import { sleep, withTimeout, type ReplicaCluster } from './replica-cluster';

/**
 * The load of the tier-3 nemesis test (test/integration/replica/nemesis.test.ts), recorded into a
 * history for the checker (./history.ts): `Clients` (one connection per replica) and `Workload`.
 */

/** The consumer group the workload commits to and reads. */
export const WORKLOAD_GROUP = 'nemesis-g';
/** Records per batch of a retrying producer. */
const BATCH = 2;

/** Clients of the test's own (not the cluster helper's): one connection per replica, reconnecting after restarts. */
export class Clients {
  private readonly clients: Array<{ rpc: RpcClient; client: RemotePartitionClient }>;
  constructor(readonly cluster: ReplicaCluster) {
    this.clients = cluster.slots.map((s) => {
      const rpc = new RpcClient({
        host: '127.0.0.1',
        port: s.clientPort,
        connectTimeoutMs: 500,
        auth: cluster.adminAuth,
      });
      return { rpc, client: new RemotePartitionClient(rpc, { defaultTimeoutMs: 1500, produceGraceMs: 500 }) };
    });
  }

  /**
   * Call replica `o` and name the process that answered (`<ordinal>@<pid>`); the name is null
   * when the process changed during the call (the answer cannot be attributed).
   */
  async call<T>(
    o: number,
    fn: (c: RemotePartitionClient) => Promise<T>,
  ): Promise<{ value: T; process: string | null }> {
    const slot = this.cluster.slots[o];
    const pid = slot.pid;
    if (!slot.running || pid === undefined)
      throw new DaftkaError('UNAVAILABLE', `replica ${o} is not running`, { extra: { delivery: 'not_sent' } });
    const name = `${o}@${pid}`;
    const value = await fn(this.clients[o].client);
    return { value, process: slot.pid === pid && slot.running ? name : null };
  }

  processOf(o: number): string | null {
    const s = this.cluster.slots[o];
    return s.running && s.pid !== undefined ? `${o}@${s.pid}` : null;
  }

  close(): void {
    for (const c of this.clients) c.rpc.close();
  }
}

/**
 * The workload: producers that retry each batch with its idempotency key until acknowledged,
 * one-shot producers (one attempt per write: their definite failures must never be visible), a
 * group committer and reader, and a poller per replica. Everything lands in the history.
 */
export class Workload {
  readonly errors = new Map<string, number>();
  readonly leadersSeen = new Set<string>();
  private leader: number | null = null;
  private leaderLookup: Promise<number | null> | null = null;
  private stopping = false;
  private drainUntil = Infinity;
  private aborted = false;
  private loops: Promise<void>[] = [];
  private maxAckedEnd = 0;
  private lastCommitInvoked = 0;

  constructor(
    private readonly cluster: ReplicaCluster,
    private readonly mesh: ProxyMesh,
    private readonly clients: Clients,
    private readonly rec: HistoryRecorder,
  ) {}

  start(producers = 4): void {
    for (let i = 0; i < producers; i++) this.loops.push(this.producer(`p${i}`));
    this.loops.push(this.oneShot('once'));
    this.loops.push(this.committer());
    this.loops.push(this.groupReader());
    for (const s of this.cluster.slots) this.loops.push(this.poller(s.ordinal));
  }

  /** Stop new work; writes in flight keep retrying until `drainMs` from now, then are left unknown. */
  async stop(drainMs: number): Promise<void> {
    this.stopping = true;
    this.drainUntil = Date.now() + drainMs;
    await Promise.all(this.loops);
  }

  async abort(): Promise<void> {
    this.stopping = true;
    this.aborted = true;
    this.drainUntil = 0;
    await Promise.all(this.loops);
  }

  private count(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  /** Who leads, asked of every replica (answers recorded): shared by all loops, one lookup at a time. */
  private findLeader(): Promise<number | null> {
    if (this.leaderLookup === null)
      this.leaderLookup = (async () => {
        const answers = await Promise.all(
          this.cluster.slots.map(async (s) => {
            try {
              const invoke = this.rec.tick();
              const { value: st, process } = await this.clients.call(s.ordinal, (c) =>
                withTimeout(
                  c.status({
                    topic: this.cluster.topic,
                    partition: this.cluster.partition,
                    requestId: 'nemesis-status',
                  }),
                  700,
                ),
              );
              if (process !== null)
                this.rec.status({
                  process,
                  invoke,
                  highWatermark: st.highWatermark,
                  logStartOffset: st.logStartOffset,
                  term: st.term,
                  role: st.role,
                  replicaId: st.replicaId,
                });
              return { o: s.ordinal, st };
            } catch {
              return null;
            }
          }),
        );
        let best: { o: number; term: number } | null = null;
        for (const a of answers)
          if (a !== null && a.st.role === 'leader') {
            this.leadersSeen.add(`${a.st.term}/${a.st.replicaId}`);
            if (best === null || a.st.term > best.term) best = { o: a.o, term: a.st.term };
          }
        this.leader = best?.o ?? null;
        this.leaderLookup = null;
        return this.leader;
      })();
    return this.leaderLookup;
  }

  private async target(): Promise<number | null> {
    return this.leader ?? (await this.findLeader());
  }

  /** Follow a NOT_LEADER hint (an address in the replica's own view: real or proxy port). */
  private followHint(err: unknown, asked: number): void {
    const hint = isDaftkaError(err) ? err.leaderHint : undefined;
    const port = hint === undefined ? NaN : Number(hint.split(':').pop());
    const o = this.cluster.slots.find((s) => s.clientPort === port)?.ordinal ?? this.mesh.targetOfPort(port);
    this.leader = o !== undefined && o !== asked ? o : null;
  }

  private canRetry(): boolean {
    return !this.aborted && Date.now() < this.drainUntil;
  }

  private async producer(name: string): Promise<void> {
    for (let seq = 0; !this.stopping; seq++) {
      const key = `${name}-${seq}`;
      const values = Array.from({ length: BATCH }, (_, i) => `${key}/${i}`);
      // The same records (timestamps included) on every attempt: the idempotency key's payload hash.
      const records: RecordIn[] = values.map((v) => record(v, key));
      const op = this.rec.produce(key, values);
      for (let attempt = 1; op.ack === null && this.canRetry(); attempt++) {
        const o = await this.target();
        if (o === null || !this.cluster.slots[o].running) {
          this.leader = null;
          await sleep(50);
          continue;
        }
        const pending = this.rec.attempt(op, this.clients.processOf(o) ?? `${o}@?`);
        try {
          const { value } = await this.clients.call(o, (c) =>
            c.produce({
              topic: this.cluster.topic,
              partition: this.cluster.partition,
              records,
              idempotencyKey: key,
              requestId: `${key}#${attempt}`,
              timeoutMs: 1000,
            }),
          );
          pending.ok(value);
          this.maxAckedEnd = Math.max(this.maxAckedEnd, value.baseOffset + value.count);
        } catch (e) {
          pending.failed(e);
          const code = isDaftkaError(e) ? e.code : 'NON_DAFTKA_ERROR';
          this.count(code);
          this.followHint(e, o);
          if (this.leader === null)
            await sleep(Math.min(isDaftkaError(e) ? (e.retryAfterMs ?? 50) : 50, 200) + randomInt(20));
        }
      }
    }
  }

  /** One attempt per write, to a random replica: followers refuse (a definite failure). */
  private async oneShot(name: string): Promise<void> {
    for (let seq = 0; !this.stopping; seq++) {
      const key = `${name}-${seq}`;
      const values = [`${key}/0`];
      const op = this.rec.produce(key, values);
      const o = randomInt(this.cluster.slots.length);
      const pending = this.rec.attempt(op, this.clients.processOf(o) ?? `${o}@?`);
      try {
        const { value } = await this.clients.call(o, (c) =>
          c.produce({
            topic: this.cluster.topic,
            partition: this.cluster.partition,
            records: values.map((v) => record(v, key)),
            idempotencyKey: key,
            requestId: key,
            timeoutMs: 1000,
          }),
        );
        pending.ok(value);
      } catch (e) {
        pending.failed(e);
      }
      await sleep(20);
    }
  }

  /** Commits increasing offsets (up to what was acknowledged) to whoever leads. */
  private async committer(): Promise<void> {
    while (!this.stopping) {
      await sleep(100);
      const offset = this.maxAckedEnd;
      if (offset <= this.lastCommitInvoked) continue;
      const o = await this.target();
      if (o === null) continue;
      this.lastCommitInvoked = offset;
      const settle = this.rec.commit(WORKLOAD_GROUP, offset, this.clients.processOf(o) ?? `${o}@?`);
      try {
        await this.clients.call(o, (c) =>
          c.commitOffset({
            group: WORKLOAD_GROUP,
            topic: this.cluster.topic,
            partition: this.cluster.partition,
            offset,
            requestId: `commit-${offset}`,
          }),
        );
        settle(null);
      } catch (e) {
        settle(e);
        this.followHint(e, o);
      }
    }
  }

  /** Reads the group offset from every replica in turn (followers refuse; deposed leaders may answer). */
  private async groupReader(): Promise<void> {
    for (let i = 0; !this.stopping; i++) {
      await sleep(60);
      const o = i % this.cluster.slots.length;
      const invoke = this.rec.tick();
      try {
        const { value, process } = await this.clients.call(o, (c) =>
          c.getOffset({
            group: WORKLOAD_GROUP,
            topic: this.cluster.topic,
            partition: this.cluster.partition,
            requestId: 'nemesis-get',
          }),
        );
        if (process !== null)
          this.rec.groupRead({ group: WORKLOAD_GROUP, process, invoke, offset: value.offset, final: false });
      } catch {
        /* not the leader, or unreachable */
      }
    }
  }

  /** Reads one replica's log forward with long-polls; starts again from 0 on a new incarnation. */
  private async poller(o: number): Promise<void> {
    let offset = 0;
    let incarnation: string | null = null;
    while (!this.stopping) {
      const now = this.clients.processOf(o);
      if (now === null) {
        await sleep(100);
        continue;
      }
      if (now !== incarnation) {
        incarnation = now;
        offset = 0;
      }
      const invoke = this.rec.tick();
      try {
        const { value: r, process } = await this.clients.call(o, (c) =>
          c.fetch({
            topic: this.cluster.topic,
            partition: this.cluster.partition,
            offset,
            maxRecords: 1000,
            maxBytes: 4 << 20,
            waitMs: 200,
            requestId: `poll-${o}`,
          }),
        );
        if (process === null) continue;
        this.rec.fetch({
          process,
          invoke,
          offset,
          records: r.records.map((x) => [x.offset, text(x.value)!]),
          nextOffset: r.nextOffset,
          highWatermark: r.highWatermark,
          logStartOffset: r.logStartOffset,
        });
        offset = r.nextOffset;
      } catch {
        await sleep(100);
      }
    }
  }
}

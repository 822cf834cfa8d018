import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DaftkaError, isDaftkaError } from '../../../common/errors';
import type { RecordIn } from '../../../common/partition-api';
import { RemotePartitionClient } from '../../../protocol/partition-client';
import { RpcClient } from '../../../protocol/rpc-client';
import { ProxyMesh } from '../../helpers/fault-proxy';
import { checkHistory, HistoryRecorder, type History } from '../../helpers/history';
import { ReplicaCluster, sleep, withTimeout } from '../../helpers/replica-cluster';
import { Prng } from '../../sim/prng';
import { record, TEST_ENV, text } from './helpers';

/**
 * DESIGN §12 tier 3: three real replica processes whose peer links (Raft traffic, and the
 * replicas' status calls to each other) all run through fault-injecting TCP proxies, one per
 * directed link. A workload — producers retrying with idempotency keys, one-shot producers, a
 * group-offset committer and reader, a poller per replica — runs while a seeded nemesis isolates
 * the leader, cuts links one way, delays and stalls links, SIGSTOPs processes and kill -9s them.
 * Then everything is healed, the group forms and catches up, and a checker over the recorded
 * history (test/helpers/history.ts) must find nothing: no lost acknowledged write, no offset with
 * two values, no duplicate, no failed write visible, monotonic high watermarks and group offsets.
 *
 * Replay a run: DAFTKA_NEMESIS_SEED=<seed printed by the run>. The seed fixes the schedule (which
 * faults, in which order, how long, leader or follower, which link); timing under load does not
 * replay exactly.
 */

jest.setTimeout(120_000);

// ---- the checker has teeth (no processes) ----

describe('history checker (hand-made histories)', () => {
  const err = (code: 'NOT_LEADER' | 'COMMIT_UNKNOWN') => new DaftkaError(code, 'test');

  /** a: [a/0 a/1] acked at 0; b: [b/0] acked at 2; three replicas' final logs agree; g1 committed 3. */
  function base(): { r: HistoryRecorder; h: History } {
    const r = new HistoryRecorder();
    const a = r.produce('a', ['a/0', 'a/1']);
    r.attempt(a, '0@10').failed(err('NOT_LEADER'));
    r.attempt(a, '1@11').ok({ baseOffset: 0, count: 2, duplicate: false });
    const b = r.produce('b', ['b/0']);
    r.attempt(b, '1@11').failed(err('COMMIT_UNKNOWN'));
    r.attempt(b, '1@11').ok({ baseOffset: 2, count: 1, duplicate: true });
    r.fetch({
      process: '2@12',
      invoke: r.tick(),
      offset: 0,
      records: [
        [0, 'a/0'],
        [1, 'a/1'],
      ],
      nextOffset: 2,
      highWatermark: 2,
      logStartOffset: 0,
    });
    r.commit('g1', 3, '1@11')(null);
    r.groupRead({ group: 'g1', process: '1@11', invoke: r.tick(), offset: 3, final: false });
    for (const p of ['0@10', '1@11', '2@12'])
      r.finalLog({
        process: p,
        logStartOffset: 0,
        highWatermark: 3,
        records: [
          [0, 'a/0'],
          [1, 'a/1'],
          [2, 'b/0'],
        ],
      });
    r.groupRead({ group: 'g1', process: '1@11', invoke: r.tick(), offset: 3, final: true });
    return { r, h: r.history };
  }
  const violations = (h: History) => checkHistory(h).violations;

  test('a consistent history passes', () => {
    const { h } = base();
    const report = checkHistory(h);
    expect(report.violations).toEqual([]);
    expect(report.stats).toMatchObject({ writes: 2, acked: 2, failed: 0, unknown: 0, finalHighWatermark: 3 });
  });

  test('an acknowledged write missing from one final log is lost', () => {
    const { h } = base();
    h.finalLogs[1] = {
      process: '1@11',
      logStartOffset: 0,
      highWatermark: 2,
      records: h.finalLogs[1].records.slice(0, 2),
    };
    expect(violations(h)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^lost acknowledged write: b acknowledged at 2 .* final log of 1@11 is missing/),
        expect.stringMatching(/^final logs differ/),
      ]),
    );
  });

  test('an acknowledged offset holding another value is flagged at the offset and as lost', () => {
    const { r, h } = base();
    r.produce('c', ['c/0']);
    h.finalLogs[2].records[2] = [2, 'c/0'];
    const v = violations(h);
    expect(v).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^two values at one offset: offset 2 holds b\/0 .* and c\/0 \(final log of 2@12\)/),
        expect.stringMatching(/^lost acknowledged write: b .* final log of 2@12 holds c\/0/),
      ]),
    );
  });

  test('a value at two offsets is a duplicate', () => {
    const { h } = base();
    for (const l of h.finalLogs) {
      l.records.push([3, 'b/0']);
      l.highWatermark = 4;
    }
    expect(violations(h)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^duplicate: b\/0 is at offset 2 .* and at offset 3/)]),
    );
  });

  test('a write whose every attempt definitely failed must not be visible; an unknown one may be', () => {
    const { r, h } = base();
    const c = r.produce('c', ['c/0']);
    r.attempt(c, '0@10').failed(err('NOT_LEADER'));
    const d = r.produce('d', ['d/0']);
    r.attempt(d, '0@10').failed(err('COMMIT_UNKNOWN'));
    r.fetch({
      process: '0@10',
      invoke: r.tick(),
      offset: 3,
      records: [[3, 'd/0']],
      nextOffset: 4,
      highWatermark: 4,
      logStartOffset: 0,
    });
    expect(violations(h)).toEqual([]);
    r.fetch({
      process: '0@10',
      invoke: r.tick(),
      offset: 4,
      records: [[4, 'c/0']],
      nextOffset: 5,
      highWatermark: 5,
      logStartOffset: 0,
    });
    expect(violations(h)).toEqual([
      expect.stringMatching(/^failed write visible: c\/0 at offset 4 .* every attempt of c failed: NOT_LEADER@0@10/),
    ]);
  });

  test('a batch split apart or half present is flagged', () => {
    const { h } = base();
    h.finalLogs[0].records = [
      [0, 'a/0'],
      [1, 'b/0'],
      [2, 'a/1'],
    ];
    expect(violations(h)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^batch not contiguous: a starts at 0 .* a\/1 at 2/)]),
    );
    const { h: h2 } = base();
    for (const l of h2.finalLogs) {
      l.records = l.records.filter(([, v]) => v !== 'a/1');
      l.records = l.records.map(([, v], i) => [i, v]);
    }
    expect(violations(h2)).toEqual(
      expect.arrayContaining([expect.stringMatching(/^partial batch: a: 1 of 2 records/)]),
    );
  });

  test('a high watermark going back within one process is flagged, across a restart or overlapping calls it is not', () => {
    const poll = (r: HistoryRecorder, process: string, hw: number, invoke = r.tick()) =>
      r.fetch({ process, invoke, offset: 0, records: [], nextOffset: 0, highWatermark: hw, logStartOffset: 0 });
    const { r, h } = base();
    poll(r, '2@12', 1);
    expect(violations(h)).toEqual([
      expect.stringMatching(
        /^high watermark went back: 2@12: fetch@0 answered 2 \(t\d+\), a later fetch@0 .* answered 1/,
      ),
    ]);
    const { r: r2, h: h2 } = base();
    poll(r2, '2@99', 0); // a new incarnation of ordinal 2
    const early = r2.tick(); // sent before the fetch below completed: the two overlap
    poll(r2, '2@99', 3);
    poll(r2, '2@99', 2, early);
    expect(violations(h2)).toEqual([]);
    const { r: r3, h: h3 } = base();
    r3.status({
      process: '2@12',
      invoke: r3.tick(),
      highWatermark: 1,
      logStartOffset: 0,
      term: 1,
      role: 'follower',
      replicaId: '2.x',
    });
    expect(violations(h3)).toEqual([
      expect.stringMatching(/^high watermark went back: 2@12: fetch@0 .* status .* answered 1/),
    ]);
  });

  test('group offsets: going back on one process, a phantom value, a lost acknowledged commit', () => {
    const { r, h } = base();
    r.groupRead({ group: 'g1', process: '1@11', invoke: r.tick(), offset: null, final: false });
    expect(violations(h)).toEqual([
      expect.stringMatching(/^group offset went back: group g1 on 1@11: 3 .*, then null/),
    ]);

    const { r: r2, h: h2 } = base();
    r2.groupRead({ group: 'g1', process: '0@10', invoke: r2.tick(), offset: 2, final: false });
    expect(violations(h2)).toEqual([expect.stringMatching(/^group offset phantom: group g1: 0@10 answered 2/)]);

    const { r: r3, h: h3 } = base();
    const settle = r3.commit('g1', 5, '1@11');
    const refused = r3.commit('g1', 6, '1@11');
    settle(null);
    refused(err('NOT_LEADER'));
    r3.groupRead({ group: 'g1', process: '2@12', invoke: r3.tick(), offset: 6, final: false });
    expect(violations(h3)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^group offset of a failed commit: group g1: 2@12 answered 6 .* NOT_LEADER/),
        expect.stringMatching(/^acknowledged group commit lost: group g1: final read from 1@11 answered 3, below .* 5/),
      ]),
    );
  });

  test('a stale group-offset read on another replica is reported apart, not as a violation', () => {
    const { r, h } = base();
    r.groupRead({ group: 'g1', process: '0@10', invoke: r.tick(), offset: null, final: false });
    const report = checkHistory(h);
    expect(report.violations).toEqual([]);
    expect(report.staleGroupReads).toEqual([expect.stringMatching(/^group g1: 0@10 answered null .* commit of 3/)]);
  });
});

// ---- real processes under a nemesis ----

const NEMESIS_BUDGET_MS = 30_000;
const GROUP = 'nemesis-g';
const BATCH = 2;
const RETRIABLE = new Set(['NOT_LEADER', 'COMMIT_UNKNOWN', 'NO_QUORUM', 'OVERLOADED', 'UNAVAILABLE', 'TIMEOUT']);

type Role = 'leader' | 'follower';
type Fault =
  | { kind: 'isolate'; role: Role; holdMs: number }
  | { kind: 'cut-one-way'; fromLeader: boolean; holdMs: number }
  | { kind: 'delay'; role: Role; delayMs: number; holdMs: number }
  | { kind: 'stall-links'; role: Role; holdMs: number }
  | { kind: 'sigstop'; role: Role; holdMs: number }
  | { kind: 'kill9'; role: Role; downMs: number };

/** The schedule from the seed: every fault class once (leader isolated and killed at least once), then random extras. */
function plan(rng: Prng): { faults: Fault[]; pick: Prng } {
  const role = (): Role => (rng.chance(0.5) ? 'leader' : 'follower');
  const one = (kind: Fault['kind'], r: Role = role()): Fault => {
    switch (kind) {
      case 'isolate':
        return { kind, role: r, holdMs: rng.intIn(1500, 3500) };
      case 'cut-one-way':
        return { kind, fromLeader: rng.chance(0.5), holdMs: rng.intIn(1500, 3500) };
      case 'delay':
        return { kind, role: r, delayMs: rng.intIn(20, 150), holdMs: rng.intIn(1500, 3000) };
      case 'stall-links':
        return { kind, role: r, holdMs: rng.intIn(800, 2000) };
      case 'sigstop':
        return { kind, role: r, holdMs: rng.intIn(800, 2500) };
      case 'kill9':
        return { kind, role: r, downMs: rng.intIn(300, 1500) };
    }
  };
  const must: Fault[] = [
    one('isolate', 'leader'),
    one('cut-one-way'),
    one('delay'),
    one('stall-links'),
    one('sigstop'),
    one('kill9', 'leader'),
    one('kill9', 'follower'),
  ];
  for (let i = must.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [must[i], must[j]] = [must[j], must[i]];
  }
  const kinds: Array<Fault['kind']> = ['isolate', 'cut-one-way', 'delay', 'stall-links', 'sigstop', 'kill9'];
  const extras = Array.from({ length: 12 }, () => one(rng.pick(kinds)));
  return { faults: [...must, ...extras], pick: rng.fork() };
}

const describeFault = (f: Fault): string => JSON.stringify(f);

/** Clients of the test's own (not the cluster helper's): one connection per replica, reconnecting after restarts. */
class Clients {
  private readonly clients: Array<{ rpc: RpcClient; client: RemotePartitionClient }>;
  constructor(readonly cluster: ReplicaCluster) {
    this.clients = cluster.slots.map((s) => {
      const rpc = new RpcClient({ host: '127.0.0.1', port: s.clientPort, connectTimeoutMs: 500 });
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
class Workload {
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
      const settle = this.rec.commit(GROUP, offset, this.clients.processOf(o) ?? `${o}@?`);
      try {
        await this.clients.call(o, (c) =>
          c.commitOffset({
            group: GROUP,
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
            group: GROUP,
            topic: this.cluster.topic,
            partition: this.cluster.partition,
            requestId: 'nemesis-get',
          }),
        );
        if (process !== null) this.rec.groupRead({ group: GROUP, process, invoke, offset: value.offset, final: false });
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

/** Runs the schedule: one fault at a time, each healed before the next. */
class Nemesis {
  readonly done: Array<{ fault: string; target: string; atMs: number; tookMs: number }> = [];
  readonly stopped = new Set<number>();
  private aborted = false;

  constructor(
    private readonly cluster: ReplicaCluster,
    private readonly mesh: ProxyMesh,
    private readonly pick: Prng,
  ) {}

  abort(): void {
    this.aborted = true;
  }

  private async leader(): Promise<number | null> {
    return (await this.cluster.leader())?.ordinal ?? null;
  }

  /** The ordinal for `role`: the leader, or one of the others (seeded choice). */
  private async choose(role: Role): Promise<number> {
    // One draw whatever the answer, so the rest of the schedule replays from the seed.
    const draw = this.pick.next();
    const l = await this.leader();
    if (role === 'leader' && l !== null) return l;
    const others = this.cluster.slots.map((s) => s.ordinal).filter((o) => o !== l);
    return others[Math.floor(draw * others.length)];
  }

  private async hold(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.aborted && Date.now() < until) await sleep(Math.min(100, until - Date.now()));
  }

  /** Every process answers status again (after a restart or SIGCONT), bounded. */
  private async settle(timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!this.aborted && Date.now() < until) {
      const st = await this.cluster.statuses();
      if (st.every((s) => s !== null && s.appliedIndex > 0) && (await this.leader()) !== null) return;
      await sleep(100);
    }
  }

  async run(faults: Fault[], budgetMs: number, mandatory: number): Promise<void> {
    const t0 = Date.now();
    for (const [i, f] of faults.entries()) {
      if (this.aborted) return;
      if (i >= mandatory && Date.now() - t0 >= budgetMs) return;
      await this.hold(this.pick.intIn(300, 1000));
      const at = Date.now() - t0;
      const target = await this.apply(f);
      this.done.push({ fault: describeFault(f), target, atMs: at, tookMs: Date.now() - t0 - at });
    }
  }

  private neighbours(o: number): number[] {
    return this.cluster.slots.map((s) => s.ordinal).filter((x) => x !== o);
  }

  private async apply(f: Fault): Promise<string> {
    switch (f.kind) {
      case 'isolate': {
        const o = await this.choose(f.role);
        this.mesh.isolate(o);
        await this.hold(f.holdMs);
        this.mesh.healAll();
        return `replica ${o}`;
      }
      case 'cut-one-way': {
        const l = (await this.leader()) ?? 0;
        const other = this.pick.pick(this.neighbours(l));
        const [from, to] = f.fromLeader ? [l, other] : [other, l];
        this.mesh.cutOneWay(from, to);
        await this.hold(f.holdMs);
        this.mesh.healAll();
        return `link ${from}→${to}`;
      }
      case 'delay': {
        const o = await this.choose(f.role);
        for (const x of this.neighbours(o)) {
          this.mesh.delayLink(o, x, f.delayMs);
          this.mesh.delayLink(x, o, f.delayMs);
        }
        await this.hold(f.holdMs);
        this.mesh.healAll();
        return `links of replica ${o}`;
      }
      case 'stall-links': {
        const o = await this.choose(f.role);
        const x = this.pick.pick(this.neighbours(o));
        this.mesh.pauseLink(o, x);
        this.mesh.pauseLink(x, o);
        await this.hold(f.holdMs);
        this.mesh.healAll();
        return `links ${o}↔${x}`;
      }
      case 'sigstop': {
        const o = await this.choose(f.role);
        const pid = this.cluster.slots[o].pid;
        if (pid === undefined || !this.cluster.slots[o].running) return `replica ${o} (not running)`;
        process.kill(pid, 'SIGSTOP');
        this.stopped.add(pid);
        await this.hold(f.holdMs);
        this.cont(pid);
        await this.settle();
        return `replica ${o} (pid ${pid})`;
      }
      case 'kill9': {
        const o = await this.choose(f.role);
        const pid = this.cluster.slots[o].pid;
        await this.cluster.kill(o, 'SIGKILL');
        await this.hold(f.downMs);
        if (!this.aborted) await this.cluster.restart(o);
        await this.settle();
        return `replica ${o} (pid ${pid} → ${this.cluster.slots[o].pid})`;
      }
    }
  }

  cont(pid: number): void {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    this.stopped.delete(pid);
  }

  /** Undo whatever is still in force: links healed, stopped processes continued. */
  healEverything(): void {
    this.mesh.healAll();
    for (const pid of [...this.stopped]) this.cont(pid);
  }
}

describe('nemesis: link cuts, stalls, pauses and kill -9 under load', () => {
  let cluster: ReplicaCluster | undefined;
  let mesh: ProxyMesh | undefined;
  let clients: Clients | undefined;
  let workload: Workload | undefined;
  let nemesis: Nemesis | undefined;
  let failed = true;

  afterAll(async () => {
    nemesis?.abort();
    nemesis?.healEverything();
    await workload?.abort();
    clients?.close();
    await cluster?.stop({ keepLogs: failed || process.env.DAFTKA_KEEP_LOGS === '1' });
    await mesh?.close();
    if (failed && cluster) console.log(`nemesis: replica logs kept in ${cluster.logDir}`);
  });

  test('every acknowledged write survives, nothing is written twice, watermarks and group offsets never go back', async () => {
    const seed = process.env.DAFTKA_NEMESIS_SEED ? Number(process.env.DAFTKA_NEMESIS_SEED) : randomInt(2 ** 31);
    console.log(`nemesis: seed ${seed} (replay with DAFTKA_NEMESIS_SEED=${seed})`);
    const { faults, pick } = plan(new Prng(seed));
    const t0 = Date.now();

    // Each replica dials the others through its own proxies: its DAFTKA_REPLICAS names the
    // proxies for every ordinal but its own (identity is checked in the handshake, not by address).
    const replicasFor: string[] = [];
    cluster = await ReplicaCluster.start({
      size: 3,
      env: TEST_ENV,
      startOrdinals: [],
      envFor: (o) => ({ DAFTKA_REPLICAS: replicasFor[o] }),
    });
    const c = cluster;
    mesh = await ProxyMesh.start(
      c.slots.map((s) => [s.peerPort, s.clientPort]),
      // A stalled link gives up (resets its connection) after 32 KiB held in one direction.
      { avoidPorts: c.slots.map((s) => s.httpPort), maxBufferedBytes: 32 << 10 },
    );
    const m = mesh;
    for (const a of c.slots)
      replicasFor[a.ordinal] = c.slots
        .map((b) =>
          a === b
            ? `127.0.0.1:${b.peerPort}:${b.clientPort}`
            : `127.0.0.1:${m.port(a.ordinal, b.ordinal, 0)}:${m.port(a.ordinal, b.ordinal, 1)}`,
        )
        .join(',');
    for (const s of c.slots) await c.restart(s.ordinal);
    await c.waitFormed(60_000);
    const formedMs = Date.now() - t0;

    const rec = new HistoryRecorder();
    clients = new Clients(c);
    workload = new Workload(c, m, clients, rec);
    const w = workload;
    w.start();
    await c.waitFor(() => rec.history.produces.some((op) => op.ack !== null), 20_000, 'the first acknowledged write');

    nemesis = new Nemesis(c, m, pick);
    const n = nemesis;
    const tFaults = Date.now();
    await n.run(faults, NEMESIS_BUDGET_MS, 7);
    const faultsMs = Date.now() - tFaults;

    // Heal, let every write in flight finish, then read the durable state of every replica.
    n.healEverything();
    for (const s of c.slots) if (!s.running) await c.restart(s.ordinal);
    await w.stop(15_000);
    const formed = await c.waitFormed(30_000);
    const leader = (await c.waitForLeader()).ordinal;
    const hw = (await c.status(leader))!.highWatermark;
    for (const s of c.slots)
      await c.waitFor(
        async () => ((await c.status(s.ordinal))?.highWatermark ?? -1) >= hw,
        20_000,
        `replica ${s.ordinal} to reach ${hw}`,
      );
    for (const s of c.slots) {
      const records: Array<[number, string]> = [];
      let offset = 0;
      let last = { highWatermark: 0, logStartOffset: 0 };
      let who: string | null = null;
      for (;;) {
        const r = await clients.call(s.ordinal, (cl) =>
          cl.fetch({
            topic: c.topic,
            partition: c.partition,
            offset,
            maxRecords: 5000,
            maxBytes: 8 << 20,
            waitMs: 0,
            requestId: 'final',
          }),
        );
        who = r.process;
        last = r.value;
        records.push(...r.value.records.map((x): [number, string] => [x.offset, text(x.value)!]));
        if (r.value.records.length === 0 || r.value.nextOffset >= r.value.highWatermark) break;
        offset = r.value.nextOffset;
      }
      rec.finalLog({
        process: who ?? `${s.ordinal}@?`,
        logStartOffset: last.logStartOffset,
        highWatermark: last.highWatermark,
        records,
      });
    }
    const invoke = rec.tick();
    const g = await clients.call(leader, (cl) =>
      cl.getOffset({ group: GROUP, topic: c.topic, partition: c.partition, requestId: 'final-get' }),
    );
    rec.groupRead({ group: GROUP, process: g.process ?? `${leader}@?`, invoke, offset: g.value.offset, final: true });

    const report = checkHistory(rec.history);
    const proxies = m.stats();
    const summary = {
      seed,
      formedMs,
      faultsMs,
      totalMs: Date.now() - t0,
      faults: n.done.map((d) => `${(d.atMs / 1000).toFixed(1)}s ${d.fault} on ${d.target} (${d.tookMs} ms)`),
      leadersSeen: [...w.leadersSeen],
      finalTerm: formed.term,
      ...report.stats,
      produceErrors: Object.fromEntries(w.errors),
      proxies,
      staleGroupReads: report.staleGroupReads.length,
      staleGroupReadExamples: report.staleGroupReads.slice(0, 3),
    };
    console.log(`nemesis summary ${JSON.stringify(summary, null, 2)}`);
    if (report.violations.length > 0) {
      const file = join(c.logDir, `history-${seed}.json`);
      writeFileSync(file, JSON.stringify(rec.history));
      console.log(`nemesis: ${report.violations.length} violations (seed ${seed}); history in ${file}`);
    }

    expect(report.violations).toEqual([]);
    // The run did something: writes flowed, leadership moved, links were cut, processes died.
    expect(report.stats.acked).toBeGreaterThanOrEqual(300);
    expect(report.stats.commitsAcked).toBeGreaterThanOrEqual(10);
    expect(new Set([...w.leadersSeen].map((l) => l.split('/')[1])).size).toBeGreaterThanOrEqual(2);
    expect(proxies.cut + proxies.refused).toBeGreaterThan(0);
    expect(n.done.filter((d) => d.fault.includes('kill9')).length).toBeGreaterThanOrEqual(2);
    // Only retriable answers: anything else is a bug the checker might not see.
    expect([...w.errors.keys()].filter((code) => !RETRIABLE.has(code))).toEqual([]);
    failed = false;
  });
});

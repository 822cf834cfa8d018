import fc from 'fast-check';
import { promClient } from '../../../../common/metrics';
import { createLogger } from '../../../../common/log';
import type { RecordIn } from '../../../../common/partition-api';
import { Compactor, type CompactorSettings } from '../../../../replica/driver/compactor';
import { replicaMetrics } from '../../../../replica/metrics';
import type { Entry } from '../../../../replica/raft';
import { EntryType } from '../../../../replica/raft';
import {
  CommandKind,
  decodeCommand,
  encodeCommand,
  offsetOf,
  payloadHash,
  type Command,
  type ProduceCommand,
} from '../../../../replica/state/commands';
import { DedupeMap, DEDUPE_SLOT_BYTES, mapBatch, rewriteBatch } from '../../../../replica/state/compaction';
import { INDEX_ROW_BYTES } from '../../../../replica/state/offset-index';
import { PartitionState, type IndexRow, type StateReader } from '../../../../replica/state/partition-state';
import type { StateOp } from '../../../../replica/storage/storage';

/**
 * Key compaction against the real PartitionState and Compactor over an in-memory log and state
 * keyspace (the replica's storage stands in for them in production):
 *
 *   latest per key  after compaction to X, a keyed record below X is served iff it is the latest
 *                   of its key below X, and not a tombstone below the tombstone bound; keyless
 *                   records and everything at or above X are untouched
 *   offsets         a surviving record keeps its offset; the high watermark and the index rows
 *                   (base, count, bytes, timestamps) are those of the log as written
 *   bounded map     a dedupe buffer smaller than the keys compacts in several passes, to the same
 *                   log, byte for byte, as a buffer that holds every key
 *   replicas agree  a replica that receives already-compacted entries (a lagging follower, a new
 *                   learner) and applies them, then runs its own passes, ends with the same log
 *                   and the same state
 */

const SETTINGS: CompactorSettings = {
  cleanupPolicy: 'compact',
  deleteRetentionMs: 1000,
  minCompactionLagMs: 0,
  compactionMinDirtyPercent: 50,
  compactionCheckMs: 1_000_000,
  compactionDedupeBufferBytes: 1024 * 1024,
};

function rec(key: string | null, value: string | null, ts = 1_000): RecordIn {
  return {
    key: key === null ? null : Buffer.from(key),
    value: Buffer.from(value ?? ''),
    headers: [],
    timestampMs: ts,
    ...(value === null ? { tombstone: true } : {}),
  };
}

/** One replica: the log (index → entry), the state keyspace, the state, a compactor. */
class Replica {
  readonly log = new Map<number, Entry>();
  readonly store = new Map<string, [Uint8Array, Uint8Array]>();
  lastIndex = 0;
  readonly reader: StateReader = {
    get: async (key) => this.store.get(Buffer.from(key).toString('hex'))?.[1],
    scan: async ({ gte, lt, limit, reverse }) => {
      const lo = Buffer.from(gte).toString('hex');
      const hi = Buffer.from(lt).toString('hex');
      const keys = [...this.store.keys()].filter((k) => k >= lo && (hi === '' || k < hi)).sort();
      if (reverse) keys.reverse();
      return keys.slice(0, limit === undefined || limit < 0 ? undefined : limit).map((k) => this.store.get(k)!);
    },
  };
  readonly state = new PartitionState({ dedupWindowMs: 60_000, indexCacheBytes: 4 * INDEX_ROW_BYTES }, this.reader);
  readonly compactor: Compactor;
  proposed: Uint8Array[] = [];
  matches: number[] = [];

  constructor(
    dedupeBufferBytes = SETTINGS.compactionDedupeBufferBytes,
    now = () => 1_000_000,
    settings: Partial<CompactorSettings> = {},
  ) {
    this.compactor = new Compactor({
      host: {
        state: this.state,
        readEntries: async (lo, hi) => {
          const out: Entry[] = [];
          for (let i = lo; i < hi && this.log.has(i); i++) out.push(this.log.get(i)!);
          return out;
        },
        rewriteEntries: async (entries, ops) => {
          for (const e of entries) if (this.log.get(e.index)?.term === e.term) this.log.set(e.index, e);
          this.write(ops);
        },
        appliedWritten: async () => undefined,
        isLeader: () => true,
        peerMatches: () => this.matches,
        propose: async (data) => {
          this.proposed.push(data);
          this.append({ index: this.lastIndex + 1, term: 1, type: EntryType.Normal, data });
        },
      },
      settings: { ...SETTINGS, ...settings, compactionDedupeBufferBytes: dedupeBufferBytes },
      metrics: replicaMetrics(new promClient.Registry()),
      lbl: { topic: 't', partition: '0' },
      logger: createLogger('test', { level: 'error' }),
      replica: 'r',
      now,
    });
  }

  private write(ops: StateOp[]): void {
    for (const op of ops) {
      if (op.op === 'delRange') {
        const lo = Buffer.from(op.gte).toString('hex');
        const hi = Buffer.from(op.lt).toString('hex');
        for (const k of [...this.store.keys()]) if (k >= lo && (hi === '' || k < hi)) this.store.delete(k);
        continue;
      }
      const k = Buffer.from(op.key).toString('hex');
      if (op.op === 'put') this.store.set(k, [op.key, op.value]);
      else this.store.delete(k);
    }
  }

  /** Append a committed entry and apply it (as the applier does). */
  append(e: Entry): void {
    this.log.set(e.index, e);
    this.lastIndex = e.index;
    const { ops } = this.state.apply(e.index, e.data);
    this.write(ops);
    this.state.markWritten(e.index);
  }

  apply(c: Command): void {
    this.append({ index: this.lastIndex + 1, term: 1, type: EntryType.Normal, data: encodeCommand(c) });
  }

  produce(records: RecordIn[]): void {
    this.apply({ kind: CommandKind.Produce, leaderTimeMs: 1_000_000, records });
  }

  compact(upToOffset: number, tombstonesBefore = 0): void {
    this.apply({
      kind: CommandKind.Compact,
      leaderTimeMs: 1_000_000,
      upToOffset,
      tombstonesBefore,
      horizonOffset: 0,
      horizonMs: 0,
    });
  }

  /**
   * A snapshot install (Applier.install): the leader's state keyspace as it is now — its
   * compaction progress included — and its log as it is now (in the replica the entries arrive
   * after the snapshot, from the leader's log at least as compacted, and are not applied again).
   */
  installFrom(leader: Replica): void {
    this.state.invalidate();
    this.store.clear();
    for (const [k, v] of leader.store) this.store.set(k, [v[0], v[1]]);
    this.log.clear();
    for (const [i, e] of leader.log) this.log.set(i, { ...e });
    this.lastIndex = leader.lastIndex;
    const pairs = [...this.store.keys()].sort().map((k) => this.store.get(k)!);
    this.state.load(pairs, this.lastIndex);
  }

  /** Run passes until this replica did what the request asks. */
  async settle(): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      const r = await this.compactor.runPass();
      if (r.result === 'idle') return;
      if (r.result === 'aborted') throw new Error('pass aborted');
    }
    throw new Error('compaction did not settle');
  }

  /** What a fetch from offset 0 serves: [offset, key, value|null] of every record left. */
  async view(): Promise<Array<[number, string | null, string | null]>> {
    const out: Array<[number, string | null, string | null]> = [];
    for (const row of await this.rows()) {
      const c = decodeCommand(this.log.get(row.logIndex)!.data) as ProduceCommand;
      c.records.forEach((r, i) =>
        out.push([
          offsetOf(c, row.base, i),
          r.key === null ? null : Buffer.from(r.key).toString(),
          r.tombstone ? null : Buffer.from(r.value).toString(),
        ]),
      );
    }
    return out;
  }

  rows(): Promise<IndexRow[]> {
    return this.state.rowsFrom(0, 1_000_000);
  }

  /** The log's entries as bytes, in index order. */
  logBytes(): string[] {
    return [...this.log.values()].sort((a, b) => a.index - b.index).map((e) => Buffer.from(e.data).toString('hex'));
  }
}

/** The reference: what compaction to X with tombstone bound Y keeps of `written`. */
function reference(
  written: Array<[number, string | null, string | null]>,
  x: number,
  y: number,
): Array<[number, string | null, string | null]> {
  const latest = new Map<string, number>();
  for (const [o, k] of written) if (k !== null && o < x) latest.set(k, o);
  return written.filter(([o, k, v]) => {
    if (k === null || o >= x) return true;
    if (latest.get(k) !== o) return false;
    return !(v === null && o < y);
  });
}

// ---- the pure pieces ----

test('the dedupe map holds at most 75 % of its slots, and a batch that overflows it ends the stretch inside the batch', () => {
  const map = new DedupeMap(16 * DEDUPE_SLOT_BYTES);
  expect(map.maxEntries).toBe(12);
  const c: ProduceCommand = {
    kind: CommandKind.Produce,
    leaderTimeMs: 0,
    records: Array.from({ length: 20 }, (_, i) => rec(`k${i}`, `v${i}`)),
  };
  // Offsets 100..119: twelve keys fit, the thirteenth (offset 112) does not.
  expect(mapBatch(map, c, 100, 100, 120)).toBe(112);
  expect(map.size).toBe(12);
  expect(map.get(Buffer.from('k11'))).toBe(111);
  expect(map.get(Buffer.from('k12'))).toBe(-1);
  // A key already in the map needs no slot.
  map.clear();
  const same: ProduceCommand = { ...c, records: Array.from({ length: 50 }, (_, i) => rec(`k${i % 3}`, 'v')) };
  expect(mapBatch(map, same, 0, 0, 50)).toBe(50);
  expect(map.get(Buffer.from('k0'))).toBe(48);
});

test('a rewritten batch keeps its span, its idempotency section and its index-row values; applying it gives the same offsets and rows', () => {
  const records = [rec('a', '1', 5_000), rec('b', '1', 9_000), rec('a', '2', 7_000), rec(null, 'keyless')];
  const original: ProduceCommand = {
    kind: CommandKind.Produce,
    leaderTimeMs: 1,
    idempotencyKey: 'idem-1',
    payloadHash: payloadHash(records),
    producer: { producerId: 'p', epoch: 1, seq: 0 },
    records,
  };
  const map = new DedupeMap(64 * DEDUPE_SLOT_BYTES);
  mapBatch(map, original, 10, 10, 14);
  const rw = rewriteBatch(original, 10, map, 0);
  expect(rw.removedRecords).toBe(1);
  const back = decodeCommand(encodeCommand(rw.command!)) as ProduceCommand;
  expect(back.compacted).toEqual({ span: 4, bytes: expect.any(Number), maxTimestampMs: 9_000, positions: [1, 2, 3] });
  expect(back.idempotencyKey).toBe('idem-1');
  expect(Buffer.from(back.payloadHash!).equals(Buffer.from(original.payloadHash!))).toBe(true);
  expect(back.producer).toEqual(original.producer);
  expect(back.records.map((r) => Buffer.from(r.value).toString())).toEqual(['1', '2', 'keyless']);

  const a = new Replica();
  const b = new Replica();
  a.apply(original);
  b.apply(back);
  expect(b.state.nextOffset).toBe(a.state.nextOffset);
  return Promise.all([a.rows(), b.rows()]).then(([ra, rb]) => expect(rb).toEqual(ra));
});

test('a tombstone survives while it is the latest of its key, until the tombstone bound passes it', async () => {
  const r = new Replica();
  r.produce([rec('a', '1'), rec('b', '1'), rec('a', null), rec('c', '1')]);
  r.compact(4);
  await r.settle();
  expect(await r.view()).toEqual([
    [1, 'b', '1'],
    [2, 'a', null],
    [3, 'c', '1'],
  ]);
  expect(r.compactor.dropPending).toBe(false);
  r.compact(4, 4);
  // A leader in this state adds no member until its pass has dropped the tombstones.
  expect(r.compactor.dropPending).toBe(true);
  await r.settle();
  expect(r.compactor.dropPending).toBe(false);
  expect(await r.view()).toEqual([
    [1, 'b', '1'],
    [3, 'c', '1'],
  ]);
  // The high watermark did not move, nor did the offsets.
  expect(r.state.nextOffset).toBe(4);
});

test('the leader requests a pass at the dirty ratio, and drops tombstones only after deleteRetentionMs and once every member holds them', async () => {
  let now = 1_000_000;
  const r = new Replica(SETTINGS.compactionDedupeBufferBytes, () => now);
  r.produce([rec('a', '1'), rec('a', null)]);
  expect(await r.compactor.decide()).toEqual({ upToOffset: 2, tombstonesBefore: 0, horizonOffset: 2, horizonMs: now });
  await r.compactor.check();
  await r.settle();
  expect(await r.view()).toEqual([[1, 'a', null]]);
  // Nothing new and the horizon is young: nothing due.
  expect(await r.compactor.decide()).toBeUndefined();
  now += SETTINGS.deleteRetentionMs;
  // A member that does not hold the tombstone's entry yet holds the bound back.
  r.matches = [0];
  expect(await r.compactor.decide()).toBeUndefined();
  r.matches = [r.lastIndex];
  expect(await r.compactor.decide()).toMatchObject({ tombstonesBefore: 2 });
  await r.compactor.check();
  await r.settle();
  expect(await r.view()).toEqual([]);
  expect(r.state.nextOffset).toBe(2);
});

// ---- properties ----

/** Operations: produce batches over a small key space (some tombstones, some keyless), compaction requests. */
const opsOver = (maxKey: number) =>
  fc.oneof(
    {
      weight: 4,
      arbitrary: fc.array(
        fc.record({
          key: fc.oneof(
            { weight: 9, arbitrary: fc.integer({ min: 0, max: maxKey }) },
            { weight: 1, arbitrary: fc.constant(-1) },
          ),
          tomb: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
          v: fc.nat(1000),
        }),
        { minLength: 1, maxLength: 12 },
      ),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        tombFrac: fc.double({ min: 0, max: 1, noNaN: true }),
        // Whether passes run right after this request or only later (in production: any time).
        settle: fc.boolean(),
      }),
    },
  );
const opArb = opsOver(30);

type Op = Array<{ key: number; tomb: boolean; v: number }> | { tombFrac: number; settle: boolean };

async function run(
  ops: Op[],
  replicas: Replica[],
): Promise<{ written: Array<[number, string | null, string | null]>; x: number; y: number }> {
  const written: Array<[number, string | null, string | null]> = [];
  let x = 0;
  let y = 0;
  for (const op of ops) {
    if (Array.isArray(op)) {
      const records = op.map((r) => rec(r.key < 0 ? null : `k${r.key}`, r.tomb && r.key >= 0 ? null : `v${r.v}`));
      for (const r of records)
        written.push([
          written.length,
          r.key === null ? null : Buffer.from(r.key).toString(),
          r.tombstone ? null : Buffer.from(r.value).toString(),
        ]);
      for (const rep of replicas) rep.produce(records);
    } else {
      const { tombFrac, settle } = op;
      x = written.length;
      // The tombstone bound only ever grows and never passes X.
      y = Math.max(y, Math.floor(tombFrac * x));
      for (const rep of replicas) {
        rep.compact(x, y);
        if (settle) await rep.settle();
      }
    }
  }
  for (const rep of replicas) await rep.settle();
  return { written, x, y };
}

test('property: after compaction every key keeps its latest record at its original offset, and a small dedupe buffer reaches the same log byte for byte', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
      // 16 slots = 12 keys per pass (31 keys in play): several passes, some ending inside a batch.
      const small = new Replica(16 * DEDUPE_SLOT_BYTES);
      const big = new Replica();
      const { written, x, y } = await run(ops, [small, big]);
      const expected = reference(written, x, y);
      expect(await big.view()).toEqual(expected);
      expect(await small.view()).toEqual(expected);
      expect(small.logBytes()).toEqual(big.logBytes());
      expect(small.state.nextOffset).toBe(written.length);
      expect(await small.rows()).toEqual(await big.rows());
    }),
    { numRuns: 150 },
  );
});

test('property: a replica that receives the leader’s compacted entries (a lagging follower, a new learner) ends with the same log and state', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArb, { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 16, max: 200 }),
      async (ops, slots) => {
        const leader = new Replica(slots * DEDUPE_SLOT_BYTES);
        await run(ops, [leader]);
        // The follower had nothing: every entry reaches it as the leader has it now.
        const follower = new Replica(SETTINGS.compactionDedupeBufferBytes);
        for (const e of [...leader.log.values()].sort((a, b) => a.index - b.index)) follower.append({ ...e });
        await follower.settle();
        expect(follower.logBytes()).toEqual(leader.logBytes());
        expect(await follower.view()).toEqual(await leader.view());
        expect(await follower.rows()).toEqual(await leader.rows());
        expect(follower.state.nextOffset).toBe(leader.state.nextOffset);
      },
    ),
    { numRuns: 100 },
  );
});

/**
 * Leader and follower over time: the follower receives entries when the leader sends them (as
 * the leader has them then, compacted or not) and runs its passes whenever; the leader's own
 * Compactor decides the requests (clock advancing, the follower's match index as its peer).
 */
const timedOpArb = fc.oneof(
  // Few keys: a key's old value and its tombstone often sit on either side of a replication.
  { weight: 3, arbitrary: opsOver(3).filter(Array.isArray) },
  { weight: 2, arbitrary: fc.record({ replicate: fc.constant(true), leaderSettles: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ followerSettles: fc.constant(true) }) },
  { weight: 2, arbitrary: fc.record({ check: fc.constant(true), advanceMs: fc.constantFrom(0, 600, 1000) }) },
  // The follower's log is replaced by a snapshot of the leader's state (it fell behind retention).
  { weight: 1, arbitrary: fc.record({ snapshot: fc.constant(true) }) },
);
type TimedOp =
  | Array<{ key: number; tomb: boolean; v: number }>
  | { replicate: true; leaderSettles: boolean }
  | { followerSettles: true }
  | { check: true; advanceMs: number }
  | { snapshot: true };

async function leaderAndFollower(ops: TimedOp[]): Promise<{ leader: Replica; follower: Replica }> {
  let now = 1_000_000;
  const leader = new Replica(16 * DEDUPE_SLOT_BYTES, () => now, { compactionMinDirtyPercent: 0 });
  const follower = new Replica(40 * DEDUPE_SLOT_BYTES);
  const replicate = () => {
    for (let i = follower.lastIndex + 1; i <= leader.lastIndex; i++) follower.append({ ...leader.log.get(i)! });
  };
  for (const op of ops) {
    if (Array.isArray(op))
      leader.produce(op.map((r) => rec(r.key < 0 ? null : `k${r.key}`, r.tomb && r.key >= 0 ? null : `v${r.v}`)));
    else if ('replicate' in op) {
      if (op.leaderSettles) await leader.settle();
      replicate();
    } else if ('followerSettles' in op) await follower.settle();
    else if ('snapshot' in op) follower.installFrom(leader);
    else {
      now += op.advanceMs;
      leader.matches = [follower.lastIndex];
      await leader.settle();
      await leader.compactor.check();
    }
  }
  await leader.settle();
  replicate();
  await follower.settle();
  return { leader, follower };
}

test('a tombstone is dropped only once every member holds its entry: a follower that had the old value and not yet the tombstone ends like the leader', async () => {
  let now = 1_000_000;
  const leader = new Replica(SETTINGS.compactionDedupeBufferBytes, () => now);
  const follower = new Replica();
  const replicate = () => {
    for (let i = follower.lastIndex + 1; i <= leader.lastIndex; i++) follower.append({ ...leader.log.get(i)! });
  };
  leader.produce([rec('a', '1')]);
  replicate();
  leader.produce([rec('a', null)]);
  await leader.compactor.check();
  await leader.settle();
  now += SETTINGS.deleteRetentionMs;
  // The follower holds entry 1 (a=1) but not entry 2 (the tombstone): no drop yet. Had the leader
  // dropped it, the follower would receive entry 2 empty and keep a=1 for ever.
  leader.matches = [follower.lastIndex];
  expect(await leader.compactor.decide()).toBeUndefined();
  replicate();
  leader.matches = [follower.lastIndex];
  await leader.compactor.check();
  await leader.settle();
  replicate();
  await follower.settle();
  expect(await leader.view()).toEqual([]);
  expect(await follower.view()).toEqual([]);
  expect(follower.logBytes()).toEqual(leader.logBytes());
});

test('property: with entries (or a snapshot) reaching a follower at any time and the leader deciding, leader and follower end with the same log', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(timedOpArb, { minLength: 1, maxLength: 60 }), async (ops) => {
      const { leader, follower } = await leaderAndFollower(ops as TimedOp[]);
      expect(follower.logBytes()).toEqual(leader.logBytes());
      expect(await follower.rows()).toEqual(await leader.rows());
    }),
    { numRuns: 200 },
  );
});

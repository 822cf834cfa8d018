import fc from 'fast-check';
import type { ProducerIdentity, RecordIn } from '../../../../common/partition-api';
import { DEFAULT_LEASE_POLICY } from '../../../../replica/leased/leases';
import { CommandKind, encodeCommand, payloadHash, type Command } from '../../../../replica/state/commands';
import { PartitionState, type ApplyResult, type StateReader } from '../../../../replica/state/partition-state';
import { INDEX_ROW_BYTES } from '../../../../replica/state/offset-index';
import type { StateOp } from '../../../../replica/storage/storage';

/**
 * The partition state machine's produce rules, against the real PartitionState:
 *
 *   dense offsets   produces get consecutive base offsets; nothing else takes one; none is reused
 *   idempotency     same key + same payload → the original offsets; same key + other payload →
 *                   IDEMPOTENCY_CONFLICT; the leader's precheck and the apply agree; a key is
 *                   forgotten dedupWindowMs (of leaderTimeMs) after its batch
 *   producers       stale epoch → PRODUCER_FENCED; a new epoch starts anywhere; a repeat of the last
 *                   batch → its original offsets; anything but the next seq → OUT_OF_ORDER_SEQUENCE
 *   retention       retentionCut (time, bytes) picks a batch boundary; AdvanceLogStart moves the log
 *                   start forward only; firstRetainedLogIndex follows it
 *
 * Every command goes through its binary form, as through the Raft log, and the ops `apply` returns
 * are kept in a map standing for the state keyspace, so a test can restart the state from them.
 */

const WINDOW_MS = 60_000;

function rec(value: string, o: { key?: string | null; timestampMs?: number; header?: string } = {}): RecordIn {
  return {
    key: o.key === null ? null : Buffer.from(o.key ?? `k-${value}`),
    value: Buffer.from(value),
    headers: o.header === undefined ? [] : [['h', Buffer.from(o.header)]],
    timestampMs: o.timestampMs ?? 1_000,
  };
}

function batch(n: number, tag = 'v', timestampMs = 1_000): RecordIn[] {
  return Array.from({ length: n }, (_, i) => rec(`${tag}${i}`, { timestampMs }));
}

interface ProduceOpts {
  timeMs?: number;
  key?: string;
  producer?: ProducerIdentity;
}

/**
 * A PartitionState fed through encoded commands at increasing log indices, with its persisted
 * keyspace: the ops `apply` returns land in a map standing for the state keyspace, which is also
 * what the state reads its offset index from (as it reads RocksDB), and each apply's batch counts
 * as written at once. A small index cache (four rows) makes the tests read the index from the
 * map, not only from memory.
 */
class Harness {
  readonly store = new Map<string, [Uint8Array, Uint8Array]>();
  logIndex = 0;
  timeMs = 1_000_000;
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

  state: PartitionState;

  constructor(
    state?: PartitionState,
    private readonly windowMs = WINDOW_MS,
  ) {
    this.state = state ?? this.fresh();
  }

  private fresh(): PartitionState {
    return new PartitionState({ dedupWindowMs: this.windowMs, indexCacheBytes: 4 * INDEX_ROW_BYTES }, this.reader);
  }

  apply(c: Command): { result: ApplyResult; ops: StateOp[] } {
    const { result, ops } = this.state.apply(++this.logIndex, encodeCommand(c));
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
    this.state.markWritten(this.logIndex);
    return { result, ops };
  }

  produce(records: RecordIn[], o: ProduceOpts = {}): ApplyResult {
    return this.apply({
      kind: CommandKind.Produce,
      leaderTimeMs: o.timeMs ?? this.timeMs,
      idempotencyKey: o.key,
      payloadHash: o.key === undefined ? undefined : payloadHash(records),
      producer: o.producer,
      records,
    }).result;
  }

  groupCommit(offset: number, timeMs = this.timeMs): ApplyResult {
    return this.apply({ kind: CommandKind.GroupCommit, leaderTimeMs: timeMs, group: 'g', offset, metadata: '' }).result;
  }

  advanceLogStart(logStartOffset: number, timeMs = this.timeMs): ApplyResult {
    return this.apply({ kind: CommandKind.AdvanceLogStart, leaderTimeMs: timeMs, logStartOffset }).result;
  }

  /** The state a restarted replica rebuilds from the persisted keyspace (sorted, as the database gives it). */
  restart(): PartitionState {
    const s = this.fresh();
    s.load(
      [...this.store.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, kv]) => kv),
      this.logIndex,
    );
    this.state = s;
    return s;
  }
}

function written(r: ApplyResult): { baseOffset: number; count: number } {
  if (r.kind !== 'written') throw new Error(`expected written, got ${JSON.stringify(outcome(r))}`);
  return { baseOffset: r.baseOffset, count: r.count };
}

/** A comparable summary of a result: kind, offsets, and the error code of a refusal. */
function outcome(r: ApplyResult | undefined): unknown {
  if (r === undefined) return undefined;
  if (r.kind === 'refused') return { kind: 'refused', code: r.error.code };
  if (r.kind === 'written' || r.kind === 'duplicate') return { kind: r.kind, baseOffset: r.baseOffset, count: r.count };
  return { kind: r.kind };
}

async function rows(s: PartitionState, from = 0): Promise<Array<{ base: number; count: number; logIndex: number }>> {
  return (await s.rowsFrom(from, Number.MAX_SAFE_INTEGER)).map((r) => ({
    base: r.base,
    count: r.count,
    logIndex: r.logIndex,
  }));
}

describe('dense offsets', () => {
  test('consecutive produces get base offsets 0, n, n+m, … and nextOffset is their sum', () => {
    const h = new Harness();
    expect(written(h.produce(batch(3)))).toEqual({ baseOffset: 0, count: 3 });
    expect(written(h.produce(batch(1)))).toEqual({ baseOffset: 3, count: 1 });
    expect(written(h.produce(batch(5)))).toEqual({ baseOffset: 4, count: 5 });
    expect(h.state.nextOffset).toBe(9);
  });

  test('for any batch sizes, the batches tile [0, nextOffset) in log order and the index maps each to its entry', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 60 }), async (sizes) => {
        const h = new Harness();
        let expected = 0;
        const want: Array<{ base: number; count: number; logIndex: number }> = [];
        for (const n of sizes) {
          expect(written(h.produce(batch(n)))).toEqual({ baseOffset: expected, count: n });
          want.push({ base: expected, count: n, logIndex: h.logIndex });
          expected += n;
        }
        expect(h.state.nextOffset).toBe(expected);
        expect(await rows(h.state)).toEqual(want);
      }),
    );
  });

  test('entries that are not produces (group commit, log-start advance, leased commands) take no offsets', async () => {
    const h = new Harness();
    written(h.produce(batch(2)));
    expect(h.groupCommit(1).kind).toBe('ok');
    expect(h.advanceLogStart(1).kind).toBe('ok');
    const lease = h.apply({
      kind: CommandKind.LeaseGrant,
      leaderTimeMs: h.timeMs,
      group: 'lg',
      policy: DEFAULT_LEASE_POLICY,
      leaseMs: 1_000,
      max: 5,
    }).result;
    expect(lease.kind).toBe('leased');
    expect(h.state.nextOffset).toBe(2);
    expect(written(h.produce(batch(4)))).toEqual({ baseOffset: 2, count: 4 });
    // Only the produce entries (log indices 1 and 5) are in the offset index.
    expect((await rows(h.state)).map((r) => r.logIndex)).toEqual([1, 5]);
  });

  test('refused and duplicate produces take no offsets', () => {
    const h = new Harness();
    written(h.produce(batch(2, 'a'), { key: 'k', producer: { producerId: 'p', epoch: 2, seq: 0 } }));
    expect(h.produce(batch(2, 'a'), { key: 'k' }).kind).toBe('duplicate');
    expect(h.produce(batch(3, 'b'), { key: 'k' }).kind).toBe('refused');
    expect(h.produce(batch(1), { producer: { producerId: 'p', epoch: 1, seq: 2 } }).kind).toBe('refused');
    expect(h.produce(batch(1), { producer: { producerId: 'p', epoch: 2, seq: 9 } }).kind).toBe('refused');
    expect(h.produce(batch(2), { producer: { producerId: 'p', epoch: 2, seq: 0 } }).kind).toBe('duplicate');
    expect(h.state.nextOffset).toBe(2);
    expect(written(h.produce(batch(1)))).toEqual({ baseOffset: 2, count: 1 });
  });

  type Step =
    | { kind: 'produce'; n: number; key?: number; payload: number; producer?: { epoch: number; seqDelta: number } }
    | { kind: 'group' }
    | { kind: 'logStart'; by: number }
    | { kind: 'restart' };
  const stepArb: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record(
        {
          kind: fc.constant('produce' as const),
          n: fc.integer({ min: 1, max: 5 }),
          key: fc.integer({ min: 0, max: 4 }),
          payload: fc.integer({ min: 0, max: 1 }),
          producer: fc.record({ epoch: fc.integer({ min: 0, max: 2 }), seqDelta: fc.integer({ min: -3, max: 2 }) }),
        },
        { requiredKeys: ['kind', 'n', 'payload'] },
      ),
    },
    { weight: 1, arbitrary: fc.constant({ kind: 'group' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('logStart' as const), by: fc.integer({ min: 0, max: 6 }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
  );

  test('offsets are never reused: whatever mix of retries, conflicts, fenced and out-of-order batches and restarts, the written batches tile [0, nextOffset)', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 80 }), (steps) => {
        const h = new Harness();
        let next = 0;
        let lastSeq = 0;
        for (const s of steps) {
          if (s.kind === 'group') h.groupCommit(0);
          else if (s.kind === 'logStart') h.advanceLogStart(h.state.logStartOffset + s.by);
          else if (s.kind === 'restart') h.restart();
          else {
            const seq = Math.max(0, lastSeq + (s.producer?.seqDelta ?? 0));
            const r = h.produce(batch(s.n, `p${s.payload}-`), {
              key: s.key === undefined ? undefined : `key-${s.key}`,
              producer: s.producer && { producerId: 'p', epoch: s.producer.epoch, seq },
            });
            if (r.kind === 'written') {
              // Each write starts exactly where the last one ended.
              expect(r.baseOffset).toBe(next);
              expect(r.count).toBe(s.n);
              next += s.n;
              lastSeq = seq + s.n;
            } else if (r.kind === 'duplicate') {
              // A duplicate points into what was written before, never beyond.
              expect(r.baseOffset + r.count).toBeLessThanOrEqual(next);
            }
          }
          expect(h.state.nextOffset).toBe(next);
        }
        expect(h.restart().nextOffset).toBe(next);
      }),
    );
  });
});

describe('dedup by idempotency key', () => {
  test('same key and same payload: duplicate with the original offsets, nothing written', () => {
    const h = new Harness();
    written(h.produce(batch(1, 'x')));
    const first = written(h.produce(batch(3, 'a'), { key: 'k' }));
    expect(first).toEqual({ baseOffset: 1, count: 3 });
    written(h.produce(batch(2, 'y')));
    const ops = h.apply({
      kind: CommandKind.Produce,
      leaderTimeMs: h.timeMs,
      idempotencyKey: 'k',
      payloadHash: payloadHash(batch(3, 'a')),
      records: batch(3, 'a'),
    });
    expect(outcome(ops.result)).toEqual({ kind: 'duplicate', baseOffset: 1, count: 3 });
    expect(ops.ops).toEqual([]);
    expect(h.state.nextOffset).toBe(6);
  });

  test('the payload is keys, values and headers: a retry with other timestamps is still a duplicate', () => {
    const h = new Harness();
    written(h.produce([rec('a', { timestampMs: 1 })], { key: 'k' }));
    expect(outcome(h.produce([rec('a', { timestampMs: 2 })], { key: 'k' }))).toEqual({
      kind: 'duplicate',
      baseOffset: 0,
      count: 1,
    });
  });

  test.each([
    ['another value', [rec('b')]],
    ['another record key', [rec('a', { key: 'other' })]],
    ['no record key', [rec('a', { key: null })]],
    ['a header', [rec('a', { header: 'x' })]],
    ['one record more', [rec('a'), rec('a')]],
  ])('same key, different payload (%s): refused with IDEMPOTENCY_CONFLICT, nothing written', (_what, records) => {
    const h = new Harness();
    written(h.produce([rec('a')], { key: 'k' }));
    const r = h.produce(records, { key: 'k' });
    expect(outcome(r)).toEqual({ kind: 'refused', code: 'IDEMPOTENCY_CONFLICT' });
    expect(h.state.nextOffset).toBe(1);
    // The key still answers for its first payload.
    expect(outcome(h.produce([rec('a')], { key: 'k' }))).toEqual({ kind: 'duplicate', baseOffset: 0, count: 1 });
  });

  test('keys are independent: a new key with an already-seen payload is written', () => {
    const h = new Harness();
    written(h.produce([rec('a')], { key: 'k1' }));
    expect(written(h.produce([rec('a')], { key: 'k2' }))).toEqual({ baseOffset: 1, count: 1 });
  });

  test("for any history, the leader's precheckIdempotency answers as the apply of the same produce does", () => {
    const stepArb = fc.record({
      key: fc.integer({ min: 0, max: 3 }),
      payload: fc.integer({ min: 0, max: 2 }),
      n: fc.integer({ min: 1, max: 3 }),
      advanceMs: fc.integer({ min: 0, max: WINDOW_MS / 2 }),
      restart: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 60 }), (steps) => {
        const h = new Harness();
        for (const s of steps) {
          h.timeMs += s.advanceMs;
          if (s.restart) h.restart();
          // The payload is a function of (payload, n) so that equal hashes mean equal batches.
          const records = batch(s.n, `p${s.payload}-`);
          const pre = h.state.precheckIdempotency(`key-${s.key}`, payloadHash(records));
          const r = h.produce(records, { key: `key-${s.key}` });
          if (pre === undefined) expect(r.kind).toBe('written');
          else expect(outcome(r)).toEqual(outcome(pre));
        }
      }),
    );
  });

  test('a key is forgotten once a later command carries a leaderTimeMs more than dedupWindowMs past its batch', () => {
    const h = new Harness();
    const t0 = 5_000_000;
    written(h.produce([rec('a')], { key: 'k', timeMs: t0 }));
    // Exactly the window later: still remembered.
    h.groupCommit(0, t0 + WINDOW_MS);
    expect(h.state.dedupSize()).toBe(1);
    expect(outcome(h.state.precheckIdempotency('k', payloadHash([rec('a')])))).toEqual({
      kind: 'duplicate',
      baseOffset: 0,
      count: 1,
    });
    // One millisecond more: forgotten, and deleted from the keyspace.
    const { ops } = h.apply({
      kind: CommandKind.GroupCommit,
      leaderTimeMs: t0 + WINDOW_MS + 1,
      group: 'g',
      offset: 0,
      metadata: '',
    });
    expect(ops.some((op) => op.op === 'del')).toBe(true);
    expect(h.state.dedupSize()).toBe(0);
    expect(h.state.precheckIdempotency('k', payloadHash([rec('a')]))).toBeUndefined();
    expect(h.restart().dedupSize()).toBe(0);
    // The same key and payload are now a new write, at new offsets.
    expect(written(h.produce([rec('a')], { key: 'k', timeMs: t0 + WINDOW_MS + 2 }))).toEqual({
      baseOffset: 1,
      count: 1,
    });
  });

  test('expiry follows leaderTimeMs, not the number of entries applied', () => {
    const h = new Harness();
    const t0 = 5_000_000;
    written(h.produce([rec('a')], { key: 'k', timeMs: t0 }));
    for (let i = 0; i < 500; i++) written(h.produce([rec(`n${i}`)], { timeMs: t0 + i }));
    expect(outcome(h.produce([rec('a')], { key: 'k', timeMs: t0 + 1_000 }))).toEqual({
      kind: 'duplicate',
      baseOffset: 0,
      count: 1,
    });
  });

  test('rows expire oldest first: a newer key outlives an older one', () => {
    const h = new Harness();
    const t0 = 5_000_000;
    written(h.produce([rec('a')], { key: 'old', timeMs: t0 }));
    written(h.produce([rec('b')], { key: 'new', timeMs: t0 + 10 }));
    h.groupCommit(0, t0 + WINDOW_MS + 5);
    expect(h.state.precheckIdempotency('old', payloadHash([rec('a')]))).toBeUndefined();
    expect(outcome(h.state.precheckIdempotency('new', payloadHash([rec('b')])))).toEqual({
      kind: 'duplicate',
      baseOffset: 1,
      count: 1,
    });
  });

  test('a restarted state remembers the same keys, with their offsets and hashes', () => {
    const h = new Harness();
    written(h.produce(batch(2, 'a'), { key: 'k1' }));
    written(h.produce(batch(3, 'b'), { key: 'k2' }));
    const s = h.restart();
    expect(s.dedupSize()).toBe(2);
    expect(outcome(s.precheckIdempotency('k2', payloadHash(batch(3, 'b'))))).toEqual({
      kind: 'duplicate',
      baseOffset: 2,
      count: 3,
    });
    expect(outcome(s.precheckIdempotency('k1', payloadHash(batch(3, 'b'))))).toEqual({
      kind: 'refused',
      code: 'IDEMPOTENCY_CONFLICT',
    });
  });

  // leaderTimeMs is the leader's wall clock (Date.now()), which can go back across a leader
  // change. Expiry runs on the state clock (the largest leaderTimeMs applied, persisted), and
  // rows keep their insertion order across a restart, so a replica that restarted forgets exactly
  // the keys one that kept running forgets; a retry gets the same answer on both.
  test('a restarted replica expires the same keys as one that kept running, even when leaderTimeMs goes back', () => {
    const t0 = 5_000_000;
    const live = new Harness();
    written(live.produce([rec('a')], { key: 'late', timeMs: t0 + 100 }));
    // A new leader whose clock is 90 ms behind.
    written(live.produce([rec('b')], { key: 'early', timeMs: t0 + 10 }));
    const restarted = new Harness();
    for (const [k, v] of live.store) restarted.store.set(k, v);
    restarted.logIndex = live.logIndex;
    restarted.restart();
    for (const h of [live, restarted]) h.groupCommit(0, t0 + WINDOW_MS + 50);
    expect(live.state.dedupSize()).toBe(restarted.state.dedupSize());
    const retry = (h: Harness) => outcome(h.produce([rec('b')], { key: 'early', timeMs: t0 + WINDOW_MS + 60 }));
    expect(retry(live)).toEqual(retry(restarted));
  });
});

describe('producer epoch and sequence', () => {
  const P = (epoch: number, seq: number): ProducerIdentity => ({ producerId: 'p', epoch, seq });

  test('a new producer may start at any sequence; the next batch must start right after the last', () => {
    const h = new Harness();
    expect(h.state.checkProducer('p', 3, 7, 2)).toBeUndefined();
    expect(written(h.produce(batch(2), { producer: P(3, 7) }))).toEqual({ baseOffset: 0, count: 2 });
    expect(h.state.checkProducer('p', 3, 9, 4)).toBeUndefined();
    expect(written(h.produce(batch(4), { producer: P(3, 9) }))).toEqual({ baseOffset: 2, count: 4 });
  });

  test('a repeat of the last batch (same seq and count) is a duplicate with its original offsets', () => {
    const h = new Harness();
    written(h.produce(batch(1, 'other')));
    written(h.produce(batch(3), { producer: P(0, 0) }));
    const want = { kind: 'duplicate', baseOffset: 1, count: 3 };
    expect(outcome(h.state.checkProducer('p', 0, 0, 3))).toEqual(want);
    expect(outcome(h.produce(batch(3), { producer: P(0, 0) }))).toEqual(want);
    expect(h.state.nextOffset).toBe(4);
  });

  test('a gap in the sequence is refused with OUT_OF_ORDER_SEQUENCE naming the expected seq, and changes nothing', () => {
    const h = new Harness();
    written(h.produce(batch(3), { producer: P(0, 10) }));
    const pre = h.state.checkProducer('p', 0, 14, 1);
    expect(outcome(pre)).toEqual({ kind: 'refused', code: 'OUT_OF_ORDER_SEQUENCE' });
    const r = h.produce(batch(1), { producer: P(0, 14) });
    expect(outcome(r)).toEqual({ kind: 'refused', code: 'OUT_OF_ORDER_SEQUENCE' });
    if (r.kind === 'refused') expect(r.error.extra).toEqual({ expected_seq: 13 });
    expect(h.state.nextOffset).toBe(3);
    // The expected seq is still 13.
    expect(written(h.produce(batch(1), { producer: P(0, 13) }))).toEqual({ baseOffset: 3, count: 1 });
  });

  test.each([
    ['a batch older than the last', 0, 3],
    ['the last seq with another count', 3, 2],
    ['a seq inside the last batch', 4, 2],
  ])('%s is refused with OUT_OF_ORDER_SEQUENCE', (_what, seq, count) => {
    const h = new Harness();
    written(h.produce(batch(3), { producer: P(0, 0) }));
    written(h.produce(batch(3), { producer: P(0, 3) }));
    expect(outcome(h.state.checkProducer('p', 0, seq, count))).toEqual({
      kind: 'refused',
      code: 'OUT_OF_ORDER_SEQUENCE',
    });
    expect(outcome(h.produce(batch(count), { producer: P(0, seq) }))).toEqual({
      kind: 'refused',
      code: 'OUT_OF_ORDER_SEQUENCE',
    });
    expect(h.state.nextOffset).toBe(6);
  });

  test('an older epoch is fenced with PRODUCER_FENCED, even for a repeat of its own last batch', () => {
    const h = new Harness();
    written(h.produce(batch(2), { producer: P(1, 0) }));
    written(h.produce(batch(2), { producer: P(2, 0) }));
    for (const seq of [0, 2, 100]) {
      expect(outcome(h.state.checkProducer('p', 1, seq, 2))).toEqual({ kind: 'refused', code: 'PRODUCER_FENCED' });
      expect(outcome(h.produce(batch(2), { producer: P(1, seq) }))).toEqual({
        kind: 'refused',
        code: 'PRODUCER_FENCED',
      });
    }
    expect(h.state.nextOffset).toBe(4);
  });

  test('a newer epoch resets the sequence: any seq is accepted, and from then on the old epoch is fenced', () => {
    const h = new Harness();
    written(h.produce(batch(2), { producer: P(0, 0) }));
    written(h.produce(batch(2), { producer: P(0, 2) }));
    // Epoch 1 starts at seq 0 again (and might start anywhere).
    expect(h.state.checkProducer('p', 1, 0, 2)).toBeUndefined();
    expect(h.state.checkProducer('p', 1, 57, 2)).toBeUndefined();
    expect(written(h.produce(batch(2), { producer: P(1, 0) }))).toEqual({ baseOffset: 4, count: 2 });
    expect(outcome(h.produce(batch(2), { producer: P(0, 4) }))).toEqual({ kind: 'refused', code: 'PRODUCER_FENCED' });
    expect(written(h.produce(batch(1), { producer: P(1, 2) }))).toEqual({ baseOffset: 6, count: 1 });
  });

  test('producers are tracked separately', () => {
    const h = new Harness();
    written(h.produce(batch(2), { producer: { producerId: 'a', epoch: 5, seq: 0 } }));
    expect(written(h.produce(batch(2), { producer: { producerId: 'b', epoch: 0, seq: 0 } }))).toEqual({
      baseOffset: 2,
      count: 2,
    });
    expect(outcome(h.produce(batch(2), { producer: { producerId: 'a', epoch: 5, seq: 0 } }))).toEqual({
      kind: 'duplicate',
      baseOffset: 0,
      count: 2,
    });
  });

  test('a restarted state keeps each producer: epoch, expected seq and the last batch', () => {
    const h = new Harness();
    written(h.produce(batch(2), { producer: P(4, 10) }));
    const s = h.restart();
    expect(outcome(s.checkProducer('p', 4, 10, 2))).toEqual({ kind: 'duplicate', baseOffset: 0, count: 2 });
    expect(outcome(s.checkProducer('p', 3, 12, 1))).toEqual({ kind: 'refused', code: 'PRODUCER_FENCED' });
    expect(outcome(s.checkProducer('p', 4, 13, 1))).toEqual({ kind: 'refused', code: 'OUT_OF_ORDER_SEQUENCE' });
    expect(s.checkProducer('p', 4, 12, 1)).toBeUndefined();
  });

  test("for any history, the leader's checkProducer answers as the apply of the same batch does", () => {
    const stepArb = fc.record({
      epoch: fc.integer({ min: 0, max: 3 }),
      seq: fc.integer({ min: 0, max: 12 }),
      n: fc.integer({ min: 1, max: 3 }),
      restart: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 60 }), (steps) => {
        const h = new Harness();
        for (const s of steps) {
          if (s.restart) h.restart();
          const pre = h.state.checkProducer('p', s.epoch, s.seq, s.n);
          const r = h.produce(batch(s.n), { producer: P(s.epoch, s.seq) });
          if (pre === undefined) expect(r.kind).toBe('written');
          else expect(outcome(r)).toEqual(outcome(pre));
        }
      }),
    );
  });
});

describe('retention moves the log start', () => {
  /** Batches of `sizes[i]` records, each record 10 value bytes + 0 key bytes, stamped `times[i]`. */
  function retained(sizes: number[], times: number[]): Harness {
    const h = new Harness();
    sizes.forEach((n, i) =>
      written(
        h.produce(
          Array.from({ length: n }, (_, j) =>
            rec(`value-${i}-${j}`.padEnd(10, '.').slice(0, 10), {
              key: null,
              timestampMs: times[i],
            }),
          ),
        ),
      ),
    );
    return h;
  }

  test('by time: the cut is the end of the last batch of the expired prefix', async () => {
    // Batches [0,2) t=100, [2,5) t=200, [5,6) t=300.
    const h = retained([2, 3, 1], [100, 200, 300]);
    expect(await h.state.retentionCut(1_100, 1_000, -1)).toBeUndefined(); // 100 is not < 100
    expect(await h.state.retentionCut(1_101, 1_000, -1)).toBe(2);
    expect(await h.state.retentionCut(1_250, 1_000, -1)).toBe(5);
    expect(await h.state.retentionCut(5_000, 1_000, -1)).toBe(6);
  });

  test('by time: a batch is due by its newest record, and a batch not due keeps every later one', async () => {
    const h = new Harness();
    written(h.produce([rec('a', { timestampMs: 100 }), rec('b', { timestampMs: 900 })]));
    written(h.produce([rec('c', { timestampMs: 100 })]));
    expect(await h.state.retentionCut(1_500, 1_000, -1)).toBeUndefined();
    expect(await h.state.retentionCut(1_901, 1_000, -1)).toBe(3);
  });

  test('by bytes: the oldest whole batches go until the rest fits', async () => {
    // Three batches of 2, 3 and 1 records × 10 bytes: 20, 30, 10 bytes.
    const h = retained([2, 3, 1], [0, 0, 0]);
    expect(await h.state.retentionCut(0, -1, 60)).toBeUndefined();
    expect(await h.state.retentionCut(0, -1, 59)).toBe(2);
    expect(await h.state.retentionCut(0, -1, 40)).toBe(2);
    expect(await h.state.retentionCut(0, -1, 39)).toBe(5);
    expect(await h.state.retentionCut(0, -1, 0)).toBe(6);
  });

  test('a negative limit disables that rule; either rule alone is enough to cut', async () => {
    const h = retained([2, 3, 1], [100, 200, 300]);
    expect(await h.state.retentionCut(10_000, -1, -1)).toBeUndefined();
    expect(await h.state.retentionCut(1_150, 1_000, 59)).toBe(2); // time and bytes agree
    expect(await h.state.retentionCut(1_150, 1_000, 30)).toBe(5); // bytes go further
    expect(await h.state.retentionCut(1_250, 1_000, 59)).toBe(5); // time goes further
  });

  test('AdvanceLogStart moves logStartOffset and the retained index; retentionCut then starts from there', async () => {
    const h = retained([2, 3, 1], [100, 200, 300]);
    expect(h.advanceLogStart(2).kind).toBe('ok');
    expect(h.state.logStartOffset).toBe(2);
    expect((await rows(h.state)).map((r) => r.base)).toEqual([2, 5]);
    // Nothing more is due by time at 1_150; the bytes left are 40.
    expect(await h.state.retentionCut(1_150, 1_000, -1)).toBeUndefined();
    expect(await h.state.retentionCut(0, -1, 40)).toBeUndefined();
    expect(await h.state.retentionCut(0, -1, 39)).toBe(5);
    const s = h.restart();
    expect(s.logStartOffset).toBe(2);
    expect((await rows(s)).map((r) => r.base)).toEqual([2, 5]);
  });

  test('the log start never goes back, and never passes the end of the log', () => {
    const h = retained([2, 3, 1], [100, 200, 300]);
    h.advanceLogStart(5);
    const back = h.apply({ kind: CommandKind.AdvanceLogStart, leaderTimeMs: h.timeMs, logStartOffset: 2 });
    expect(back.result.kind).toBe('none');
    expect(back.ops).toEqual([]);
    expect(h.advanceLogStart(5).kind).toBe('none');
    expect(h.state.logStartOffset).toBe(5);
    h.advanceLogStart(1_000);
    expect(h.state.logStartOffset).toBe(6);
    expect(h.restart().logStartOffset).toBe(6);
  });

  test('for any batches and advances, logStartOffset is the largest requested start, capped at nextOffset when applied', () => {
    const stepArb = fc.oneof(
      fc.record({ kind: fc.constant('produce' as const), n: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ kind: fc.constant('advance' as const), to: fc.integer({ min: 0, max: 40 }) }),
    );
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 40 }), (steps) => {
        const h = new Harness();
        let start = 0;
        for (const s of steps) {
          if (s.kind === 'produce') written(h.produce(batch(s.n)));
          else {
            h.advanceLogStart(s.to);
            if (s.to > start) start = Math.min(s.to, h.state.nextOffset);
          }
          expect(h.state.logStartOffset).toBe(start);
          expect(h.state.logStartOffset).toBeLessThanOrEqual(h.state.nextOffset);
        }
        expect(h.restart().logStartOffset).toBe(start);
      }),
    );
  });

  test('firstRetainedLogIndex is the log index of the first batch still holding a retained record', async () => {
    const h = new Harness();
    expect(await h.state.firstRetainedLogIndex()).toBeUndefined();
    h.groupCommit(0); // log index 1: no records
    written(h.produce(batch(2))); // log index 2: [0,2)
    h.groupCommit(1); // 3
    written(h.produce(batch(3))); // 4: [2,5)
    written(h.produce(batch(1))); // 5: [5,6)
    expect(await h.state.firstRetainedLogIndex()).toBe(2);
    h.advanceLogStart(1); // mid-batch: the batch still holds offset 1
    expect(await h.state.firstRetainedLogIndex()).toBe(2);
    h.advanceLogStart(2);
    expect(await h.state.firstRetainedLogIndex()).toBe(4);
    expect(await h.restart().firstRetainedLogIndex()).toBe(4);
    h.advanceLogStart(6);
    expect(await h.state.firstRetainedLogIndex()).toBeUndefined();
    expect(await h.restart().firstRetainedLogIndex()).toBeUndefined();
    // New records after the log emptied are retained again.
    written(h.produce(batch(1)));
    expect(await h.state.firstRetainedLogIndex()).toBe(h.logIndex);
  });
});

import type { RecordIn } from '../../../../common/partition-api';
import { DeadLetterStore, MAX_FINISHED_JOBS, type DeadLetterSink } from '../../../../replica/leased/dead-letters';
import { CommandKind, encodeCommand, payloadHash, type Command } from '../../../../replica/state/commands';
import { INDEX_ROW_BYTES, P_OFFSET_INDEX } from '../../../../replica/state/offset-index';
import { PartitionState, type StateReader, type StateSettings } from '../../../../replica/state/partition-state';

/**
 * The partition state's bounds (issue 15 item 8, issue 20): the offset index lives in the
 * keyspace behind a bounded tail; the dedup table is bounded by entries and bytes; producers and
 * groups expire on the state clock; finished replay jobs are collected. Every bound drops the
 * same rows on a replica that kept running and on one rebuilt from its keyspace.
 */

function rec(value: string, timestampMs = 1_000): RecordIn {
  return { key: Buffer.from('k'), value: Buffer.from(value), headers: [], timestampMs };
}

class Harness {
  readonly store = new Map<string, [Uint8Array, Uint8Array]>();
  logIndex = 0;
  state: PartitionState;
  readonly reader: StateReader = {
    get: async (key) => this.store.get(Buffer.from(key).toString('hex'))?.[1],
    scan: async ({ gte, lt, limit, reverse }) => {
      const lo = Buffer.from(gte).toString('hex');
      const hi = Buffer.from(lt).toString('hex');
      const keys = [...this.store.keys()].filter((k) => k >= lo && k < hi).sort();
      if (reverse) keys.reverse();
      return keys.slice(0, limit === undefined || limit < 0 ? undefined : limit).map((k) => this.store.get(k)!);
    },
  };

  constructor(private readonly settings: StateSettings) {
    this.state = new PartitionState(settings, this.reader);
  }

  apply(c: Command): void {
    const { ops } = this.state.apply(++this.logIndex, encodeCommand(c));
    for (const op of ops) {
      if (op.op === 'delRange') {
        const lo = Buffer.from(op.gte).toString('hex');
        const hi = Buffer.from(op.lt).toString('hex');
        for (const k of [...this.store.keys()]) if (k >= lo && k < hi) this.store.delete(k);
      } else if (op.op === 'put') this.store.set(Buffer.from(op.key).toString('hex'), [op.key, op.value]);
      else this.store.delete(Buffer.from(op.key).toString('hex'));
    }
    this.state.markWritten(this.logIndex);
  }

  produce(records: RecordIn[], timeMs: number, o: { key?: string; producer?: string } = {}): void {
    this.apply({
      kind: CommandKind.Produce,
      leaderTimeMs: timeMs,
      idempotencyKey: o.key,
      payloadHash: o.key === undefined ? undefined : payloadHash(records),
      producer: o.producer === undefined ? undefined : { producerId: o.producer, epoch: 0, seq: 0 },
      records,
    });
  }

  restarted(): PartitionState {
    const s = new PartitionState(this.settings, this.reader);
    s.load(
      [...this.store.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, kv]) => kv),
      this.logIndex,
    );
    return s;
  }
}

const keysKept = (s: PartitionState, keys: string[]) =>
  keys.filter((k) => s.precheckIdempotency(k, payloadHash([rec(k)])) !== undefined);

describe('the offset index on disk', () => {
  test('fetch-side reads find every batch whether it is in the tail or only in the keyspace', async () => {
    const h = new Harness({ dedupWindowMs: 60_000, indexCacheBytes: 3 * INDEX_ROW_BYTES });
    for (let i = 0; i < 50; i++) h.produce([rec(`a${i}`), rec(`b${i}`)], 1_000 + i);
    expect(h.state.stats().cachedRows).toBeLessThanOrEqual(3);
    for (const o of [0, 1, 37, 98, 99]) expect((await h.state.rowAt(o))?.base).toBe(o - (o % 2));
    expect(await h.state.rowAt(100)).toBeUndefined();
    const s = h.restarted();
    expect(s.stats().cachedRows).toBe(0);
    expect((await s.rowsFrom(41, 3)).map((r) => r.base)).toEqual([40, 42, 44]);
  });

  test('a restarted state reads only its meta keys and bounded tables, never an index row', () => {
    const h = new Harness({ dedupWindowMs: 60_000 });
    for (let i = 0; i < 20; i++) h.produce([rec(`v${i}`)], 1_000 + i);
    const s = new PartitionState({ dedupWindowMs: 60_000 });
    const pairs = [...h.store.values()].filter(([k]) => k[0] !== P_OFFSET_INDEX);
    s.load(pairs.sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    expect(s.nextOffset).toBe(20);
  });

  test('offsetForTimestamp finds the first batch at or after a time through the sparse time index', async () => {
    const h = new Harness({ dedupWindowMs: 60_000, indexCacheBytes: 2 * INDEX_ROW_BYTES });
    // 1 KB records so the time index gets a key every few batches.
    const big = (i: number) => ({ ...rec('x'.repeat(1000)), timestampMs: 10_000 + i * 10 });
    for (let i = 0; i < 200; i++) h.produce([big(i)], 1_000 + i);
    expect(await h.state.offsetForTimestamp(0)).toBe(0);
    expect(await h.state.offsetForTimestamp(10_000 + 57 * 10)).toBe(57);
    expect(await h.state.offsetForTimestamp(10_000 + 57 * 10 - 3)).toBe(57);
    expect(await h.state.offsetForTimestamp(99_999)).toBe(200);
    expect(await h.restarted().offsetForTimestamp(10_000 + 123 * 10)).toBe(123);
  });
});

describe('dedup table bounds', () => {
  test('past dedupMaxEntries the oldest keys are forgotten first, the same on a restarted replica', () => {
    const h = new Harness({ dedupWindowMs: 3_600_000, dedupMaxEntries: 3 });
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    keys.forEach((k, i) => h.produce([rec(k)], 1_000 + i, { key: k }));
    expect(keysKept(h.state, keys)).toEqual(['k2', 'k3', 'k4']);
    expect(h.state.stats().dedupEvicted).toBe(2);
    expect(keysKept(h.restarted(), keys)).toEqual(['k2', 'k3', 'k4']);
  });

  test('past dedupMaxBytes the oldest keys are forgotten first', () => {
    const h = new Harness({ dedupWindowMs: 3_600_000, dedupMaxBytes: 600 });
    const keys = Array.from({ length: 8 }, (_, i) => `key-${i}`);
    keys.forEach((k, i) => h.produce([rec(k)], 1_000 + i, { key: k }));
    const kept = keysKept(h.state, keys);
    expect(h.state.stats().dedupBytes).toBeLessThanOrEqual(600);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept).toEqual(keys.slice(keys.length - kept.length));
    expect(keysKept(h.restarted(), keys)).toEqual(kept);
  });

  test('expiry runs on the state clock: a leader clock that goes back neither keeps nor drops keys early', () => {
    const h = new Harness({ dedupWindowMs: 1_000 });
    h.produce([rec('a')], 10_000, { key: 'a' });
    h.produce([rec('b')], 5_000, { key: 'b' }); // a new leader 5 s behind: b counts as inserted at 10_000
    h.produce([rec('c')], 10_999);
    expect(keysKept(h.state, ['a', 'b'])).toEqual(['a', 'b']);
    h.produce([rec('d')], 11_001);
    expect(keysKept(h.state, ['a', 'b'])).toEqual([]);
    expect(h.restarted().clockMs).toBe(11_001);
  });
});

describe('producer and group expiry', () => {
  test('a producer idle for producerExpiryMs (state clock) is forgotten; an active one is kept', () => {
    const h = new Harness({ dedupWindowMs: 1_000, producerExpiryMs: 10_000 });
    h.produce([rec('a')], 1_000, { producer: 'idle' });
    h.produce([rec('b')], 6_000, { producer: 'busy' });
    h.produce([rec('c')], 10_500, { producer: 'busy' }); // reinsert: busy is now the newest
    h.produce([rec('d')], 11_001);
    expect(h.state.checkProducer('idle', 0, 5, 1)).toBeUndefined(); // unknown: any seq accepted
    expect(h.state.checkProducer('busy', 0, 5, 1)?.kind).toBe('refused');
    expect(h.state.stats().producersExpired).toBe(1);
    expect(h.restarted().checkProducer('busy', 0, 5, 1)?.kind).toBe('refused');
  });

  test('a group with no commit for groupExpiryMs is forgotten; a committing one is kept', () => {
    const h = new Harness({ dedupWindowMs: 1_000, groupExpiryMs: 10_000 });
    const commit = (group: string, t: number) =>
      h.apply({ kind: CommandKind.GroupCommit, leaderTimeMs: t, group, offset: 0, metadata: '' });
    commit('old', 1_000);
    commit('live', 2_000);
    commit('live', 10_000);
    commit('other', 11_500);
    expect([...h.state.groups.keys()].sort()).toEqual(['live', 'other']);
    expect([...h.restarted().groups.keys()].sort()).toEqual(['live', 'other']);
  });
});

describe('replay-job garbage collection', () => {
  const sink = (): DeadLetterSink & { gone: string[] } => {
    const gone: string[] = [];
    return { gone, entry: () => {}, job: () => {}, nextSeq: () => {}, jobGone: (id) => gone.push(id) };
  };

  test('finished jobs past their retention are dropped when a job is created; running jobs stay', () => {
    const dl = new DeadLetterStore();
    const s = sink();
    dl.createJob('dry', {}, 10, true, 1_000, s); // done at once
    dl.createJob('run', {}, 10, false, 1_000, s); // running
    dl.createJob('next', {}, 10, true, 1_000 + 8 * 24 * 3600 * 1000, s);
    expect(s.gone).toEqual(['dry']);
    expect([...dl.jobs.keys()].sort()).toEqual(['next', 'run']);
  });

  test('at most MAX_FINISHED_JOBS finished jobs are kept, the oldest finished dropped first', () => {
    const dl = new DeadLetterStore();
    const s = sink();
    for (let i = 0; i < MAX_FINISHED_JOBS + 5; i++) dl.createJob(`j${i}`, {}, 10, true, 1_000 + i, s);
    expect(dl.jobs.size).toBe(MAX_FINISHED_JOBS);
    expect(s.gone).toEqual(['j0', 'j1', 'j2', 'j3', 'j4']);
  });
});

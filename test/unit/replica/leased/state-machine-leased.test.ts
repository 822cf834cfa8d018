import { DEFAULT_LEASE_POLICY } from '../../../../replica/leased/leases';
import { CommandKind, decodeCommand, encodeCommand, type Command } from '../../../../replica/state/commands';
import { PartitionState, type ApplyResult } from '../../../../replica/state/partition-state';
import type { StateOp } from '../../../../replica/storage/storage';
import type { LeasedApplyOutput } from '../../../../replica/leased/state';
import type { RecordIn } from '../../../../common/partition-api';

/**
 * The leased commands through the real partition state machine: encode → apply → persist ops →
 * reload from the persisted keyspace, which must give back the same state (recovery and
 * snapshots are "load the keyspace").
 */

const policy = { ...DEFAULT_LEASE_POLICY, leaseMs: 100, maxAttempts: 2 };

function rec(v: string): RecordIn {
  return { key: Buffer.from(`k-${v}`), value: Buffer.from(v), headers: [['h', Buffer.from('x')]], timestampMs: 5 };
}

class Harness {
  state = new PartitionState({ dedupWindowMs: 60_000 });
  store = new Map<string, [Uint8Array, Uint8Array]>();
  index = 0;

  apply(c: Command): ApplyResult {
    // Every command goes through its binary form, as it does through the Raft log.
    const data = encodeCommand(c);
    expect(decodeCommand(data)).toBeDefined();
    const { ops, result } = this.state.apply(++this.index, data);
    this.persist(ops);
    return result;
  }

  leased(c: Command): LeasedApplyOutput {
    const r = this.apply(c);
    if (r.kind !== 'leased') throw new Error(`expected a leased result, got ${r.kind}`);
    return r.out;
  }

  persist(ops: StateOp[]): void {
    for (const op of ops) {
      if (op.op === 'delRange') throw new Error('unexpected delRange');
      const k = Buffer.from(op.key).toString('hex');
      if (op.op === 'put') this.store.set(k, [op.key, op.value]);
      else this.store.delete(k);
    }
  }

  reloaded(): PartitionState {
    const s = new PartitionState({ dedupWindowMs: 60_000 });
    s.load([...this.store.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, kv]) => kv));
    return s;
  }

  produce(...values: string[]): void {
    this.apply({ kind: CommandKind.Produce, leaderTimeMs: 1, records: values.map(rec) });
  }
}

/** A harness whose group `g` leased records a, b, c (offsets 0–2) and rejected them all: dead letters 0–2. */
function threeDeadLetters(): Harness {
  const h = new Harness();
  h.produce('a', 'b', 'c');
  h.leased({ kind: 4, leaderTimeMs: 1000, group: 'g', policy, leaseMs: 100, max: 3 });
  h.leased({
    kind: 5,
    leaderTimeMs: 1001,
    group: 'g',
    policy,
    items: [0, 1, 2].map((o) => ({
      offset: o,
      attempt: 1,
      action: 'reject' as const,
      error: 'E: x',
      record: rec('abc'[o]),
    })),
  });
  return h;
}

describe('partition state machine: leased groups and dead letters', () => {
  test('grant, ack and expire through the state machine; the group offset is the cumulative one', () => {
    const h = new Harness();
    h.produce('a', 'b', 'c');
    const g = h.leased({ kind: 4, leaderTimeMs: 1000, group: 'billing', policy, leaseMs: 100, max: 2 });
    expect(g).toMatchObject({
      op: 'grant',
      grant: {
        grants: [
          { offset: 0, attempt: 1 },
          { offset: 1, attempt: 1 },
        ],
      },
    });
    const a = h.leased({
      kind: 5,
      leaderTimeMs: 1010,
      group: 'billing',
      policy,
      items: [
        { offset: 0, attempt: 1, action: 'accept' },
        { offset: 1, attempt: 1, action: 'reject', error: 'Poison: bad', record: rec('b') },
        { offset: 2, attempt: 1, action: 'accept' },
      ],
    });
    expect(a).toMatchObject({
      op: 'ack',
      outcomes: [{ status: 'ok' }, { status: 'ok', deadLetter: { offset: 1 } }, { status: 'stale_attempt' }],
    });
    expect(h.state.groups.get('billing')).toEqual({ offset: 2, metadata: '' });
    const [dl] = h.state.leased.deadLetters.entries.values();
    expect(dl).toMatchObject({ seq: 0, group: 'billing', originOffset: 1, errorClass: 'Poison', state: 'active' });
    expect(Buffer.from(dl.record.value).toString()).toBe('b');

    // The same state after a reload from the persisted keyspace.
    const r = h.reloaded();
    expect(r.groups.get('billing')).toEqual({ offset: 2, metadata: '' });
    expect([...r.leased.deadLetters.entries.values()]).toEqual([...h.state.leased.deadLetters.entries.values()]);
    expect(r.leased.deadLetters.nextSeq).toBe(1);
  });

  test('the last attempt expiring is dead-lettered by the sweep; a sweep of a changed lease does nothing', () => {
    const h = new Harness();
    h.produce('a');
    h.leased({ kind: 4, leaderTimeMs: 1000, group: 'g', policy, leaseMs: 100, max: 1 });
    h.leased({ kind: 4, leaderTimeMs: 1100, group: 'g', policy, leaseMs: 100, max: 1 }); // attempt 2
    expect(h.state.leased.book.exhausted('g', 1200, policy, { start: 0, end: 1 }, 10)).toHaveLength(1);
    expect(
      h.leased({
        kind: 6,
        leaderTimeMs: 1200,
        group: 'g',
        policy,
        items: [{ offset: 0, attempt: 1, record: rec('a') }],
      }),
    ).toEqual({ op: 'expire', deadLettered: 0, discarded: 0 });
    expect(
      h.leased({
        kind: 6,
        leaderTimeMs: 1200,
        group: 'g',
        policy,
        items: [{ offset: 0, attempt: 2, record: rec('a') }],
      }),
    ).toEqual({ op: 'expire', deadLettered: 1, discarded: 0 });
    expect([...h.state.leased.deadLetters.entries.values()][0]).toMatchObject({
      attempts: 2,
      errorClass: 'lease_expired',
      firstDeliveryMs: 1000,
      lastDeliveryMs: 1100,
      deadLetteredMs: 1200,
    });
    expect(h.state.groups.get('g')?.offset).toBe(1);
    // Flights in flight survive a reload.
    h.produce('b');
    h.leased({ kind: 4, leaderTimeMs: 1300, group: 'g', policy, leaseMs: 100, max: 1 });
    expect(h.reloaded().leased.book.groups.get('g')).toEqual(h.state.leased.book.groups.get('g'));
  });

  test('policies, archive and purge persist', () => {
    const h = new Harness();
    h.leased({ kind: 7, leaderTimeMs: 1, group: 'g', override: { maxAttempts: 9, ordered: true } });
    expect(h.reloaded().leased.policies.get('g')).toEqual({ maxAttempts: 9, ordered: true });
    h.produce('a', 'b');
    h.leased({ kind: 4, leaderTimeMs: 1000, group: 'g', policy, leaseMs: 100, max: 2 });
    h.leased({
      kind: 5,
      leaderTimeMs: 1001,
      group: 'g',
      policy,
      items: [
        { offset: 0, attempt: 1, action: 'reject', error: 'A: x', record: rec('a') },
        { offset: 1, attempt: 1, action: 'reject', error: 'B: y', record: rec('b') },
      ],
    });
    expect(h.leased({ kind: 8, leaderTimeMs: 2000, action: 'archive', filter: { errorClass: 'A' } })).toEqual({
      op: 'deadletters',
      count: 1,
    });
    expect(h.reloaded().leased.deadLetters.countByState()).toEqual({ active: 1, archived: 1, replayed: 0 });
    expect(h.leased({ kind: 8, leaderTimeMs: 2000, action: 'purge', filter: { toMs: 1002 } })).toEqual({
      op: 'deadletters',
      count: 2,
    });
    expect(h.reloaded().leased.deadLetters.entries.size).toBe(0);
    h.leased({ kind: 7, leaderTimeMs: 1, group: 'g', override: null });
    expect(h.reloaded().leased.policies.has('g')).toBe(false);
  });

  test('a replay batch writes the records and marks their dead letters in one step; a repeat is refused', () => {
    const h = threeDeadLetters();
    const job = h.leased({
      kind: 9,
      leaderTimeMs: 2000,
      op: 'create',
      jobId: 'j1',
      filter: {},
      ratePerSec: 10,
      dryRun: false,
    });
    expect(job).toMatchObject({ op: 'job', job: { state: 'running', matched: 3, cursor: 0 } });
    const plan = h.state.leased.deadLetters.planReplay('j1', 2, 100)!;
    expect(plan).toEqual({ seqs: [0, 1], cursorTo: 2, done: false });
    const batch: Command = {
      kind: CommandKind.Produce,
      leaderTimeMs: 2100,
      records: [rec('a'), rec('b')],
      replay: { jobId: 'j1', ...plan },
    };
    expect(h.apply(batch)).toEqual({ kind: 'written', baseOffset: 3, count: 2 });
    expect(h.apply({ ...batch, leaderTimeMs: 2200 })).toMatchObject({ kind: 'refused' });
    expect(h.state.nextOffset).toBe(5);
    expect(h.state.leased.deadLetters.entries.get(1)).toMatchObject({
      state: 'replayed',
      replay: { jobId: 'j1', offset: 4, atMs: 2100 },
    });
    // Creating the same job again changes nothing.
    h.leased({ kind: 9, leaderTimeMs: 3000, op: 'create', jobId: 'j1', filter: {}, ratePerSec: 1, dryRun: false });
    const rest = h.state.leased.deadLetters.planReplay('j1', 10, 100)!;
    expect(rest).toEqual({ seqs: [2], cursorTo: 3, done: true });
    // Advancing over an eligible entry is refused (it would be skipped silently).
    h.leased({ kind: 9, leaderTimeMs: 3100, op: 'advance', jobId: 'j1', cursorTo: 3, done: true });
    expect(h.state.leased.deadLetters.jobs.get('j1')?.state).toBe('running');
    h.apply({
      kind: CommandKind.Produce,
      leaderTimeMs: 3200,
      records: [rec('c')],
      replay: { jobId: 'j1', ...rest },
    });
    h.leased({ kind: 9, leaderTimeMs: 3300, op: 'advance', jobId: 'j1', cursorTo: 3, done: true });
    expect(h.reloaded().leased.deadLetters.jobs.get('j1')).toMatchObject({
      state: 'done',
      written: 3,
      skipped: 0,
      matched: 3,
      finishedMs: 3300,
    });
    // A second job over the same entries finds them replayed: nothing is written twice.
    const j2 = h.leased({
      kind: 9,
      leaderTimeMs: 4000,
      op: 'create',
      jobId: 'j2',
      filter: {},
      ratePerSec: 10,
      dryRun: false,
    });
    expect(j2).toMatchObject({ job: { matched: 0 } });
    expect(h.state.leased.deadLetters.planReplay('j2', 10, 100)).toEqual({ seqs: [], cursorTo: 3, done: true });
    h.leased({ kind: 9, leaderTimeMs: 4100, op: 'advance', jobId: 'j2', cursorTo: 3, done: true });
    expect(h.state.leased.deadLetters.jobs.get('j2')).toMatchObject({ state: 'done', written: 0, skipped: 3 });
  });

  test('a job to another topic: prepare records the batch, commit marks where each record went; both persist', () => {
    const h = threeDeadLetters();
    const target = { topic: 'other', partitions: 3 };
    const created = h.leased({
      kind: 9,
      leaderTimeMs: 2000,
      op: 'create',
      jobId: 'jt',
      filter: {},
      ratePerSec: 10,
      dryRun: false,
      target,
    });
    expect(created).toMatchObject({ job: { target, pending: null, matched: 3 } });
    const dl = () => h.state.leased.deadLetters;
    // The origin path is not for this job's batches once one is in flight; commit needs a prepare.
    expect(h.leased({ kind: 9, leaderTimeMs: 2050, op: 'commit', jobId: 'jt', written: [] })).toMatchObject({
      refused: 'replay job jt has no batch in flight',
    });
    const plan = dl().planReplay('jt', 2, 100)!;
    expect(h.leased({ kind: 9, leaderTimeMs: 2100, op: 'prepare', jobId: 'jt', ...plan })).not.toHaveProperty(
      'refused',
    );
    // The pending batch survives a restart (a new leader sends the same batch again).
    expect(h.reloaded().leased.deadLetters.jobs.get('jt')?.pending).toEqual({ seqs: [0, 1], cursorTo: 2 });
    // A second prepare, archive and purge all leave the batch alone while it is in flight.
    expect(h.leased({ kind: 9, leaderTimeMs: 2150, op: 'prepare', jobId: 'jt', seqs: [2], cursorTo: 3 })).toMatchObject(
      { refused: 'replay job jt has a batch in flight' },
    );
    expect(h.leased({ kind: 8, leaderTimeMs: 2160, action: 'purge', filter: {} })).toEqual({
      op: 'deadletters',
      count: 1,
    });
    expect([...dl().entries.keys()]).toEqual([0, 1]);
    // A commit that leaves out a batch entry, or names one outside it, is refused whole.
    expect(
      h.leased({
        kind: 9,
        leaderTimeMs: 2200,
        op: 'commit',
        jobId: 'jt',
        written: [{ seq: 0, partition: 1, offset: 7 }],
      }),
    ).toMatchObject({ refused: 'replay job jt: dead letter 1 was not written' });
    expect(
      h.leased({
        kind: 9,
        leaderTimeMs: 2200,
        op: 'commit',
        jobId: 'jt',
        written: [
          { seq: 0, partition: 1, offset: 7 },
          { seq: 1, partition: 1, offset: 8 },
          { seq: 2, partition: 0, offset: 0 },
        ],
      }),
    ).toMatchObject({ refused: 'replay job jt: the commit names entries outside the batch in flight' });
    h.leased({
      kind: 9,
      leaderTimeMs: 2300,
      op: 'commit',
      jobId: 'jt',
      written: [
        { seq: 0, partition: 1, offset: 7 },
        { seq: 1, partition: 2, offset: 0 },
      ],
    });
    // Nothing was appended to this partition: the records went to the other topic.
    expect(h.state.nextOffset).toBe(3);
    const reloaded = h.reloaded().leased.deadLetters;
    expect(reloaded.entries.get(1)).toMatchObject({
      state: 'replayed',
      replay: { jobId: 'jt', offset: 0, atMs: 2300, topic: 'other', partition: 2 },
    });
    expect(reloaded.jobs.get('jt')).toMatchObject({ pending: null, cursor: 2, written: 2, target, state: 'running' });
    h.leased({ kind: 9, leaderTimeMs: 2400, op: 'advance', jobId: 'jt', cursorTo: 3, done: true });
    expect(h.reloaded().leased.deadLetters.jobs.get('jt')).toMatchObject({ state: 'done', written: 2 });
  });

  test('a grant with a plan: ordering keys and expiry through the binary command, the flights reload with their key and expiry', () => {
    const h = new Harness();
    h.apply({
      kind: CommandKind.Produce,
      leaderTimeMs: 1,
      records: [
        { ...rec('a'), expiresAtMs: 5000 },
        { ...rec('b'), expiresAtMs: 500 },
        { ...rec('c'), deliverAtMs: 9000 },
      ],
    });
    const keyed = { ...policy, orderingKey: true };
    const out = h.leased({
      kind: 4,
      leaderTimeMs: 1000,
      group: 'g',
      policy: keyed,
      leaseMs: 100,
      max: 3,
      plan: {
        offers: [
          { offset: 0, keyHash: 7, expiresAtMs: 5000 },
          // The leader would not offer these: offset 2 is not due, the key of 0 is out.
          { offset: 2, deliverAtMs: 9000 },
        ],
        expire: [{ offset: 1, expiresAtMs: 500, record: { ...rec('b'), expiresAtMs: 500 } }],
      },
    });
    if (out.op !== 'grant') throw new Error(out.op);
    expect(out.grant.grants.map((g) => g.offset)).toEqual([0]);
    expect(out.grant.ttlExpired).toEqual([
      { offset: 1, deadLetter: expect.objectContaining({ offset: 1, attempts: 0 }) },
    ]);
    const reloaded = h.reloaded();
    expect(reloaded.leased.book.groups.get('g')?.get(0)).toMatchObject({ keyHash: 7, expiresAtMs: 5000 });
    const [dl] = reloaded.leased.deadLetters.query({}, -1, 10).rows;
    expect(dl).toMatchObject({ originOffset: 1, errorClass: 'expired', attempts: 0 });
    expect(dl.record.expiresAtMs).toBe(500);
    // A second record of key 7 is refused while offset 0 is unfinished, whatever the plan says.
    h.produce('d');
    const again = h.leased({
      kind: 4,
      leaderTimeMs: 1001,
      group: 'g',
      policy: keyed,
      leaseMs: 100,
      max: 3,
      plan: { offers: [{ offset: 3, keyHash: 7 }], expire: [] },
    });
    if (again.op !== 'grant') throw new Error(again.op);
    expect(again.grant.grants).toEqual([]);
  });

  test('a delayed record held apart: the group offset passes it, it reloads, and it is delivered at its time', () => {
    const h = new Harness();
    h.apply({
      kind: CommandKind.Produce,
      leaderTimeMs: 1,
      records: [{ ...rec('later'), deliverAtMs: 9000 }, rec('now')],
    });
    const out = h.leased({
      kind: 4,
      leaderTimeMs: 1000,
      group: 'g',
      policy,
      leaseMs: 100,
      max: 5,
      plan: { offers: [{ offset: 1 }], expire: [], defer: [{ offset: 0, deliverAtMs: 9000 }] },
    });
    if (out.op !== 'grant') throw new Error(out.op);
    expect(out.grant.grants.map((g) => g.offset)).toEqual([1]);
    h.leased({ kind: 5, leaderTimeMs: 1001, group: 'g', policy, items: [{ offset: 1, attempt: 1, action: 'accept' }] });
    const reloaded = h.reloaded();
    expect(reloaded.groups.get('g')?.offset).toBe(2);
    expect(reloaded.leased.book.groups.get('g')?.get(0)).toMatchObject({ state: 'waiting', attempt: 0, apart: true });
    const due = h.leased({
      kind: 4,
      leaderTimeMs: 9000,
      group: 'g',
      policy,
      leaseMs: 100,
      max: 5,
      plan: { offers: [], expire: [] },
    });
    if (due.op !== 'grant') throw new Error(due.op);
    expect(due.grant.grants).toEqual([{ offset: 0, attempt: 1, leaseUntilMs: 9100 }]);
    h.leased({ kind: 5, leaderTimeMs: 9001, group: 'g', policy, items: [{ offset: 0, attempt: 1, action: 'accept' }] });
    expect(h.reloaded().leased.book.groups.get('g')?.size ?? 0).toBe(0);
  });

  test('expired records are dropped when the policy says drop', () => {
    const h = new Harness();
    h.apply({ kind: CommandKind.Produce, leaderTimeMs: 1, records: [{ ...rec('a'), expiresAtMs: 500 }] });
    const out = h.leased({
      kind: 4,
      leaderTimeMs: 1000,
      group: 'g',
      policy: { ...policy, expired: 'drop' },
      leaseMs: 100,
      max: 0,
      plan: { offers: [], expire: [{ offset: 0, expiresAtMs: 500, record: rec('a') }] },
    });
    if (out.op !== 'grant') throw new Error(out.op);
    expect(out.grant.ttlExpired).toEqual([{ offset: 0 }]);
    expect(h.reloaded().leased.deadLetters.query({}, -1, 10).rows).toEqual([]);
    expect(h.reloaded().groups.get('g')?.offset).toBe(1);
  });

  test('malformed leased commands are codec errors', () => {
    const data = encodeCommand({ kind: 4, leaderTimeMs: 1, group: 'g', policy, leaseMs: 1, max: 1 });
    expect(() => decodeCommand(data.subarray(0, data.length - 1))).toThrow(/short/);
    const bad = Buffer.from(data);
    bad[0] = 42;
    expect(() => decodeCommand(bad)).toThrow(/unknown command kind 42/);
  });
});

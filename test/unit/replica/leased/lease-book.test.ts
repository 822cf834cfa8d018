import {
  DEFAULT_LEASE_POLICY,
  LeaseBook,
  LEASE_WINDOW,
  backoffMs,
  errorClassOf,
  type RecordFacts,
  type LeasePolicy,
  type LeaseSink,
} from '../../../../replica/leased/leases';

function setup(over: Partial<LeasePolicy> = {}) {
  const committed = new Map<string, number>();
  const book = new LeaseBook({ get: (g) => committed.get(g), set: (g, o) => committed.set(g, o) });
  const sink: LeaseSink = { flight: () => {}, committed: () => {} };
  const policy: LeasePolicy = { ...DEFAULT_LEASE_POLICY, leaseMs: 100, backoffInitialMs: 10, ...over };
  const log = { start: 0, end: 5 };
  return { book, sink, policy, log, committed };
}

describe('lease state machine', () => {
  test('a grant hands out records in offset order with attempt 1 and the lease length', () => {
    const { book, sink, policy, log } = setup();
    const r = book.grant('g', 1000, policy, 100, log, 3, sink);
    expect(r.grants).toEqual([
      { offset: 0, attempt: 1, leaseUntilMs: 1100 },
      { offset: 1, attempt: 1, leaseUntilMs: 1100 },
      { offset: 2, attempt: 1, leaseUntilMs: 1100 },
    ]);
    // Leased records are not handed out again while their lease runs.
    expect(book.grant('g', 1050, policy, 100, log, 10, sink).grants.map((g) => g.offset)).toEqual([3, 4]);
  });

  test('an expired lease is redelivered with attempt + 1, and the late ack of the old attempt is refused', () => {
    const { book, sink, policy, log } = setup();
    book.grant('g', 1000, policy, 100, log, 1, sink);
    const again = book.grant('g', 1100, policy, 100, log, 1, sink);
    expect(again.grants).toEqual([{ offset: 0, attempt: 2, leaseUntilMs: 1200 }]);
    expect(again.expired).toEqual([0]);
    expect(book.ack('g', 1150, policy, { offset: 0, attempt: 1, action: 'accept' }, log, true, sink)).toEqual({
      status: 'stale_attempt',
      why: 'superseded',
    });
    expect(book.ack('g', 1150, policy, { offset: 0, attempt: 2, action: 'accept' }, log, true, sink).status).toBe('ok');
  });

  test('an ack after the lease expired (not yet redelivered) is lease_expired', () => {
    const { book, sink, policy, log } = setup();
    book.grant('g', 1000, policy, 100, log, 1, sink);
    expect(book.ack('g', 1100, policy, { offset: 0, attempt: 1, action: 'accept' }, log, true, sink)).toEqual({
      status: 'lease_expired',
    });
  });

  test('a retried ack is answered ok again without a second effect', () => {
    const { book, sink, policy, log, committed } = setup();
    book.grant('g', 1000, policy, 100, log, 2, sink);
    expect(book.ack('g', 1001, policy, { offset: 1, attempt: 1, action: 'accept' }, log, true, sink)).toEqual({
      status: 'ok',
    });
    expect(book.ack('g', 1002, policy, { offset: 1, attempt: 1, action: 'accept' }, log, true, sink)).toEqual({
      status: 'ok',
      duplicate: true,
    });
    expect(book.ack('g', 1002, policy, { offset: 1, attempt: 1, action: 'reject' }, log, true, sink).status).toBe(
      'stale_attempt',
    );
    expect(committed.get('g')).toBeUndefined(); // offset 0 still open
    book.ack('g', 1003, policy, { offset: 0, attempt: 1, action: 'accept' }, log, true, sink);
    expect(committed.get('g')).toBe(2);
  });

  test('release waits for the backoff (or delay_ms) before redelivery', () => {
    const { book, sink, policy, log } = setup({ backoffInitialMs: 50, backoffMultiplier: 2, backoffMaxMs: 1000 });
    book.grant('g', 1000, policy, 100, log, 1, sink);
    book.ack('g', 1010, policy, { offset: 0, attempt: 1, action: 'release' }, log, true, sink);
    expect(book.grant('g', 1059, policy, 100, log, 1, sink).grants[0].offset).toBe(1);
    expect(book.nextDueMs('g', 1059)).toBe(1060);
    const r = book.grant('g', 1060, policy, 100, log, 1, sink);
    expect(r.grants).toEqual([{ offset: 0, attempt: 2, leaseUntilMs: 1160 }]);
    expect(r.redelivered).toEqual([0]);
    book.ack('g', 1070, policy, { offset: 0, attempt: 2, action: 'release', delayMs: 5 }, log, true, sink);
    expect(book.grant('g', 1075, policy, 100, log, 1, sink).grants[0]).toMatchObject({ offset: 0, attempt: 3 });
  });

  test('reject dead-letters with the delivery history; the committed offset moves over it', () => {
    const { book, sink, policy, log, committed } = setup();
    book.grant('g', 1000, policy, 100, log, 1, sink);
    const r = book.ack(
      'g',
      1010,
      policy,
      { offset: 0, attempt: 1, action: 'reject', error: 'SchemaError: field x missing' },
      log,
      true,
      sink,
    );
    expect(r).toEqual({
      status: 'ok',
      deadLetter: {
        offset: 0,
        attempts: 1,
        lastError: 'SchemaError: field x missing',
        lastErrorClass: 'SchemaError',
        firstDeliveryMs: 1000,
        lastDeliveryMs: 1000,
      },
    });
    expect(committed.get('g')).toBe(1);
  });

  test('the last attempt failing dead-letters; an expired last lease waits for the sweep', () => {
    const { book, sink, policy, log } = setup({ maxAttempts: 2 });
    book.grant('g', 1000, policy, 100, log, 1, sink);
    book.grant('g', 1100, policy, 100, log, 1, sink); // attempt 2 (offset 0)
    // attempt 2 expires: no third delivery, the sweep dead-letters it
    expect(book.grant('g', 1200, policy, 100, log, 1, sink).grants[0].offset).toBe(1);
    expect(book.exhausted('g', 1200, policy, log, 10)).toEqual([{ offset: 0, attempt: 2, leaseUntilMs: 1200 }]);
    const note = book.expire('g', 1200, policy, 0, 2, log, true, sink);
    expect(note).toMatchObject({ offset: 0, attempts: 2, lastErrorClass: 'lease_expired' });
    expect(book.expire('g', 1200, policy, 0, 2, log, true, sink)).toBeUndefined();
  });

  test('with dead-lettering off an exhausted record is discarded', () => {
    const { book, sink, policy, log, committed } = setup({ maxAttempts: 1, deadLetter: false });
    book.grant('g', 1000, policy, 100, log, 1, sink);
    const r = book.grant('g', 1100, policy, 100, log, 1, sink);
    expect(r.discarded).toEqual([0]);
    expect(r.grants[0].offset).toBe(1);
    expect(committed.get('g')).toBe(1);
  });

  test('ordered mode: one lease at a time, and a waiting record blocks the ones after it', () => {
    const { book, sink, policy, log } = setup({ ordered: true, backoffInitialMs: 50 });
    expect(book.grant('g', 1000, policy, 100, log, 2, sink).grants.map((g) => g.offset)).toEqual([0, 1]);
    expect(book.grant('g', 1001, policy, 100, log, 2, sink).grants).toEqual([]);
    book.ack('g', 1002, policy, { offset: 0, attempt: 1, action: 'release' }, log, true, sink);
    expect(book.grant('g', 1003, policy, 100, log, 2, sink).grants).toEqual([]); // offset 1 still leased
    book.ack('g', 1004, policy, { offset: 1, attempt: 1, action: 'accept' }, log, true, sink);
    // Offset 0 waits for its backoff: the leader's plan finds nothing to hand out.
    expect(book.plan('g', 1005, policy, log, 5, 10, () => ({})).work).toBe(0);
    expect(book.grant('g', 1052, policy, 100, log, 5, sink).grants.map((g) => [g.offset, g.attempt])).toEqual([
      [0, 2],
      [2, 1],
      [3, 1],
      [4, 1],
    ]);
  });

  test('extend moves the lease; groups are independent', () => {
    const { book, sink, policy, log } = setup();
    book.grant('a', 1000, policy, 100, log, 1, sink);
    expect(
      book.ack('a', 1050, policy, { offset: 0, attempt: 1, action: 'extend', leaseMs: 500 }, log, true, sink),
    ).toEqual({ status: 'ok', leaseUntilMs: 1550 });
    expect(book.grant('a', 1200, policy, 100, log, 1, sink).grants[0].offset).toBe(1);
    expect(book.grant('b', 1200, policy, 100, log, 1, sink).grants[0]).toMatchObject({ offset: 0, attempt: 1 });
  });

  /** A leader's plan from the records' facts, applied at once (what service.ts does through Raft). */
  function planAndGrant(
    s: ReturnType<typeof setup>,
    nowMs: number,
    max: number,
    facts: (o: number) => RecordFacts,
    policy = s.policy,
  ) {
    const p = s.book.plan('g', nowMs, policy, s.log, max, 100, facts);
    expect(p.missing).toBeUndefined();
    const plan = { offers: p.offers, defer: p.defer, expire: p.expire.map((e) => ({ ...e, bytes: true })) };
    return { plan: p, grant: s.book.grant('g', nowMs, policy, 100, s.log, max, s.sink, plan) };
  }

  test('a record delayed far ahead holds back nothing behind it in an unordered group: held apart, the committed offset passes it', () => {
    const s = setup();
    s.log.end = LEASE_WINDOW + 10;
    const facts = (o: number): RecordFacts => (o === 0 ? { deliverAtMs: 1e12 } : {});
    let granted = 0;
    for (let i = 0; i < 10; i++) {
      const { grant } = planAndGrant(s, 1000, 10_000, facts);
      for (const g of grant.grants) {
        expect(g.offset).toBeGreaterThan(0);
        expect(s.book.ack('g', 1001, s.policy, { ...g, action: 'accept' }, s.log, true, s.sink).status).toBe('ok');
      }
      granted += grant.grants.length;
    }
    // Everything behind it went out, past the window; the committed offset is at the end.
    expect(granted).toBe(LEASE_WINDOW + 9);
    expect(s.committed.get('g')).toBe(LEASE_WINDOW + 10);
    expect(s.book.groups.get('g')?.get(0)).toMatchObject({ state: 'waiting', attempt: 0, apart: true, untilMs: 1e12 });
    expect(s.book.summary('g', 1000)).toEqual({ leased: 0, waiting: 1, done: 0 });
    expect(s.book.nextDueMs('g', 1000)).toBe(1e12);
    // At its time it is delivered (attempt 1) and, accepted, forgotten.
    const late = planAndGrant(s, 1e12, 10, facts);
    expect(late.grant.grants).toEqual([{ offset: 0, attempt: 1, leaseUntilMs: 1e12 + 100 }]);
    expect(s.book.ack('g', 1e12, s.policy, { offset: 0, attempt: 1, action: 'accept' }, s.log, true, s.sink)).toEqual({
      status: 'ok',
    });
    expect(s.book.groups.get('g')?.size).toBe(0);
  });

  test('in an ordered group a delayed record holds back everything after it; the long-poll learns when it is due', () => {
    const s = setup({ ordered: true });
    const facts = (o: number): RecordFacts => (o === 1 ? { deliverAtMs: 5000 } : {});
    const first = planAndGrant(s, 1000, 10, facts);
    expect(first.grant.grants.map((g) => g.offset)).toEqual([0]);
    s.book.ack('g', 1001, s.policy, { offset: 0, attempt: 1, action: 'accept' }, s.log, true, s.sink);
    const blocked = planAndGrant(s, 1002, 10, facts);
    expect(blocked.grant.grants).toEqual([]);
    expect(blocked.plan.nextDeliverMs).toBe(5000);
    // Due: it and the ones after it, in offset order, to this one holder.
    expect(planAndGrant(s, 5000, 10, facts).grant.grants.map((g) => g.offset)).toEqual([1, 2, 3, 4]);
  });

  test('ordering keys: the next record of a key waits for the previous to finish; a release gives the same record back first', () => {
    const s = setup({ orderingKey: true });
    // Offsets 0, 2, 4 have key 7; 1 and 3 have no key (each its own key).
    const facts = (o: number): RecordFacts => (o % 2 === 0 ? { keyHash: 7 } : {});
    expect(planAndGrant(s, 1000, 10, facts).grant.grants.map((g) => g.offset)).toEqual([0, 1, 3]);
    expect(planAndGrant(s, 1001, 10, facts).grant.grants).toEqual([]);
    s.book.ack('g', 1002, s.policy, { offset: 0, attempt: 1, action: 'release', delayMs: 0 }, s.log, true, s.sink);
    expect(planAndGrant(s, 1003, 10, facts).grant.grants).toEqual([{ offset: 0, attempt: 2, leaseUntilMs: 1103 }]);
    s.book.ack('g', 1004, s.policy, { offset: 0, attempt: 2, action: 'reject' }, s.log, true, s.sink);
    expect(planAndGrant(s, 1005, 10, facts).grant.grants.map((g) => g.offset)).toEqual([2]);
  });

  test('backoff and error classes', () => {
    const p = { ...DEFAULT_LEASE_POLICY, backoffInitialMs: 100, backoffMultiplier: 3, backoffMaxMs: 1000 };
    expect([1, 2, 3, 4].map((a) => backoffMs(p, a))).toEqual([100, 300, 900, 1000]);
    expect(errorClassOf('TimeoutError: upstream')).toBe('TimeoutError');
    expect(errorClassOf('http_503')).toBe('http_503');
    expect(errorClassOf('something went wrong')).toBe('unclassified');
    expect(errorClassOf(undefined)).toBe('unclassified');
  });
});

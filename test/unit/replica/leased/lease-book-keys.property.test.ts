import fc from 'fast-check';
import {
  LeaseBook,
  type AckAction,
  type GrantPlan,
  type LeasePolicy,
  type LeaseSink,
  type LogBounds,
  type RecordFacts,
} from '../../../../replica/leased/leases';

// Hundreds of random runs per property: ~0.6 s alone, several seconds on a loaded 2-core machine
// (one run of the keys file beside the integration tier failed, not reproduced in 45 runs alone:
// most likely jest's 5 s default). A bound, not a tuning knob.
jest.setTimeout(60_000);

/**
 * Property tests of ordering keys, delayed delivery and expiry in the lease state machine
 * (issue 19): random produce (keys from a small set or none, delivery times and expiries
 * around now), fetches planned by the leader (`plan`) and applied at once or later (a stale
 * plan, as when two fetches race or a leader's view lags), acks, sweeps and clock moves —
 * against the invariants:
 *   - at most one delivered, unfinished record per key (ordering keys);
 *   - a key's records get their first delivery in offset order, each only after every earlier
 *     record of its key finished (accepted, dead-lettered, dropped);
 *   - a record is never granted before its deliverAtMs, nor at or after its expiresAtMs;
 *   - everything ends: after the last op, a consumer that accepts what it gets finishes the log.
 */

interface Rec {
  key: number | null;
  /** Key compaction removed it. */
  gone: boolean;
  deliverAtMs?: number;
  expiresAtMs?: number;
}

type Op =
  | { kind: 'produce'; recs: Array<{ key: number | null; delay: number | null; ttl: number | null; gone: boolean }> }
  | { kind: 'tick'; ms: number }
  | { kind: 'fetch'; max: number; leaseMs: number }
  | { kind: 'plan'; max: number; leaseMs: number }
  | { kind: 'applyPlan'; pick: number }
  | { kind: 'ack'; pick: number; action: AckAction; delayMs: number }
  | { kind: 'sweep'; bytes: boolean }
  | { kind: 'forged'; offsets: number[]; expire: number[]; max: number };

const recArb = fc.record({
  key: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null, freq: 4 }),
  delay: fc.option(fc.integer({ min: 0, max: 800 }), { nil: null, freq: 2 }),
  ttl: fc.option(fc.integer({ min: 1, max: 1500 }), { nil: null, freq: 2 }),
  gone: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('produce' as const),
      recs: fc.array(recArb, { minLength: 1, maxLength: 5 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 300 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('fetch' as const),
      max: fc.integer({ min: 1, max: 4 }),
      leaseMs: fc.integer({ min: 1, max: 300 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('plan' as const),
      max: fc.integer({ min: 1, max: 4 }),
      leaseMs: fc.integer({ min: 1, max: 300 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('applyPlan' as const), pick: fc.nat() }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('ack' as const),
      pick: fc.nat(),
      action: fc.constantFrom<AckAction>('accept', 'accept', 'release', 'reject', 'extend'),
      delayMs: fc.integer({ min: 0, max: 300 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('sweep' as const), bytes: fc.boolean() }) },
);

/** A plan no honest leader makes: any offsets offered, any expiring ones ended (with their true facts). */
const forgedArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.constant('forged' as const),
  offsets: fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 6 }),
  expire: fc.array(fc.integer({ min: 0, max: 15 }), { maxLength: 3 }),
  max: fc.integer({ min: 1, max: 6 }),
});

const policyArb: fc.Arbitrary<LeasePolicy> = fc
  .record({
    maxAttempts: fc.integer({ min: 1, max: 4 }),
    leaseMs: fc.integer({ min: 1, max: 300 }),
    backoffInitialMs: fc.integer({ min: 0, max: 100 }),
    backoffMaxMs: fc.integer({ min: 100, max: 400 }),
    backoffMultiplier: fc.constantFrom(1, 2),
    deadLetter: fc.boolean(),
    mode: fc.constantFrom('key', 'key', 'none', 'ordered'),
    expired: fc.constantFrom('dead_letter' as const, 'drop' as const),
  })
  .map(({ mode, ...p }) => ({ ...p, ordered: mode === 'ordered', orderingKey: mode === 'key' }));

const G = 'g';

function run(policy: LeasePolicy, ops: Op[], forged = false): void {
  const committed = new Map<string, number>();
  const book = new LeaseBook({ get: (g) => committed.get(g), set: (g, o) => committed.set(g, o) });
  const finished = new Set<number>();
  const sink: LeaseSink = {
    flight(_g, offset, f) {
      if (f?.state === 'done') finished.add(offset);
    },
    committed: () => {},
  };
  const recs: Rec[] = [];
  const log: LogBounds = { start: 0, end: 0 };
  let now = 1000;
  const tokens: Array<{ offset: number; attempt: number }> = [];
  const pending: Array<{ plan: GrantPlan; nowMs: number; max: number; leaseMs: number }> = [];
  const firstDelivered = new Set<number>();
  const factsOf = (o: number): RecordFacts | undefined => {
    const r = recs[o];
    if (r === undefined) return undefined;
    return r.gone ? { gone: true } : trueFacts(r);
  };
  /** A record's facts whatever compaction did (a forged plan lies about offsets, not about facts). */
  const trueFacts = (r: Rec): RecordFacts => {
    return {
      ...(r.key !== null ? { keyHash: r.key } : {}),
      ...(r.deliverAtMs !== undefined ? { deliverAtMs: r.deliverAtMs } : {}),
      ...(r.expiresAtMs !== undefined ? { expiresAtMs: r.expiresAtMs } : {}),
    };
  };
  /** A record is finished when its flight ended; below the committed offset, unless held apart. */
  const heldApart = (o: number) => {
    const f = book.groups.get(G)?.get(o);
    return f !== undefined && f.apart === true && f.state !== 'done';
  };
  const isFinished = (o: number) => finished.has(o) || (o < book.base(G, log) && !heldApart(o));

  const planNow = (max: number, maxExpire: number) => {
    const p = book.plan(G, now, policy, log, max, maxExpire, factsOf);
    expect(p.missing).toBeUndefined();
    // The leader reads the bytes of what it ends; the sweep's may be missing (retention).
    return { offers: p.offers, defer: p.defer, expire: p.expire.map((e) => ({ ...e, bytes: true })) };
  };

  const apply = (plan: GrantPlan, nowMs: number, max: number, leaseMs: number) => {
    const r = book.grant(G, nowMs, policy, leaseMs, log, max, sink, plan);
    expect(r.grants.length).toBeLessThanOrEqual(max);
    for (const gr of r.grants) {
      const rec = recs[gr.offset];
      if (!forged) expect(rec.gone).toBe(false);
      // Never before its time, never from its expiry on.
      if (rec.deliverAtMs !== undefined) expect(rec.deliverAtMs).toBeLessThanOrEqual(nowMs);
      if (rec.expiresAtMs !== undefined) expect(rec.expiresAtMs).toBeGreaterThan(nowMs);
      if (gr.attempt === 1) {
        expect(firstDelivered.has(gr.offset)).toBe(false);
        firstDelivered.add(gr.offset);
        // A key's records in offset order: every earlier record of the key has finished.
        // (A forged plan can break this — key order is the honest leader's part — but not the rest.)
        if (policy.orderingKey && rec.key !== null && !forged)
          for (let o = 0; o < gr.offset; o++) if (recs[o].key === rec.key) expect(isFinished(o)).toBe(true);
      }
      tokens.push({ offset: gr.offset, attempt: gr.attempt });
    }
    for (const x of r.ttlExpired) {
      const rec = recs[x.offset];
      if (rec.gone) continue;
      expect(rec.expiresAtMs).toBeDefined();
      expect(rec.expiresAtMs!).toBeLessThanOrEqual(nowMs);
      if (x.deadLetter) expect(policy.deadLetter && policy.expired === 'dead_letter').toBe(true);
    }
  };

  const checkKeys = () => {
    if (!policy.orderingKey) return;
    // At most one unfinished record per key.
    const seen = new Set<number>();
    for (const [o, f] of book.groups.get(G) ?? new Map()) {
      // Delayed records held apart and not delivered yet wait their turn like any undelivered record.
      if (f.state === 'done' || f.attempt === 0 || (o < book.base(G, log) && !f.apart)) continue;
      const key = recs[o].key;
      if (key === null) continue;
      expect(seen.has(key)).toBe(false);
      seen.add(key);
    }
  };

  const ack = (t: { offset: number; attempt: number }, action: AckAction, delayMs?: number) =>
    book.ack(
      G,
      now,
      policy,
      { offset: t.offset, attempt: t.attempt, action, ...(delayMs !== undefined ? { delayMs } : {}) },
      log,
      true,
      sink,
    );

  const sweep = (bytes: boolean) => {
    for (const e of book.exhausted(G, now, policy, log, 100))
      book.expire(G, now, policy, e.offset, e.attempt, log, bytes, sink);
    const p = planNow(0, 100);
    if (p.expire.length) apply(p, now, 0, policy.leaseMs);
  };

  for (const op of ops) {
    switch (op.kind) {
      case 'produce':
        for (const r of op.recs)
          recs.push({
            key: r.key,
            gone: r.gone,
            ...(r.delay !== null ? { deliverAtMs: now + r.delay } : {}),
            ...(r.ttl !== null ? { expiresAtMs: now + (r.delay ?? 0) + r.ttl } : {}),
          });
        log.end = recs.length;
        break;
      case 'tick':
        now += op.ms;
        break;
      case 'fetch':
        apply(planNow(op.max, 10), now, op.max, op.leaseMs);
        break;
      case 'plan':
        pending.push({ plan: planNow(op.max, 10), nowMs: now, max: op.max, leaseMs: op.leaseMs });
        break;
      case 'applyPlan':
        if (pending.length > 0) {
          const [p] = pending.splice(op.pick % pending.length, 1);
          // Commands apply in log order with the leader time they were proposed at.
          apply(p.plan, Math.max(p.nowMs, now), p.max, p.leaseMs);
        }
        break;
      case 'ack':
        if (tokens.length > 0) ack(tokens[op.pick % tokens.length], op.action, op.delayMs);
        break;
      case 'sweep':
        sweep(op.bytes);
        break;
      case 'forged': {
        const offers = op.offsets.filter((o) => o < recs.length).map((o) => ({ offset: o, ...trueFacts(recs[o]) }));
        const expire = op.expire
          .filter((o) => o < recs.length && recs[o].expiresAtMs !== undefined && !recs[o].gone)
          .map((o) => ({ offset: o, expiresAtMs: recs[o].expiresAtMs!, bytes: true }));
        apply({ offers, expire }, now, op.max, policy.leaseMs);
        break;
      }
    }
    checkKeys();
    // The committed offset passes only finished records and delayed ones held apart.
    for (let o = 0; o < book.base(G, log); o++) expect(finished.has(o) || heldApart(o)).toBe(true);
  }

  // Everything ends: a consumer that accepts all it gets, with the clock moving on.
  const unfinished = () => [...(book.groups.get(G)?.values() ?? [])].some((f) => f.state !== 'done');
  for (let i = 0; i < 400 && (book.base(G, log) < log.end || unfinished()); i++) {
    now += 500;
    sweep(true);
    const before = tokens.length;
    apply(planNow(10, 10), now, 10, 1000);
    for (const t of tokens.slice(before)) ack(t, 'accept');
    checkKeys();
  }
  expect(book.base(G, log)).toBe(log.end);
  expect(unfinished()).toBe(false);
}

describe('lease book: ordering keys, delayed delivery and expiry (properties)', () => {
  test('one delivered unfinished record per key, keys in offset order, never early, never expired, everything ends', () => {
    fc.assert(
      fc.property(policyArb, fc.array(opArb, { minLength: 1, maxLength: 80 }), (policy, ops) => run(policy, ops)),
      { numRuns: 400 },
    );
  });

  test('a plan the state does not bear out is refused: still one per key, never early, never expired', () => {
    fc.assert(
      fc.property(
        policyArb,
        fc.array(fc.oneof({ weight: 2, arbitrary: opArb }, { weight: 1, arbitrary: forgedArb }), {
          minLength: 1,
          maxLength: 80,
        }),
        (policy, ops) => run(policy, ops, true),
      ),
      { numRuns: 600 },
    );
  });
});

import fc from 'fast-check';
import {
  LeaseBook,
  plainGrantMax,
  type AckAction,
  type Flight,
  type GrantResult,
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
 * The plain grant command (no plan: the format a release before issue 19 decodes) against the
 * planned one. Random groups (dead-lettering on or off, `ordered` or not, sometimes ordering
 * keys or `expired: drop`), records with and without keys, a few with delivery times or
 * expiries, fetches, acks, sweeps and clock moves. At every fetch the leader plans; when
 * `plainGrantMax` says the plan may be left out, the plain grant (with that max) and the planned
 * grant (with the fetch's max) are applied to two copies of the same state — with records
 * produced between plan and apply, some delayed — and must leave the same flights, the same
 * committed offset and the same result. With discards (dead-lettering off, attempts exhausted)
 * the plain grant hands out a prefix of the planned grant's records, exactly what the plan
 * counted (plainGrantMax).
 */

interface Rec {
  key: number | null;
  deliverAtMs?: number;
  expiresAtMs?: number;
}

/** Mostly null: most groups' records have no delivery time and no expiry. */
const rarely = (a: fc.Arbitrary<number>) =>
  fc.oneof({ weight: 12, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: a });

const recArb: fc.Arbitrary<RecSpec> = fc.record({
  key: fc.option(fc.integer({ min: 0, max: 3 }), { nil: null }),
  delay: rarely(fc.integer({ min: 1, max: 500 })),
  ttl: rarely(fc.integer({ min: 1, max: 1500 })),
});

type RecSpec = { key: number | null; delay: number | null; ttl: number | null };

type Op =
  | { kind: 'produce'; recs: Array<RecSpec> }
  | { kind: 'tick'; ms: number }
  | { kind: 'fetch'; max: number; leaseMs: number; meanwhile: Array<RecSpec> }
  | { kind: 'ack'; pick: number; action: AckAction; delayMs: number }
  | { kind: 'sweep' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('produce' as const),
      recs: fc.array(recArb, { minLength: 1, maxLength: 5 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 300 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('fetch' as const),
      max: fc.integer({ min: 1, max: 4 }),
      leaseMs: fc.integer({ min: 1, max: 300 }),
      meanwhile: fc.array(recArb, { maxLength: 3 }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('ack' as const),
      pick: fc.nat(),
      action: fc.constantFrom<AckAction>('accept', 'accept', 'release', 'reject', 'extend'),
      delayMs: fc.integer({ min: 0, max: 300 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'sweep' as const }) },
);

const policyArb: fc.Arbitrary<LeasePolicy> = fc
  .record({
    maxAttempts: fc.integer({ min: 1, max: 3 }),
    leaseMs: fc.integer({ min: 1, max: 300 }),
    backoffInitialMs: fc.integer({ min: 0, max: 100 }),
    backoffMaxMs: fc.integer({ min: 100, max: 400 }),
    backoffMultiplier: fc.constantFrom(1, 2),
    deadLetter: fc.boolean(),
    mode: fc.constantFrom('none', 'none', 'none', 'ordered', 'ordered', 'key'),
    expired: fc.constantFrom('dead_letter' as const, 'dead_letter' as const, 'drop' as const),
  })
  .map(({ mode, ...p }) => ({ ...p, ordered: mode === 'ordered', orderingKey: mode === 'key' }));

const G = 'g';
const NO_SINK: LeaseSink = { flight: () => {}, committed: () => {} };

interface World {
  book: LeaseBook;
  committed: Map<string, number>;
}

function newWorld(): World {
  const committed = new Map<string, number>();
  return { committed, book: new LeaseBook({ get: (g) => committed.get(g), set: (g, o) => committed.set(g, o) }) };
}

/** A copy of the lease state (as a follower would have it: the same flights, the same committed offset). */
function copyOf(w: World): World {
  const c = newWorld();
  for (const [g, o] of w.committed) c.committed.set(g, o);
  for (const [g, flights] of w.book.groups) for (const [o, f] of flights) c.book.restore(g, o, { ...f });
  return c;
}

function flightsOf(w: World): Array<[number, Flight]> {
  return [...(w.book.groups.get(G) ?? new Map<number, Flight>()).entries()].sort((a, b) => a[0] - b[0]);
}

function outcome(r: GrantResult) {
  return { ...r, grants: [...r.grants] };
}

const counts = { plain: 0, planned: 0, grantedPlain: 0, withDiscards: 0, onlyDiscards: 0 };

function run(policy: LeasePolicy, ops: Op[]): void {
  const w = newWorld();
  const recs: Rec[] = [];
  const log: LogBounds = { start: 0, end: 0 };
  let now = 1000;
  const tokens: Array<{ offset: number; attempt: number }> = [];
  /** The sweep's LeaseExpire of every exhausted lease (dead-lettered, or discarded with dead-lettering off). */
  const sweepExhausted = (x: World) => {
    for (const e of x.book.exhausted(G, now, policy, log, 1000))
      x.book.expire(G, now, policy, e.offset, e.attempt, log, true, NO_SINK);
  };
  const produce = (rs: Array<RecSpec>) => {
    for (const r of rs)
      recs.push({
        key: r.key,
        ...(r.delay !== null ? { deliverAtMs: now + r.delay } : {}),
        ...(r.ttl !== null ? { expiresAtMs: now + r.ttl } : {}),
      });
    log.end = recs.length;
  };
  const factsOf = (o: number): RecordFacts | undefined => {
    const r = recs[o];
    if (r === undefined) return undefined;
    return {
      ...(r.key !== null ? { keyHash: r.key } : {}),
      ...(r.deliverAtMs !== undefined ? { deliverAtMs: r.deliverAtMs } : {}),
      ...(r.expiresAtMs !== undefined ? { expiresAtMs: r.expiresAtMs } : {}),
    };
  };
  for (const op of ops) {
    switch (op.kind) {
      case 'produce':
        produce(op.recs);
        break;
      case 'tick':
        now += op.ms;
        break;
      case 'fetch':
      case 'sweep': {
        const max = op.kind === 'fetch' ? op.max : 0;
        const p = w.book.plan(G, now, policy, { ...log }, max, 100, factsOf);
        expect(p.missing).toBeUndefined();
        const plan = { offers: p.offers, defer: p.defer, expire: p.expire.map((e) => ({ ...e, bytes: true })) };
        const plainMax = op.kind === 'fetch' ? plainGrantMax(p, policy) : undefined;
        // Records produced after the plan was made, applied before the grant.
        if (op.kind === 'fetch') produce(op.meanwhile);
        if (op.kind === 'sweep' && plan.expire.length === 0 && plan.defer.length === 0) {
          sweepExhausted(w);
          break;
        }
        if (op.kind === 'fetch' && p.work === 0 && plan.expire.length === 0 && plan.defer.length === 0) break;
        const leaseMs = op.kind === 'fetch' ? op.leaseMs : policy.leaseMs;
        if (policy.orderingKey || policy.expired === 'drop') expect(plainMax).toBeUndefined();
        let r: GrantResult;
        if (plainMax === 0) {
          // Only discards: no grant; the sweep (LeaseExpire) ends them.
          expect(p.discards).toBe(p.work);
          counts.onlyDiscards++;
          break;
        }
        if (plainMax !== undefined) {
          counts.plain++;
          expect(plainMax).toBeLessThanOrEqual(max);
          const planned = copyOf(w);
          const rp = planned.book.grant(G, now, policy, leaseMs, { ...log }, max, NO_SINK, plan);
          r = w.book.grant(G, now, policy, leaseMs, { ...log }, plainMax, NO_SINK);
          if (p.discards === 0) {
            expect(outcome(r)).toEqual(outcome(rp));
            expect(flightsOf(w)).toEqual(flightsOf(planned));
            expect(w.committed.get(G)).toBe(planned.committed.get(G));
          } else {
            // Discards: the plain grant hands out what the plan counted, a prefix of the planned
            // grant's (which, having counted discards against its max, goes on redelivering past
            // the plan's scan); first deliveries only of offered records.
            counts.withDiscards++;
            expect(rp.grants.slice(0, r.grants.length)).toEqual(r.grants);
            expect(r.grants.length).toBe(plainMax);
            const offered = new Set(p.offers.map((o) => o.offset));
            for (const g of r.grants)
              if (g.attempt === 1 && !w.book.groups.get(G)?.get(g.offset)?.apart)
                expect(offered.has(g.offset)).toBe(true);
          }
          counts.grantedPlain += r.grants.length;
        } else {
          counts.planned++;
          r = w.book.grant(G, now, policy, leaseMs, { ...log }, max, NO_SINK, plan);
        }
        // Whatever the format, nothing before its time or from its expiry on.
        for (const g of r.grants) {
          const rec = recs[g.offset];
          if (rec.deliverAtMs !== undefined) expect(rec.deliverAtMs).toBeLessThanOrEqual(now);
          if (rec.expiresAtMs !== undefined) expect(rec.expiresAtMs).toBeGreaterThan(now);
          tokens.push({ offset: g.offset, attempt: g.attempt });
        }
        if (op.kind === 'sweep') sweepExhausted(w);
        break;
      }
      case 'ack': {
        if (tokens.length === 0) break;
        const t = tokens[op.pick % tokens.length];
        w.book.ack(
          G,
          now,
          policy,
          { offset: t.offset, attempt: t.attempt, action: op.action, delayMs: op.delayMs },
          log,
          true,
          NO_SINK,
        );
        break;
      }
    }
  }
}

describe('plain grant commands (no plan) against planned ones', () => {
  it('leave the same lease state whenever plainGrantMax allows the plan to be left out', () => {
    fc.assert(
      fc.property(policyArb, fc.array(opArb, { minLength: 10, maxLength: 60, size: 'max' }), (policy, ops) =>
        run(policy, ops),
      ),
      { numRuns: 600 },
    );
    // Both paths were exercised, and plain grants handed records out.
    expect(counts.plain).toBeGreaterThan(100);
    expect(counts.planned).toBeGreaterThan(100);
    expect(counts.grantedPlain).toBeGreaterThan(100);
  });

  it('hand out what the plan counted when it would discard (dead-lettering off)', () => {
    const before = { ...counts };
    const discarding = policyArb.map((p) => ({
      ...p,
      deadLetter: false,
      maxAttempts: Math.min(p.maxAttempts, 2),
      leaseMs: Math.min(p.leaseMs, 100),
    }));
    fc.assert(
      fc.property(discarding, fc.array(opArb, { minLength: 20, maxLength: 80, size: 'max' }), (policy, ops) =>
        run(policy, ops),
      ),
      { numRuns: 600 },
    );
    expect(counts.withDiscards - before.withDiscards).toBeGreaterThan(5);
    expect(counts.onlyDiscards - before.onlyDiscards).toBeGreaterThan(5);
  });
});

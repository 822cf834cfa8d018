import fc from 'fast-check';
import {
  LeaseBook,
  type AckAction,
  type Flight,
  type LeasePolicy,
  type LeaseSink,
  type LogBounds,
} from '../../../../replica/leased/leases';

// Hundreds of random runs per property: ~0.6 s alone, several seconds on a loaded 2-core machine
// (one run of the keys file beside the integration tier failed, not reproduced in 45 runs alone:
// most likely jest's 5 s default). A bound, not a tuning knob.
jest.setTimeout(60_000);

/**
 * Property tests of the lease state machine: random interleavings of produce, fetch (grant),
 * acks with current, stale and made-up tokens, clock advances, sweeps and retention, against
 * the invariants of leased consumption.
 */

interface Token {
  group: string;
  offset: number;
  attempt: number;
  /** Which grant call issued it (ordered mode: all valid leases come from one holder). */
  grantId: number;
}

type Op =
  | { kind: 'produce'; n: number }
  | { kind: 'tick'; ms: number }
  | { kind: 'grant'; group: number; max: number; leaseMs: number }
  | { kind: 'ack'; pick: number; action: AckAction; delayMs: number; error: boolean }
  | { kind: 'forged'; group: number; offset: number; attempt: number; action: AckAction }
  | { kind: 'sweep'; group: number; bytes: boolean }
  | { kind: 'retention'; by: number }
  | { kind: 'commit'; group: number; by: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('produce' as const), n: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 400 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('grant' as const),
      group: fc.integer({ min: 0, max: 1 }),
      max: fc.integer({ min: 1, max: 5 }),
      leaseMs: fc.integer({ min: 1, max: 300 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('ack' as const),
      pick: fc.nat(),
      action: fc.constantFrom<AckAction>('accept', 'release', 'reject', 'extend'),
      delayMs: fc.integer({ min: 0, max: 300 }),
      error: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('forged' as const),
      group: fc.integer({ min: 0, max: 1 }),
      offset: fc.integer({ min: 0, max: 40 }),
      attempt: fc.integer({ min: 0, max: 8 }),
      action: fc.constantFrom<AckAction>('accept', 'release', 'reject', 'extend'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('sweep' as const),
      group: fc.integer({ min: 0, max: 1 }),
      bytes: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('retention' as const), by: fc.integer({ min: 1, max: 3 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('commit' as const),
      group: fc.integer({ min: 0, max: 1 }),
      by: fc.integer({ min: 1, max: 3 }),
    }),
  },
);

const policyArb: fc.Arbitrary<LeasePolicy> = fc.record({
  maxAttempts: fc.integer({ min: 1, max: 4 }),
  leaseMs: fc.integer({ min: 1, max: 300 }),
  backoffInitialMs: fc.integer({ min: 0, max: 100 }),
  backoffMaxMs: fc.integer({ min: 100, max: 400 }),
  backoffMultiplier: fc.constantFrom(1, 1.5, 2),
  deadLetter: fc.boolean(),
  ordered: fc.boolean(),
  orderingKey: fc.constant(false),
  expired: fc.constant('dead_letter' as const),
});

const GROUPS = ['g0', 'g1'];

function run(policy: LeasePolicy, ops: Op[]): void {
  const committed = new Map<string, number>();
  const book = new LeaseBook({ get: (g) => committed.get(g), set: (g, o) => committed.set(g, o) });
  // A shadow of what was persisted through the sink: the book must tell it everything.
  const persisted = new Map<string, Flight>();
  const persistedCommitted = new Map<string, number>();
  /** (group/offset) → final outcome, set once. */
  const finals = new Map<string, string>();
  const acceptedTwice: string[] = [];
  const sink: LeaseSink = {
    flight(group, offset, f) {
      const k = `${group}/${offset}`;
      const prev = persisted.get(k);
      if (f === null) persisted.delete(k);
      else {
        // Final is final: a done record never comes back.
        if (prev?.state === 'done') expect(f.state).toBe('done');
        if (f.state === 'done' && prev?.state !== 'done') {
          if (finals.has(k)) acceptedTwice.push(k);
          finals.set(k, f.outcome);
        }
        persisted.set(k, f);
      }
    },
    committed(group, offset) {
      const before = persistedCommitted.get(group) ?? -1;
      expect(offset).toBeGreaterThan(before);
      persistedCommitted.set(group, offset);
    },
  };
  const log: LogBounds = { start: 0, end: 0 };
  let now = 1000;
  let grantId = 0;
  const tokens: Token[] = [];
  const maxAttemptSeen = new Map<string, number>();
  /** Offsets a cumulative commit moved past (not finished by the lease machine). */
  const skipped = new Set<string>();

  const isValid = (t: Token) => {
    // A record removed by retention has no lease any more (the book forgets it on its next change).
    if (t.offset < log.start) return false;
    // Nor one a cumulative commit moved past.
    if (t.offset < book.base(t.group, log)) return false;
    const f = book.groups.get(t.group)?.get(t.offset);
    return f !== undefined && f.attempt === t.attempt && f.state === 'leased' && f.untilMs > now;
  };

  for (const op of ops) {
    const committedBefore = new Map(committed);
    switch (op.kind) {
      case 'produce':
        log.end += op.n;
        break;
      case 'tick':
        now += op.ms;
        break;
      case 'retention':
        log.start = Math.min(log.end, log.start + op.by);
        break;
      case 'commit': {
        // A cumulative-mode commit moving the group forward (e.g. an offset reset to latest).
        const group = GROUPS[op.group];
        const from = book.base(group, log);
        const to = Math.min(log.end, from + op.by);
        for (let o = from; o < to; o++) skipped.add(`${group}/${o}`);
        if (to > from) {
          committed.set(group, to);
          persistedCommitted.set(group, to);
        }
        break;
      }
      case 'grant': {
        const group = GROUPS[op.group];
        const id = ++grantId;
        const r = book.grant(group, now, policy, op.leaseMs, log, op.max, sink);
        expect(r.grants.length).toBeLessThanOrEqual(op.max);
        let prevOffset = -1;
        for (const gr of r.grants) {
          expect(gr.offset).toBeGreaterThanOrEqual(log.start);
          expect(gr.offset).toBeLessThan(log.end);
          expect(gr.offset).toBeGreaterThan(prevOffset); // offset order
          prevOffset = gr.offset;
          expect(gr.attempt).toBeLessThanOrEqual(policy.maxAttempts);
          const k = `${group}/${gr.offset}`;
          // Attempts only grow, by one per delivery.
          expect(gr.attempt).toBe((maxAttemptSeen.get(k) ?? 0) + 1);
          maxAttemptSeen.set(k, gr.attempt);
          expect(finals.has(k)).toBe(false);
          tokens.push({ group, offset: gr.offset, attempt: gr.attempt, grantId: id });
        }
        break;
      }
      case 'ack':
      case 'forged': {
        const t: Token =
          op.kind === 'ack'
            ? tokens.length === 0
              ? { group: 'g0', offset: 0, attempt: 1, grantId: 0 }
              : tokens[op.pick % tokens.length]
            : { group: GROUPS[op.group], offset: op.offset, attempt: op.attempt, grantId: 0 };
        const valid = isValid(t);
        const k = `${t.group}/${t.offset}`;
        const before = JSON.stringify(book.groups.get(t.group)?.get(t.offset) ?? null);
        const finalBefore = finals.get(k);
        const res = book.ack(
          t.group,
          now,
          policy,
          {
            offset: t.offset,
            attempt: t.attempt,
            action: op.action,
            ...(op.kind === 'ack' && op.action === 'release' ? { delayMs: op.delayMs } : {}),
            ...(op.kind === 'ack' && op.error ? { error: 'Boom: it failed' } : {}),
          },
          log,
          true,
          sink,
        );
        if (!valid) {
          // A stale, expired or made-up token changes nothing (a retry of the same ack is ok).
          const after = JSON.stringify(book.groups.get(t.group)?.get(t.offset) ?? null);
          if (res.status !== 'ok' || res.duplicate) {
            if (after !== 'null') expect(after).toBe(before);
            expect(finals.get(k)).toBe(finalBefore);
          } else throw new Error(`invalid token ${k}#${t.attempt} was applied: ${JSON.stringify(res)}`);
        } else {
          expect(res.status).toBe('ok');
          if (op.action === 'accept') expect(finals.get(k)).toBe('accepted');
          if (op.action === 'reject') expect(finals.get(k)).toBe(policy.deadLetter ? 'dead_lettered' : 'discarded');
          if (op.action === 'extend') expect(isValid(t)).toBe(true);
        }
        break;
      }
      case 'sweep': {
        const group = GROUPS[op.group];
        for (const e of book.exhausted(group, now, policy, log, 100)) {
          const r = book.expire(group, now, policy, e.offset, e.attempt, log, op.bytes, sink);
          expect(r).toBeDefined();
          const k = `${group}/${e.offset}`;
          expect(finals.get(k)).toBe(policy.deadLetter && op.bytes ? 'dead_lettered' : 'discarded');
        }
        break;
      }
    }

    // ---- invariants after every step ----
    expect(acceptedTwice).toEqual([]);
    for (const group of GROUPS) {
      const c = committed.get(group);
      const cb = committedBefore.get(group);
      // Committed only moves forward, and the sink heard every move.
      if (cb !== undefined) expect(c).toBeGreaterThanOrEqual(cb);
      expect(persistedCommitted.get(group)).toBe(c);
      // Every offset below committed that was ever delivered ended (accepted, dead-lettered, discarded).
      for (const [k] of maxAttemptSeen) {
        const [g, o] = k.split('/');
        if (g === group && c !== undefined && Number(o) < c && Number(o) >= log.start && !skipped.has(k))
          expect(finals.has(k)).toBe(true);
      }
      // The persisted flights are exactly the book's.
      for (const [o, f] of book.groups.get(group) ?? new Map<number, Flight>())
        expect(persisted.get(`${group}/${o}`)).toEqual(f);
      // Each record in the log is in exactly one state; at most one valid lease per record.
      const base = book.base(group, log);
      const holders = new Set<number>();
      const validByOffset = new Map<number, Token[]>();
      for (const t of tokens)
        if (t.group === group && isValid(t)) validByOffset.set(t.offset, [...(validByOffset.get(t.offset) ?? []), t]);
      for (let o = log.start; o < log.end; o++) {
        const f = book.groups.get(group)?.get(o);
        const validTokens = validByOffset.get(o) ?? [];
        expect(validTokens.length).toBeLessThanOrEqual(1);
        const state =
          o < base
            ? 'finished'
            : f === undefined
              ? 'waiting'
              : f.state === 'done'
                ? 'finished'
                : f.state === 'leased' && f.untilMs > now
                  ? 'leased'
                  : 'waiting';
        expect(validTokens.length === 1).toBe(state === 'leased');
        if (state === 'leased') holders.add(validTokens[0].grantId);
        if (state === 'finished' && o >= base) expect(finals.has(`${group}/${o}`)).toBe(true);
      }
      // Ordered mode: one holder per partition at a time.
      if (policy.ordered) expect(holders.size).toBeLessThanOrEqual(1);
    }
  }
}

describe('lease state machine (properties)', () => {
  test('no record is accepted twice; each record is in exactly one state under at most one valid lease; committed only moves forward', () => {
    fc.assert(
      fc.property(policyArb, fc.array(opArb, { minLength: 1, maxLength: 120 }), (policy, ops) => run(policy, ops)),
      { numRuns: 200 },
    );
  });

  test('everything consumed and accepted commits the whole log', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.boolean(), (n, ordered) => {
        const committed = new Map<string, number>();
        const book = new LeaseBook({ get: (g) => committed.get(g), set: (g, o) => committed.set(g, o) });
        const sink: LeaseSink = { flight: () => {}, committed: () => {} };
        const policy: LeasePolicy = {
          maxAttempts: 3,
          leaseMs: 100,
          backoffInitialMs: 0,
          backoffMaxMs: 0,
          backoffMultiplier: 1,
          deadLetter: true,
          ordered,
          orderingKey: false,
          expired: 'dead_letter',
        };
        const log = { start: 0, end: n };
        let now = 0;
        for (let round = 0; round < n + 1; round++) {
          const r = book.grant('g', now, policy, 100, log, 7, sink);
          for (const gr of r.grants)
            expect(book.ack('g', now, policy, { ...gr, action: 'accept' }, log, true, sink).status).toBe('ok');
          now += 1;
        }
        expect(committed.get('g')).toBe(n);
        expect(book.groups.get('g')!.size).toBe(0);
      }),
    );
  });
});

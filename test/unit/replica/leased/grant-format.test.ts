import { PassThrough } from 'node:stream';
import type { LeasePolicy, LeasePolicyOverride } from '../../../../common/leased-api';
import type { RecordIn } from '../../../../common/partition-api';
import { createLogger } from '../../../../common/log';
import { createRegistry } from '../../../../common/metrics';
import { BufReader, CodecError } from '../../../../protocol/bytes';
import { DEFAULT_LEASE_POLICY } from '../../../../replica/leased/leases';
import { LeasedService } from '../../../../replica/leased/service';
import type { Entry } from '../../../../replica/raft';
import { CommandKind, decodeCommand, encodeCommand } from '../../../../replica/state/commands';
import { PartitionState } from '../../../../replica/state/partition-state';

/**
 * Rolling upgrades: the grant commands the leader proposes (replica/leased/service.ts) are in the
 * format a replica of the release before issue 19 decodes whenever the plan is not needed, and
 * carry the plan when the group uses ordering keys or a record in its way has a delivery time or
 * an expiry. The real leader service over the real partition state machine; "Raft" applies each
 * proposal at once.
 */

/**
 * The lease grant reader of the release before issue 19 (replica/leased/commands.ts at 3bf6830^),
 * after the common prefix u8 kind · i53 leaderTimeMs: a grant with anything after `max`, or with
 * policy flags other than deadLetter (1) and ordered (2), is a CodecError there — fatal at apply.
 */
function oldReadGrant(data: Uint8Array): { group: string; leaseMs: number; max: number } {
  const rd = new BufReader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  if (rd.u8('kind') !== 4) throw new CodecError('bad_value', 'not a grant');
  rd.i53('leaderTimeMs');
  const group = rd.str16('group');
  rd.u32('policy.maxAttempts');
  rd.i53('policy.leaseMs');
  rd.i53('policy.backoffInitialMs');
  rd.i53('policy.backoffMaxMs');
  rd.u32('policy.backoffMultiplier');
  const flags = rd.u8('policy.flags');
  if ((flags & ~3) !== 0) throw new CodecError('bad_value', `policy.flags 0x${flags.toString(16)}`);
  const leaseMs = rd.i53('leaseMs');
  const max = rd.u32('max');
  rd.end('lease grant command');
  return { group, leaseMs, max };
}

/** The flight reader of the release before issue 19 (replica/leased/state.ts at 3bf6830^): nothing after lastAck. */
function oldReadFlight(v: Uint8Array): { attempt: number; state: number } {
  const rd = new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  const attempt = rd.u32('attempt');
  const state = rd.u8('state');
  rd.i53('untilMs');
  rd.i53('first');
  rd.i53('last');
  rd.str16('lastError');
  rd.str16('lastErrorClass');
  rd.u8('outcome');
  rd.u8('lastAck');
  rd.end('flight');
  return { attempt, state };
}

class Part {
  readonly state = new PartitionState({ dedupWindowMs: 3600_000 });
  readonly entries = new Map<number, Uint8Array>();
  readonly grants: Uint8Array[] = [];
  /** Every flight value the state machine persisted (keys 'L…'): what a snapshot carries. */
  readonly flights: Uint8Array[] = [];
  readonly registry = createRegistry('grant-format', { defaultMetrics: false });
  index = 0;
  readonly service: LeasedService;

  constructor(defaults: LeasePolicy = { ...DEFAULT_LEASE_POLICY, leaseMs: 10_000 }) {
    this.service = new LeasedService({
      topic: 't',
      partition: 0,
      state: this.state,
      checkTarget: () => {},
      requireLeader: () => {},
      isLeader: () => true,
      propose: async (data) => {
        if (data[0] === CommandKind.LeaseGrant) this.grants.push(data);
        // A proposal takes a little while to commit: racing fetches interleave here.
        await new Promise((r) => setImmediate(r));
        return this.append(data);
      },
      topicWriter: () => null,
      readEntry: async (i): Promise<Entry | undefined> => {
        const data = this.entries.get(i);
        return data === undefined ? undefined : { index: i, term: 1, type: 0 as Entry['type'], data };
      },
      logger: createLogger('grant-format', { stream: new PassThrough(), level: 'error' }),
      registry: this.registry,
      settings: { defaults, deadLetterRetentionMs: -1, sweepIntervalMs: 60_000, maxWaiters: 100 },
    });
  }

  append(data: Uint8Array) {
    const i = ++this.index;
    this.entries.set(i, data);
    const { ops, result: r } = this.state.apply(i, data);
    for (const op of ops) if (op.op === 'put' && op.key[0] === 0x4c) this.flights.push(op.value);
    this.service.onApplied();
    return r;
  }

  produce(recs: Array<Partial<RecordIn> & { v: string }>): void {
    this.append(
      encodeCommand({
        kind: CommandKind.Produce,
        leaderTimeMs: Date.now(),
        records: recs.map(({ v, ...r }) => ({
          key: null,
          value: Buffer.from(v),
          headers: [],
          timestampMs: 1_700_000_000_000,
          ...r,
        })),
      }),
    );
  }

  async policy(override: LeasePolicyOverride): Promise<void> {
    await this.service.setGroupPolicy({ requestId: 'r', topic: 't', partition: 0, group: 'g', policy: override });
  }

  async accept(offsets: number[]): Promise<void> {
    const items = offsets.map((offset) => ({ offset, attempt: 1, action: 'accept' as const }));
    const r = await this.service.leaseAck({ requestId: 'r', topic: 't', partition: 0, group: 'g', items });
    expect(r.map((x) => x.status)).toEqual(offsets.map(() => 'ok'));
  }

  async fetch(maxRecords: number, leaseMs?: number): Promise<number[]> {
    const r = await this.service.leaseFetch({
      requestId: 'r',
      topic: 't',
      partition: 0,
      group: 'g',
      maxRecords,
      waitMs: 0,
      ...(leaseMs !== undefined ? { leaseMs } : {}),
    });
    return r.records.map((x) => x.offset);
  }

  async formats(): Promise<Record<string, number>> {
    const m = await this.registry.getSingleMetric('daftka_lease_grant_commands_total')?.get();
    const out: Record<string, number> = {};
    for (const v of m?.values ?? []) out[String(v.labels.kind)] = v.value;
    return out;
  }
}

const plain = (n: number, key: string | null = null) =>
  Array.from({ length: n }, (_, i) => ({ v: `r${i}`, key: key === null ? null : Buffer.from(`${key}${i % 3}`) }));

describe('lease grant command format', () => {
  it('a plain group (keys, no delivery times) gets grants in the old format, byte for byte', async () => {
    const p = new Part();
    p.produce(plain(5, 'k'));
    expect(await p.fetch(3)).toEqual([0, 1, 2]);
    expect(await p.fetch(10)).toEqual([3, 4]);
    expect(p.grants).toHaveLength(2);
    // The previous release reads them to the last byte; `max` is what the plan counted.
    expect(p.grants.map(oldReadGrant)).toEqual([
      { group: 'g', leaseMs: 10_000, max: 3 },
      { group: 'g', leaseMs: 10_000, max: 2 },
    ]);
    for (const g of p.grants) {
      const c = decodeCommand(g);
      expect(c.kind === CommandKind.LeaseGrant && c.plan).toBeUndefined();
    }
    expect(await p.formats()).toEqual({ plain: 2 });
    // And the flights it persists (a snapshot sent to an older follower) load there too.
    expect(p.flights.length).toBeGreaterThanOrEqual(5);
    for (const f of p.flights) expect(oldReadFlight(f)).toEqual({ attempt: 1, state: 0 });
  });

  it('an `ordered` group without dead-lettering is plain too (policy flags the old release knows)', async () => {
    const p = new Part();
    await p.policy({ ordered: true, deadLetter: false });
    p.produce(plain(2));
    expect(await p.fetch(5)).toEqual([0, 1]);
    expect(oldReadGrant(p.grants[0]).max).toBe(2);
  });

  it('dead-lettering off: what the plan would only discard ends by a LeaseExpire, grants stay plain', async () => {
    const p = new Part();
    await p.policy({ deadLetter: false, maxAttempts: 1 });
    p.produce(plain(3));
    expect(await p.fetch(1, 100)).toEqual([0]);
    // Wait out the 100 ms lease (no assertion on time: only that it has passed).
    await new Promise((r) => setTimeout(r, 150));
    // Offset 0 is exhausted: the plan counts its discard against max 1 — a LeaseExpire ends it,
    // then a plain grant leases 1.
    expect(await p.fetch(1, 100)).toEqual([1]);
    expect(p.state.groups.get('g')?.offset).toBe(1);
    await new Promise((r) => setTimeout(r, 150));
    // Offset 1 exhausted, 2 new: the plan counts both; the plain grant hands out 2 only.
    expect(await p.fetch(2, 100)).toEqual([2]);
    expect(p.grants.map(oldReadGrant).map((g) => g.max)).toEqual([1, 1, 1]);
    expect(await p.formats()).toEqual({ plain: 3 });
    // The sweep ends 1 with a LeaseExpire.
    await p.service.sweep();
    expect(p.state.leased.book.groups.get('g')?.get(1)).toBeUndefined();
  });

  it('a group with ordering keys gets the plan', async () => {
    const p = new Part();
    await p.policy({ orderingKey: true });
    p.produce(plain(4, 'k'));
    // k0, k1, k2, then k0 again: the fourth waits for the first.
    expect(await p.fetch(10)).toEqual([0, 1, 2]);
    const c = decodeCommand(p.grants[0]);
    expect(c.kind === CommandKind.LeaseGrant && c.plan?.offers.map((o) => o.offset)).toEqual([0, 1, 2]);
    expect(() => oldReadGrant(p.grants[0])).toThrow(CodecError);
    expect(await p.formats()).toEqual({ plan: 1 });
    // Its flights keep their key hash: a layout the older release cannot load.
    expect(() => oldReadFlight(p.flights[0])).toThrow(CodecError);
  });

  it('a delayed record in the way gets the plan; records past it go plain again', async () => {
    const p = new Part();
    p.produce([{ v: 'a' }, { v: 'late', deliverAtMs: Date.now() + 3_600_000 }, { v: 'b' }]);
    expect(await p.fetch(10)).toEqual([0, 2]);
    expect(p.grants.some((g) => (decodeCommand(g) as { plan?: unknown }).plan !== undefined)).toBe(true);
    expect(() => oldReadGrant(p.grants[p.grants.length - 1])).toThrow(CodecError);
    // Once the records before it finish, the delayed record is at the front: held apart (a plan
    // with `defer`), the committed offset passes it, and it is no longer in the way.
    await p.accept([0, 2]);
    expect(await p.fetch(10)).toEqual([]);
    expect(p.state.groups.get('g')?.offset).toBe(3);
    p.produce(plain(2));
    const before = p.grants.length;
    expect(await p.fetch(10)).toEqual([3, 4]);
    expect(p.grants.slice(before).map(oldReadGrant)).toEqual([{ group: 'g', leaseMs: 10_000, max: 2 }]);
  });

  it('a record with an expiry gets the plan (the flight keeps its expiry)', async () => {
    const p = new Part();
    p.produce([{ v: 'a', expiresAtMs: Date.now() + 3_600_000 }]);
    expect(await p.fetch(1)).toEqual([0]);
    const c = decodeCommand(p.grants[0]);
    expect(c.kind === CommandKind.LeaseGrant && c.plan?.offers).toEqual([
      { offset: 0, expiresAtMs: expect.any(Number) },
    ]);
  });

  it('racing fetches of a group queue their grants: disjoint, plain, and never past a delayed record', async () => {
    const p = new Part();
    p.produce([...plain(4), { v: 'late', deliverAtMs: Date.now() + 3_600_000 }, ...plain(2)]);
    const [a, b, c] = await Promise.all([p.fetch(3), p.fetch(3), p.fetch(3)]);
    const got = [...a, ...b, ...c].sort((x, y) => x - y);
    // Offset 4 is delayed: whatever the interleaving, it is not handed out.
    expect(got).toEqual([0, 1, 2, 3, 5, 6]);
    // The first is plain (its plan stopped before the delayed record); the one that met it has the plan.
    expect(oldReadGrant(p.grants[0])).toEqual({ group: 'g', leaseMs: 10_000, max: 3 });
    expect(decodeCommand(p.grants[1])).toMatchObject({
      plan: { offers: [{ offset: 3 }, { offset: 5 }, { offset: 6 }] },
    });
  });
});

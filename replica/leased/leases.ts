import type { AckAction, LeasePolicy } from '../../common/leased-api';

/**
 * Leased consumption: the pure per-record lease state machine of one partition, for every group
 * that consumes it in leased mode. No clock, no I/O: time arrives as `nowMs` (the leader's time
 * carried in each Raft command), policies arrive with the command, and every change is reported
 * to a sink so the caller can persist it in the same batch as the applied index.
 *
 * A record at offset o (log start ≤ o < high watermark) is, for a group, in exactly one state:
 *
 *   available    never delivered (no flight), or a flight that is due for redelivery:
 *                `waiting` with untilMs ≤ now, or `leased` with an expired lease (untilMs ≤ now)
 *   leased       handed out under one lease: attempt n, expiring at untilMs > now
 *   waiting      released (or failed), not due before untilMs
 *   done         accepted, dead-lettered or discarded — final
 *
 * A lease is identified by (group, offset, attempt); the attempt only grows, so an ack for an
 * older attempt (a consumer that was too slow, whose record has since been redelivered) can never
 * be applied to the newer delivery: it answers `stale_attempt`.
 *
 * The group's committed offset (the cumulative-mode offset, shared so lag and cumulative readers
 * see the same truth) advances over the contiguous prefix of done records — and of delayed
 * records held apart (Flight.apart: never delivered, `waiting` until their deliverAtMs, kept
 * below the committed offset until they finish); other flights below it are forgotten. It never
 * moves backwards here.
 *
 * Ordering keys, delivery times and expiry (issue 19) are facts of the records, which only the
 * log holds: the leader reads them and plans each grant (`plan`), the grant command carries the
 * plan, and `grant` checks it against this state (docs/consumers.md, "How the partition decides").
 */

export type { AckAction, LeasePolicy };
export type FlightState = 'leased' | 'waiting' | 'done';
export type FlightOutcome = '' | 'accepted' | 'dead_lettered' | 'discarded';

export const DEFAULT_LEASE_POLICY: LeasePolicy = {
  maxAttempts: 5,
  leaseMs: 30_000,
  backoffInitialMs: 1000,
  backoffMaxMs: 60_000,
  backoffMultiplier: 2,
  deadLetter: true,
  ordered: false,
  orderingKey: false,
  expired: 'dead_letter',
};

/** Records beyond committed + this many offsets are not handed out (bounds the work of one grant). */
export const LEASE_WINDOW = 50_000;

/** Delayed records a group holds apart from its committed offset (Flight.apart), at most. */
export const MAX_APART = 10_000;

export interface Flight {
  /** The attempt number of the last delivery (1 = first). */
  attempt: number;
  state: FlightState;
  /** leased: lease expiry; waiting: due time; done: 0. */
  untilMs: number;
  firstDeliveryMs: number;
  lastDeliveryMs: number;
  /** Last error reported by a release or reject ('' when none). */
  lastError: string;
  lastErrorClass: string;
  outcome: FlightOutcome;
  /** The last ack applied to `attempt`, so a retried ack is answered `ok` again. */
  lastAck: '' | AckAction;
  /** Ordering keys: the hash of the record's key (absent: no key, or not granted under ordering keys). */
  keyHash?: number;
  /** The record's expiry (RecordIn.expiresAtMs): from then on it is not offered again. */
  expiresAtMs?: number;
  /**
   * Held apart from the committed offset: a record delayed (deliverAtMs) when the group reached
   * it, so the committed offset moved past it while it waits (attempt 0, `waiting` until its
   * time). Kept below the committed offset until it finishes; at most MAX_APART per group.
   */
  apart?: true;
}

/**
 * What a grant needs to know of a record it has not delivered yet, read by the leader from its
 * log and carried in the grant command (so every replica applies the same result).
 */
export interface RecordFacts {
  /** Hash of the key (ordering keys only); absent: no key — the record is its own key. */
  keyHash?: number;
  deliverAtMs?: number;
  expiresAtMs?: number;
  /** Key compaction removed the record: the plan ends it (as if expired long ago, without bytes). */
  gone?: true;
}

/** A record never delivered, offered for its first delivery, with its facts. */
export interface Offer extends RecordFacts {
  offset: number;
}

/** A record whose expiry passed before it was accepted: the grant ends it (dead letter or drop). */
export interface ExpireItem {
  offset: number;
  expiresAtMs: number;
  /** The command carries its bytes (needed for a dead letter). */
  bytes: boolean;
}

/**
 * The leader's plan for one grant command: which new records may get a first delivery and
 * which expired ones end. The apply checks every item against the replicated state (a plan
 * can be stale: another grant or an ack may have applied in between) and never trusts it
 * beyond the facts of the records themselves.
 */
export interface GrantPlan {
  offers: Offer[];
  expire: ExpireItem[];
  /** Delayed records at the front of the group to hold apart, so the committed offset can pass them. */
  defer?: Offer[];
}

/** The plan and what the leader learned making it. */
export interface PlanResult extends GrantPlan {
  defer: Offer[];
  /** Records a grant would hand out now (first deliveries and redeliveries) or discard. */
  work: number;
  /** Of `work`: records that exhausted their attempts with dead-lettering off (the grant discards them). */
  discards: number;
  /** Earliest future delivery time of a record held back by its deliverAtMs. */
  nextDeliverMs?: number;
  /** The facts of this offset are not loaded: load them and plan again. */
  missing?: number;
}

/** Where the group's committed offset lives (the partition's group table). */
export interface CommittedOffsets {
  get(group: string): number | undefined;
  set(group: string, offset: number): void;
}

/** Receives every change, for persistence. `flight === null` deletes. */
export interface LeaseSink {
  flight(group: string, offset: number, flight: Flight | null): void;
  committed(group: string, offset: number): void;
}

export interface Grant {
  offset: number;
  attempt: number;
  leaseUntilMs: number;
}

export interface GrantResult {
  grants: Grant[];
  /** Offsets granted again because their previous lease expired (lease expiries). */
  expired: number[];
  /** Offsets granted again after a release or backoff (redeliveries other than expiries). */
  redelivered: number[];
  /** Offsets discarded because they exhausted their attempts with dead-lettering off. */
  discarded: number[];
  /** Records ended because their expiry passed (plan mode): dead-lettered (with a note) or dropped. */
  ttlExpired: Array<{ offset: number; deadLetter?: DeadLetterNote }>;
}

/** Error class and text of a dead letter written because the record's expiry passed. */
export const EXPIRED_ERROR_CLASS = 'expired';
const EXPIRED_ERROR = 'expired: the record expired (expires_at) before it was accepted';

/** What to write to the dead-letter stream for a record that ended there. */
export interface DeadLetterNote {
  offset: number;
  attempts: number;
  lastError: string;
  lastErrorClass: string;
  firstDeliveryMs: number;
  lastDeliveryMs: number;
}

export interface AckItem {
  offset: number;
  attempt: number;
  action: AckAction;
  /** release: redeliver after this long (default: the policy's backoff). */
  delayMs?: number;
  /** extend: new lease length from now (default: the policy's leaseMs). */
  leaseMs?: number;
  error?: string;
  errorClass?: string;
}

export type AckOutcome =
  | { status: 'ok'; leaseUntilMs?: number; deadLetter?: DeadLetterNote; discarded?: boolean; duplicate?: boolean }
  | { status: 'lease_expired' }
  | { status: 'stale_attempt'; why: 'superseded' | 'unknown' | 'finished' };

export interface LogBounds {
  /** Log start offset: records below are gone (retention). */
  start: number;
  /** High watermark: records at and above do not exist yet. */
  end: number;
}

/** Redelivery delay after the failure of attempt `attempt`. */
export function backoffMs(p: LeasePolicy, attempt: number): number {
  const d = p.backoffInitialMs * Math.pow(p.backoffMultiplier, Math.max(0, attempt - 1));
  return Math.floor(Math.min(p.backoffMaxMs, d));
}

/**
 * Whether a grant command may leave its plan out (the format every release decodes) because,
 * applied to the state the plan was made from, the plan-less grant does exactly what the plan
 * would: the `max` to write in that command, or undefined when the plan is needed.
 *
 * Without a plan `grant` offers every record that has no flight, with no facts, to the first
 * `max` available in scan order; with one it offers only `plan.offers` and copies their facts
 * (keyHash under ordering keys, expiresAtMs) into the flight, ends `plan.expire` and holds
 * `plan.defer` apart. Both apply every rule of flights (redelivery, backoff, exhausted attempts,
 * `ordered`, apart) the same way. So they agree when:
 *  - the policy has no ordering keys and no `expired: drop` (flags 4 and 8, which a release
 *    before issue 19 cannot decode in any command: the plan costs nothing more there);
 *  - nothing to end or hold apart (`expire`, `defer` empty) and no delayed record passed over
 *    (`nextDeliverMs`): the plan-less grant would hand such a record out;
 *  - no offered record has a fact (keyHash, deliverAtMs, expiresAtMs) — an expiry would be
 *    kept in the flight, a delivery time is checked; a key hash is only there under ordering keys;
 * and `max` is what the plan hands out (`work` less `discards`): then the plan-less grant stops
 * where the plan's scan did, so records produced after the plan was made (appended before the
 * grant) are not reached.
 *
 * One difference is accepted: discards (attempts exhausted, dead-lettering off). The plan counts
 * them against `max`, the plan-less grant does not (hence `max` without them) — and a planned
 * grant, having handed out fewer than its `max`, goes on to the end of the window discarding
 * every exhausted record, where the plain one stops at its last grant. The grants are the same;
 * exhausted records after the last one are discarded by a later grant or the sweep (a
 * LeaseExpire command, which every release decodes). When the plan would only discard, the
 * answer is 0: the leader discards them with a LeaseExpire (as the sweep does) and plans again.
 * Safer than the plan, which a replica of an older release cannot apply, for a group that uses
 * none of the new features.
 */
export function plainGrantMax(plan: PlanResult, policy: LeasePolicy): number | undefined {
  if (policy.orderingKey || policy.expired === 'drop') return undefined;
  if (plan.expire.length > 0 || plan.defer.length > 0 || plan.nextDeliverMs !== undefined) return undefined;
  for (const o of plan.offers)
    if (o.keyHash !== undefined || o.deliverAtMs !== undefined || o.expiresAtMs !== undefined || o.gone)
      return undefined;
  return plan.work - plan.discards;
}

const ERROR_CLASS_RE = /^\s*([A-Za-z0-9_.-]{1,64})\s*(:|$)/;

/** The class of an error message: its leading `Name:` token, else 'unclassified'. */
export function errorClassOf(error: string | undefined): string {
  if (error === undefined || error === '') return 'unclassified';
  const m = ERROR_CLASS_RE.exec(error);
  return m ? m[1] : 'unclassified';
}

export class LeaseBook {
  /** group → offset → flight. Only records delivered at least once (and not yet below committed). */
  readonly groups = new Map<string, Map<number, Flight>>();

  constructor(private readonly committedOffsets: CommittedOffsets) {}

  flights(group: string): Map<number, Flight> {
    let g = this.groups.get(group);
    if (!g) this.groups.set(group, (g = new Map()));
    return g;
  }

  /** Restore a persisted flight (recovery). */
  restore(group: string, offset: number, f: Flight): void {
    this.flights(group).set(offset, f);
    this.prunedAt.delete(group);
  }

  clear(): void {
    this.groups.clear();
    this.prunedAt.clear();
  }

  /** First offset the group has not finished: committed, or the log start when later. */
  base(group: string, log: LogBounds): number {
    return Math.max(this.committedOffsets.get(group) ?? log.start, log.start);
  }

  /** The base and log start each group was last pruned at: flights below a base appear only when they move. */
  private readonly prunedAt = new Map<string, string>();

  /** The log bounds of the command being applied (finish() drops finished flights held apart). */
  private log: LogBounds = { start: 0, end: 0 };

  /**
   * Forget flights below the base (committed elsewhere, or removed by retention) — except the
   * ones held apart, until retention removes their record.
   */
  private prune(group: string, log: LogBounds, sink: LeaseSink): void {
    this.log = log;
    const g = this.groups.get(group);
    if (!g) return;
    const base = this.base(group, log);
    const mark = `${base}/${log.start}`;
    if (this.prunedAt.get(group) === mark) return;
    this.prunedAt.set(group, mark);
    for (const [o, f] of g)
      if (o < base && !(f.apart && f.state !== 'done' && o >= log.start)) {
        g.delete(o);
        sink.flight(group, o, null);
      }
  }

  /** Flights held apart below the base, in offset order. */
  private apartBelow(g: Map<number, Flight>, base: number): Array<[number, Flight]> {
    const out: Array<[number, Flight]> = [];
    for (const [o, f] of g) if (o < base && f.apart) out.push([o, f]);
    return out.sort((a, b) => a[0] - b[0]);
  }

  private apartCount(g: Map<number, Flight>): number {
    let n = 0;
    for (const f of g.values()) if (f.apart && f.state !== 'done') n++;
    return n;
  }

  /**
   * Hand out up to `max` available records in offset order, each under a new lease of `leaseMs`.
   * Expired leases and due waits are redelivered with attempt + 1. A record that already had
   * `maxAttempts` deliveries is never delivered again: with dead-lettering on it waits for the
   * leader's sweep (which carries its bytes) to dead-letter it; off, it is discarded here.
   *
   * With a `plan`, a record's first delivery needs an offer from the plan, checked against its
   * facts: not before deliverAtMs, not from expiresAtMs on, and under ordering keys not while
   * another record of its key is unfinished. The plan's expired records end first. Without a
   * plan every record is offered: commands of leaders before issue 19, and those a leader writes
   * when the plan would change nothing (plainGrantMax) — the format every release applies.
   */
  grant(
    group: string,
    nowMs: number,
    policy: LeasePolicy,
    leaseMs: number,
    log: LogBounds,
    max: number,
    sink: LeaseSink,
    plan?: GrantPlan,
  ): GrantResult {
    const out: GrantResult = { grants: [], expired: [], redelivered: [], discarded: [], ttlExpired: [] };
    this.prune(group, log, sink);
    const g = this.flights(group);
    const base = this.base(group, log);
    if (plan) for (const e of plan.expire) this.expireTtl(group, nowMs, policy, e, log, sink, out);
    if (plan?.defer?.length && !policy.ordered) this.holdApart(group, nowMs, policy, plan.defer, log, sink);
    if (policy.ordered)
      for (const f of g.values())
        if (f.state === 'leased' && f.untilMs > nowMs) return this.done(out, group, log, sink);
    const offers = plan ? new Map(plan.offers.map((o) => [o.offset, o])) : undefined;
    // Ordering keys: the lowest unfinished offset of each key. Only that record of a key may be leased.
    const keys = policy.orderingKey ? this.unfinishedKeys(g) : undefined;
    /** A record that has a flight: redeliver it if it is due. 'stop': nothing after it may go (ordered). */
    const flight = (o: number, f: Flight): 'stop' | 'next' => {
      if (f.state === 'done') return 'next';
      // Leased to someone else, or waiting for its backoff (or its time). In order, nothing after it may go.
      if (f.untilMs > nowMs) return policy.ordered ? 'stop' : 'next';
      // Past its expiry: never offered again; the plan of a later grant ends it.
      if (f.expiresAtMs !== undefined && f.expiresAtMs <= nowMs) return 'next';
      if (f.attempt >= policy.maxAttempts) {
        if (policy.deadLetter) return policy.ordered ? 'stop' : 'next';
        const wasLeased = f.state === 'leased';
        this.finish(group, o, f, 'discarded', sink);
        out.discarded.push(o);
        if (wasLeased) out.expired.push(o);
        return 'next';
      }
      // Ordering keys: an earlier unfinished record of the same key goes first (only after a
      // change of policy can there be two).
      if (keys && f.keyHash !== undefined && keys.get(f.keyHash) !== o) return 'next';
      if (f.state === 'leased') out.expired.push(o);
      else if (f.attempt > 0) out.redelivered.push(o);
      const nf: Flight = {
        ...f,
        attempt: f.attempt + 1,
        state: 'leased',
        untilMs: nowMs + leaseMs,
        ...(f.attempt === 0 ? { firstDeliveryMs: nowMs } : {}),
        lastDeliveryMs: nowMs,
        lastAck: '',
      };
      g.set(o, nf);
      sink.flight(group, o, nf);
      out.grants.push({ offset: o, attempt: nf.attempt, leaseUntilMs: nf.untilMs });
      return 'next';
    };
    // Delayed records held apart below the committed offset go first (offset order).
    for (const [o, f] of this.apartBelow(g, base)) {
      if (out.grants.length >= max) break;
      flight(o, f);
    }
    const end = Math.min(log.end, base + LEASE_WINDOW);
    for (let o = base; o < end && out.grants.length < max; o++) {
      const f = g.get(o);
      if (f === undefined) {
        let facts: RecordFacts = {};
        if (offers) {
          const offer = offers.get(o);
          const ok =
            offer !== undefined &&
            !(offer.deliverAtMs !== undefined && offer.deliverAtMs > nowMs) &&
            !(offer.expiresAtMs !== undefined && offer.expiresAtMs <= nowMs) &&
            !(keys && offer.keyHash !== undefined && keys.has(offer.keyHash));
          if (!ok) {
            if (policy.ordered) break;
            continue;
          }
          facts = offer;
        }
        const nf: Flight = {
          attempt: 1,
          state: 'leased',
          untilMs: nowMs + leaseMs,
          firstDeliveryMs: nowMs,
          lastDeliveryMs: nowMs,
          lastError: '',
          lastErrorClass: '',
          outcome: '',
          lastAck: '',
          ...(keys && facts.keyHash !== undefined ? { keyHash: facts.keyHash } : {}),
          ...(facts.expiresAtMs !== undefined ? { expiresAtMs: facts.expiresAtMs } : {}),
        };
        if (keys && nf.keyHash !== undefined) keys.set(nf.keyHash, o);
        g.set(o, nf);
        sink.flight(group, o, nf);
        out.grants.push({ offset: o, attempt: 1, leaseUntilMs: nf.untilMs });
        continue;
      }
      if (flight(o, f) === 'stop') break;
    }
    return this.done(out, group, log, sink);
  }

  private done(out: GrantResult, group: string, log: LogBounds, sink: LeaseSink): GrantResult {
    this.advance(group, log, sink);
    return out;
  }

  /**
   * Hold delayed records apart (plan.defer): a flight in `waiting` until its deliverAtMs, attempt
   * 0, that the committed offset may pass. Only records never delivered, still delayed, inside
   * the log, and while the group holds fewer than MAX_APART.
   */
  private holdApart(
    group: string,
    nowMs: number,
    policy: LeasePolicy,
    defer: readonly Offer[],
    log: LogBounds,
    sink: LeaseSink,
  ): void {
    const g = this.flights(group);
    const base = this.base(group, log);
    let held = this.apartCount(g);
    for (const d of defer) {
      if (held >= MAX_APART) break;
      if (d.offset < base || d.offset >= log.end || g.has(d.offset)) continue;
      if (d.deliverAtMs === undefined || d.deliverAtMs <= nowMs) continue;
      if (d.expiresAtMs !== undefined && d.expiresAtMs <= nowMs) continue;
      const nf: Flight = {
        attempt: 0,
        state: 'waiting',
        untilMs: d.deliverAtMs,
        firstDeliveryMs: 0,
        lastDeliveryMs: 0,
        lastError: '',
        lastErrorClass: '',
        outcome: '',
        lastAck: '',
        ...(policy.orderingKey && d.keyHash !== undefined ? { keyHash: d.keyHash } : {}),
        ...(d.expiresAtMs !== undefined ? { expiresAtMs: d.expiresAtMs } : {}),
        apart: true,
      };
      g.set(d.offset, nf);
      sink.flight(group, d.offset, nf);
      held++;
    }
  }

  /** keyHash → lowest unfinished offset, over the group's flights. */
  private unfinishedKeys(g: Map<number, Flight>): Map<number, number> {
    const keys = new Map<number, number>();
    for (const [o, f] of g) {
      if (f.state === 'done' || f.keyHash === undefined) continue;
      const at = keys.get(f.keyHash);
      if (at === undefined || o < at) keys.set(f.keyHash, o);
    }
    return keys;
  }

  /**
   * End a record whose expiry passed, unless it is under a valid lease (the holder may still
   * accept it) or finished. Into the dead-letter stream when the policy says so and the
   * command carries its bytes; else dropped.
   */
  private expireTtl(
    group: string,
    nowMs: number,
    policy: LeasePolicy,
    e: ExpireItem,
    log: LogBounds,
    sink: LeaseSink,
    out: GrantResult,
  ): void {
    if (e.offset >= log.end || e.expiresAtMs > nowMs) return;
    const g = this.flights(group);
    const f = g.get(e.offset);
    if (e.offset < this.base(group, log) && !f?.apart) return;
    if (f !== undefined && (f.state === 'done' || (f.state === 'leased' && f.untilMs > nowMs))) return;
    if (f !== undefined && f.expiresAtMs !== e.expiresAtMs) return;
    const base: Flight = f ?? {
      attempt: 0,
      state: 'waiting',
      untilMs: 0,
      firstDeliveryMs: 0,
      lastDeliveryMs: 0,
      lastError: '',
      lastErrorClass: '',
      outcome: '',
      lastAck: '',
      expiresAtMs: e.expiresAtMs,
    };
    const withError: Flight = { ...base, lastError: EXPIRED_ERROR, lastErrorClass: EXPIRED_ERROR_CLASS };
    const r = this.deadEnd(group, e.offset, withError, '', {
      policy: policy.expired === 'drop' ? { ...policy, deadLetter: false } : policy,
      bytesAvailable: e.bytes,
      sink,
    });
    out.ttlExpired.push(
      r.status === 'ok' && r.deadLetter ? { offset: e.offset, deadLetter: r.deadLetter } : { offset: e.offset },
    );
  }

  /**
   * The leader's side of a grant: what a grant at `nowMs` would do, from the replicated state
   * and the facts of the records not delivered yet (`factsOf`, read from the log; undefined:
   * not loaded — the answer names the offset in `missing`). The same rules as `grant`, plus
   * the ones only the log can tell: a key's records go in offset order (a record waits while
   * an earlier record of its key is unfinished, delivered or not), a delayed record is passed
   * over (in `ordered` mode it stops the scan) and an expired one is listed to end.
   * At most `max` records to hand out and `maxExpire` to end; never past LEASE_WINDOW.
   */
  plan(
    group: string,
    nowMs: number,
    policy: LeasePolicy,
    log: LogBounds,
    max: number,
    maxExpire: number,
    factsOf: (offset: number) => RecordFacts | undefined,
  ): PlanResult {
    const out: PlanResult = { offers: [], expire: [], defer: [], work: 0, discards: 0 };
    const g = this.groups.get(group) ?? new Map<number, Flight>();
    // Exclusive mode: while one lease is out, nothing else goes.
    if (policy.ordered) for (const f of g.values()) if (f.state === 'leased' && f.untilMs > nowMs) return out;
    const keys = policy.orderingKey ? this.unfinishedKeys(g) : undefined;
    const base = this.base(group, log);
    let end = Math.min(log.end, base + LEASE_WINDOW);
    // Only ending expired records (the sweep): as far as the group has reached, no further.
    if (max === 0) {
      let reached = base;
      for (const o of g.keys()) if (o + 1 > reached) reached = o + 1;
      end = Math.min(end, reached);
    }
    const more = () => (max > 0 ? out.work < max : out.expire.length < maxExpire);
    const expire = (offset: number, expiresAtMs: number): boolean => {
      if (out.expire.length >= maxExpire) return false;
      out.expire.push({ offset, expiresAtMs, bytes: false });
      return true;
    };
    /** A record with a flight, as `grant` treats it. 'stop': nothing after it may go (ordered). */
    const flight = (o: number, f: Flight): 'stop' | 'next' => {
      if (f.state === 'done') return 'next';
      if (f.untilMs > nowMs) return policy.ordered ? 'stop' : 'next';
      if (f.expiresAtMs !== undefined && f.expiresAtMs <= nowMs) {
        expire(o, f.expiresAtMs);
        return 'next';
      }
      if (out.work >= max) return 'next';
      if (f.attempt >= policy.maxAttempts) {
        if (policy.deadLetter) return policy.ordered ? 'stop' : 'next';
        out.work++;
        out.discards++;
        return 'next';
      }
      if (keys && f.keyHash !== undefined && keys.get(f.keyHash) !== o) return 'next';
      out.work++;
      return 'next';
    };
    for (const [o, f] of this.apartBelow(g, base)) flight(o, f);
    // Delayed records at the front (every offset before them finished or held apart) are held
    // apart, so the committed offset passes them and the window moves on.
    let front = !policy.ordered;
    let apart = front ? this.apartCount(g) : 0;
    for (let o = base; o < end && more(); o++) {
      const f = g.get(o);
      if (f === undefined) {
        const facts = factsOf(o);
        if (facts === undefined) return { ...out, missing: o };
        if (facts.gone) {
          if (!expire(o, 0)) front = false;
          continue;
        }
        if (facts.expiresAtMs !== undefined && facts.expiresAtMs <= nowMs) {
          if (!expire(o, facts.expiresAtMs)) front = false;
          continue;
        }
        const key = keys ? facts.keyHash : undefined;
        if (facts.deliverAtMs !== undefined && facts.deliverAtMs > nowMs) {
          if (out.nextDeliverMs === undefined || facts.deliverAtMs < out.nextDeliverMs)
            out.nextDeliverMs = facts.deliverAtMs;
          // Delayed: in order, it holds back everything after it; by key, the later ones of its key.
          if (policy.ordered) break;
          if (key !== undefined && !keys!.has(key)) keys!.set(key, o);
          if (front && apart < MAX_APART && out.defer.length < maxExpire) {
            out.defer.push({
              offset: o,
              ...(key !== undefined ? { keyHash: key } : {}),
              deliverAtMs: facts.deliverAtMs,
              ...(facts.expiresAtMs !== undefined ? { expiresAtMs: facts.expiresAtMs } : {}),
            });
            apart++;
          } else front = false;
          continue;
        }
        front = false;
        if (out.work >= max || (key !== undefined && keys!.has(key))) continue;
        if (key !== undefined) keys!.set(key, o);
        out.offers.push({
          offset: o,
          ...(key !== undefined ? { keyHash: key } : {}),
          ...(facts.deliverAtMs !== undefined ? { deliverAtMs: facts.deliverAtMs } : {}),
          ...(facts.expiresAtMs !== undefined ? { expiresAtMs: facts.expiresAtMs } : {}),
        });
        out.work++;
        continue;
      }
      if (f.state !== 'done' && !f.apart) front = false;
      if (flight(o, f) === 'stop') break;
    }
    return out;
  }

  /**
   * Apply one ack. `bytesAvailable`: the command carries the record's bytes for the dead-letter
   * stream (the leader includes them for rejects and for releases of a last attempt); without
   * them a record that must be dead-lettered is discarded (it was removed by retention).
   */
  ack(
    group: string,
    nowMs: number,
    policy: LeasePolicy,
    item: AckItem,
    log: LogBounds,
    bytesAvailable: boolean,
    sink: LeaseSink,
  ): AckOutcome {
    this.prune(group, log, sink);
    const g = this.flights(group);
    const f = g.get(item.offset);
    if (item.offset < this.base(group, log) && !f?.apart) return { status: 'stale_attempt', why: 'finished' };
    if (f === undefined) return { status: 'stale_attempt', why: 'unknown' };
    if (f.attempt !== item.attempt)
      return { status: 'stale_attempt', why: item.attempt < f.attempt ? 'superseded' : 'unknown' };
    if (f.state !== 'leased') {
      // A retry of the ack that ended this attempt is answered as it was.
      if (f.lastAck === item.action) return { status: 'ok', duplicate: true };
      return { status: 'stale_attempt', why: 'finished' };
    }
    if (f.untilMs <= nowMs) return { status: 'lease_expired' };
    let out: AckOutcome;
    const error = item.error ?? f.lastError;
    const errorClass = item.error !== undefined ? (item.errorClass ?? errorClassOf(item.error)) : f.lastErrorClass;
    switch (item.action) {
      case 'accept':
        this.finish(group, item.offset, { ...f, lastAck: 'accept' }, 'accepted', sink);
        out = { status: 'ok' };
        break;
      case 'extend': {
        const nf: Flight = { ...f, untilMs: nowMs + (item.leaseMs ?? policy.leaseMs), lastAck: 'extend' };
        g.set(item.offset, nf);
        sink.flight(group, item.offset, nf);
        out = { status: 'ok', leaseUntilMs: nf.untilMs };
        break;
      }
      case 'release':
        if (f.attempt < policy.maxAttempts) {
          const nf: Flight = {
            ...f,
            state: 'waiting',
            untilMs: nowMs + (item.delayMs ?? backoffMs(policy, f.attempt)),
            lastError: error,
            lastErrorClass: errorClass,
            lastAck: 'release',
          };
          g.set(item.offset, nf);
          sink.flight(group, item.offset, nf);
          out = { status: 'ok' };
          break;
        }
        out = this.deadEnd(group, item.offset, { ...f, lastError: error, lastErrorClass: errorClass }, 'release', {
          policy,
          bytesAvailable,
          sink,
        });
        break;
      case 'reject':
        out = this.deadEnd(group, item.offset, { ...f, lastError: error, lastErrorClass: errorClass }, 'reject', {
          policy,
          bytesAvailable,
          sink,
        });
        break;
    }
    this.advance(group, log, sink);
    return out;
  }

  /** Records whose last attempt ended (lease expired, or due after a lowered maxAttempts): the sweep dead-letters them. */
  exhausted(group: string, nowMs: number, policy: LeasePolicy, log: LogBounds, limit: number): Grant[] {
    const out: Grant[] = [];
    const g = this.groups.get(group);
    if (!g) return out;
    const base = this.base(group, log);
    for (const [o, f] of g) {
      if (out.length >= limit) break;
      if ((o >= base || f.apart) && f.state !== 'done' && f.untilMs <= nowMs && f.attempt >= policy.maxAttempts)
        out.push({ offset: o, attempt: f.attempt, leaseUntilMs: f.untilMs });
    }
    return out.sort((a, b) => a.offset - b.offset);
  }

  /**
   * The sweep: dead-letter (or discard) a record whose last lease expired. Applies only if that
   * lease is still the record's state (same attempt, still expired); otherwise nothing happens.
   */
  expire(
    group: string,
    nowMs: number,
    policy: LeasePolicy,
    offset: number,
    attempt: number,
    log: LogBounds,
    bytesAvailable: boolean,
    sink: LeaseSink,
  ): DeadLetterNote | 'discarded' | undefined {
    this.prune(group, log, sink);
    const f = this.groups.get(group)?.get(offset);
    if (offset < this.base(group, log) && !f?.apart) return undefined;
    if (!f || f.attempt !== attempt || f.state === 'done' || f.untilMs > nowMs || f.attempt < policy.maxAttempts)
      return undefined;
    const lastError = f.lastError === '' ? 'lease expired on the last attempt' : f.lastError;
    const lastErrorClass = f.lastErrorClass === '' ? 'lease_expired' : f.lastErrorClass;
    const out = this.deadEnd(group, offset, { ...f, lastError, lastErrorClass }, '', { policy, bytesAvailable, sink });
    this.advance(group, log, sink);
    return out.status === 'ok' ? (out.deadLetter ?? 'discarded') : undefined;
  }

  /** The record ends: into the dead-letter stream when on and its bytes are known, else discarded. */
  private deadEnd(
    group: string,
    offset: number,
    f: Flight,
    action: '' | AckAction,
    o: { policy: LeasePolicy; bytesAvailable: boolean; sink: LeaseSink },
  ): AckOutcome {
    const withAck = { ...f, lastAck: action };
    if (o.policy.deadLetter && o.bytesAvailable) {
      this.finish(group, offset, withAck, 'dead_lettered', o.sink);
      return {
        status: 'ok',
        deadLetter: {
          offset,
          attempts: f.attempt,
          lastError: f.lastError,
          lastErrorClass: f.lastErrorClass === '' ? 'unclassified' : f.lastErrorClass,
          firstDeliveryMs: f.firstDeliveryMs,
          lastDeliveryMs: f.lastDeliveryMs,
        },
      };
    }
    this.finish(group, offset, withAck, 'discarded', o.sink);
    return { status: 'ok', discarded: true };
  }

  private finish(group: string, offset: number, f: Flight, outcome: FlightOutcome, sink: LeaseSink): void {
    const nf: Flight = { ...f, state: 'done', untilMs: 0, outcome };
    this.flights(group).set(offset, nf);
    sink.flight(group, offset, nf);
    // Held apart below the committed offset: finished, it is forgotten (the offset is long passed).
    if (f.apart && offset < this.base(group, this.log)) {
      this.flights(group).delete(offset);
      sink.flight(group, offset, null);
    }
  }

  /** Move the committed offset over the contiguous prefix of done records. */
  private advance(group: string, log: LogBounds, sink: LeaseSink): void {
    const g = this.groups.get(group);
    if (!g) return;
    const start = this.base(group, log);
    let o = start;
    for (;;) {
      const f = g.get(o);
      if (f === undefined) break;
      if (f.state === 'done') {
        g.delete(o);
        sink.flight(group, o, null);
      } else if (!f.apart) break;
      o++;
    }
    if (o > start) {
      this.committedOffsets.set(group, o);
      sink.committed(group, o);
    }
  }

  /** Earliest future time at which something of `group` becomes available (a lease expiry or a due wait). */
  nextDueMs(group: string, nowMs: number): number | undefined {
    const g = this.groups.get(group);
    if (!g) return undefined;
    let next: number | undefined;
    for (const f of g.values())
      if (f.state !== 'done' && f.untilMs > nowMs && (next === undefined || f.untilMs < next)) next = f.untilMs;
    return next;
  }

  /** Counts by state, for introspection (`GET /v1/groups/{g}` in leased mode). */
  summary(group: string, nowMs: number): { leased: number; waiting: number; done: number } {
    const s = { leased: 0, waiting: 0, done: 0 };
    for (const f of this.groups.get(group)?.values() ?? []) {
      if (f.state === 'done') s.done++;
      else if (f.state === 'leased' && f.untilMs > nowMs) s.leased++;
      else s.waiting++;
    }
    return s;
  }
}

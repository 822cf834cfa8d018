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
 * see the same truth) advances over the contiguous prefix of done records; flights below it are
 * forgotten. It never moves backwards here.
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
}

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

  /** The base each group was last pruned at: flights below a base appear only when it moves. */
  private readonly prunedAt = new Map<string, number>();

  /** Forget flights below the base (committed elsewhere, or removed by retention). */
  private prune(group: string, log: LogBounds, sink: LeaseSink): void {
    const g = this.groups.get(group);
    if (!g) return;
    const base = this.base(group, log);
    if (this.prunedAt.get(group) === base) return;
    this.prunedAt.set(group, base);
    for (const o of g.keys())
      if (o < base) {
        g.delete(o);
        sink.flight(group, o, null);
      }
  }

  /**
   * Hand out up to `max` available records in offset order, each under a new lease of `leaseMs`.
   * Expired leases and due waits are redelivered with attempt + 1. A record that already had
   * `maxAttempts` deliveries is never delivered again: with dead-lettering on it waits for the
   * leader's sweep (which carries its bytes) to dead-letter it; off, it is discarded here.
   */
  grant(
    group: string,
    nowMs: number,
    policy: LeasePolicy,
    leaseMs: number,
    log: LogBounds,
    max: number,
    sink: LeaseSink,
  ): GrantResult {
    const out: GrantResult = { grants: [], expired: [], redelivered: [], discarded: [] };
    this.prune(group, log, sink);
    const g = this.flights(group);
    if (policy.ordered) for (const f of g.values()) if (f.state === 'leased' && f.untilMs > nowMs) return out;
    const base = this.base(group, log);
    const end = Math.min(log.end, base + LEASE_WINDOW);
    for (let o = base; o < end && out.grants.length < max; o++) {
      const f = g.get(o);
      if (f === undefined) {
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
        };
        g.set(o, nf);
        sink.flight(group, o, nf);
        out.grants.push({ offset: o, attempt: 1, leaseUntilMs: nf.untilMs });
        continue;
      }
      if (f.state === 'done') continue;
      if (f.untilMs > nowMs) {
        // Leased to someone else, or waiting for its backoff. In order, nothing after it may go.
        if (policy.ordered) break;
        continue;
      }
      if (f.attempt >= policy.maxAttempts) {
        if (policy.deadLetter) {
          if (policy.ordered) break;
          continue;
        }
        const wasLeased = f.state === 'leased';
        this.finish(group, o, f, 'discarded', sink);
        out.discarded.push(o);
        if (wasLeased) out.expired.push(o);
        continue;
      }
      if (f.state === 'leased') out.expired.push(o);
      else out.redelivered.push(o);
      const nf: Flight = {
        ...f,
        attempt: f.attempt + 1,
        state: 'leased',
        untilMs: nowMs + leaseMs,
        lastDeliveryMs: nowMs,
        lastAck: '',
      };
      g.set(o, nf);
      sink.flight(group, o, nf);
      out.grants.push({ offset: o, attempt: nf.attempt, leaseUntilMs: nf.untilMs });
    }
    this.advance(group, log, sink);
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
    if (item.offset < this.base(group, log)) return { status: 'stale_attempt', why: 'finished' };
    const f = g.get(item.offset);
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
      if (o >= base && f.state !== 'done' && f.untilMs <= nowMs && f.attempt >= policy.maxAttempts)
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
    if (offset < this.base(group, log)) return undefined;
    const f = this.groups.get(group)?.get(offset);
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
  }

  /** Move the committed offset over the contiguous prefix of done records. */
  private advance(group: string, log: LogBounds, sink: LeaseSink): void {
    const g = this.groups.get(group);
    if (!g) return;
    const start = this.base(group, log);
    let o = start;
    for (;;) {
      const f = g.get(o);
      if (f === undefined || f.state !== 'done') break;
      g.delete(o);
      sink.flight(group, o, null);
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

  /**
   * Whether a grant at `nowMs` would hand out anything (the leader asks before proposing, so an
   * empty long-poll costs no Raft entry). Same rules as `grant`, without changing anything.
   */
  wouldGrant(group: string, nowMs: number, policy: LeasePolicy, log: LogBounds): boolean {
    const g = this.groups.get(group);
    if (g && policy.ordered) for (const f of g.values()) if (f.state === 'leased' && f.untilMs > nowMs) return false;
    const base = this.base(group, log);
    const end = Math.min(log.end, base + LEASE_WINDOW);
    for (let o = base; o < end; o++) {
      const f = g?.get(o);
      if (f === undefined) return true;
      if (f.state === 'done') continue;
      if (f.untilMs > nowMs) {
        if (policy.ordered) return false;
        continue;
      }
      if (f.attempt >= policy.maxAttempts) {
        if (policy.ordered && policy.deadLetter) return false;
        continue;
      }
      return true;
    }
    return false;
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

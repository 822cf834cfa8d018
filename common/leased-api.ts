import type { RecordIn, RecordOut } from './partition-api';

/**
 * The partition API of leased consumption and dead letters (DESIGN §6): what the gateway asks
 * of a partition's leader, transport-neutral. Lease state and dead letters live in the
 * partition's replicated state machine (replica/leased/), so any
 * gateway pod can serve any call. Lease tokens are the gateway's business (gateway/lease-token.ts):
 * the replica sees (offset, attempt) and refuses attempts that are not the current one.
 */

export type AckAction = 'accept' | 'release' | 'reject' | 'extend';

export interface LeasePolicy {
  /** Deliveries before a record is dead-lettered: the failure of attempt maxAttempts is the last. */
  maxAttempts: number;
  /** Lease length when a fetch names none. */
  leaseMs: number;
  /** Redelivery delay after a release without delay_ms: min(max, initial × multiplier^(attempt−1)). */
  backoffInitialMs: number;
  backoffMaxMs: number;
  backoffMultiplier: number;
  /** false: rejected or exhausted records are discarded instead of dead-lettered. */
  deadLetter: boolean;
  /** Exclusive mode: one lease holder per partition at a time, records in offset order. */
  ordered: boolean;
  /**
   * Ordering keys: at most one record per key is leased (or waiting for redelivery) at a time,
   * a key's records in offset order; other keys flow in parallel. A record without a key is its
   * own key. Not together with `ordered`.
   */
  orderingKey: boolean;
  /**
   * A record past its `expiresAtMs` that was not accepted: into the dead-letter stream
   * (`dead_letter`, when `deadLetter` is on) or dropped (`drop`).
   */
  expired: ExpiredAction;
}

export type ExpiredAction = 'dead_letter' | 'drop';

/** A group's policy as set by PUT /v1/groups/{g}/policy: unset fields take the topic's defaults. */
export type LeasePolicyOverride = Partial<LeasePolicy>;

/** The groups one partition knows (committed offsets, a lease policy or leases), by name. */
export interface GroupListRequest {
  topic: string;
  partition: number;
  requestId: string;
  /** At most this many names (sorted); `truncated` says there were more. */
  limit: number;
}

export interface GroupList {
  groups: string[];
  truncated: boolean;
}

export interface GroupTarget {
  group: string;
  topic: string;
  partition: number;
  requestId: string;
}

export interface LeaseFetchRequest extends GroupTarget {
  /** Records to lease; 0 = only wait (up to waitMs) until something is available, lease nothing. */
  maxRecords: number;
  /** Long-poll: wait up to this long when nothing is available. */
  waitMs: number;
  /** Lease length; default the policy's. */
  leaseMs?: number;
}

export interface LeasedRecord extends RecordOut {
  /** 1 for the first delivery. */
  attempt: number;
  /** When the lease ends (leader clock, ms since the epoch). */
  leaseUntilMs: number;
}

export interface LeaseFetchResult {
  records: LeasedRecord[];
  /** Something is available now (answer to a wait-only call). */
  available: boolean;
  highWatermark: number;
  /** The group's committed offset on this partition (null: nothing committed yet). */
  committedOffset: number | null;
}

export interface LeaseAckItem {
  offset: number;
  attempt: number;
  action: AckAction;
  /** release: redeliver after this long instead of the policy's backoff. */
  delayMs?: number;
  /** extend: new lease length from now; default the policy's leaseMs. */
  leaseMs?: number;
  /** release/reject: what went wrong (kept with the record, and in its dead letter). */
  error?: string;
  /** Error class for dead-letter filtering; default the leading `Name:` of `error`. */
  errorClass?: string;
}

export interface LeaseAckRequest extends GroupTarget {
  items: LeaseAckItem[];
}

export type LeaseAckStatus = 'ok' | 'lease_expired' | 'stale_attempt';

export interface LeaseAckResult {
  status: LeaseAckStatus;
  /** extend: the new end of the lease. */
  leaseUntilMs?: number;
  /** The record went to the dead-letter stream (reject, or the last attempt released). */
  deadLettered?: boolean;
  /** It ended without a dead letter (dead-lettering off, or its bytes were removed by retention). */
  discarded?: boolean;
  detail?: string;
}

export interface GroupPolicyRequest extends GroupTarget {
  /** null clears the group's policy (back to the topic defaults). */
  policy: LeasePolicyOverride | null;
}

export interface GroupLeaseInfo {
  group: string;
  topic: string;
  partition: number;
  override: LeasePolicyOverride | null;
  effective: LeasePolicy;
  committedOffset: number | null;
  highWatermark: number;
  /**
   * Records under a valid lease; waiting for redelivery (or delayed records held apart until their
   * time, leases.ts Flight.apart); and finished above committed.
   */
  leased: number;
  waiting: number;
  done: number;
  /** The group has leased on this partition or has a policy here. */
  known: boolean;
}

export type DeadLetterState = 'active' | 'archived' | 'replayed';

export interface DeadLetterFilter {
  /** Dead-lettered at or after (ms since the epoch). */
  fromMs?: number;
  /** Dead-lettered before. */
  toMs?: number;
  group?: string;
  errorClass?: string;
  /** Sequence numbers within the partition. */
  seqs?: number[];
  /** Default: every state. */
  states?: DeadLetterState[];
}

export interface DeadLetter {
  topic: string;
  partition: number;
  /** Dense per partition, never reused; the API id is `${partition}-${seq}`. */
  seq: number;
  group: string;
  originOffset: number;
  record: RecordIn;
  attempts: number;
  lastError: string;
  errorClass: string;
  firstDeliveryMs: number;
  lastDeliveryMs: number;
  deadLetteredMs: number;
  state: DeadLetterState;
  /** Where a replay wrote it: the origin partition, or `topic`/`partition` when replayed to another topic. */
  replay?: { jobId: string; offset: number; atMs: number; topic?: string; partition?: number };
}

export interface DeadLetterQuery {
  topic: string;
  partition: number;
  filter: DeadLetterFilter;
  /** Only entries with a larger seq (paging). */
  afterSeq?: number;
  limit: number;
  requestId: string;
}

export interface DeadLetterPage {
  items: DeadLetter[];
  /** Pass as afterSeq for the next page; null at the end. */
  nextAfterSeq: number | null;
}

export interface DeadLetterAdminRequest {
  topic: string;
  partition: number;
  action: 'archive' | 'purge';
  filter: DeadLetterFilter;
  requestId: string;
}

export interface ReplayJobRequest {
  topic: string;
  partition: number;
  jobId: string;
  /** Entries to replay (only `active` ones are ever replayed). */
  filter: DeadLetterFilter;
  /** Records per second on this partition. */
  ratePerSec: number;
  dryRun: boolean;
  /** Another topic to write to (its partition count as the caller knows it); absent: the origin. */
  target?: { topic: string; partitions: number };
  requestId: string;
}

export interface ReplayJobStatus {
  jobId: string;
  topic: string;
  partition: number;
  state: 'running' | 'done';
  dryRun: boolean;
  ratePerSec: number;
  /** Active entries matching the filter when the job was created. */
  matched: number;
  /** Records written back to the origin by this job. */
  written: number;
  /** Matching entries that were already replayed (by this job's earlier run or another job). */
  skipped: number;
  createdMs: number;
  finishedMs: number | null;
  /** null: back to the origin. */
  target: { topic: string; partitions: number } | null;
  /** The leader's last failure writing this job's batch to its target (cleared by a success). */
  lastError?: string;
}

export interface ReplayJobQuery {
  topic: string;
  partition: number;
  jobId: string;
  requestId: string;
}

/** A dead letter as the partition keeps it: the API's DeadLetter without the partition's own coordinates. */
export type DeadLetterRow = Omit<DeadLetter, 'topic' | 'partition'>;

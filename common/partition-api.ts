/**
 * The partition client API: what the gateway (and the CLI) ask of a partition replica, and what
 * it answers. Transport-neutral types; the replica's client port carries them
 * (protocol/methods.ts describes each call; protocol/codecs/ holds their bytes).
 * Errors travel as DaftkaError codes (common/errors.ts): a follower answers NOT_LEADER with a
 * leader hint, a leader without quorum NO_QUORUM, a full queue OVERLOADED.
 */

export interface RecordIn {
  key: Uint8Array | null;
  value: Uint8Array;
  headers: Array<[string, Uint8Array]>;
  /** Milliseconds since the epoch; the gateway fills it when the client gives none. */
  timestampMs: number;
  /**
   * A null value (`value` is then empty): in a compacted topic the key's delete marker
   * (tombstone). Absent means false.
   */
  tombstone?: boolean;
  /** Leased groups do not offer the record before this time (ms since the epoch). */
  deliverAtMs?: number;
  /** Leased groups no longer offer the record from this time (ms since the epoch). */
  expiresAtMs?: number;
}

export interface RecordOut extends RecordIn {
  offset: number;
}

export interface ProducerIdentity {
  producerId: string;
  epoch: number;
  /** Sequence number of this batch's first record. */
  seq: number;
}

export interface ProduceRequest {
  topic: string;
  partition: number;
  records: RecordIn[];
  /** Dedup key: a retry with the same key and payload returns the original offsets. */
  idempotencyKey?: string;
  producer?: ProducerIdentity;
  requestId: string;
  /** How long the replica may wait for commit before answering COMMIT_UNKNOWN. */
  timeoutMs: number;
}

export interface ProduceResult {
  /** Offset of the first record; the batch occupies baseOffset … baseOffset+count-1. */
  baseOffset: number;
  count: number;
  /** True when this was a retry of an already committed batch (same offsets returned). */
  duplicate: boolean;
}

export interface FetchRequest {
  topic: string;
  partition: number;
  offset: number;
  maxRecords: number;
  maxBytes: number;
  /** Long-poll: wait up to this long for records at `offset` when none are committed yet. */
  waitMs: number;
  requestId: string;
}

export interface FetchResult {
  records: RecordOut[];
  nextOffset: number;
  highWatermark: number;
  logStartOffset: number;
}

export interface GroupOffsetCommit {
  group: string;
  topic: string;
  partition: number;
  /** The next offset to consume (Kafka semantics). */
  offset: number;
  metadata?: string;
  requestId: string;
}

export interface GroupOffsetQuery {
  group: string;
  topic: string;
  partition: number;
  requestId: string;
}

export interface GroupOffset {
  group: string;
  topic: string;
  partition: number;
  /** null when the group never committed on this partition. */
  offset: number | null;
  metadata?: string;
  highWatermark: number;
  logStartOffset: number;
  /** highWatermark − offset (or − logStartOffset when nothing is committed). */
  lag: number;
}

/** Any replica of the partition answers (status is not routed to the leader). */
export interface StatusRequest {
  topic: string;
  partition: number;
  requestId: string;
}

export type ReplicaRole = 'leader' | 'follower' | 'candidate' | 'learner';

export interface PartitionStatus {
  topic: string;
  partition: number;
  replicaId: string;
  role: ReplicaRole;
  term: number;
  leaderId: string | null;
  /** host:port of the leader's client port, when known. */
  leaderEndpoint: string | null;
  highWatermark: number;
  logStartOffset: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  logBytes: number;
  voters: string[];
  learners: string[];
  /** The replica refuses new records for lack of disk space (STORAGE_FULL); absent: an older replica. */
  diskFull?: boolean;
}

/**
 * Membership and leadership changes for one partition's Raft group, asked of its leader (by the
 * operator over NATS, or by the CLI over the client port). A follower answers NOT_LEADER with a
 * leader hint. Each call resolves once the leader has accepted the change, not once it is done:
 * callers watch `status` (role, voters, learners) to see it complete.
 */
export interface AdminTarget {
  topic: string;
  partition: number;
  requestId: string;
}

export interface TransferLeadershipRequest extends AdminTarget {
  /** Replica id of the voter to hand leadership to. */
  to: string;
}

export interface AddLearnerRequest extends AdminTarget {
  /** Replica id of the new member (`(ordinal, incarnation)` rendered as a string). */
  id: string;
  /** host:port of the new member's peer port. */
  endpoint: string;
}

export interface MemberRequest extends AdminTarget {
  id: string;
}

/**
 * The Raft core's vocabulary: log entries, persistent state, messages, the storage it reads and
 * the Ready it hands to its driver. Everything here is plain data so a driver can persist it and
 * a transport can serialise it (codec.ts).
 */

/**
 * A replica's identity. Opaque to the core; the replica uses `${ordinal}.${incarnation}`. An id
 * is never reused: a wiped replica rejoins under a new id, so it can never vote twice in a term.
 */
export type NodeId = string;

export enum EntryType {
  /** A client proposal. */
  Normal = 0,
  /** Appended by every new leader; committing it commits everything before it (Raft §5.4.2). */
  NoOp = 1,
  /** A single-server membership change; `data` is `encodeConfChange(...)`. */
  Config = 2,
}

export interface Entry {
  index: number;
  term: number;
  type: EntryType;
  data: Uint8Array;
}

/** What must be on disk before the node may answer anyone (Ready.messages). */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface SnapshotMeta {
  /** Last log index covered by the snapshot. */
  index: number;
  /** Term of the entry at `index`. */
  term: number;
  /** The membership as of `index`. */
  conf: ConfState;
}

export interface Snapshot {
  meta: SnapshotMeta;
  /** The application's state machine at `meta.index`; opaque to the core. */
  data: Uint8Array;
}

export enum MessageType {
  PreVote = 1,
  PreVoteResp = 2,
  Vote = 3,
  VoteResp = 4,
  App = 5,
  AppResp = 6,
  Heartbeat = 7,
  HeartbeatResp = 8,
  Snap = 9,
  TimeoutNow = 10,
}

interface MessageBase {
  from: NodeId;
  to: NodeId;
  /** The sender's term (for PreVote: the term it would campaign in; for a granted PreVoteResp: that term). */
  term: number;
}

/** Vote request (real or pre-vote). */
export interface VoteRequest extends MessageBase {
  type: MessageType.PreVote | MessageType.Vote;
  lastIndex: number;
  lastTerm: number;
  /** Campaign started by TimeoutNow (leadership transfer): voters ignore their leader lease. */
  transfer: boolean;
}

export interface VoteResponse extends MessageBase {
  type: MessageType.PreVoteResp | MessageType.VoteResp;
  reject: boolean;
}

export interface AppendRequest extends MessageBase {
  type: MessageType.App;
  prevIndex: number;
  prevTerm: number;
  /** Contiguous, starting at prevIndex + 1. */
  entries: Entry[];
  /** Leader's commit index. */
  commit: number;
  /** Generation of the leader's App stream to this follower; echoed in the AppResp. */
  epoch: number;
}

export interface AppendResponse extends MessageBase {
  type: MessageType.AppResp;
  /** Accepted: the follower's log matches the leader's up to `index`. Rejected: the prevIndex refused. */
  index: number;
  reject: boolean;
  /** Rejected only: the follower's guess of the last index that may match (fast back-off)... */
  hintIndex: number;
  /** ...and its term there (0 = unknown). */
  hintTerm: number;
  /** The `epoch` of the App answered (0 for answers to Snap and term notices). */
  epoch: number;
}

export interface HeartbeatRequest extends MessageBase {
  type: MessageType.Heartbeat;
  /** min(leader commit, follower's known match): never beyond what the follower is known to hold. */
  commit: number;
}

export interface HeartbeatResponse extends MessageBase {
  type: MessageType.HeartbeatResp;
}

export interface SnapshotRequest extends MessageBase {
  type: MessageType.Snap;
  snapshot: Snapshot;
}

/** Leadership transfer: "campaign now, ignoring pre-vote and leases". */
export interface TimeoutNowRequest extends MessageBase {
  type: MessageType.TimeoutNow;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotRequest
  | TimeoutNowRequest;

/**
 * The read side of the driver's durable storage. Synchronous: the driver keeps what it must
 * answer from memory and may answer "not now" (null) for entries it has to load; it then calls
 * `RaftNode.logAvailable()` and the core asks again.
 *
 * Index conventions: `firstIndex() - 1` is the index of the latest snapshot (or compaction
 * point); `term(firstIndex() - 1)` must still be known. `lastIndex()` is the last persisted
 * entry (= snapshot index when the log is empty).
 */
export interface RaftStorage {
  /** Persisted hard state and the membership as of the driver's applied index. */
  initialState(): { hardState: HardState; conf: ConfState };
  firstIndex(): number;
  lastIndex(): number;
  /** Term of entry `index`, for firstIndex()-1 ≤ index ≤ lastIndex(); undefined otherwise. */
  term(index: number): number | undefined;
  /**
   * Entries in [lo, hi), firstIndex() ≤ lo < hi ≤ lastIndex()+1, as many as fit in `maxBytes`
   * of payload but always at least one. null: not available right now (call logAvailable()).
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[] | null;
  /** The latest snapshot, or null if it cannot be produced right now (call logAvailable()). */
  snapshot(): Snapshot | null;
}

export type Role = 'follower' | 'candidate' | 'precandidate' | 'leader';

export interface SoftState {
  leader: NodeId | null;
  role: Role;
}

/**
 * One batch of work for the driver. Process it in this order, then call `advance(ready)`:
 *  1. persist `snapshot` (if any), then `entries` (replacing persisted entries at index ≥
 *     entries[0].index), then `hardState`, atomically or in that order; fsync if `mustSync`;
 *  2. send `messages` — only now: they promise what step 1 made durable (votes, acks);
 *  3. install `snapshot` into the state machine, then apply `committed` in order;
 *  4. `advance(ready)`.
 * Between ready() and advance() the driver may keep calling step()/tick()/propose(); their
 * effects go into the next Ready.
 */
export interface Ready {
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  messages: Message[];
  committed: Entry[];
  mustSync: boolean;
  softState?: SoftState;
}

export type ProgressStateName = 'probe' | 'replicate' | 'snapshot';

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressStateName;
  learner: boolean;
  inflightMsgs: number;
  inflightBytes: number;
  recentActive: boolean;
  pendingSnapshot: number;
}

export interface Status {
  id: NodeId;
  term: number;
  vote: NodeId | null;
  role: Role;
  leader: NodeId | null;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  conf: ConfState;
  /** Leader only: replication progress per member (itself included). */
  progress?: Record<NodeId, ProgressStatus>;
  leadTransferee: NodeId | null;
  uncommittedBytes: number;
}

export interface RaftConfig {
  id: NodeId;
  storage: RaftStorage;
  /** Ticks without hearing from a leader before campaigning; the actual timeout is drawn from [E, 2E). */
  electionTicks: number;
  /** Ticks between leader heartbeats; must be < electionTicks. */
  heartbeatTicks: number;
  /** Injected, seeded randomness in [0, 1): the only source of non-determinism. */
  random: () => number;
  /** Pre-vote (Raft thesis §9.6): a partitioned node cannot disrupt the cluster with a term bump. */
  preVote: boolean;
  /** Leader steps down without quorum contact for an election timeout; votes refused while a leader is heard. */
  checkQuorum: boolean;
  /** Payload bytes per App message (at least one entry is always sent). */
  maxSizePerMsgBytes: number;
  /** App messages in flight per follower (pipelining window). */
  maxInflightMsgs: number;
  /** Payload bytes in flight per follower. */
  maxInflightBytes: number;
  /** Leader refuses proposals beyond this many uncommitted payload bytes (0/undefined = unlimited). */
  maxUncommittedBytes?: number;
  /** Payload bytes of committed entries per Ready (at least one entry). Default 64 MiB. */
  maxCommittedBytesPerReady?: number;
  /** Index the driver's state machine has applied (restart); committed entries after it are re-delivered. */
  applied?: number;
}

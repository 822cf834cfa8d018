import { bugsOf, type RaftBugs } from './bugs';
import { InvariantViolation, RaftUsageError } from './errors';
import { RaftLog } from './log';
import { Membership } from './membership';
import { Progress } from './progress';
import type { ConfState, Message, NodeId, RaftConfig, Role } from './types';

const DEFAULT_MAX_COMMITTED_BYTES_PER_READY = 64 * 1024 * 1024;

/** RaftConfig with every default filled in and every bound checked. */
export interface ResolvedConfig extends Required<Omit<RaftConfig, 'applied' | 'storage'>> {
  /** Ticks a leader waits for a snapshot to be acknowledged before assuming it lost and probing again. */
  snapshotRetryTicks: number;
}

function resolveConfig(c: RaftConfig): ResolvedConfig {
  const positiveInt = (name: string, v: number) => {
    if (!Number.isSafeInteger(v) || v < 1) throw new RaftUsageError(`${name} must be a positive integer, got ${v}`);
  };
  if (typeof c.id !== 'string' || c.id.length === 0) throw new RaftUsageError('id must be a non-empty string');
  positiveInt('electionTicks', c.electionTicks);
  positiveInt('heartbeatTicks', c.heartbeatTicks);
  if (c.heartbeatTicks >= c.electionTicks) {
    throw new RaftUsageError(`heartbeatTicks (${c.heartbeatTicks}) must be < electionTicks (${c.electionTicks})`);
  }
  positiveInt('maxSizePerMsgBytes', c.maxSizePerMsgBytes);
  positiveInt('maxInflightMsgs', c.maxInflightMsgs);
  positiveInt('maxInflightBytes', c.maxInflightBytes);
  if (typeof c.random !== 'function') throw new RaftUsageError('random must be a function');
  const maxUncommittedBytes = c.maxUncommittedBytes ?? 0;
  if (!Number.isSafeInteger(maxUncommittedBytes) || maxUncommittedBytes < 0) {
    throw new RaftUsageError('maxUncommittedBytes must be a non-negative integer');
  }
  const maxCommittedBytesPerReady = c.maxCommittedBytesPerReady ?? DEFAULT_MAX_COMMITTED_BYTES_PER_READY;
  positiveInt('maxCommittedBytesPerReady', maxCommittedBytesPerReady);
  return {
    id: c.id,
    electionTicks: c.electionTicks,
    heartbeatTicks: c.heartbeatTicks,
    random: c.random,
    preVote: c.preVote,
    checkQuorum: c.checkQuorum,
    maxSizePerMsgBytes: c.maxSizePerMsgBytes,
    maxInflightMsgs: c.maxInflightMsgs,
    maxInflightBytes: c.maxInflightBytes,
    maxUncommittedBytes,
    maxCommittedBytesPerReady,
    snapshotRetryTicks: 2 * c.electionTicks,
  };
}

/**
 * Everything one Raft node knows, shared by the concern modules (election, replication,
 * transfer, reconfiguration). Only RaftNode (node.ts) is public.
 */
export class RaftState {
  readonly id: NodeId;
  readonly cfg: ResolvedConfig;
  readonly bugs: Readonly<RaftBugs>;
  readonly log: RaftLog;

  term = 0;
  vote: NodeId | null = null;
  lead: NodeId | null = null;
  role: Role = 'follower';
  membership: Membership;
  /** Index of the entry (or snapshot) that produced `membership`. */
  confIndex: number;

  /** Leader only: replication progress of every member, the leader included. */
  prs: Map<NodeId, Progress> | null = null;
  /** (Pre)candidate only: responses so far. */
  readonly votes = new Map<NodeId, boolean>();

  /** Followers/candidates: ticks since the leader was last heard (or since campaigning). Leader: since the last check-quorum round. */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;

  /** Leader: member leadership is being handed to; proposals are paused meanwhile. */
  leadTransferee: NodeId | null = null;
  /** Leader: index of the last Config entry it may have in its log unapplied (one change at a time). */
  pendingConfIndex = 0;
  /**
   * Leader: it proposed its own removal. It takes no more proposals, so its log ends with the
   * removal entry: if the remaining voters never learn that entry committed, one of them can
   * still win the ex-leader's vote (its log is as up to date) and finish the change.
   */
  removingSelf = false;
  /** Leader: payload bytes appended but not yet applied (backpressure). */
  uncommittedBytes = 0;

  /** Messages for the next Ready. */
  msgs: Message[] = [];
  /** Leader: send Apps (new entries or a new commit index) to every member when the next Ready is built. */
  bcastPending = false;
  /** The storage could not provide committed entries to apply; wait for logAvailable(). */
  applyBlocked = false;

  constructor(config: RaftConfig) {
    this.cfg = resolveConfig(config);
    this.id = this.cfg.id;
    this.bugs = bugsOf(config);
    const storage = config.storage;
    const { hardState, conf } = storage.initialState();
    const snapIndex = storage.firstIndex() - 1;
    const applied = Math.max(config.applied ?? 0, snapIndex);
    // Entries the state machine applied were committed, even if the persisted commit lags behind.
    const commit = Math.max(hardState.commit, applied);
    if (commit > storage.lastIndex()) {
      throw new InvariantViolation(`persisted commit ${commit} beyond last index ${storage.lastIndex()}`);
    }
    this.log = new RaftLog(storage, commit, applied);
    // A node accepts entries only from a leader of its current term: its term is at least its last entry's.
    if (hardState.term < this.log.lastTerm()) {
      throw new InvariantViolation(`persisted term ${hardState.term} below last log term ${this.log.lastTerm()}`);
    }
    this.term = hardState.term;
    // The persisted vote must survive restarts, or a node could vote twice in one term.
    this.vote = this.bugs.forgetVoteOnRestart ? null : hardState.vote;
    this.membership = new Membership(conf);
    this.confIndex = applied;
    this.becomeFollower(this.term, null);
  }

  send(m: Message): void {
    this.msgs.push(m);
  }

  /** A voter in its own configuration: the only kind of node that may campaign. */
  promotable(): boolean {
    return this.membership.isVoter(this.id);
  }

  resetRandomizedElectionTimeout(): void {
    // [E, 2E): spreads candidates apart so one usually wins before the others time out.
    const r = this.cfg.random();
    this.randomizedElectionTimeout = this.cfg.electionTicks + Math.floor(r * this.cfg.electionTicks);
  }

  /** Enter `term` (never backwards) and forget everything role-specific. */
  reset(term: number): void {
    if (term < this.term) throw new InvariantViolation(`term going backwards: ${this.term} → ${term}`);
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.lead = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.votes.clear();
    this.prs = null;
    this.pendingConfIndex = 0;
    this.removingSelf = false;
    this.uncommittedBytes = 0;
    this.bcastPending = false;
  }

  becomeFollower(term: number, lead: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
  }

  /** Replace the configuration (from an applied Config entry or an installed snapshot). */
  setMembership(conf: ConfState, index: number): void {
    this.membership = new Membership(conf);
    this.confIndex = index;
  }

  newProgress(id: NodeId, next: number): Progress {
    return new Progress(next, !this.membership.isVoter(id), this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
  }
}

import { admitTerm, handleVoteRequest, handleVoteResponse, tickElection } from './election';
import { NotLeaderError, ProposalsPausedError, RaftUsageError, TooManyUncommittedError } from './errors';
import { entryBytes } from './log';
import type { ConfChange } from './membership';
import { ProgressState } from './progress';
import { applyConfEntry, proposeConfChange } from './reconfiguration';
import {
  appendEntries,
  bcastAppend,
  bcastHeartbeat,
  handleAppend,
  handleAppendResponse,
  handleHeartbeat,
  handleHeartbeatResponse,
  handleSnapshot,
  maybeCommit,
  tickSnapshotRetries,
} from './replication';
import { RaftState } from './state';
import { abortTransfer, handleTimeoutNow, maybeFinishTransfer, transferLeadership } from './transfer';
import {
  EntryType,
  MessageType,
  type ConfState,
  type HardState,
  type Message,
  type NodeId,
  type ProgressStatus,
  type RaftConfig,
  type Ready,
  type Role,
  type SoftState,
  type Status,
} from './types';

/**
 * One Raft replica's consensus state machine. No I/O, no clock, no randomness of its own:
 * inputs are tick(), step(), propose(), transferLeadership(), changeMembership(); the output is
 * a Ready (see types.ts for how to process it). Deterministic given its inputs and `random`.
 *
 * Persistence contract (the durability rules rest on it):
 *  - Ready.messages are sent only after the Ready's snapshot, entries and hard state are durable.
 *    Votes and AppResps for a Ready's entries are in *that* Ready's messages; so is everything
 *    else that depends on them.
 *  - The leader counts its own entries towards commit only at advance() of the Ready that
 *    carried them: an acknowledged write was fsynced by a quorum that includes the leader.
 *  - Committed entries may be in the same Ready as their persistence (followers): apply after
 *    persisting.
 */
export class RaftNode {
  private readonly s: RaftState;
  /** The Ready handed out and not yet advanced (one at a time). */
  private outstanding: Ready | null = null;
  /** Hard state as of the last Ready handed out (or as loaded). */
  private prevHard: HardState;
  /** Hard state as of the last Ready advanced (or as loaded): what the driver has made durable. */
  private durableHard: HardState;
  private prevSoft: SoftState;

  constructor(config: RaftConfig) {
    this.s = new RaftState(config);
    this.prevHard = config.storage.initialState().hardState;
    this.durableHard = this.prevHard;
    this.prevSoft = { leader: null, role: 'follower' };
  }

  // ---- cheap accessors ----

  get id(): NodeId {
    return this.s.id;
  }
  get term(): number {
    return this.s.term;
  }
  get role(): Role {
    return this.s.role;
  }
  get leader(): NodeId | null {
    return this.s.lead;
  }
  get commit(): number {
    return this.s.log.committed;
  }
  get applied(): number {
    return this.s.log.applied;
  }
  get lastIndex(): number {
    return this.s.log.lastIndex();
  }
  /** The configuration in effect (as of `applied`). Do not mutate. */
  get conf(): Readonly<ConfState> {
    return this.s.membership.conf;
  }

  // ---- inputs ----

  /** One unit of logical time (the driver calls it every tick interval, e.g. 10 ms). */
  tick(): void {
    if (this.s.role === 'leader') this.tickLeader();
    else tickElection(this.s);
  }

  private tickLeader(): void {
    const s = this.s;
    s.heartbeatElapsed++;
    s.electionElapsed++;
    if (s.electionElapsed >= s.cfg.electionTicks) {
      s.electionElapsed = 0;
      if (s.cfg.checkQuorum) {
        const prs = s.prs!;
        const active = s.membership.hasQuorum((id) => id === s.id || prs.get(id)?.recentActive === true);
        for (const [id, pr] of prs) if (id !== s.id) pr.recentActive = false;
        if (!active) {
          // Check-quorum: no contact with a quorum for an election timeout. Step down rather
          // than keep accepting writes that cannot commit (and let the majority side elect).
          s.becomeFollower(s.term, null);
          return;
        }
      }
      // A transfer that did not complete within an election timeout is abandoned.
      if (s.leadTransferee !== null) abortTransfer(s);
    }
    tickSnapshotRetries(s);
    if (s.heartbeatElapsed >= s.cfg.heartbeatTicks) {
      s.heartbeatElapsed = 0;
      bcastHeartbeat(s);
    }
  }

  /** A message from a peer (already decoded and validated by codec.ts if it came off the wire). */
  step(m: Message): void {
    const s = this.s;
    if (m.to !== s.id || m.from === s.id) return; // misrouted
    if (!admitTerm(s, m)) return;
    if (m.type === MessageType.PreVote || m.type === MessageType.Vote) {
      handleVoteRequest(s, m);
      return;
    }
    switch (s.role) {
      case 'leader':
        if (m.type === MessageType.AppResp) {
          handleAppendResponse(s, m);
          maybeFinishTransfer(s, m.from);
        } else if (m.type === MessageType.HeartbeatResp) {
          handleHeartbeatResponse(s, m);
        }
        // App/Heartbeat/Snap of our own term cannot come from anyone else: one leader per term.
        return;
      case 'candidate':
      case 'precandidate':
        if (m.type === MessageType.PreVoteResp || m.type === MessageType.VoteResp) {
          handleVoteResponse(s, m);
          return;
        }
        if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
          // Someone won this term: follow it.
          s.becomeFollower(s.term, m.from);
          this.stepFollower(m);
        }
        return;
      case 'follower':
        this.stepFollower(m);
        return;
    }
  }

  private stepFollower(m: Message): void {
    const s = this.s;
    switch (m.type) {
      case MessageType.App:
        s.electionElapsed = 0;
        s.lead = m.from;
        handleAppend(s, m);
        return;
      case MessageType.Heartbeat:
        s.electionElapsed = 0;
        s.lead = m.from;
        handleHeartbeat(s, m);
        return;
      case MessageType.Snap:
        s.electionElapsed = 0;
        s.lead = m.from;
        handleSnapshot(s, m);
        return;
      case MessageType.TimeoutNow:
        handleTimeoutNow(s);
        return;
      default:
        return;
    }
  }

  /**
   * Leader: append client data. Returns the assigned log indexes (entries of the current
   * `term`). Throws NotLeaderError, ProposalsPausedError or TooManyUncommittedError, in which
   * case nothing was appended. Acknowledge a proposal only once its entry (same index and term)
   * comes back in Ready.committed.
   */
  propose(data: Uint8Array | Uint8Array[]): number[] {
    const s = this.s;
    if (s.role !== 'leader') throw new NotLeaderError(s.lead);
    if (s.leadTransferee !== null) throw new ProposalsPausedError('transfer', s.leadTransferee);
    if (s.removingSelf) throw new ProposalsPausedError('removal', null);
    const list = data instanceof Uint8Array ? [data] : data;
    if (list.length === 0) return [];
    let bytes = 0;
    for (const d of list) bytes += d.length;
    const max = s.cfg.maxUncommittedBytes;
    // Backpressure; a single proposal larger than the limit still passes when nothing is pending.
    if (max > 0 && s.uncommittedBytes > 0 && s.uncommittedBytes + bytes > max) {
      throw new TooManyUncommittedError(s.uncommittedBytes, max);
    }
    s.uncommittedBytes += bytes;
    const items = new Array<{ type: EntryType; data: Uint8Array }>(list.length);
    const normal = EntryType.Normal;
    for (let i = 0; i < list.length; i++) items[i] = { type: normal, data: list[i] };
    const first = appendEntries(s, items);
    const indexes = new Array<number>(list.length);
    for (let i = 0; i < list.length; i++) indexes[i] = first + i;
    return indexes;
  }

  /** Leader: hand leadership to voter `to`. Proposals are refused until it completes or aborts. */
  transferLeadership(to: NodeId): void {
    transferLeadership(this.s, to);
  }

  /**
   * Leader: propose a single-server membership change. Returns the Config entry's index; the
   * change takes effect on each node when that entry is applied. Throws NotLeaderError,
   * ProposalsPausedError or ConfChangeRefusedError (pending change, no commit in this term yet,
   * or a change that does not apply).
   */
  changeMembership(change: ConfChange): number {
    return proposeConfChange(this.s, change);
  }

  /** The driver's storage can now provide entries/snapshots it answered null for. */
  logAvailable(): void {
    const s = this.s;
    s.applyBlocked = false;
    if (s.role === 'leader') s.bcastPending = true;
  }

  /** Driver: the transport failed to deliver a snapshot to `to` (or succeeded). */
  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.s.role === 'leader' ? this.s.prs!.get(to) : undefined;
    if (pr === undefined || pr.state !== ProgressState.Snapshot) return;
    if (!ok) pr.pendingSnapshot = 0;
    // Either way wait for the follower's answer in probe state.
    pr.becomeProbe();
  }

  /** Driver: `to` is unreachable; stop streaming to it optimistically. */
  reportUnreachable(to: NodeId): void {
    const pr = this.s.role === 'leader' ? this.s.prs!.get(to) : undefined;
    if (pr !== undefined && pr.state === ProgressState.Replicate) pr.becomeProbe();
  }

  /**
   * Hint that the driver compacted its log up to `index`. The core keeps no cache of persisted
   * entries, so there is nothing to drop; it checks the driver never compacts unapplied entries.
   */
  compact(index: number): void {
    if (index > this.s.log.applied) {
      throw new RaftUsageError(`compact(${index}) beyond applied ${this.s.log.applied}`);
    }
  }

  // ---- output ----

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const s = this.s;
    return (
      s.msgs.length > 0 ||
      s.bcastPending ||
      s.log.hasUnstableEntries() ||
      s.log.unstableSnapshot() !== null ||
      s.term !== this.prevHard.term ||
      s.vote !== this.prevHard.vote ||
      s.log.committed !== this.prevHard.commit ||
      s.role !== this.prevSoft.role ||
      s.lead !== this.prevSoft.leader ||
      (!s.applyBlocked && s.log.hasNextCommitted())
    );
  }

  /** The next batch of work. Call advance(ready) when it is processed; no other ready() before that. */
  ready(): Ready {
    if (this.outstanding !== null) throw new RaftUsageError('ready() called again before advance()');
    const s = this.s;
    if (s.bcastPending) {
      // Batching: every proposal and commit advance since the last Ready goes out as one App
      // per member (more when pipelining a backlog).
      s.bcastPending = false;
      if (s.role === 'leader') bcastAppend(s);
    }
    const rd: Ready = { entries: s.log.unstableEntries(), messages: s.msgs, committed: [], mustSync: false };
    s.msgs = [];
    const snap = s.log.unstableSnapshot();
    if (snap !== null) rd.snapshot = snap;
    const prev = this.prevHard;
    const termOrVoteChanged = s.term !== prev.term || s.vote !== prev.vote;
    if (termOrVoteChanged || s.log.committed !== prev.commit) {
      rd.hardState = { term: s.term, vote: s.vote, commit: s.log.committed };
      this.prevHard = rd.hardState;
    }
    if (s.role !== this.prevSoft.role || s.lead !== this.prevSoft.leader) {
      rd.softState = { leader: s.lead, role: s.role };
      this.prevSoft = rd.softState;
    }
    if (!s.applyBlocked) {
      const committed = s.log.nextCommitted(s.cfg.maxCommittedBytesPerReady);
      if (committed === null) s.applyBlocked = true;
      else rd.committed = committed;
    }
    // Entries, a snapshot, a new term or vote must be fsynced before the messages that promise
    // them go out. A commit-index-only change need not: it can be re-learned after a crash.
    rd.mustSync = (rd.entries.length > 0 && !s.bugs.ackBeforePersist) || rd.snapshot !== undefined || termOrVoteChanged;
    this.outstanding = rd;
    return rd;
  }

  /**
   * Messages that may leave now, while a Ready's write is still in progress: heartbeats, their
   * answers and a leader's appends, when the term and vote they carry are already durable. They
   * promise nothing about this node's disk that is not on it: a heartbeat answer says "I follow
   * you in this term" (durable), an append asks, and the leader counts its own copy only at
   * advance(). Everything else (votes, append answers for unsynced entries, anything in a new
   * term) stays for the next Ready. The driver sends these at once, so a long fsync or a large
   * apply never holds a heartbeat or its answer back past an election timeout.
   */
  takeUrgentMessages(): Message[] {
    const s = this.s;
    if (s.msgs.length === 0) return [];
    // A term or vote not yet persisted: any message in it could be answered twice after a crash.
    if (s.term !== this.durableHard.term || s.vote !== this.durableHard.vote) return [];
    // A leader's append may carry only entries already on their way to its disk (durable, or in
    // the Ready being written): one proposed since must not commit before the leader writes it.
    const out = this.outstanding;
    const handedOut =
      out !== null && out.entries.length > 0 ? out.entries[out.entries.length - 1].index : s.log.persistedIndex();
    const urgent: Message[] = [];
    const rest: Message[] = [];
    for (const m of s.msgs) {
      const early =
        m.type === MessageType.Heartbeat ||
        m.type === MessageType.HeartbeatResp ||
        (m.type === MessageType.App &&
          s.role === 'leader' &&
          (m.entries.length === 0 || m.entries[m.entries.length - 1].index <= handedOut));
      (early ? urgent : rest).push(m);
    }
    s.msgs = rest;
    return urgent;
  }

  /** The driver finished processing `rd` (persisted, sent, applied). */
  advance(rd: Ready): void {
    if (rd !== this.outstanding) throw new RaftUsageError('advance() with a Ready that is not the outstanding one');
    this.outstanding = null;
    if (rd.hardState !== undefined) this.durableHard = rd.hardState;
    const s = this.s;
    if (rd.snapshot !== undefined) {
      s.log.stableSnapTo(rd.snapshot.meta.index);
      if (rd.snapshot.meta.index > s.log.applied) s.log.appliedTo(rd.snapshot.meta.index);
    }
    if (rd.entries.length > 0) s.log.stableTo(rd.entries);
    if (rd.committed.length > 0) {
      let released = 0;
      const config = EntryType.Config;
      for (const e of rd.committed) {
        released += entryBytes(e);
        if (e.type === config) applyConfEntry(s, e);
      }
      const last = rd.committed[rd.committed.length - 1].index;
      // A snapshot installed since ready() may already cover these entries.
      if (last > s.log.applied) s.log.appliedTo(last);
      s.uncommittedBytes = Math.max(0, s.uncommittedBytes - released);
    }
    if (s.role === 'leader' && rd.entries.length > 0) {
      // Only now may the leader count its own copy: an acknowledged write must have been
      // fsynced by a quorum, and the leader is part of that quorum.
      s.prs!.get(s.id)?.maybeUpdate(s.log.persistedIndex());
      if (maybeCommit(s)) s.bcastPending = true;
    }
  }

  status(): Status {
    const s = this.s;
    let progress: Record<NodeId, ProgressStatus> | undefined;
    if (s.role === 'leader') {
      progress = {};
      for (const [id, pr] of s.prs!) progress[id] = pr.status();
    }
    return {
      id: s.id,
      term: s.term,
      vote: s.vote,
      role: s.role,
      leader: s.lead,
      commit: s.log.committed,
      applied: s.log.applied,
      firstIndex: s.log.firstIndex(),
      lastIndex: s.log.lastIndex(),
      conf: { voters: [...s.membership.conf.voters], learners: [...s.membership.conf.learners] },
      progress,
      leadTransferee: s.leadTransferee,
      uncommittedBytes: s.uncommittedBytes,
    };
  }
}

import { InvariantViolation } from './errors';
import { appendEntries } from './replication';
import type { RaftState } from './state';
import { EntryType, MessageType, type Message, type VoteRequest, type VoteResponse } from './types';

/**
 * Elections: timeouts, pre-vote, votes, leader leases (check-quorum), role transitions, and the
 * term rules every incoming message passes first.
 */

const EMPTY = new Uint8Array(0);

/** Follower / (pre)candidate tick: campaign once no leader was heard for the randomized timeout. */
export function tickElection(s: RaftState): void {
  s.electionElapsed++;
  if (s.promotable() && s.electionElapsed >= s.randomizedElectionTimeout) {
    s.electionElapsed = 0;
    hup(s, false);
  }
}

/** Start an election if this node may: a voter, not leading, its configuration up to date. */
export function hup(s: RaftState, transfer: boolean): void {
  if (s.role === 'leader' || !s.promotable()) return;
  // A committed but unapplied configuration change means our view of who votes may be stale;
  // campaigning on it could count the wrong majority. Apply first (etcd-io/raft does the same).
  if (hasUnappliedConfChange(s)) return;
  if (s.cfg.preVote && !transfer) campaign(s, 'pre', false);
  else campaign(s, 'real', transfer);
}

function hasUnappliedConfChange(s: RaftState): boolean {
  const log = s.log;
  if (log.committed <= log.applied) return false;
  if (log.unstableSnapshot() !== null) return true;
  const ents = log.slice(log.applied + 1, log.committed + 1, Number.MAX_SAFE_INTEGER);
  if (ents === null) return true; // cannot tell right now: do not campaign on a guess
  return ents.some((e) => e.type === EntryType.Config);
}

function campaign(s: RaftState, kind: 'pre' | 'real', transfer: boolean): void {
  let type: MessageType.PreVote | MessageType.Vote;
  let voteTerm: number;
  if (kind === 'pre') {
    becomePreCandidate(s);
    type = MessageType.PreVote;
    // Ask for the term we would campaign in, without entering it: a node that cannot win never
    // bumps the cluster's term.
    voteTerm = s.term + 1;
  } else {
    becomeCandidate(s);
    type = MessageType.Vote;
    voteTerm = s.term;
  }
  // Our own vote; a real candidate's is persisted (Ready.hardState) before any Vote leaves.
  if (recordVote(s, s.id, true) === 'won') {
    if (kind === 'pre') campaign(s, 'real', transfer);
    else becomeLeader(s);
    return;
  }
  const lastIndex = s.log.lastIndex();
  const lastTerm = s.log.lastTerm();
  for (const id of s.membership.voters) {
    if (id === s.id) continue;
    const m: VoteRequest = { type, from: s.id, to: id, term: voteTerm, lastIndex, lastTerm, transfer };
    s.send(m);
  }
}

function recordVote(s: RaftState, from: string, granted: boolean): 'won' | 'lost' | 'pending' {
  if (!s.votes.has(from)) s.votes.set(from, granted);
  return s.membership.voteResult(s.votes);
}

function becomePreCandidate(s: RaftState): void {
  if (s.role === 'leader') throw new InvariantViolation('leader cannot become pre-candidate');
  // Term and vote unchanged: a pre-candidate has promised nothing to anyone.
  s.votes.clear();
  s.lead = null;
  s.role = 'precandidate';
}

function becomeCandidate(s: RaftState): void {
  if (s.role === 'leader') throw new InvariantViolation('leader cannot become candidate');
  s.reset(s.term + 1);
  s.vote = s.id;
  s.role = 'candidate';
}

export function becomeLeader(s: RaftState): void {
  if (s.role !== 'candidate') throw new InvariantViolation(`${s.role} cannot become leader`);
  s.reset(s.term);
  s.role = 'leader';
  s.lead = s.id;
  const next = s.log.lastIndex() + 1;
  s.prs = new Map();
  for (const id of s.membership.members()) {
    const pr = s.newProgress(id, next);
    pr.recentActive = id === s.id;
    s.prs.set(id, pr);
  }
  const self = s.prs.get(s.id)!;
  // Count only what is durable on our own disk.
  self.maybeUpdate(s.log.persistedIndex());
  self.becomeReplicate();
  // Our log may hold a Config entry we have not applied yet: no new change until it is.
  s.pendingConfIndex = s.log.lastIndex();
  // A no-op of our term: committing it commits every earlier entry (we may not count those).
  appendEntries(s, [{ type: EntryType.NoOp, data: EMPTY }]);
}

/**
 * The term rules, applied to every message before anything else. Returns false if the message
 * must not be processed further.
 */
export function admitTerm(s: RaftState, m: Message): boolean {
  if (m.term > s.term) {
    if (m.type === MessageType.PreVote || m.type === MessageType.Vote) {
      // Leader lease (check-quorum): we heard a leader within the election timeout, so it is
      // alive; a candidate must not depose it (it is likely partitioned, or removed). A
      // campaign started by TimeoutNow is the leader's own wish and passes.
      const inLease = s.cfg.checkQuorum && s.lead !== null && s.electionElapsed < s.cfg.electionTicks;
      if (inLease && !m.transfer) return false;
    }
    if (m.type === MessageType.PreVote) {
      // A pre-vote never changes our term.
    } else if (m.type === MessageType.PreVoteResp && !m.reject) {
      // A granted pre-vote carries the term we asked about, which is not ours yet.
    } else {
      const fromLeader = m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
      s.becomeFollower(m.term, fromLeader ? m.from : null);
    }
    return true;
  }
  if (m.term < s.term) {
    if ((s.cfg.checkQuorum || s.cfg.preVote) && (m.type === MessageType.App || m.type === MessageType.Heartbeat)) {
      // A stale leader may never hear our term from a vote request (leases and pre-vote
      // suppress them): tell it, so it steps down instead of lingering.
      s.send({
        type: MessageType.AppResp,
        from: s.id,
        to: m.from,
        term: s.term,
        index: 0,
        reject: false,
        hintIndex: 0,
        hintTerm: 0,
        epoch: 0,
      });
    } else if (m.type === MessageType.PreVote) {
      // Tell the pre-candidate our term so it stops asking for a term already past.
      const r: VoteResponse = { type: MessageType.PreVoteResp, from: s.id, to: m.from, term: s.term, reject: true };
      s.send(r);
    }
    return false;
  }
  return true;
}

/** Any role: a (pre-)vote request at or above our term (after admitTerm). */
export function handleVoteRequest(s: RaftState, m: VoteRequest): void {
  const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
  // One vote per term: we may repeat it for the same candidate, give it if we have not voted and
  // know no leader, or grant a pre-vote for a future term (which promises nothing).
  const canVote =
    s.vote === m.from || (s.vote === null && s.lead === null) || (m.type === MessageType.PreVote && m.term > s.term);
  if (canVote && s.log.isUpToDate(m.lastIndex, m.lastTerm)) {
    const r: VoteResponse = { type: respType, from: s.id, to: m.from, term: m.term, reject: false };
    s.send(r);
    if (m.type === MessageType.Vote) {
      // The vote is persisted (Ready.hardState) before this response is sent: persist term+vote
      // before replying, otherwise a restarted node could vote twice in one term.
      s.electionElapsed = 0;
      s.vote = m.from;
    }
  } else {
    const r: VoteResponse = { type: respType, from: s.id, to: m.from, term: s.term, reject: true };
    s.send(r);
  }
}

/** (Pre)candidate: a response to our (pre-)vote request. */
export function handleVoteResponse(s: RaftState, m: VoteResponse): void {
  let result: 'won' | 'lost' | 'pending';
  if (s.role === 'precandidate' && m.type === MessageType.PreVoteResp) {
    // Grants carry the term we asked about; rejections our current term (higher ones made us follower).
    if (m.term !== (m.reject ? s.term : s.term + 1)) return;
    result = recordVote(s, m.from, !m.reject);
    if (result === 'won') campaign(s, 'real', false);
  } else if (s.role === 'candidate' && m.type === MessageType.VoteResp) {
    if (m.term !== s.term) return;
    result = recordVote(s, m.from, !m.reject);
    if (result === 'won') becomeLeader(s);
  } else {
    return;
  }
  if (result === 'lost') s.becomeFollower(s.term, null);
}

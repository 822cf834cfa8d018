import { NotLeaderError, TransferRefusedError } from './errors';
import { hup } from './election';
import { sendAppends } from './replication';
import type { RaftState } from './state';
import { MessageType, type NodeId, type TimeoutNowRequest } from './types';

/**
 * Leadership transfer (Raft thesis §3.10): the leader pauses proposals, brings the target's log
 * up to date, then tells it to campaign at once (TimeoutNow). Aborted if not done within an
 * election timeout (the leader's tick), or if the target leaves the configuration.
 */

export function transferLeadership(s: RaftState, to: NodeId): void {
  if (s.role !== 'leader') throw new NotLeaderError(s.lead);
  if (to === s.id) {
    // Already the leader: "transfer to self" cancels a transfer in progress.
    abortTransfer(s);
    return;
  }
  const pr = s.prs!.get(to);
  if (pr === undefined || pr.isLearner) throw new TransferRefusedError(`${to} is not a voter`);
  if (s.leadTransferee === to) return;
  s.leadTransferee = to;
  // The transfer has one election timeout to complete (measured by the leader's electionElapsed).
  s.electionElapsed = 0;
  if (pr.match === s.log.lastIndex()) sendTimeoutNow(s, to);
  else sendAppends(s, to, true);
}

export function abortTransfer(s: RaftState): void {
  s.leadTransferee = null;
}

/** Leader: called whenever `to`'s match advanced; fires TimeoutNow once it holds our whole log. */
export function maybeFinishTransfer(s: RaftState, to: NodeId): void {
  if (s.leadTransferee !== to) return;
  const pr = s.prs!.get(to);
  if (pr !== undefined && pr.match === s.log.lastIndex()) sendTimeoutNow(s, to);
}

function sendTimeoutNow(s: RaftState, to: NodeId): void {
  const m: TimeoutNowRequest = { type: MessageType.TimeoutNow, from: s.id, to, term: s.term };
  s.send(m);
}

/** Follower: the leader asks us to campaign now, skipping pre-vote; voters waive their lease. */
export function handleTimeoutNow(s: RaftState): void {
  hup(s, true);
}

import { decodeConfChange, encodeConfChange } from './codec';
import { ConfChangeRefusedError, InvariantViolation, NotLeaderError, ProposalsPausedError } from './errors';
import { applyConfChange, validateConfChange, type ConfChange } from './membership';
import { appendEntries, bcastHeartbeat, maybeCommit } from './replication';
import type { RaftState } from './state';
import { abortTransfer } from './transfer';
import { EntryType, type ConfState, type Entry } from './types';

/**
 * Membership changes on a live node: proposing one (leader) and applying a committed one (every
 * node, at advance() of the Ready that delivered it). The pure rules are in membership.ts.
 */

/** Leader: propose a single-server change. Returns the Config entry's index. */
export function proposeConfChange(s: RaftState, cc: ConfChange): number {
  if (s.role !== 'leader') throw new NotLeaderError(s.lead);
  if (s.leadTransferee !== null) throw new ProposalsPausedError('transfer', s.leadTransferee);
  if (s.removingSelf) throw new ProposalsPausedError('removal', null);
  // One change at a time: every configuration in flight differs from the applied one by at most
  // one server, so all their majorities intersect.
  if (s.pendingConfIndex > s.log.applied) {
    throw new ConfChangeRefusedError(
      'pending',
      `configuration entry ${s.pendingConfIndex} not applied yet (applied ${s.log.applied})`,
    );
  }
  // Only after committing an entry of our own term: otherwise a change proposed by an earlier
  // leader, still unknown to us, could combine with ours into two disjoint majorities.
  if (s.log.term(s.log.committed) !== s.term) {
    throw new ConfChangeRefusedError('noCurrentTermCommit', `no entry of term ${s.term} committed yet`);
  }
  const invalid = validateConfChange(s.membership.conf, cc);
  if (invalid !== null) throw new ConfChangeRefusedError(invalid.reason, invalid.detail);
  const index = appendEntries(s, [{ type: EntryType.Config, data: encodeConfChange(cc) }]);
  s.pendingConfIndex = index;
  if (cc.type === 'remove' && cc.node === s.id) s.removingSelf = true;
  return index;
}

/** Any node: a committed Config entry is being applied. */
export function applyConfEntry(s: RaftState, e: Entry): void {
  // Already reflected (a snapshot newer than this entry was installed meanwhile).
  if (e.index <= s.confIndex) return;
  let cc: ConfChange;
  try {
    cc = decodeConfChange(e.data);
  } catch (err) {
    // Only the core writes Config entries: one that does not decode is corruption.
    throw new InvariantViolation(`committed config entry ${e.index} does not decode: ${(err as Error).message}`);
  }
  setConf(s, applyConfChange(s.membership.conf, cc), e.index);
}

function setConf(s: RaftState, conf: ConfState, index: number): void {
  s.setMembership(conf, index);
  if (s.role !== 'leader') return;
  const prs = s.prs!;
  const next = s.log.lastIndex() + 1;
  for (const id of s.membership.members()) {
    const pr = prs.get(id);
    if (pr === undefined) prs.set(id, s.newProgress(id, next));
    else pr.isLearner = !s.membership.isVoter(id);
  }
  for (const id of [...prs.keys()]) if (!s.membership.isMember(id)) prs.delete(id);
  if (!s.membership.isVoter(s.id)) {
    // A removed leader steps down; the remaining voters elect a leader among themselves. First
    // tell them the removal is committed (heartbeats carry commit and ignore flow control):
    // until they apply it they count us in their quorum, and we are about to go away.
    bcastHeartbeat(s);
    s.becomeFollower(s.term, null);
    return;
  }
  if (s.leadTransferee !== null && !s.membership.isVoter(s.leadTransferee)) abortTransfer(s);
  // The quorum changed (e.g. a lagging voter left): something may be committed now.
  maybeCommit(s);
  s.bcastPending = true;
}

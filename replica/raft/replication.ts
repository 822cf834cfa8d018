import { InvariantViolation } from './errors';
import { entryBytes } from './log';
import { ProgressState, type Progress } from './progress';
import type { RaftState } from './state';
import {
  MessageType,
  type AppendRequest,
  type AppendResponse,
  type Entry,
  type EntryType,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type NodeId,
  type SnapshotRequest,
} from './types';

/**
 * Log replication: the leader's side (append, send, track progress, commit) and the follower's
 * side (accept or reject, acknowledge). Acknowledgements leave in Ready.messages, which the
 * driver sends only after persisting that Ready: an AppResp is a promise that the entries are
 * durable.
 */

/** Leader: append new entries of its term to its own log. Returns the first new index. */
export function appendEntries(s: RaftState, items: { type: EntryType; data: Uint8Array }[]): number {
  const first = s.log.lastIndex() + 1;
  const ents: Entry[] = new Array<Entry>(items.length);
  for (let i = 0; i < items.length; i++) {
    ents[i] = { index: first + i, term: s.term, type: items[i].type, data: items[i].data };
  }
  s.log.truncateAndAppend(ents);
  // The leader's own progress advances only at advance(), once these entries are persisted.
  s.bcastPending = true;
  return first;
}

/**
 * Leader: send `to` the next App it needs, if its flow control allows. Returns whether a
 * message was sent. With `sendIfEmpty`, an App without entries is sent too (to carry the commit
 * index or probe the follower's log).
 */
export function sendAppend(s: RaftState, to: NodeId, sendIfEmpty: boolean): boolean {
  const pr = s.prs!.get(to);
  if (pr === undefined || pr.isPaused()) return false;
  const prevIndex = pr.next - 1;
  const prevTerm = s.log.term(prevIndex);
  // What the follower needs next was compacted away: only a snapshot can bring it forward.
  if (prevTerm === undefined || pr.next < s.log.firstIndex()) return sendSnapshot(s, to, pr);
  let entries: Entry[] = [];
  const last = s.log.lastIndex();
  if (pr.next <= last) {
    const ents = s.log.slice(pr.next, last + 1, s.cfg.maxSizePerMsgBytes);
    if (ents === null) {
      // Not in the driver's cache right now: never assume, try again on logAvailable().
      pr.waitingForLog = true;
      return false;
    }
    entries = ents;
  }
  if (entries.length === 0 && !sendIfEmpty) return false;
  pr.waitingForLog = false;
  const m: AppendRequest = {
    type: MessageType.App,
    from: s.id,
    to,
    term: s.term,
    prevIndex,
    prevTerm,
    entries,
    commit: s.log.committed,
    epoch: pr.epoch,
  };
  s.send(m);
  if (entries.length > 0) {
    let bytes = 0;
    for (const e of entries) bytes += entryBytes(e);
    pr.sentEntries(entries[entries.length - 1].index, bytes);
  } else if (pr.state === ProgressState.Probe) {
    pr.probeSent = true;
  }
  return true;
}

/** Leader: send `to` as much as its window allows (pipelining). */
export function sendAppends(s: RaftState, to: NodeId, sendIfEmpty: boolean): void {
  if (!sendAppend(s, to, sendIfEmpty)) return;
  while (sendAppend(s, to, false));
}

function sendSnapshot(s: RaftState, to: NodeId, pr: Progress): boolean {
  const snap = s.log.storage.snapshot();
  if (snap === null) {
    pr.waitingForLog = true;
    return false;
  }
  // The storage must never discard entries its snapshot does not cover: the follower would be stuck.
  if (snap.meta.index < s.log.firstIndex() - 1) {
    throw new InvariantViolation(`snapshot ${snap.meta.index} older than compaction point ${s.log.firstIndex() - 1}`);
  }
  pr.waitingForLog = false;
  const m: SnapshotRequest = { type: MessageType.Snap, from: s.id, to, term: s.term, snapshot: snap };
  s.send(m);
  pr.becomeSnapshot(snap.meta.index, s.cfg.snapshotRetryTicks);
  return true;
}

/** Leader: bring every member up to date (new entries and/or the commit index). */
export function bcastAppend(s: RaftState): void {
  for (const id of s.prs!.keys()) if (id !== s.id) sendAppends(s, id, true);
}

export function bcastHeartbeat(s: RaftState): void {
  for (const [id, pr] of s.prs!) {
    if (id === s.id) continue;
    // Never tell a follower to commit beyond what it is known to hold: its log past `match` may
    // still differ from ours.
    const m: HeartbeatRequest = {
      type: MessageType.Heartbeat,
      from: s.id,
      to: id,
      term: s.term,
      commit: Math.min(pr.match, s.log.committed),
    };
    s.send(m);
  }
}

/**
 * Leader: advance commit to the highest index a quorum of voters holds durably — but only if
 * that entry is from the current term (Raft §5.4.2, Figure 8: an entry of an earlier term on a
 * majority can still be overwritten by a leader that never saw it; one of our own term cannot,
 * and committing it commits everything before it).
 */
export function maybeCommit(s: RaftState): boolean {
  const prs = s.prs!;
  const mci = s.membership.committedIndex((id) => prs.get(id)?.match ?? 0);
  if (mci <= s.log.committed) return false;
  if (!s.bugs.commitPreviousTermEntries && s.log.term(mci) !== s.term) return false;
  s.log.commitTo(mci);
  return true;
}

function sendAppResp(
  s: RaftState,
  to: NodeId,
  epoch: number,
  index: number,
  reject = false,
  hintIndex = 0,
  hintTerm = 0,
): void {
  const m: AppendResponse = {
    type: MessageType.AppResp,
    from: s.id,
    to,
    term: s.term,
    index,
    reject,
    hintIndex,
    hintTerm,
    epoch,
  };
  s.send(m);
}

/** Follower: an App from the leader of our term. */
export function handleAppend(s: RaftState, m: AppendRequest): void {
  const log = s.log;
  if (m.prevIndex < log.committed && !s.bugs.truncateBelowCommit) {
    // A stale or duplicated App: everything up to our commit is settled. Say where we are.
    sendAppResp(s, m.from, m.epoch, log.committed);
    return;
  }
  if (!log.matchTerm(m.prevIndex, m.prevTerm)) {
    // Log matching fails at prevIndex: reject, with a hint that lets the leader skip a whole term.
    const hint = log.findConflictByTerm(Math.min(m.prevIndex, log.lastIndex()), m.prevTerm);
    sendAppResp(s, m.from, m.epoch, m.prevIndex, true, hint.index, hint.term);
    return;
  }
  const lastNew = m.prevIndex + m.entries.length;
  if (s.bugs.truncateBelowCommit) {
    if (m.entries.length > 0) log.truncateAndAppend(m.entries, true);
  } else {
    // Truncate only at the first real conflict: entries that already match stay, so a stale or
    // reordered App can never cut off entries we acknowledged (and the leader may have counted).
    const ci = log.findConflict(m.entries);
    if (ci !== 0) log.truncateAndAppend(m.entries.slice(ci - (m.prevIndex + 1)));
  }
  // Follower commit = min(leaderCommit, last new index): past lastNew our log may still differ
  // from the leader's.
  log.commitTo(Math.min(m.commit, lastNew));
  sendAppResp(s, m.from, m.epoch, lastNew);
}

/** Follower: a heartbeat from the leader of our term. */
export function handleHeartbeat(s: RaftState, m: HeartbeatRequest): void {
  // m.commit ≤ what the leader knows we hold (bcastHeartbeat), so it is safe to commit to it.
  s.log.commitTo(Math.min(m.commit, s.log.lastIndex()));
  const r: HeartbeatResponse = { type: MessageType.HeartbeatResp, from: s.id, to: m.from, term: s.term };
  s.send(r);
}

/** Follower: a snapshot from the leader of our term. */
export function handleSnapshot(s: RaftState, m: SnapshotRequest): void {
  const snap = m.snapshot;
  const log = s.log;
  if (snap.meta.index <= log.committed) {
    // Stale: we already hold (and may have applied) everything it covers.
    sendAppResp(s, m.from, 0, log.committed);
    return;
  }
  if (log.matchTerm(snap.meta.index, snap.meta.term)) {
    // Our log already contains the snapshot's last entry: keep the log (the suffix after it
    // too) and fast-forward commit; the entries are applied normally.
    log.commitTo(snap.meta.index);
    sendAppResp(s, m.from, 0, log.committed);
    return;
  }
  // Otherwise the whole log is replaced by the snapshot.
  log.restore(snap);
  s.setMembership(snap.meta.conf, snap.meta.index);
  sendAppResp(s, m.from, 0, log.lastIndex());
}

/** Leader: a follower answered an App (or a Snap). */
export function handleAppendResponse(s: RaftState, m: AppendResponse): void {
  const pr = s.prs!.get(m.from);
  if (pr === undefined) return;
  pr.recentActive = true;
  if (m.reject) {
    let nextProbe = m.hintIndex;
    if (m.hintTerm > 0) nextProbe = s.log.findConflictByTerm(m.hintIndex, m.hintTerm).index;
    if (pr.maybeDecrTo(m.index, nextProbe, m.epoch)) sendAppend(s, m.from, true);
    return;
  }
  // A follower cannot hold what we never had: ignore (misrouted or corrupt peer).
  if (m.index > s.log.lastIndex()) return;
  const updated = pr.maybeUpdate(m.index);
  // An answer to a probe at exactly `match` is news too: the probe found where the logs agree.
  if (!updated && !(pr.state === ProgressState.Probe && pr.match === m.index)) return;
  switch (pr.state) {
    case ProgressState.Probe:
      pr.becomeReplicate();
      break;
    case ProgressState.Snapshot:
      // The snapshot (or our log from its end) caught the follower up to where entries exist.
      if (pr.match + 1 >= s.log.firstIndex()) {
        pr.becomeProbe();
        pr.becomeReplicate();
      }
      break;
    case ProgressState.Replicate:
      pr.inflights.freeLE(m.index);
      break;
  }
  if (maybeCommit(s)) s.bcastPending = true;
  sendAppends(s, m.from, false);
}

/** Leader: a follower answered a heartbeat — it is alive; resume replication if it stalled. */
export function handleHeartbeatResponse(s: RaftState, m: HeartbeatResponse): void {
  const pr = s.prs!.get(m.from);
  if (pr === undefined) return;
  pr.recentActive = true;
  pr.probeSent = false;
  // Apps may have been lost: free a slot so the window can never stay full forever.
  if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirst();
  if (pr.match < s.log.lastIndex() || pr.waitingForLog) sendAppend(s, m.from, true);
}

/** Leader, every tick: retry snapshots that were never acknowledged. */
export function tickSnapshotRetries(s: RaftState): void {
  for (const [id, pr] of s.prs!) {
    if (pr.state !== ProgressState.Snapshot) continue;
    if (--pr.snapshotTicksLeft > 0) continue;
    pr.becomeProbe();
    sendAppend(s, id, true);
  }
}

import { InvariantViolation } from './errors';
import type { Entry, RaftStorage, Snapshot } from './types';

/** Payload bytes of an entry, the unit of every byte limit in the core. */
export function entryBytes(e: Entry): number {
  return e.data.length;
}

/**
 * The node's view of its log: the driver's storage (persisted) followed by an in-memory tail of
 * entries (and possibly a snapshot) that were handed to the driver in a Ready but whose persist
 * has not been confirmed by advance() yet, or not handed out at all.
 *
 *   storage: [firstIndex .. offset-1]   unstable: [offset .. lastIndex]
 *
 * Indexes ≥ offset are answered from the unstable tail only: storage may still hold entries there
 * that the tail has since replaced (they are overwritten by the next Ready).
 */
export class RaftLog {
  private pendingSnapshot: Snapshot | null = null;
  private offset: number;
  private unstable: Entry[] = [];
  /** Highest index known committed. Never decreases. */
  committed: number;
  /** Highest index handed to the driver to apply and confirmed by advance(). */
  applied: number;

  constructor(
    readonly storage: RaftStorage,
    committed: number,
    applied: number,
  ) {
    this.offset = storage.lastIndex() + 1;
    this.committed = committed;
    this.applied = applied;
  }

  firstIndex(): number {
    return this.pendingSnapshot !== null ? this.pendingSnapshot.meta.index + 1 : this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.offset + this.unstable.length - 1;
  }

  /** Last index known to be durable (all of it, not just the tail): what a leader may count for itself. */
  persistedIndex(): number {
    return this.pendingSnapshot !== null ? 0 : this.offset - 1;
  }

  /** Term at `index`, or undefined if compacted, beyond the log, or not known. */
  term(index: number): number | undefined {
    if (index >= this.offset) {
      const k = index - this.offset;
      return k < this.unstable.length ? this.unstable[k].term : undefined;
    }
    if (this.pendingSnapshot !== null) {
      return index === this.pendingSnapshot.meta.index ? this.pendingSnapshot.meta.term : undefined;
    }
    return this.storage.term(index);
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    if (t === undefined) throw new InvariantViolation(`term of last index ${this.lastIndex()} unknown`);
    return t;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a voter grants only to a candidate whose log is at least as up to date as its own. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myLastTerm = this.lastTerm();
    return lastTerm > myLastTerm || (lastTerm === myLastTerm && lastIndex >= this.lastIndex());
  }

  /** Index of the first entry of `ents` that is not already in the log (0 if all are). */
  findConflict(ents: Entry[]): number {
    for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (fast back-off, etcd-io/raft): every entry
   * between it and `index` has a larger term, so cannot match a log whose entry at `index` has
   * term `term`. An unknown term (compacted) stops the search with term 0 ("maybe").
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (; index > 0; index--) {
      const t = this.term(index);
      if (t === undefined) return { index, term: 0 };
      if (t <= term) return { index, term: t };
    }
    return { index: 0, term: 0 };
  }

  /**
   * Append entries that start at or below lastIndex()+1, replacing whatever the log has from
   * their first index on. Protects: nothing at or below commit is ever replaced — a committed
   * entry is on a quorum and may already be applied and acknowledged.
   */
  truncateAndAppend(ents: Entry[], allowBelowCommit = false): void {
    if (ents.length === 0) return;
    const after = ents[0].index;
    if (after <= this.committed && !allowBelowCommit) {
      throw new InvariantViolation(`truncating at ${after}, at or below commit ${this.committed}`);
    }
    if (after > this.lastIndex() + 1) {
      throw new InvariantViolation(`append at ${after} leaves a gap after ${this.lastIndex()}`);
    }
    if (after === this.offset + this.unstable.length) {
      for (const e of ents) this.unstable.push(e);
    } else if (after <= this.offset) {
      // Replaces the whole tail and some persisted entries; the next Ready overwrites them on disk.
      this.offset = after;
      this.unstable = ents.slice();
    } else {
      this.unstable = this.unstable.slice(0, after - this.offset);
      for (const e of ents) this.unstable.push(e);
    }
  }

  /**
   * Entries [lo, hi), at most `maxBytes` of payload but at least one; null if the storage cannot
   * provide them right now. Precondition: firstIndex() ≤ lo < hi ≤ lastIndex()+1.
   */
  slice(lo: number, hi: number, maxBytes: number): Entry[] | null {
    if (lo < this.firstIndex() || hi > this.lastIndex() + 1 || lo >= hi) {
      throw new InvariantViolation(`slice [${lo}, ${hi}) outside [${this.firstIndex()}, ${this.lastIndex()}]`);
    }
    let out: Entry[] = [];
    let bytes = 0;
    if (lo < this.offset) {
      const storageHi = Math.min(hi, this.offset);
      const ents = this.storage.entries(lo, storageHi, maxBytes);
      if (ents === null) return null;
      if (ents.length === 0 || ents[0].index !== lo) {
        throw new InvariantViolation(`storage returned entries from ${ents[0]?.index} for ${lo}`);
      }
      if (ents.length < storageHi - lo) return ents;
      out = ents;
      for (const e of ents) bytes += entryBytes(e);
    }
    for (let i = Math.max(lo, this.offset); i < hi; i++) {
      const e = this.unstable[i - this.offset];
      const b = entryBytes(e);
      if (out.length > 0 && bytes + b > maxBytes) break;
      bytes += b;
      out.push(e);
    }
    return out;
  }

  /** The entries to persist next (a copy: the tail keeps changing). */
  unstableEntries(): Entry[] {
    return this.unstable.slice();
  }

  hasUnstableEntries(): boolean {
    return this.unstable.length > 0;
  }

  unstableSnapshot(): Snapshot | null {
    return this.pendingSnapshot;
  }

  /**
   * The driver persisted `ents` (a Ready's entries). Mark as stable the longest prefix of them
   * that is still in the log unchanged; whatever replaced the rest since ready() stays in the
   * tail and goes out in the next Ready.
   */
  stableTo(ents: Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0].index;
    // If the tail was re-based below `first` since ready(), its new prefix is not persisted.
    if (this.offset !== first) return;
    let upTo = first - 1;
    const last = ents[ents.length - 1];
    if (this.term(last.index) === last.term) {
      upTo = last.index; // log matching: same index and term ⇒ same prefix
    } else {
      for (const e of ents) {
        if (this.term(e.index) !== e.term) break;
        upTo = e.index;
      }
    }
    if (upTo < this.offset) return;
    this.unstable = this.unstable.slice(upTo - this.offset + 1);
    this.offset = upTo + 1;
  }

  /** The driver persisted the snapshot at `index`. */
  stableSnapTo(index: number): void {
    if (this.pendingSnapshot !== null && this.pendingSnapshot.meta.index === index) this.pendingSnapshot = null;
  }

  /** Replace the whole log by a snapshot (the caller checked it is newer than commit). */
  restore(snap: Snapshot): void {
    if (snap.meta.index <= this.committed) {
      throw new InvariantViolation(`restoring snapshot ${snap.meta.index} at or below commit ${this.committed}`);
    }
    this.pendingSnapshot = snap;
    this.unstable = [];
    this.offset = snap.meta.index + 1;
    this.committed = snap.meta.index;
  }

  /** Protects: commit never decreases, and never points beyond the log. */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) {
      throw new InvariantViolation(`commit ${index} beyond last index ${this.lastIndex()}`);
    }
    this.committed = index;
  }

  /** Protects: applied never decreases and never passes commit. */
  appliedTo(index: number): void {
    if (index < this.applied || index > this.committed) {
      throw new InvariantViolation(`applied ${index} outside [${this.applied}, ${this.committed}]`);
    }
    this.applied = index;
  }

  /** Is there anything committed and not yet handed out to apply (and no snapshot to install first)? */
  hasNextCommitted(): boolean {
    return this.pendingSnapshot === null && this.committed > this.applied;
  }

  /** Committed entries after `applied`, or null if not available right now. */
  nextCommitted(maxBytes: number): Entry[] | null {
    if (!this.hasNextCommitted()) return [];
    const lo = this.applied + 1;
    if (lo < this.firstIndex()) {
      throw new InvariantViolation(`entry ${lo} to apply was compacted (first index ${this.firstIndex()})`);
    }
    return this.slice(lo, this.committed + 1, maxBytes);
  }
}

/**
 * The facade's eager picture of the log: the durable state plus every write accepted but not yet
 * written. Calls are validated against it at the door, so a bad append is refused before it
 * joins a group commit (where it would fail the whole batch, including other callers' writes).
 */
import { invariant } from './errors';
import { compactRuns, extendRuns, runTermAt, truncateRuns, type TermRun } from './term-runs';
import type { Recovered, StoredEntry, StoredHardState, StoredSnapshotMeta } from './types';

export class LogView {
  firstIndex: number;
  lastIndex: number;
  lastTerm: number;
  /** Term of firstIndex - 1. */
  prevTerm: number;
  /** [startIndex, term] runs covering [firstIndex, lastIndex]. */
  runs: TermRun[];
  hardState: StoredHardState | null;
  applied: number;

  constructor(r: Recovered) {
    this.firstIndex = r.firstIndex;
    this.lastIndex = r.lastIndex;
    this.lastTerm = r.lastTerm;
    this.prevTerm = r.prevTerm;
    this.runs = r.termRuns.map(([i, t]): TermRun => [i, t]);
    this.hardState = r.hardState;
    this.applied = r.appliedIndex;
  }

  termAt(index: number): number {
    if (index === this.firstIndex - 1) return this.prevTerm;
    invariant(index >= this.firstIndex && index <= this.lastIndex, `term of ${index} is outside the log`);
    return runTermAt(this.runs, index);
  }

  /** Check an append against Raft's log rules; throws invariant_violation (the caller's bug). */
  checkAppend(entries: StoredEntry[], hardState: StoredHardState | undefined): void {
    if (entries.length > 0) {
      const s = entries[0].index;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i];
        invariant(Number.isSafeInteger(e.index) && Number.isSafeInteger(e.term) && e.term >= 0, 'entry index/term');
        invariant(Number.isInteger(e.type) && e.type >= 0 && e.type <= 0xffffffff, `entry ${e.index}: type`);
        invariant(e.data instanceof Uint8Array, `entry ${e.index}: data must be a Uint8Array`);
        if (i > 0) {
          invariant(e.index === entries[i - 1].index + 1, `entries not contiguous at ${e.index}`);
          invariant(e.term >= entries[i - 1].term, `entry terms decrease at ${e.index}`);
        }
      }
      // Compacted entries are committed; nothing may be written below the log start.
      invariant(s >= this.firstIndex, `append at ${s} below the first index ${this.firstIndex}`);
      invariant(s <= this.lastIndex + 1, `append at ${s} leaves a gap after ${this.lastIndex}`);
      // Raft truncates only at a real conflict, which is never at or below commit: otherwise a
      // committed entry — possibly acknowledged to a client — would vanish.
      const commit = this.hardState?.commit ?? 0;
      if (s <= this.lastIndex) invariant(s > commit, `append at ${s} would truncate at or below commit ${commit}`);
      invariant(entries[0].term >= this.termAt(s - 1), `entry ${s} has a term below its predecessor`);
    }
    if (hardState) {
      const prev = this.hardState;
      invariant(Number.isSafeInteger(hardState.term) && Number.isSafeInteger(hardState.commit), 'hard state fields');
      if (prev) {
        invariant(hardState.term >= prev.term, `hard state term goes back from ${prev.term} to ${hardState.term}`);
        // One vote per term: a changed vote in the same term is exactly the double vote Raft forbids.
        if (hardState.term === prev.term && prev.vote !== null)
          invariant(hardState.vote === prev.vote, `vote changed within term ${prev.term}`);
        invariant(hardState.commit >= prev.commit, `commit goes back from ${prev.commit} to ${hardState.commit}`);
      }
    }
  }

  applyAppend(entries: StoredEntry[], hardState: StoredHardState | undefined): void {
    if (entries.length > 0) {
      truncateRuns(this.runs, entries[0].index);
      for (const e of entries) extendRuns(this.runs, e.index, e.term);
      const last = entries[entries.length - 1];
      this.lastIndex = last.index;
      this.lastTerm = last.term;
    }
    if (hardState) this.hardState = hardState;
  }

  checkApply(appliedIndex: number): void {
    invariant(Number.isSafeInteger(appliedIndex), 'applied index must be an integer');
    invariant(appliedIndex >= this.applied, `applied index goes back from ${this.applied} to ${appliedIndex}`);
    invariant(appliedIndex <= this.lastIndex, `applied index ${appliedIndex} beyond last index ${this.lastIndex}`);
  }

  checkCompact(firstIndex: number): void {
    invariant(Number.isSafeInteger(firstIndex), 'first index must be an integer');
    invariant(firstIndex <= this.lastIndex + 1, `compaction to ${firstIndex} past the log end ${this.lastIndex}`);
    invariant(firstIndex <= this.applied + 1, `compaction to ${firstIndex} past the applied index ${this.applied}`);
  }

  applyCompact(firstIndex: number): void {
    if (firstIndex <= this.firstIndex) return;
    this.prevTerm = this.termAt(firstIndex - 1);
    compactRuns(this.runs, firstIndex, this.lastIndex);
    this.firstIndex = firstIndex;
  }

  checkInstall(meta: StoredSnapshotMeta): void {
    invariant(Number.isSafeInteger(meta.index) && Number.isSafeInteger(meta.term), 'snapshot index/term');
    invariant(meta.index >= this.applied, `snapshot at ${meta.index} is behind the applied index ${this.applied}`);
  }

  applyInstall(meta: StoredSnapshotMeta): void {
    this.firstIndex = meta.index + 1;
    this.lastIndex = meta.index;
    this.lastTerm = meta.term;
    this.prevTerm = meta.term;
    this.runs = [];
    this.applied = meta.index;
    if (this.hardState && this.hardState.commit < meta.index)
      this.hardState = { ...this.hardState, commit: meta.index };
  }
}

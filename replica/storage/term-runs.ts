/**
 * The term map of a Raft log as runs: [startIndex, term] for each maximal stretch of equal
 * terms. Raft terms never decrease along the log, so a handful of runs describes millions of
 * entries. The worker persists it (one key per run start, written in the same batch as the
 * entries) so that recovery reads it instead of the log; the facade keeps the same structure
 * to validate appends. These functions are the one place the run arithmetic lives.
 */
export type TermRun = [startIndex: number, term: number];

/** Term of `index`, which must lie inside the runs (index ≥ runs[0][0]). */
export function runTermAt(runs: readonly TermRun[], index: number): number {
  let lo = 0;
  let hi = runs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (runs[mid][0] <= index) lo = mid;
    else hi = mid - 1;
  }
  return runs[lo][1];
}

/** Remove everything at index ≥ from. Returns the start indexes of the runs removed. */
export function truncateRuns(runs: TermRun[], from: number): number[] {
  const removed: number[] = [];
  while (runs.length > 0 && runs[runs.length - 1][0] >= from) removed.push(runs.pop()![0]);
  return removed;
}

/** Append entry `index` of `term` after the runs' end. Returns the new run if one started. */
export function extendRuns(runs: TermRun[], index: number, term: number): TermRun | null {
  if (runs.length > 0 && runs[runs.length - 1][1] === term) return null;
  const run: TermRun = [index, term];
  runs.push(run);
  return run;
}

/**
 * Drop everything below `firstIndex` (≤ lastIndex + 1). The run covering firstIndex is restarted
 * at firstIndex. Returns the run starts removed and the run added (if any).
 */
export function compactRuns(
  runs: TermRun[],
  firstIndex: number,
  lastIndex: number,
): { removed: number[]; added: TermRun | null } {
  const removed: number[] = [];
  if (runs.length === 0 || runs[0][0] >= firstIndex) return { removed, added: null };
  if (firstIndex > lastIndex) {
    for (const r of runs.splice(0)) removed.push(r[0]);
    return { removed, added: null };
  }
  let keep = 0;
  while (keep + 1 < runs.length && runs[keep + 1][0] <= firstIndex) keep++;
  const term = runs[keep][1];
  for (const r of runs.splice(0, keep + 1)) removed.push(r[0]);
  const added: TermRun = [firstIndex, term];
  runs.unshift(added);
  return { removed, added };
}

import { compactRuns, extendRuns, runTermAt, truncateRuns, type TermRun } from '../../../../replica/storage/term-runs';

describe('term runs', () => {
  const sample = (): TermRun[] => [
    [1, 1],
    [6, 2],
    [9, 5],
  ];

  it('answers the term of any index inside the runs', () => {
    const runs = sample();
    expect([1, 5, 6, 8, 9, 100].map((i) => runTermAt(runs, i))).toEqual([1, 1, 2, 2, 5, 5]);
  });

  it('truncates runs starting at or after an index and extends only on a new term', () => {
    const runs = sample();
    expect(truncateRuns(runs, 6)).toEqual([9, 6]);
    expect(runs).toEqual([[1, 1]]);
    expect(extendRuns(runs, 6, 1)).toBeNull();
    expect(extendRuns(runs, 7, 3)).toEqual([7, 3]);
    expect(runs).toEqual([
      [1, 1],
      [7, 3],
    ]);
  });

  it('compacts by restarting the covering run at the new first index', () => {
    let runs = sample();
    expect(compactRuns(runs, 7, 12)).toEqual({ removed: [1, 6], added: [7, 2] });
    expect(runs).toEqual([
      [7, 2],
      [9, 5],
    ]);
    runs = sample();
    expect(compactRuns(runs, 9, 12)).toEqual({ removed: [1, 6, 9], added: [9, 5] });
    expect(runs).toEqual([[9, 5]]);
    runs = sample();
    expect(compactRuns(runs, 13, 12)).toEqual({ removed: [1, 6, 9], added: null });
    expect(runs).toEqual([]);
  });
});

import { ClassifiedError } from '../../../../common/crash-policy';
import { LogView } from '../../../../replica/storage/log-view';
import type { Recovered } from '../../../../replica/storage/types';
import { entries } from '../../../helpers/storage';

function view(over: Partial<Recovered> = {}, prevTerm = 0): LogView {
  const r: Recovered = {
    incarnation: 'x',
    freshlyInitialised: false,
    hardState: null,
    conf: null,
    firstIndex: 1,
    lastIndex: 0,
    lastTerm: 0,
    appliedIndex: 0,
    snapshot: null,
    termRuns: [],
    prevTerm,
    tailRepaired: 0,
    logBytes: 0,
    ...over,
  };
  return new LogView(r);
}

const violation = (f: () => void): void => {
  let caught: unknown;
  try {
    f();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ClassifiedError);
  expect((caught as ClassifiedError).kind).toBe('invariant_violation');
};

describe('LogView (the facade’s validation of writes)', () => {
  it('tracks term runs through appends and truncations', () => {
    const v = view();
    v.applyAppend(entries(1, 5, 1), undefined);
    v.applyAppend(entries(6, 8, 2), undefined);
    expect(v.runs).toEqual([
      [1, 1],
      [6, 2],
    ]);
    v.applyAppend(entries(4, 9, 3), undefined);
    expect(v.runs).toEqual([
      [1, 1],
      [4, 3],
    ]);
    expect(v.termAt(3)).toBe(1);
    expect(v.termAt(9)).toBe(3);
    expect(v.lastIndex).toBe(9);
  });

  it('moves the first run on compaction and remembers the term before the log start', () => {
    const v = view({ appliedIndex: 0 });
    v.applyAppend([...entries(1, 5, 1), ...entries(6, 8, 2)], undefined);
    v.applied = 8;
    v.applyCompact(7);
    expect(v.runs).toEqual([[7, 2]]);
    expect(v.prevTerm).toBe(2);
    v.applyCompact(9);
    expect(v.runs).toEqual([]);
    expect(v.termAt(8)).toBe(2);
  });

  it('refuses gaps, non-contiguous batches, decreasing terms and writes below the log start', () => {
    const v = view();
    v.applyAppend(entries(1, 5, 2), undefined);
    violation(() => v.checkAppend(entries(7, 8, 2), undefined));
    violation(() => v.checkAppend([...entries(6, 6, 2), ...entries(8, 8, 2)], undefined));
    violation(() => v.checkAppend(entries(6, 6, 1), undefined));
    violation(() => v.checkAppend([...entries(6, 6, 3), ...entries(7, 7, 2)], undefined));
    violation(() => v.checkAppend(entries(0, 0, 2), undefined));
  });

  it('refuses truncation at or below the commit index', () => {
    const v = view();
    v.applyAppend(entries(1, 5, 1), { term: 1, vote: null, commit: 3 });
    violation(() => v.checkAppend(entries(3, 3, 2), undefined));
    expect(() => v.checkAppend(entries(4, 4, 2), undefined)).not.toThrow();
  });

  it('refuses a second vote in the same term and a term or commit going back', () => {
    const v = view({ hardState: { term: 5, vote: 'a', commit: 2 } });
    violation(() => v.checkAppend([], { term: 5, vote: 'b', commit: 2 }));
    violation(() => v.checkAppend([], { term: 4, vote: null, commit: 2 }));
    violation(() => v.checkAppend([], { term: 5, vote: 'a', commit: 1 }));
    expect(() => v.checkAppend([], { term: 6, vote: 'b', commit: 2 })).not.toThrow();
  });
});

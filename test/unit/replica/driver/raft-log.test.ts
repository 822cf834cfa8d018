import { EntryType, type Entry } from '../../../../replica/raft';
import { ReplicaLog } from '../../../../replica/driver/raft-log';
import type { Recovered, ReplicaStorage } from '../../../../replica/storage/storage';

/**
 * ReplicaLog's read side for entries below its cache (a restarted replica serving a follower,
 * or applying what it has not applied yet): the core's request is loaded from storage and
 * served once loaded. A read larger than the side cache's bound used to evict its own first
 * entries — the one the core asked for among them — so the core asked again, for ever (found
 * by the scale bench's catch-up phase with tiny entries and a large byte budget per read).
 */

const LAST = 30_000;

function recovered(): Recovered {
  return {
    incarnation: 'i',
    freshlyInitialised: false,
    hardState: { term: 2, vote: null, commit: LAST },
    conf: { voters: ['0.a'], learners: [] },
    firstIndex: 2,
    lastIndex: LAST,
    lastTerm: 2,
    appliedIndex: 1,
    snapshot: null,
    termRuns: [[2, 2]],
    prevTerm: 1,
    tailRepaired: 0,
    logBytes: LAST * 40,
  };
}

/** A storage whose log is entries 2..LAST of 16 bytes each; nothing is cached by the log. */
function storage(reads: Array<[number, number]>): ReplicaStorage {
  return {
    readEntries: async (lo: number, hi: number, maxBytes: number): Promise<Entry[]> => {
      reads.push([lo, hi]);
      const out: Entry[] = [];
      let bytes = 0;
      for (let i = lo; i < hi && (out.length === 0 || bytes + 16 <= maxBytes); i++) {
        out.push({ index: i, term: 2, type: EntryType.Normal, data: new Uint8Array(16) });
        bytes += 16;
      }
      return out;
    },
  } as unknown as ReplicaStorage;
}

test('a read below the cache larger than the side cache still serves the entry the core asked for', async () => {
  const reads: Array<[number, number]> = [];
  let available = 0;
  const log = new ReplicaLog(storage(reads), recovered(), {
    cacheBytes: 0,
    onAvailable: () => available++,
    makeSnapshot: () => Promise.reject(new Error('no snapshot here')),
    onError: (err) => {
      throw err;
    },
  });
  const want = (): Entry[] | null => log.entries(2, LAST + 1, 64 * 1024 * 1024);
  expect(want()).toBeNull(); // loading
  for (let round = 0; round < 5 && available === 0; round++) await new Promise((r) => setImmediate(r));
  expect(available).toBe(1);
  const got = want();
  expect(got).not.toBeNull();
  expect(got![0].index).toBe(2);
  // Served in order, one bounded load after the other, to the end.
  let next = 2 + got!.length;
  for (let guard = 0; next <= LAST && guard < 100; guard++) {
    const es = log.entries(next, LAST + 1, 64 * 1024 * 1024);
    if (es === null) {
      await new Promise((r) => setImmediate(r));
      continue;
    }
    expect(es[0].index).toBe(next);
    next += es.length;
  }
  expect(next).toBe(LAST + 1);
  expect(reads.every(([lo, hi]) => hi - lo <= 10_000)).toBe(true);
});

/**
 * Opening a replica's database: reading the position from the meta keys, cutting a torn tail
 * (a backward scan of the log end), verifying a window of entries below it, and checking the
 * persisted term map against the log. Recovery is reading, not replaying. Anything that is not a
 * torn write is corruption, and fatal (crash matrix).
 */
import { randomUUID } from 'node:crypto';
import {
  decodeEntry,
  decodeMeta,
  decodeTermRun,
  encodeMeta,
  FORMAT_VERSION,
  LOG_KEY_END,
  LOG_KEY_MIN,
  logIndexOf,
  logKey,
  META,
  metaKey,
  TERM_RUN_KEY_END,
  TERM_RUN_KEY_MIN,
  termRunKey,
  type DecodedEntry,
} from './codec';
import { corruption } from './errors';
import type { OpenParams } from './protocol';
import { forEachRow, type RocksDb } from './rocksdb';
import { runTermAt, truncateRuns, type TermRun } from './term-runs';
import type { Recovered, StoredConf, StoredHardState, StoredSnapshotMeta } from './types';

/** The tail check stops after this many bytes of entries even if the entry window is not full. */
export const VERIFY_TAIL_MAX_BYTES = 64 * 1024 * 1024;

export interface LogStart {
  firstIndex: number;
  /** Term of firstIndex - 1 (0 for a fresh log). */
  prevTerm: number;
  /** Cumulative byte count of entry firstIndex - 1 (what the next entry's count starts from). */
  prevCum: number;
}

/** What the running engine starts from. */
export interface EngineInit {
  start: LogStart;
  last: { index: number; term: number; cum: number };
  applied: number;
  hardState: StoredHardState | null;
  conf: StoredConf | null;
  runs: TermRun[];
}

/** Read and CRC-check one log entry; missing or damaged is corruption. */
export async function readDecoded(db: RocksDb, index: number): Promise<DecodedEntry> {
  const key = logKey(index);
  const [v] = await db.getMany([key]);
  if (v === undefined) throw corruption(`log entry ${index} is missing`);
  const d = decodeEntry(key, v);
  if (d === null) throw corruption(`log entry ${index} fails its CRC`);
  return d;
}

/**
 * Recover (creating an incarnation for a new directory). Recovery is reading, not replaying: the
 * meta keys give the position, a backward scan of the log end finds and cuts a torn tail, and
 * binary searches over the (non-decreasing) terms give the term map.
 */
export async function recover(db: RocksDb, params: OpenParams): Promise<{ init: EngineInit; recovered: Recovered }> {
  const names = [
    META.formatVersion,
    META.incarnation,
    META.hardState,
    META.conf,
    META.applied,
    META.logStart,
    META.snapshot,
  ] as const;
  const raw = await db.getMany(names.map(metaKey));
  const meta = new Map(names.map((n, i) => [n, raw[i]]));
  const read = <T>(name: (typeof names)[number]): T | null => {
    const v = meta.get(name);
    if (v === undefined) return null;
    try {
      return decodeMeta<T>(v);
    } catch (err) {
      throw corruption(`meta ${name} is not valid JSON: ${String(err)}`);
    }
  };

  let freshlyInitialised = false;
  let incarnation = read<string>(META.incarnation);
  if (incarnation === null) {
    // A directory without an incarnation must be empty: data without an identity could be a
    // half-wiped volume, and joining with it could make this replica vote twice in a term.
    let anyKey = false;
    await forEachRow(db, { limit: 1, values: false }, () => {
      anyKey = true;
      return false;
    });
    if (anyKey) throw corruption('database holds data but no incarnation');
    incarnation = randomUUID();
    const start: LogStart = { firstIndex: 1, prevTerm: 0, prevCum: 0 };
    const b = db.batch();
    b.put(metaKey(META.formatVersion), encodeMeta(FORMAT_VERSION));
    b.put(metaKey(META.logStart), encodeMeta(start));
    b.put(metaKey(META.applied), encodeMeta(0));
    // The incarnation goes last in intent but in the same atomic batch: all or nothing.
    b.put(metaKey(META.incarnation), encodeMeta(incarnation));
    await b.write({ sync: true });
    meta.set(META.formatVersion, encodeMeta(FORMAT_VERSION));
    meta.set(META.logStart, encodeMeta(start));
    meta.set(META.applied, encodeMeta(0));
    freshlyInitialised = true;
  }
  const version = read<number>(META.formatVersion);
  if (version !== FORMAT_VERSION) throw corruption(`unsupported storage format version ${String(version)}`);
  const start = read<LogStart>(META.logStart);
  const applied = read<number>(META.applied);
  if (start === null || applied === null) throw corruption('log start or applied index missing');
  const hardState = read<StoredHardState>(META.hardState);
  const conf = read<StoredConf>(META.conf);
  const snapshot = read<StoredSnapshotMeta>(META.snapshot);

  // Entries below firstIndex are already dropped: a compaction or snapshot install deletes
  // them with a range delete after the new start is durable, and a crash can cut that short.
  let strays = false;
  await forEachRow(db, { gte: LOG_KEY_MIN, lt: logKey(start.firstIndex), limit: 1, values: false }, () => {
    strays = true;
    return false;
  });
  if (strays) await db.clear({ gte: LOG_KEY_MIN, lt: logKey(start.firstIndex) });

  const runs: TermRun[] = [];
  await forEachRow(db, { gte: TERM_RUN_KEY_MIN, lt: TERM_RUN_KEY_END }, (k, v) => {
    const run = v === undefined ? null : decodeTermRun(k, v);
    if (run === null) throw corruption('malformed term-run key');
    runs.push(run);
  });
  const tail = await verifyTail(db, start, runs, params.verifyTailEntries);
  const newest = tail.newest;
  const last = newest
    ? { index: newest.index, term: newest.term, cum: newest.cumBytes }
    : { index: start.firstIndex - 1, term: start.prevTerm, cum: start.prevCum };
  // Runs past the last good entry belong to cut entries (or to nothing, if damaged).
  const staleRuns = truncateRuns(runs, last.index + 1);
  if (tail.cut.length > 0 || staleRuns.length > 0) {
    // Cutting applied entries would leave a state machine ahead of its own log.
    if (last.index < applied)
      throw corruption(`torn tail reaches below the applied index (last good ${last.index}, applied ${applied})`);
    // Entries up to the persisted commit index were synced before that index was: one of them
    // failing its CRC is damage to acknowledged data, not a torn write. Lowering the commit index
    // (as this once did) would silently drop acknowledged entries and let this replica vote with
    // a log that lacks them. Fatal; the replica comes back as a new incarnation (replica/main.ts).
    if (hardState !== null && hardState.commit > last.index)
      throw corruption(
        `log entries up to the persisted commit index ${hardState.commit} fail their CRC (last good ${last.index})`,
      );
    const b = db.batch();
    for (const k of tail.cut) b.del(k);
    for (const r of staleRuns) b.del(termRunKey(r));
    await b.write({ sync: true });
  }

  const init: EngineInit = { start, last, applied, hardState, conf, runs };
  await checkRuns(db, init, tail.lowest);
  const termRuns = runs.map(([i, t]): [number, number] => [i, t]);
  const recovered: Recovered = {
    incarnation,
    freshlyInitialised,
    hardState,
    conf,
    firstIndex: start.firstIndex,
    lastIndex: last.index,
    lastTerm: last.term,
    appliedIndex: applied,
    snapshot,
    termRuns,
    prevTerm: start.prevTerm,
    tailRepaired: tail.cut.length,
    logBytes: last.cum - start.prevCum,
  };
  return { init, recovered };
}

/**
 * The torn tail is the longest suffix of stored log entries that all fail to decode (short or
 * bad CRC). It is cut. Below it, `window` entries are verified: each must be present, pass its
 * CRC, and agree with its successor on cumulative size and term order. A failure there is a bad
 * entry followed by good ones — not a torn write but corruption, and fatal.
 */
async function verifyTail(
  db: RocksDb,
  start: LogStart,
  runs: readonly TermRun[],
  window: number,
): Promise<{ newest: DecodedEntry | null; lowest: DecodedEntry | null; cut: Buffer[] }> {
  const cut: Buffer[] = [];
  let newest: DecodedEntry | null = null;
  let lowest: DecodedEntry | null = null;
  let verified = 0;
  let verifiedBytes = 0;
  let exhausted = true;
  await forEachRow(
    db,
    { gte: logKey(start.firstIndex), lt: LOG_KEY_END, reverse: true },
    (k, v) => {
      const d = v === undefined ? null : decodeEntry(k, v);
      if (lowest === null) {
        if (d === null) {
          cut.push(k);
          return true;
        }
        newest = lowest = d;
      } else {
        const index = logIndexOf(k);
        const above: DecodedEntry = lowest;
        if (index !== above.index - 1)
          throw corruption(`log entry ${above.index - 1} is missing below good entries (next lower is ${index})`);
        if (d === null) throw corruption(`log entry ${index} fails its CRC below good entries`);
        // An entry rewritten by compaction keeps its count as written but not its size (its CRC
        // still covers it): only the order of the counts is checked across it.
        if (above.rewritten ? d.cumBytes >= above.cumBytes : d.cumBytes !== above.cumBytes - above.storedBytes)
          throw corruption(`log entry ${index}: cumulative size disagrees with entry ${above.index}`);
        if (d.term > above.term) throw corruption(`log terms decrease between entries ${index} and ${above.index}`);
        lowest = d;
      }
      const dd = d as DecodedEntry;
      // The persisted term map must agree with every entry we look at.
      if (runs.length > 0 && runs[0][0] <= dd.index && runTermAt(runs, dd.index) !== dd.term)
        throw corruption(`term map disagrees with log entry ${dd.index}`);
      verified++;
      verifiedBytes += dd.storedBytes;
      if (verified >= window || verifiedBytes >= VERIFY_TAIL_MAX_BYTES) {
        exhausted = false;
        return false;
      }
      return true;
    },
    256,
  );
  const low = lowest as DecodedEntry | null;
  if (low !== null) {
    if (exhausted) {
      // We reached the front: it must join the log start exactly.
      if (low.index !== start.firstIndex)
        throw corruption(`log entries ${start.firstIndex}..${low.index - 1} are missing`);
      if (low.rewritten ? low.cumBytes <= start.prevCum : low.cumBytes - low.storedBytes !== start.prevCum)
        throw corruption(`log entry ${low.index}: cumulative size disagrees with the log start`);
      if (low.term < start.prevTerm) throw corruption(`log entry ${low.index}: term below the log start term`);
    } else {
      let first = -1;
      await forEachRow(db, { gte: logKey(start.firstIndex), lt: LOG_KEY_END, limit: 1, values: false }, (k) => {
        first = logIndexOf(k);
        return false;
      });
      if (first !== start.firstIndex) throw corruption(`log entries ${start.firstIndex}..${first - 1} are missing`);
    }
  }
  return { newest, lowest: low, cut };
}

/**
 * The persisted term map must describe exactly the recovered log: runs start at firstIndex,
 * starts and terms strictly increase, and the first and last runs carry the terms of the
 * first and last entries. Anything else is corruption.
 */
async function checkRuns(db: RocksDb, init: EngineInit, lowestVerified: DecodedEntry | null): Promise<void> {
  const runs = init.runs;
  const firstIndex = init.start.firstIndex;
  const lastIndex = init.last.index;
  if (lastIndex < firstIndex) {
    if (runs.length > 0) throw corruption('term map present for an empty log');
    return;
  }
  if (runs.length === 0 || runs[0][0] !== firstIndex)
    throw corruption(`term map does not start at the first index ${firstIndex}`);
  for (let i = 1; i < runs.length; i++)
    if (runs[i][0] <= runs[i - 1][0] || runs[i][1] <= runs[i - 1][1])
      throw corruption(`term map is not increasing at index ${runs[i][0]}`);
  if (runTermAt(runs, lastIndex) !== init.last.term) throw corruption('term map disagrees with the last entry');
  const firstTerm =
    lowestVerified !== null && lowestVerified.index === firstIndex
      ? lowestVerified.term
      : (await readDecoded(db, firstIndex)).term;
  if (runs[0][1] !== firstTerm) throw corruption('term map disagrees with the first entry');
  if (firstTerm < init.start.prevTerm) throw corruption('first entry has a term below the log start term');
}

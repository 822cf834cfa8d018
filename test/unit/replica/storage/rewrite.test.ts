import { ClassifiedError } from '../../../../common/crash-policy';
import type { ReplicaStorage } from '../../../../replica/storage/storage';
import { dec, enc, entries, openStorage, removeDir, tempDir } from '../../../helpers/storage';

jest.setTimeout(30_000);

/**
 * rewriteEntries, the storage side of key compaction (docs/compaction.md), on real RocksDB: an
 * applied entry's data is replaced in place — same index, term and type, the log's byte count
 * as written — with the pass's progress in the same batch; recovery accepts the rewritten entries
 * (its tail check), shorter or longer; an entry no longer there with the expected term is left
 * alone.
 */
describe('ReplicaStorage.rewriteEntries', () => {
  let dir: string;
  const open: ReplicaStorage[] = [];
  const track = (s: ReplicaStorage): ReplicaStorage => (open.push(s), s);

  beforeEach(() => {
    dir = tempDir('rewrite');
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => undefined);
    removeDir(dir);
  });

  it('replaces applied entries in place, keeps index, term, type and logBytes, and survives a restart with its state op', async () => {
    let s = track(await openStorage(dir));
    await s.append(entries(1, 10, 2, 64), { term: 2, vote: null, commit: 10 });
    await s.applyBatch(10, []);
    const before = s.stats().logBytes;
    // Entry 7 grows (a batch that lost few records gains a bitmap): its CRC covers it all the same.
    const rewritten = [3, 7].map((i) => ({
      index: i,
      term: 2,
      type: i % 3,
      data: enc(`compacted-${i}`.padEnd(i === 7 ? 100 : 11, '+')),
    }));
    await s.rewriteEntries(rewritten, [{ op: 'put', key: enc('m/cleaned'), value: enc('progress') }]);
    const got = await s.readEntries(1, 11, 1 << 20);
    expect(got.map((e) => [e.index, e.term, e.type])).toEqual(entries(1, 10, 2).map((e) => [e.index, 2, e.type]));
    expect(dec(got[2].data)).toBe('compacted-3');
    expect(dec(got[6].data)).toBe('compacted-7'.padEnd(100, '+'));
    expect(got[3].data.byteLength).toBe(64);
    expect(s.stats().logBytes).toBe(before);
    await s.close();
    // Recovery verifies the tail (every entry here): the rewritten ones are accepted.
    s = track(await openStorage(dir));
    expect(s.recovered).toMatchObject({ firstIndex: 1, lastIndex: 10, appliedIndex: 10, tailRepaired: 0 });
    expect(dec((await s.readEntries(7, 8, 1 << 20))[0].data)).toBe('compacted-7'.padEnd(100, '+'));
    expect(dec((await s.get(enc('m/cleaned')))!)).toBe('progress');
    expect(s.stats().logBytes).toBe(before);
    // The log goes on as before: appends after it, retention before it.
    await s.append(entries(11, 12, 3, 64));
    await s.applyBatch(12, []);
    await s.compactLog(5);
    expect((await s.readEntries(5, 13, 1 << 20)).map((e) => e.index)).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('skips an entry whose term differs (the log was replaced meantime) and refuses one above the applied index', async () => {
    const s = track(await openStorage(dir));
    await s.append(entries(1, 5, 1, 64), { term: 1, vote: null, commit: 5 });
    await s.applyBatch(4, []);
    await s.rewriteEntries([{ index: 2, term: 9, type: 2, data: enc('stale') }], []);
    expect(dec((await s.readEntries(2, 3, 1 << 20))[0].data)).not.toBe('stale');
    // An unapplied entry may still be truncated by Raft: rewriting it is a bug, and fatal.
    await expect(s.rewriteEntries([{ index: 5, term: 1, type: 2, data: enc('x') }], [])).rejects.toBeInstanceOf(
      ClassifiedError,
    );
  });
});

/**
 * Start-up recovery against damage made directly in RocksDB (storage closed, then the database
 * edited through its own handle), as a torn write or bit rot would leave it.
 */
import { logKey, META, metaKey, stateKey, termRunKey } from '../../../../replica/storage/codec';
import { createRocksDb, type RocksDb } from '../../../../replica/storage/rocksdb';
import { entries, openStorage, removeDir, tempDir } from '../../../helpers/storage';

jest.setTimeout(30_000);

async function withDb(dir: string, f: (db: RocksDb) => Promise<void>): Promise<void> {
  const db = createRocksDb(`${dir}/rocksdb`);
  await db.open({ createIfMissing: false });
  try {
    await f(db);
  } finally {
    await db.close();
  }
}

async function damage(dir: string, index: number, how: 'flip' | 'truncate' | 'delete'): Promise<void> {
  await withDb(dir, async (db) => {
    const [v] = await db.getMany([logKey(index)]);
    if (v === undefined) throw new Error(`no entry ${index}`);
    const b = db.batch();
    if (how === 'delete') b.del(logKey(index));
    else if (how === 'truncate') b.put(logKey(index), v.subarray(0, 10));
    else {
      const bad = Buffer.from(v);
      bad[bad.length - 1] ^= 0xff;
      b.put(logKey(index), bad);
    }
    await b.write({ sync: true });
  });
}

async function seed(dir: string, last: number, applied = 0, commit = last): Promise<void> {
  const s = await openStorage(dir);
  await s.append([...entries(1, Math.min(last, 10), 1), ...entries(11, last, 2)], { term: 2, vote: 'a', commit });
  if (applied > 0) await s.applyBatch(applied, []);
  await s.close();
}

describe('storage recovery', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('recovery');
  });
  afterEach(() => removeDir(dir));

  it('cuts a torn tail (bad CRC and short values at the end) back to the last whole entry', async () => {
    // A torn tail lies above the persisted commit index (entries not yet known committed).
    await seed(dir, 20, 0, 17);
    await damage(dir, 20, 'flip');
    await damage(dir, 19, 'truncate');
    await damage(dir, 18, 'flip');
    const s = await openStorage(dir);
    try {
      expect(s.recovered).toMatchObject({
        tailRepaired: 3,
        lastIndex: 17,
        lastTerm: 2,
        termRuns: [
          [1, 1],
          [11, 2],
        ],
      });
      expect(s.recovered.hardState).toEqual({ term: 2, vote: 'a', commit: 17 });
      expect((await s.readEntries(1, 100, 1 << 20)).map((e) => e.index)).toEqual(entries(1, 17, 1).map((e) => e.index));
      await s.append(entries(18, 18, 3));
    } finally {
      await s.close();
    }
    const again = await openStorage(dir);
    expect(again.recovered).toMatchObject({ tailRepaired: 0, lastIndex: 18, lastTerm: 3 });
    await again.close();
  });

  it('treats a CRC failure at or below the persisted commit index as corruption (fatal), never lowering commit', async () => {
    // Issue 15 item 12: entries 19 and 20 were committed (acknowledged); a damaged tail there is
    // lost acknowledged data, not a torn write.
    await seed(dir, 20, 0, 20);
    await damage(dir, 20, 'flip');
    await damage(dir, 19, 'truncate');
    await expect(openStorage(dir)).rejects.toMatchObject({ name: 'ClassifiedError', kind: 'storage_corruption' });
  });

  it('treats a bad CRC followed by good entries as corruption (fatal), not as a torn tail', async () => {
    await seed(dir, 20);
    await damage(dir, 15, 'flip');
    await expect(openStorage(dir)).rejects.toMatchObject({ name: 'ClassifiedError', kind: 'storage_corruption' });
  });

  it('treats a missing entry followed by good entries as corruption', async () => {
    await seed(dir, 20);
    await damage(dir, 12, 'delete');
    await expect(openStorage(dir)).rejects.toMatchObject({ kind: 'storage_corruption' });
  });

  it('finds corruption below the verified window when a read reaches it', async () => {
    await seed(dir, 20);
    await damage(dir, 3, 'flip');
    const s = await openStorage(dir, { verifyTailEntries: 5 });
    try {
      await expect(s.readEntries(1, 10, 1 << 20)).rejects.toMatchObject({ kind: 'storage_corruption' });
    } finally {
      await s.close();
    }
  });

  it('refuses to cut a torn tail below the applied index', async () => {
    await seed(dir, 20, 19);
    await damage(dir, 20, 'flip');
    await damage(dir, 19, 'flip');
    await expect(openStorage(dir)).rejects.toMatchObject({ kind: 'storage_corruption' });
  });

  it('refuses a database that holds data but no incarnation', async () => {
    await seed(dir, 2);
    await withDb(dir, async (db) => {
      await db.batch().del(metaKey(META.incarnation)).write({ sync: true });
    });
    await expect(openStorage(dir)).rejects.toMatchObject({ kind: 'storage_corruption' });
  });

  it('treats a term map that disagrees with the log as corruption', async () => {
    await seed(dir, 20);
    await withDb(dir, async (db) => {
      await db.batch().del(termRunKey(11)).write({ sync: true });
    });
    await expect(openStorage(dir)).rejects.toMatchObject({ kind: 'storage_corruption' });
  });

  it('rebuilds the term map of the whole log after reopen', async () => {
    const s = await openStorage(dir);
    await s.append([...entries(1, 100, 1), ...entries(101, 101, 2), ...entries(102, 500, 5), ...entries(501, 502, 9)]);
    await s.applyBatch(3, [{ op: 'put', key: new Uint8Array([1]), value: new Uint8Array([2]) }]);
    await s.close();
    const r = await openStorage(dir);
    expect(r.recovered.termRuns).toEqual([
      [1, 1],
      [101, 2],
      [102, 5],
      [501, 9],
    ]);
    expect(r.recovered.logBytes).toBe(r.stats().logBytes);
    await r.close();
    await withDb(dir, async (db) => {
      const [v] = await db.getMany([stateKey(new Uint8Array([1]))]);
      expect(v).toEqual(Buffer.from([2]));
    });
  });
});

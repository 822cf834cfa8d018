import { entries, openStorage, removeDir, tempDir } from '../../../helpers/storage';

/** RocksDB's memory is bounded by the two budgets the replica is given, and is observable. */
describe('ReplicaStorage memory bounds', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('memory');
  });
  afterEach(() => removeDir(dir));

  test('memtables stay within their budget and the block cache within its size while the log grows', async () => {
    const memtableBytes = 4 * 1024 * 1024;
    const blockCacheBytes = 1024 * 1024;
    const storage = await openStorage(dir, { memtableBytes, blockCacheBytes });
    try {
      let peakMemtables = 0;
      let peakCache = 0;
      // 24 MiB of log: six times the memtable budget, so flushes must have happened.
      for (let i = 0; i < 48; i++) {
        const from = i * 128 + 1;
        await storage.append(entries(from, from + 127, 1, 4096), { term: 1, vote: null, commit: from + 127 });
        const m = await storage.memory();
        peakMemtables = Math.max(peakMemtables, m.memtableBytes);
        peakCache = Math.max(peakCache, m.blockCacheBytes);
      }
      // Reads go through the cache (which must not grow past its size).
      for (let lo = 1; lo < 48 * 128; lo += 512) await storage.readEntries(lo, lo + 64, 1 << 30);
      const m = await storage.memory();
      peakCache = Math.max(peakCache, m.blockCacheBytes);
      expect(peakMemtables).toBeGreaterThan(0);
      // Six memtables of a quarter of the budget at the most (level compaction in the binding).
      expect(peakMemtables).toBeLessThanOrEqual(1.5 * memtableBytes + 256 * 1024);
      expect(peakCache).toBeLessThanOrEqual(blockCacheBytes * 1.1);
      expect(m.tableReaderBytes).toBeGreaterThanOrEqual(0);
    } finally {
      await storage.close();
    }
  });
});

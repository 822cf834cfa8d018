/**
 * Disk full at the storage layer, on a real size-limited filesystem (tmpfs): a write that meets
 * ENOSPC is held — its promise neither resolves nor rejects — while reads go on; once space is
 * given back it goes through by itself, and a reopen finds every write that resolved, intact.
 */
import { entries, openStorage, payload, quietLogger } from '../../../helpers/storage';
import { fillDisk, freeBytes, mountTmpfs, removeFile, unmountTmpfs } from '../../../helpers/tmpfs';
import type { DiskFullState, ReplicaStorage } from '../../../../replica/storage/storage';

jest.setTimeout(60_000);

const hs = (commit: number) => ({ term: 1, vote: null, commit });

describe('storage on a full disk', () => {
  let mnt: string;
  let storage: ReplicaStorage | null = null;

  beforeAll(() => {
    mnt = mountTmpfs('storage', 24);
  });
  afterAll(async () => {
    await storage?.close().catch(() => undefined);
    unmountTmpfs(mnt);
  });

  it('holds the write that met ENOSPC, serves reads, and finishes it when space returns', async () => {
    const dir = `${mnt}/r0`;
    const events: Array<DiskFullState | null> = [];
    storage = await openStorage(dir, {
      logger: quietLogger(),
      diskFullProbeMaxMs: 200,
      onDiskFull: (s) => events.push(s),
    });
    await storage.append(entries(1, 100, 1, 1000), hs(0));
    expect(storage.diskFull).toBeNull();

    const filler = fillDisk(mnt);
    expect(freeBytes(mnt)).toBeLessThan(4096);

    // RocksDB preallocates its WAL, so the first writes after the fill may still fit: write
    // batches of 100 entries until one is held.
    let settled: 'resolved' | Error | null = null;
    let next = 101;
    let held: Promise<unknown> = Promise.resolve();
    for (let round = 0; storage.diskFull === null; round++) {
      if (round > 200) throw new Error('the disk never filled up');
      const from = next;
      next += 100;
      settled = null;
      held = storage.append(entries(from, from + 99, 1, 1000), hs(from - 1)).then(
        () => (settled = 'resolved'),
        (err: Error) => (settled = err),
      );
      await Promise.race([held, new Promise((r) => setTimeout(r, 300))]);
      const outcome = settled as 'resolved' | Error | null;
      if (outcome instanceof Error) throw outcome;
    }
    const state = storage.diskFull!;
    const heldFrom = next - 100;
    expect(state.error).toMatch(/no space left on device/i);
    expect(events).toHaveLength(1);

    // Held, not failed: the Raft loop above just waits, as for a slow disk.
    await new Promise((r) => setTimeout(r, 500));
    expect(settled as unknown).toBeNull();
    expect(storage.diskFull!.failedProbes).toBeGreaterThan(0);

    // Reads are served from what is on disk.
    const read = await storage.readEntries(1, 101, Number.MAX_SAFE_INTEGER);
    expect(read).toHaveLength(100);
    expect(Buffer.from(read[49].data)).toEqual(Buffer.from(payload(50, 1, 1000)));

    // A later write queues behind the held one (disk order holds).
    const later = storage.append(entries(next, next + 9, 1, 1000), hs(next - 1));

    removeFile(filler);
    // RocksDB resumes by itself (its SstFileManager looks for space every 5 s); then the probe
    // succeeds and the held write is sent again.
    await held;
    await later;
    expect(settled).toBe('resolved');
    expect(storage.diskFull).toBeNull();
    expect(events.at(-1)).toBeNull();
    expect(storage.stats().lastIndex).toBe(next + 9);

    await storage.close();
    storage = await openStorage(dir, { logger: quietLogger() });
    expect(storage.recovered.lastIndex).toBe(next + 9);
    expect(storage.recovered.hardState?.commit).toBe(next - 1);
    const back = await storage.readEntries(heldFrom + 50, heldFrom + 51, Number.MAX_SAFE_INTEGER);
    expect(Buffer.from(back[0].data)).toEqual(Buffer.from(payload(heldFrom + 50, 1, 1000)));
  });

  it('closing while a write is held rejects it (never acknowledged) and keeps what was durable', async () => {
    await storage?.close();
    const dir = `${mnt}/r1`;
    storage = await openStorage(dir, { logger: quietLogger(), diskFullProbeMaxMs: 200 });
    await storage.append(entries(1, 10, 1, 1000), hs(0));
    const filler = fillDisk(mnt);
    let held: Promise<unknown> = Promise.resolve();
    let from = 11;
    for (let round = 0; storage.diskFull === null; round++) {
      if (round > 200) throw new Error('the disk never filled up');
      held = storage.append(entries(from, from + 99, 1, 1000), hs(from - 1)).then(
        () => 'resolved',
        (err: Error) => err,
      );
      from += 100;
      await Promise.race([held, new Promise((r) => setTimeout(r, 300))]);
    }
    await storage.close();
    const outcome = await held;
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toMatch(/closed while the disk was full/);
    removeFile(filler);
    storage = await openStorage(dir, { logger: quietLogger() });
    // Everything before the held write, nothing of it.
    expect(storage.recovered.lastIndex).toBe(from - 101);
    const first = await storage.readEntries(1, 11, Number.MAX_SAFE_INTEGER);
    expect(first).toHaveLength(10);
  });
});

import type { Worker } from 'node:worker_threads';
import { ClassifiedError } from '../../../../common/crash-policy';
import { DaftkaError } from '../../../../common/errors';
import { LogCompactedError, type FlushStats, type ReplicaStorage } from '../../../../replica/storage/storage';
import {
  decodePairsBlock,
  encodeMeta,
  encodePairsBlock,
  META,
  metaKey,
  STAGED_KEY_END,
  STAGED_KEY_MIN,
  STATE_KEY_END,
  STATE_KEY_MIN,
  stateKey,
  TERM_RUN_KEY_END,
  TERM_RUN_KEY_MIN,
} from '../../../../replica/storage/codec';
import { createRocksDb, forEachRow } from '../../../../replica/storage/rocksdb';
import type { StoredSnapshotMeta } from '../../../../replica/storage/types';
import { dec, enc, entries, openStorage, payload, removeDir, tempDir } from '../../../helpers/storage';

jest.setTimeout(30_000);

/**
 * What installStaged leaves when the process dies after its first (synced) batch and part of the
 * move: the marker and the new log position on disk, the state keyspace cleared and one key
 * of the staged state written. Written with RocksDB directly, as the engine would.
 */
/** Keys in the staged keyspace, read with RocksDB directly (the storage closed). */
async function stagedKeys(path: string): Promise<number> {
  const db = createRocksDb(path);
  await db.open({ createIfMissing: false });
  try {
    let n = 0;
    await forEachRow(db, { gte: STAGED_KEY_MIN, lt: STAGED_KEY_END, values: false }, () => void n++);
    return n;
  } finally {
    await db.close();
  }
}

async function simulateHalfInstall(path: string, meta: StoredSnapshotMeta): Promise<void> {
  const db = createRocksDb(path);
  await db.open({ createIfMissing: false });
  try {
    const runs: Buffer[] = [];
    await forEachRow(db, { gte: TERM_RUN_KEY_MIN, lt: TERM_RUN_KEY_END, values: false }, (k) => void runs.push(k));
    const b = db.batch();
    for (const k of runs) b.del(k);
    b.put(metaKey(META.pendingInstall), encodeMeta(meta));
    b.put(metaKey(META.logStart), encodeMeta({ firstIndex: meta.index + 1, prevTerm: meta.term, prevCum: 0 }));
    b.put(metaKey(META.applied), encodeMeta(meta.index));
    b.put(metaKey(META.snapshot), encodeMeta(meta));
    b.put(metaKey(META.conf), encodeMeta(meta.conf));
    await b.write({ sync: true });
    await db.clear({ gte: STATE_KEY_MIN, lt: STATE_KEY_END });
    const half = db.batch();
    half.put(stateKey(enc('offsets/g1')), enc('200'));
    await half.write({ sync: true });
  } finally {
    await db.close();
  }
}

describe('ReplicaStorage', () => {
  let dir: string;
  const open: ReplicaStorage[] = [];
  const track = (s: ReplicaStorage): ReplicaStorage => (open.push(s), s);

  beforeEach(() => {
    dir = tempDir('unit');
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => undefined);
    removeDir(dir);
  });

  it('appends and reads back entries in order with their term, type and data', async () => {
    const s = track(await openStorage(dir));
    await s.append(entries(1, 10, 1));
    await s.append(entries(11, 20, 2));
    const got = await s.readEntries(1, 21, 1 << 20);
    expect(got.map((e) => [e.index, e.term, e.type])).toEqual(
      entries(1, 20, 1).map((e) => [e.index, e.index > 10 ? 2 : 1, e.type]),
    );
    for (const e of got) expect(Buffer.from(e.data)).toEqual(Buffer.from(payload(e.index, e.term)));
    expect(s.stats()).toMatchObject({ firstIndex: 1, lastIndex: 20, pendingBytes: 0 });
  });

  it('readEntries stops at maxBytes but always returns at least one entry', async () => {
    const s = track(await openStorage(dir));
    await s.append(entries(1, 10, 1, 100));
    expect((await s.readEntries(1, 11, 250)).map((e) => e.index)).toEqual([1, 2]);
    expect((await s.readEntries(3, 11, 1)).map((e) => e.index)).toEqual([3]);
    expect((await s.readEntries(9, 100, 1 << 20)).map((e) => e.index)).toEqual([9, 10]);
    expect(await s.readEntries(11, 20, 1 << 20)).toEqual([]);
  });

  it('an append at an existing index replaces that entry and everything after it (Raft truncation)', async () => {
    let s = track(await openStorage(dir));
    await s.append(entries(1, 10, 1), { term: 1, vote: null, commit: 3 });
    await s.append(entries(6, 7, 2));
    expect((await s.readEntries(1, 100, 1 << 20)).map((e) => `${e.index}:${e.term}`)).toEqual([
      '1:1',
      '2:1',
      '3:1',
      '4:1',
      '5:1',
      '6:2',
      '7:2',
    ]);
    const bytesBefore = s.stats().logBytes;
    await s.close();
    s = track(await openStorage(dir));
    expect(s.recovered).toMatchObject({
      lastIndex: 7,
      lastTerm: 2,
      termRuns: [
        [1, 1],
        [6, 2],
      ],
      logBytes: bytesBefore,
    });
    await s.append(entries(8, 8, 2));
    expect((await s.readEntries(8, 9, 1 << 20))[0]).toMatchObject({ index: 8, term: 2 });
  });

  it('merges a truncating append into the same group commit as the append it truncates', async () => {
    const s = track(await openStorage(dir));
    await s.append(entries(1, 2, 1));
    const p = [
      s.append(entries(3, 3, 1)),
      s.append(entries(4, 9, 1)),
      s.append(entries(6, 7, 2)),
      s.append(entries(8, 8, 2)),
    ];
    await Promise.all(p);
    expect((await s.readEntries(1, 100, 1 << 20)).map((e) => `${e.index}:${e.term}`)).toEqual([
      '1:1',
      '2:1',
      '3:1',
      '4:1',
      '5:1',
      '6:2',
      '7:2',
      '8:2',
    ]);
    expect(s.stats().lastIndex).toBe(8);
  });

  it('persists hard state and conf across close and reopen', async () => {
    let s = track(await openStorage(dir));
    expect(s.recovered.hardState).toBeNull();
    expect(s.recovered.conf).toBeNull();
    await s.append([], { term: 3, vote: 'replica-1', commit: 0 }, { voters: ['a', 'b', 'c'], learners: ['d'] });
    await s.append(entries(1, 2, 3), { term: 3, vote: 'replica-1', commit: 2 });
    await s.close();
    s = track(await openStorage(dir));
    expect(s.recovered.hardState).toEqual({ term: 3, vote: 'replica-1', commit: 2 });
    expect(s.recovered.conf).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    expect(s.recovered).toMatchObject({ lastIndex: 2, lastTerm: 3, freshlyInitialised: false });
  });

  it('creates the incarnation once, keeps it across reopen, and makes a new one after the dir is wiped', async () => {
    let s = track(await openStorage(dir));
    const first = s.recovered.incarnation;
    expect(s.recovered.freshlyInitialised).toBe(true);
    expect(first).toMatch(/^[0-9a-f-]{36}$/);
    await s.close();
    s = track(await openStorage(dir));
    expect(s.recovered.incarnation).toBe(first);
    expect(s.recovered.freshlyInitialised).toBe(false);
    await s.close();
    removeDir(dir);
    s = track(await openStorage(dir));
    expect(s.recovered.freshlyInitialised).toBe(true);
    expect(s.recovered.incarnation).not.toBe(first);
  });

  it('group commit: 200 concurrent appends all resolve with far fewer synced writes', async () => {
    const flushes: FlushStats[] = [];
    const s = track(await openStorage(dir, { onFlush: (f) => flushes.push(f) }));
    const calls = [];
    for (let i = 1; i <= 200; i++) calls.push(s.append(entries(i, i, 1, 1024), { term: 1, vote: null, commit: i - 1 }));
    await Promise.all(calls);
    const synced = flushes.filter((f) => f.synced);
    expect(flushes.reduce((n, f) => n + f.waiters, 0)).toBe(200);
    expect(flushes.reduce((n, f) => n + f.entries, 0)).toBe(200);
    // The first append goes alone; everything arriving during its fsync rides the next batch.
    expect(synced.length).toBeLessThanOrEqual(20);
    expect(Math.max(...flushes.map((f) => f.waiters))).toBeGreaterThan(50);
    expect(synced.every((f) => f.fsyncSeconds > 0)).toBe(true);
    expect((await s.readEntries(1, 201, 1 << 30)).length).toBe(200);
  });

  it('applyBatch writes state ops and the applied index together, in call order after appends', async () => {
    let s = track(await openStorage(dir));
    await s.append(entries(1, 5, 1));
    await s.applyBatch(1, [
      { op: 'put', key: enc('g/a'), value: enc('1') },
      { op: 'put', key: enc('g/b'), value: enc('2') },
      { op: 'put', key: enc('h/x'), value: enc('x') },
    ]);
    // Merged into one group: the delRange must also remove the key put earlier in that group.
    const p1 = s.applyBatch(2, [{ op: 'put', key: enc('g/c'), value: enc('3') }]);
    const p2 = s.applyBatch(3, [
      { op: 'delRange', gte: enc('g/'), lt: enc('g0') },
      { op: 'put', key: enc('g/d'), value: enc('4') },
      { op: 'del', key: enc('h/x') },
    ]);
    await Promise.all([p1, p2]);
    const rows = async (): Promise<string[]> =>
      (await s.scan({ gte: new Uint8Array(0), lt: new Uint8Array(0) })).map(([k, v]) => `${dec(k)}=${dec(v)}`);
    expect(await rows()).toEqual(['g/d=4']);
    expect(dec(await s.get(enc('g/d')))).toBe('4');
    expect(await s.get(enc('g/a'))).toBeUndefined();
    const appendThenApply = [
      s.append(entries(6, 6, 1)),
      s.applyBatch(6, [{ op: 'put', key: enc('z'), value: enc('6') }]),
    ];
    await Promise.all(appendThenApply);
    await s.close();
    s = track(await openStorage(dir));
    expect(s.recovered.appliedIndex).toBe(6);
    expect(await rows()).toEqual(['g/d=4', 'z=6']);
  });

  it('refuses an applied index beyond the log, without disturbing other writes', async () => {
    const s = track(await openStorage(dir));
    const ok = s.append(entries(1, 3, 1));
    await expect(s.applyBatch(4, [])).rejects.toMatchObject({ kind: 'invariant_violation' });
    await expect(s.append(entries(5, 5, 1))).rejects.toMatchObject({ kind: 'invariant_violation' });
    await ok;
    await s.applyBatch(3, []);
    expect(s.stats().lastIndex).toBe(3);
  });

  it('scan honours limit and reverse over the state keyspace only', async () => {
    const s = track(await openStorage(dir));
    await s.append(entries(1, 1, 1));
    await s.applyBatch(
      1,
      ['a', 'b', 'c', 'd'].map((k) => ({ op: 'put' as const, key: enc(k), value: enc(k.toUpperCase()) })),
    );
    const keys = async (o: { limit?: number; reverse?: boolean }): Promise<Array<string | undefined>> =>
      (await s.scan({ gte: enc('b'), lt: enc('d'), ...o })).map(([k]) => dec(k));
    expect(await keys({})).toEqual(['b', 'c']);
    expect(await keys({ reverse: true })).toEqual(['c', 'b']);
    expect(await keys({ limit: 1 })).toEqual(['b']);
  });

  it('compactLog drops entries below the new first index and persists it with the term before it', async () => {
    let s = track(await openStorage(dir));
    await s.append([...entries(1, 5, 1), ...entries(6, 10, 2)]);
    await s.applyBatch(8, []);
    const before = s.stats().logBytes;
    await s.compactLog(7);
    expect(s.stats()).toMatchObject({ firstIndex: 7, lastIndex: 10 });
    expect(s.stats().logBytes).toBeLessThan(before);
    await expect(s.readEntries(6, 8, 1 << 20)).rejects.toBeInstanceOf(LogCompactedError);
    await expect(s.compactLog(10)).rejects.toMatchObject({ kind: 'invariant_violation' }); // past applied
    await s.close();
    s = track(await openStorage(dir));
    expect(s.recovered).toMatchObject({ firstIndex: 7, lastIndex: 10, termRuns: [[7, 2]], appliedIndex: 8 });
    expect(s.recovered.logBytes).toBe(s.stats().logBytes);
    // The whole log can go; the term of the last dropped entry is remembered for the next append.
    await s.applyBatch(10, []);
    await s.compactLog(11);
    await s.close();
    s = track(await openStorage(dir));
    expect(s.recovered).toMatchObject({ firstIndex: 11, lastIndex: 10, lastTerm: 2, termRuns: [], logBytes: 0 });
    await expect(s.append(entries(11, 11, 1))).rejects.toMatchObject({ kind: 'invariant_violation' });
    await s.append(entries(11, 11, 2));
    expect((await s.readEntries(11, 12, 100)).map((e) => e.index)).toEqual([11]);
  });

  /** Every chunk (pairs block) of an export, pulled at most `chunkBytes` at a time (as a follower does). */
  async function pullExport(src: ReplicaStorage, exportId: number, chunkBytes: number) {
    const chunks: Array<{ block: Uint8Array; pairs: Array<[Uint8Array, Uint8Array]> }> = [];
    let after: Uint8Array | null = null;
    for (;;) {
      const c = await src.exportChunk(exportId, after, chunkBytes);
      expect(c.gone).toBe(false);
      const pairs: Array<[Uint8Array, Uint8Array]> = [];
      expect(decodePairsBlock(c.block, (k, v) => void pairs.push([Buffer.from(k), Buffer.from(v)]))).toBe(c.count);
      chunks.push({ block: c.block, pairs });
      if (c.count > 0) {
        expect(Buffer.from(c.lastKey!)).toEqual(Buffer.from(pairs[pairs.length - 1][0]));
        after = c.lastKey;
      }
      if (c.done) return chunks;
    }
  }

  it('an export keeps its view while the state moves on, and is read in chunks after any key', async () => {
    const src = track(await openStorage(dir));
    await src.append(entries(1, 20, 4), undefined, { voters: ['a', 'b', 'c'], learners: [] });
    const rows = Array.from({ length: 50 }, (_, i) => ({
      op: 'put' as const,
      key: enc(`k/${String(i).padStart(3, '0')}`),
      value: enc(`v${i}`),
    }));
    await src.applyBatch(15, rows);
    const { exportId, meta } = await src.exportOpen();
    expect(meta).toEqual({ index: 15, term: 4, conf: { voters: ['a', 'b', 'c'], learners: [] } });
    // Writes after the export are not in it.
    await src.applyBatch(16, [
      { op: 'put', key: enc('k/late'), value: enc('x') },
      { op: 'del', key: enc('k/000') },
    ]);
    const chunks = await pullExport(src, exportId, 40);
    expect(chunks.length).toBeGreaterThan(5);
    const all = chunks.flatMap((c) => c.pairs).map(([k, v]) => `${dec(k)}=${dec(v)}`);
    expect(all).toEqual(rows.map((r) => `${dec(r.key)}=${dec(r.value)}`));
    // A second pass from the start sees the same view (followers pull in any order).
    expect((await pullExport(src, exportId, 1 << 20)).flatMap((c) => c.pairs).length).toBe(50);
    // At most MAX_OPEN_EXPORTS stay open: the oldest is closed for a new one; a closed one is gone.
    await src.exportOpen();
    await src.exportOpen();
    expect(await src.exportChunk(exportId, null, 100)).toMatchObject({ gone: true, count: 0 });
  });

  it('a staged snapshot replaces the state and the log position, and survives a crash half-way', async () => {
    const src = track(await openStorage(dir));
    await src.append(entries(1, 20, 4), undefined, { voters: ['a', 'b', 'c'], learners: [] });
    await src.applyBatch(15, [
      { op: 'put', key: enc('offsets/g1'), value: enc('100') },
      { op: 'put', key: enc('producers/p1'), value: enc('epoch=3') },
    ]);
    const { exportId, meta } = await src.exportOpen();
    const chunks = await pullExport(src, exportId, 1);

    const dir2 = tempDir('unit-snap');
    try {
      let dst = track(await openStorage(dir2));
      await dst.append(entries(1, 30, 1), { term: 1, vote: null, commit: 2 }); // stale, divergent log
      await dst.applyBatch(2, [{ op: 'put', key: enc('stale'), value: enc('x') }]);
      await dst.stageBegin();
      for (const c of chunks) await dst.stageBlock(c.block);
      // A malformed block (from a peer) is refused whole: nothing of it is staged.
      const bad = new Uint8Array([0, 0, 0, 1, 0x6b, 0, 0, 0, 9, 1]);
      await expect(dst.stageBlock(bad)).rejects.toThrow(/past the end/);
      // Staged state is not the live state until installed.
      expect((await dst.scan({ gte: new Uint8Array(0), lt: new Uint8Array(0) })).map(([k]) => dec(k))).toEqual([
        'stale',
      ]);
      await dst.installStaged(meta);
      expect(dst.stats()).toMatchObject({ firstIndex: 16, lastIndex: 15, logBytes: 0 });
      expect(await dst.readEntries(16, 100, 1 << 20)).toEqual([]);
      await dst.append(entries(16, 17, 4));
      await dst.close();
      dst = track(await openStorage(dir2));
      expect(dst.recovered).toMatchObject({
        firstIndex: 16,
        lastIndex: 17,
        appliedIndex: 15,
        snapshot: meta,
        conf: meta.conf,
        hardState: { term: 1, vote: null, commit: 15 },
        termRuns: [[16, 4]],
      });
      const state = async () =>
        (await dst.scan({ gte: new Uint8Array(0), lt: new Uint8Array(0) })).map(([k, v]) => `${dec(k)}=${dec(v)}`);
      expect(await state()).toEqual(['offsets/g1=100', 'producers/p1=epoch=3']);

      // A crash between the position's batch and the end of the move: the marker is on disk,
      // the state half replaced. Opening finishes the move from the staged keys.
      await dst.stageBegin();
      await dst.stageBlock(
        encodePairsBlock([
          [enc('offsets/g1'), enc('200')],
          [enc('z'), enc('1')],
        ]),
      );
      await dst.close();
      await simulateHalfInstall(`${dir2}/rocksdb`, { index: 30, term: 5, conf: meta.conf });
      dst = track(await openStorage(dir2));
      expect(dst.recovered).toMatchObject({ firstIndex: 31, appliedIndex: 30 });
      expect(await state()).toEqual(['offsets/g1=200', 'z=1']);

      // A transfer cut short by a restart (staged, no marker): opening drops what it staged and
      // leaves the live state alone.
      await dst.stageBegin();
      await dst.stageBlock(encodePairsBlock([[enc('half'), enc('1')]]));
      await dst.close();
      expect(await stagedKeys(`${dir2}/rocksdb`)).toBe(1);
      dst = track(await openStorage(dir2));
      expect(await state()).toEqual(['offsets/g1=200', 'z=1']);
      await dst.close();
      expect(await stagedKeys(`${dir2}/rocksdb`)).toBe(0);
    } finally {
      removeDir(dir2);
    }
  });

  it('when the worker dies, pending calls reject with worker_crash and later calls are refused', async () => {
    const s = track(await openStorage(dir));
    await s.append(entries(1, 1, 1));
    const pending = [];
    for (let i = 2; i <= 50; i++) pending.push(s.append(entries(i, i, 1)));
    pending.push(s.readEntries(1, 2, 100));
    void (s as unknown as { channel: { worker: Worker } }).channel.worker.terminate();
    const results = await Promise.allSettled(pending);
    const rejected = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
    expect(rejected.length).toBeGreaterThan(0);
    for (const e of rejected) expect(e).toMatchObject({ kind: 'worker_crash' });
    expect(rejected[0]).toBeInstanceOf(ClassifiedError);
    await expect(s.append(entries(51, 51, 1))).rejects.toMatchObject({ kind: 'worker_crash' });
    await expect(s.get(enc('x'))).rejects.toMatchObject({ kind: 'worker_crash' });
  });

  it('refuses appends beyond maxPendingBytes with a retryable OVERLOADED error', async () => {
    const s = track(await openStorage(dir, { maxPendingBytes: 64 * 1024 }));
    const accepted: Array<Promise<void>> = [];
    let overloaded: unknown;
    for (let i = 1; i <= 200 && overloaded === undefined; i++) {
      const p = s.append(entries(i, i, 1, 4096));
      p.catch((err: unknown) => (overloaded = err));
      accepted.push(p);
      await Promise.resolve();
    }
    await Promise.allSettled(accepted);
    expect(overloaded).toBeInstanceOf(DaftkaError);
    expect(overloaded).toMatchObject({ code: 'OVERLOADED', retryable: true });
    expect(s.stats().pendingBytes).toBe(0);
  });

  it('appendWaiting waits out OVERLOADED (backpressure for the Raft loop) and then writes', async () => {
    const s = track(await openStorage(dir, { maxPendingBytes: 64 * 1024 }));
    // Fill the queue past its bound with state writes (never refused), not awaited.
    const big = Buffer.alloc(48 * 1024, 7);
    const fill = Array.from({ length: 8 }, (_, i) =>
      s.applyBatch(0, [{ op: 'put', key: enc(`fill-${i}`), value: big }]),
    );
    expect(s.stats().pendingBytes).toBeGreaterThan(64 * 1024);
    await expect(s.append(entries(1, 4, 1, 4096))).rejects.toMatchObject({ code: 'OVERLOADED' });
    let waits = 0;
    await s.appendWaiting(entries(1, 4, 1, 4096), { term: 1, vote: 'a', commit: 0 }, () => waits++);
    expect(waits).toBeGreaterThan(0);
    await Promise.all(fill);
    expect(s.stats().lastIndex).toBe(4);
    expect(dec((await s.readEntries(1, 5, 1 << 20))[3].data)?.startsWith('i=4;t=1;')).toBe(true);
    // Other failures are not waited on: they reach the caller as append's do.
    await expect(s.appendWaiting(entries(9, 9, 1), undefined, () => waits++)).rejects.toThrow();
  });

  it("fsync 'interval' acknowledges unsynced writes and syncs them periodically and on close", async () => {
    const flushes: FlushStats[] = [];
    let s = track(await openStorage(dir, { fsync: 'interval', fsyncIntervalMs: 20, onFlush: (f) => flushes.push(f) }));
    await s.append(entries(1, 10, 1));
    expect(flushes[0]).toMatchObject({ synced: false, fsyncSeconds: 0, entries: 10 });
    await new Promise((r) => setTimeout(r, 100));
    expect(flushes.some((f) => f.synced)).toBe(true);
    await s.append(entries(11, 12, 1));
    await s.close();
    s = track(await openStorage(dir, { fsync: 'interval', fsyncIntervalMs: 20 }));
    expect(s.recovered.lastIndex).toBe(12);
  });

  it('refuses a second open of the same directory (RocksDB lock) with a fatal storage error', async () => {
    track(await openStorage(dir));
    await expect(openStorage(dir)).rejects.toMatchObject({ name: 'ClassifiedError', kind: 'storage_io_error' });
  });

  it('refuses every call after close', async () => {
    const s = await openStorage(dir);
    await s.close();
    await expect(s.append(entries(1, 1, 1))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(s.readEntries(1, 2, 10)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});

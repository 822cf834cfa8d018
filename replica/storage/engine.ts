/**
 * The storage engine proper: recovery, group-commit writes, reads, compaction and snapshots over
 * one RocksDB. It runs inside the storage worker only (RocksDB writes block the calling thread)
 * and is driven by one request at a time, so every method sees a quiescent database: no locks,
 * and a read spanning several RocksDB calls is still a consistent view.
 */
import { performance } from 'node:perf_hooks';
import {
  decodeEntry,
  encodeTerm,
  encodeMeta,
  LOG_KEY_END,
  logIndexOf,
  logKey,
  META,
  metaKey,
  ENTRY_HEADER_BYTES,
  REWRITTEN_TYPE_FLAG,
  sealEntry,
  STATE_KEY_END,
  STATE_KEY_MIN,
  stateKey,
  STAGED_KEY_END,
  STAGED_KEY_MIN,
  stagedKey,
  decodePairsBlock,
  encodePairsBlock,
  termRunKey,
  type DecodedEntry,
} from './codec';
import { classifyRocksError, corruption, invariant, LogCompactedError } from './errors';
import type {
  ExportChunk,
  LogPosition,
  OpenParams,
  OpenResult,
  RewriteEntries,
  RocksMemory,
  WireEntries,
  WriteGroup,
  WriteResult,
} from './protocol';
import { readDecoded, recover, type EngineInit, type LogStart } from './recovery';
import { createRocksDb, forEachRow, type RocksBatch, type RocksDb, type RocksIterator } from './rocksdb';
import { compactRuns, extendRuns, runTermAt, truncateRuns, type TermRun } from './term-runs';
import type { StateOp, StoredConf, StoredHardState, StoredSnapshotMeta } from './types';

/**
 * Open state exports at most (a leader serves one snapshot at a time; a second covers the moment
 * a new one replaces it). Opening one more closes the oldest: each pins a RocksDB view (its
 * memtables and SST files stay until it is closed).
 */
export const MAX_OPEN_EXPORTS = 2;
/** Rows moved per batch when a staged snapshot replaces the state keyspace. */
const STAGED_MOVE_BATCH_BYTES = 1024 * 1024;

/** Rows whose bytes were copied into one fresh ArrayBuffer, so they can be transferred. */
export interface Packed<T> {
  value: T;
  transfer: ArrayBuffer[];
}

const EMPTY_CONF: StoredConf = { voters: [], learners: [] };

export class Engine {
  private firstIndex: number;
  private prevTerm: number;
  private prevCum: number;
  private lastIndex: number;
  private lastTerm: number;
  private lastCum: number;
  private applied: number;
  private hardState: StoredHardState | null;
  private conf: StoredConf | null;
  /** Term map of [firstIndex, lastIndex]; mirrors the term-run keys on disk. */
  private runs: TermRun[];
  /** Set after a fatal write failure: the in-memory position may no longer match the disk. */
  private broken: Error | null = null;
  /** Open state exports by id: each an iterator holding one consistent view of the state keyspace. */
  private readonly exports = new Map<number, RocksIterator>();
  private nextExportId = 1;

  private constructor(
    private readonly db: RocksDb,
    init: EngineInit,
  ) {
    this.firstIndex = init.start.firstIndex;
    this.prevTerm = init.start.prevTerm;
    this.prevCum = init.start.prevCum;
    this.lastIndex = init.last.index;
    this.lastTerm = init.last.term;
    this.lastCum = init.last.cum;
    this.applied = init.applied;
    this.hardState = init.hardState;
    this.conf = init.conf;
    this.runs = init.runs;
  }

  /**
   * Open (creating if needed) and recover. Recovery is reading, not replaying: the meta keys
   * give the position, a backward scan of the log end finds and cuts a torn tail, and binary
   * searches over the (non-decreasing) terms give the term map.
   */
  static async open(params: OpenParams): Promise<{ engine: Engine; result: OpenResult }> {
    const db = createRocksDb(params.path);
    try {
      // WAL compression costs latency on the synced path for little gain on record payloads.
      // Memory is bounded up front (DESIGN §4: nothing grows with the log): memtables by a budget
      // (level compaction: a quarter of it per memtable, up to six), index and filter blocks
      // inside the block cache instead of beside it (where they grow with the SST files), and
      // compression only from level 2 (L0/L1 are rewritten soon; zstd there is CPU for nothing).
      await db.open({
        createIfMissing: true,
        walCompression: false,
        compaction: 'level',
        memtableMemoryBudget: params.memtableBytes,
        cacheSize: params.blockCacheBytes,
        cacheIndexAndFilterBlocks: true,
      });
    } catch (err) {
      throw classifyRocksError(err, 'rocksdb open');
    }
    try {
      const { init, recovered } = await recover(db, params);
      const engine = new Engine(db, init);
      // A staged snapshot install cut short by a crash: finish it before anything reads the state.
      const [pending] = await db.getMany([metaKey(META.pendingInstall)]);
      if (pending !== undefined) await engine.finishStagedInstall();
      else {
        // A transfer cut short by the restart left a partial state behind: drop it (a range
        // delete only when there is one — it writes a tombstone even over an empty range).
        let staged = false;
        await forEachRow(db, { gte: STAGED_KEY_MIN, lt: STAGED_KEY_END, limit: 1, values: false }, () => {
          staged = true;
          return false;
        });
        if (staged) await db.clear({ gte: STAGED_KEY_MIN, lt: STAGED_KEY_END });
      }
      return { engine, result: { recovered } };
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
  }

  private position(): LogPosition {
    return { firstIndex: this.firstIndex, lastIndex: this.lastIndex, logBytes: this.lastCum - this.prevCum };
  }

  private assertUsable(): void {
    if (this.broken) throw this.broken;
  }

  private readDecoded(index: number): Promise<DecodedEntry> {
    return readDecoded(this.db, index);
  }

  private termAt(index: number): number {
    if (index === this.firstIndex - 1) return this.prevTerm;
    invariant(index >= this.firstIndex && index <= this.lastIndex, `term of ${index} is outside the log`);
    return runTermAt(this.runs, index);
  }

  /** Write one group commit as one atomic WriteBatch. */
  async write(g: WriteGroup): Promise<WriteResult> {
    this.assertUsable();
    const t0 = performance.now();
    const batch = this.db.batch();
    let last = { index: this.lastIndex, term: this.lastTerm, cum: this.lastCum };
    let runs = this.runs;
    const log = g.log;
    if (log !== null && log.count > 0) {
      const s = log.firstIndex;
      // The facade checked these; a violation here means the two disagree on the log: stop.
      invariant(
        s >= this.firstIndex && s <= this.lastIndex + 1,
        `append at ${s} outside [${this.firstIndex}, ${this.lastIndex + 1}]`,
      );
      let cum =
        s === this.lastIndex + 1
          ? this.lastCum
          : s === this.firstIndex
            ? this.prevCum
            : (await this.readDecoded(s - 1)).cumBytes;
      const newLast = s + log.count - 1;
      // Raft truncation: entries past the new end are deleted, the rest overwritten by the puts.
      for (let i = newLast + 1; i <= this.lastIndex; i++) batch.del(logKey(i));
      // The term map changes in the same batch (on a copy, adopted only if the write succeeds).
      runs = runs.map(([i, t]): TermRun => [i, t]);
      for (const start of truncateRuns(runs, s)) batch.del(termRunKey(start));
      const { meta, arena } = log;
      let off = 0;
      let term = 0;
      for (let i = 0; i < log.count; i++) {
        const key = logKey(s + i);
        term = meta[3 * i];
        const len = log.headerBytes + meta[3 * i + 2];
        const value = arena.subarray(off, off + len);
        off += len;
        cum += len;
        sealEntry(key, value, { term, type: meta[3 * i + 1] }, cum);
        batch.put(key, value);
        if (extendRuns(runs, s + i, term)) batch.put(termRunKey(s + i), encodeTerm(term));
      }
      last = { index: newLast, term, cum };
    }
    if (g.hardState) batch.put(metaKey(META.hardState), encodeMeta(g.hardState));
    if (g.conf) batch.put(metaKey(META.conf), encodeMeta(g.conf));
    if (g.ops.length > 0) await this.addStateOps(batch, g.ops);
    if (g.applied !== undefined) {
      // The applied index and the state changes it stands for commit together (same batch);
      // an applied index past the log would make recovery skip entries it never had.
      invariant(g.applied <= last.index, `applied index ${g.applied} beyond last index ${last.index}`);
      batch.put(metaKey(META.applied), encodeMeta(g.applied));
    }
    if (batch.length === 0) {
      if (!g.sync) return { ...this.position(), fsyncSeconds: 0, writeSeconds: 0 };
      // A synced write of an otherwise empty batch: fsyncs the WAL and all writes before it.
      batch.put(metaKey(META.syncMark), encodeMeta(Date.now()));
    }
    const tw = performance.now();
    try {
      await batch.write({ sync: g.sync });
    } catch (err) {
      const e = classifyRocksError(err, 'rocksdb write');
      if (e.failureClass === 'fatal') this.broken = e;
      throw e;
    }
    const tw1 = performance.now();
    this.lastIndex = last.index;
    this.lastTerm = last.term;
    this.lastCum = last.cum;
    this.runs = runs;
    if (g.hardState) this.hardState = g.hardState;
    if (g.conf) this.conf = g.conf;
    if (g.applied !== undefined) this.applied = g.applied;
    return { ...this.position(), fsyncSeconds: g.sync ? (tw1 - tw) / 1000 : 0, writeSeconds: (tw1 - t0) / 1000 };
  }

  /**
   * State ops into the batch, in order. RocksDB batches have no range delete, so delRange is
   * expanded into deletes of the keys on disk plus the keys put earlier in this same batch
   * (which are not on disk yet). The cost is the keys removed: the one large range, retention's
   * cut of the offset index, starts where the previous cut ended and is bounded per check.
   */
  private async addStateOps(batch: RocksBatch, ops: StateOp[]): Promise<void> {
    const putKeys: Buffer[] = [];
    for (const op of ops) {
      if (op.op === 'put') {
        const k = stateKey(op.key);
        batch.put(k, op.value);
        putKeys.push(k);
      } else if (op.op === 'del') {
        batch.del(stateKey(op.key));
      } else {
        const gte = stateKey(op.gte);
        const lt = op.lt.byteLength === 0 ? STATE_KEY_END : stateKey(op.lt);
        await forEachRow(this.db, { gte, lt, values: false }, (k) => {
          batch.del(k);
        });
        for (const k of putKeys) if (Buffer.compare(k, gte) >= 0 && Buffer.compare(k, lt) < 0) batch.del(k);
      }
    }
  }

  /** Entries [lo, min(hi, lastIndex+1)) up to maxBytes of data, at least one if any exist. */
  async readEntries(lo: number, hi: number, maxBytes: number): Promise<Packed<WireEntries>> {
    this.assertUsable();
    if (lo < this.firstIndex) throw new LogCompactedError(lo, this.firstIndex);
    const end = Math.min(hi, this.lastIndex + 1);
    const found: DecodedEntry[] = [];
    let bytes = 0;
    if (lo < end) {
      await forEachRow(
        this.db,
        { gte: logKey(lo), lt: logKey(end) },
        (k, v) => {
          const index = logIndexOf(k);
          if (index !== lo + found.length) throw corruption(`log entry ${lo + found.length} is missing`);
          const d = v === undefined ? null : decodeEntry(k, v);
          if (d === null) throw corruption(`log entry ${index} fails its CRC`);
          if (found.length > 0 && bytes + d.data.byteLength > maxBytes) return false;
          bytes += d.data.byteLength;
          found.push(d);
          return true;
        },
        Math.min(1024, Math.max(1, Math.ceil(maxBytes / 1024))),
      );
      // lo is inside [firstIndex, lastIndex]: at least that entry must exist.
      if (found.length === 0) throw corruption(`log entry ${lo} is missing`);
    }
    const meta = new Float64Array(3 * found.length);
    const arena = new Uint8Array(bytes);
    let off = 0;
    found.forEach((d, i) => {
      meta[3 * i] = d.term;
      meta[3 * i + 1] = d.type;
      meta[3 * i + 2] = d.data.byteLength;
      arena.set(d.data, off);
      off += d.data.byteLength;
    });
    return {
      value: { firstIndex: lo, count: found.length, headerBytes: 0, meta, arena },
      transfer: [meta.buffer, arena.buffer],
    };
  }

  /** RocksDB's memory now (memtables, block cache, table readers outside the cache). */
  memory(): RocksMemory {
    this.assertUsable();
    const prop = (name: string) => Number(this.db.getProperty(name)) || 0;
    return {
      memtableBytes: prop('rocksdb.cur-size-all-mem-tables'),
      blockCacheBytes: prop('rocksdb.block-cache-usage'),
      tableReaderBytes: prop('rocksdb.estimate-table-readers-mem'),
    };
  }

  async get(key: Uint8Array): Promise<Packed<Uint8Array | undefined>> {
    this.assertUsable();
    const [v] = await this.db.getMany([stateKey(key)]);
    if (v === undefined) return { value: undefined, transfer: [] };
    const copy = new Uint8Array(v);
    return { value: copy, transfer: [copy.buffer] };
  }

  async scan(o: {
    gte: Uint8Array;
    lt: Uint8Array;
    limit: number;
    reverse: boolean;
  }): Promise<Packed<Array<[Uint8Array, Uint8Array]>>> {
    this.assertUsable();
    const lt = o.lt.byteLength === 0 ? STATE_KEY_END : stateKey(o.lt);
    return this.scanState({ gte: stateKey(o.gte), lt, limit: o.limit, reverse: o.reverse });
  }

  private async scanState(o: {
    gte: Buffer;
    lt: Buffer;
    limit: number;
    reverse: boolean;
  }): Promise<Packed<Array<[Uint8Array, Uint8Array]>>> {
    const rows: Array<[Buffer, Buffer]> = [];
    let bytes = 0;
    await forEachRow(this.db, { gte: o.gte, lt: o.lt, limit: o.limit, reverse: o.reverse }, (k, v) => {
      const value = v ?? Buffer.alloc(0);
      rows.push([k, value]);
      bytes += k.length - 1 + value.length;
    });
    // Keys lose the state prefix on the way out; all bytes go into one transferable buffer.
    const arena = new Uint8Array(bytes);
    let off = 0;
    const take = (src: Uint8Array): Uint8Array => {
      arena.set(src, off);
      off += src.byteLength;
      return arena.subarray(off - src.byteLength, off);
    };
    const value = rows.map(([k, v]): [Uint8Array, Uint8Array] => [take(k.subarray(1)), take(v)]);
    return { value, transfer: [arena.buffer] };
  }

  /**
   * Drop entries below `firstIndex`. The new log start is made durable first (one synced put);
   * the entries are then removed with a range delete. A crash in between leaves entries below
   * the start, which are invisible by definition and removed at the next open.
   */
  async compact(firstIndex: number): Promise<LogPosition> {
    this.assertUsable();
    if (firstIndex <= this.firstIndex) return this.position();
    invariant(firstIndex <= this.lastIndex + 1, `compaction to ${firstIndex} past the log end ${this.lastIndex}`);
    // Entries not yet applied are still needed to rebuild the state machine.
    invariant(firstIndex <= this.applied + 1, `compaction to ${firstIndex} past the applied index ${this.applied}`);
    const prev = firstIndex - 1 === this.lastIndex ? null : await this.readDecoded(firstIndex - 1);
    const start: LogStart = {
      firstIndex,
      prevTerm: prev ? prev.term : this.lastTerm,
      prevCum: prev ? prev.cumBytes : this.lastCum,
    };
    const old = this.firstIndex;
    const b = this.db.batch();
    b.put(metaKey(META.logStart), encodeMeta(start));
    // The term map moves with the log start, in the same batch.
    const runs = this.runs.map(([i, t]): TermRun => [i, t]);
    const moved = compactRuns(runs, firstIndex, this.lastIndex);
    for (const r of moved.removed) b.del(termRunKey(r));
    if (moved.added) b.put(termRunKey(moved.added[0]), encodeTerm(moved.added[1]));
    await this.writeSynced(b, 'rocksdb compaction');
    this.firstIndex = start.firstIndex;
    this.prevTerm = start.prevTerm;
    this.prevCum = start.prevCum;
    this.runs = runs;
    await this.db.clear({ gte: logKey(old), lt: logKey(firstIndex) });
    return this.position();
  }

  /**
   * Key compaction: replace the data of applied entries in place, keeping index, term, type and
   * cumulative count (the entry is flagged REWRITTEN: recovery does not expect its size to match
   * the count; a batch that lost few records can even grow by its bitmap), with
   * the state ops (the pass's progress) in the same batch. An entry that is no longer there with
   * the expected term (retention dropped it, a snapshot replaced the log) is skipped: the pass
   * read it before that happened. Unsynced: a crash that loses it loses the progress with it,
   * and the pass runs again.
   */
  async rewrite(e: RewriteEntries, ops: StateOp[]): Promise<LogPosition> {
    this.assertUsable();
    const batch = this.db.batch();
    let off = 0;
    for (let i = 0; i < e.indexes.length; i++) {
      const index = e.indexes[i];
      const term = e.meta[3 * i];
      const len = ENTRY_HEADER_BYTES + e.meta[3 * i + 2];
      const value = e.arena.subarray(off, off + len);
      off += len;
      // Only committed, applied entries are ever rewritten (their content is final but for compaction).
      invariant(index <= this.applied, `rewrite of entry ${index} above the applied index ${this.applied}`);
      if (index < this.firstIndex || index > this.lastIndex) continue;
      const cur = await this.readDecoded(index);
      if (cur.term !== term) continue;
      invariant(cur.type === e.meta[3 * i + 1], `rewrite of entry ${index} changes its type`);
      const key = logKey(index);
      sealEntry(key, value, { term, type: cur.type | REWRITTEN_TYPE_FLAG }, cur.cumBytes);
      batch.put(key, value);
    }
    if (ops.length > 0) await this.addStateOps(batch, ops);
    if (batch.length > 0) {
      try {
        await batch.write({ sync: false });
      } catch (err) {
        const ce = classifyRocksError(err, 'rocksdb rewrite');
        if (ce.failureClass === 'fatal') this.broken = ce;
        throw ce;
      }
    }
    return this.position();
  }

  /**
   * Open an export of the state keyspace as of now (the applied index): a RocksDB iterator, whose
   * view stays fixed however the state changes after, read a chunk at a time by exportChunk. The
   * leader streams a snapshot from it to a far-behind follower (replica/driver/snapshot-transfer.ts)
   * instead of holding the whole state in memory.
   */
  exportOpen(): { exportId: number; meta: StoredSnapshotMeta } {
    this.assertUsable();
    while (this.exports.size >= MAX_OPEN_EXPORTS) this.exportClose(Math.min(...this.exports.keys()));
    const exportId = this.nextExportId++;
    this.exports.set(exportId, this.db.iterator({ gte: STATE_KEY_MIN, lt: STATE_KEY_END, keys: true, values: true }));
    const meta: StoredSnapshotMeta = {
      index: this.applied,
      term: this.termAt(this.applied),
      conf: this.conf ?? EMPTY_CONF,
    };
    return { exportId, meta };
  }

  /**
   * Pairs of an export after key `after` (from the first when null), up to maxBytes (at least
   * one), as one block: the main threads carry it without making an object per pair.
   */
  async exportChunk(exportId: number, after: Uint8Array | null, maxBytes: number): Promise<Packed<ExportChunk>> {
    this.assertUsable();
    const it = this.exports.get(exportId);
    if (it === undefined)
      return { value: { block: new Uint8Array(0), count: 0, lastKey: null, done: false, gone: true }, transfer: [] };
    // Seek to the asked key (or the start) in the export's own view, then skip the key itself.
    it.seek(after === null ? STATE_KEY_MIN : stateKey(after));
    const rows: Array<[Buffer, Buffer]> = [];
    let bytes = 0;
    let done = false;
    const skip = after === null ? null : stateKey(after);
    for (;;) {
      const batch = await it.nextv(256);
      if (batch.length === 0) {
        done = true;
        break;
      }
      let full = false;
      for (const [k, v] of batch) {
        if (skip !== null && k.equals(skip)) continue;
        const value = v ?? Buffer.alloc(0);
        if (rows.length > 0 && bytes + k.length + value.length > maxBytes) {
          full = true;
          break;
        }
        // Keys lose the state prefix on the way out.
        rows.push([k.subarray(1), value]);
        bytes += k.length - 1 + value.length;
      }
      if (full) break;
    }
    const block = encodePairsBlock(rows);
    const lastKey = rows.length > 0 ? new Uint8Array(rows[rows.length - 1][0]) : null;
    return {
      value: { block, count: rows.length, lastKey, done, gone: false },
      transfer: lastKey ? [block.buffer as ArrayBuffer, lastKey.buffer as ArrayBuffer] : [block.buffer as ArrayBuffer],
    };
  }

  exportClose(exportId: number): void {
    const it = this.exports.get(exportId);
    if (it === undefined) return;
    this.exports.delete(exportId);
    void it.close().catch(() => undefined);
  }

  /** Start receiving a snapshot: drop whatever an earlier, abandoned one staged. */
  async stageBegin(): Promise<void> {
    this.assertUsable();
    await this.db.clear({ gte: STAGED_KEY_MIN, lt: STAGED_KEY_END });
  }

  /**
   * One chunk of a snapshot's state (a pairs block from a peer: validated here), kept apart from
   * the live state. Unsynced: installStaged's synced batch makes every earlier write durable, the
   * WAL being one sequential file. A malformed block is refused whole and nothing of it written.
   */
  async stageBlock(block: Uint8Array): Promise<void> {
    this.assertUsable();
    const b = this.db.batch();
    try {
      decodePairsBlock(block, (k, v) => void b.put(stagedKey(k), v));
    } catch (err) {
      await b.close().catch(() => undefined);
      throw err;
    }
    if (b.length === 0) return;
    await this.writeUnsynced(b, 'rocksdb stage snapshot chunk');
  }

  /**
   * Install a snapshot whose state was staged (stageChunk): like install, but the state arrives
   * from the staged keyspace in bounded batches instead of one message. Crash-safe in two steps:
   * one synced batch moves the log position and sets META.pendingInstall; then the state keyspace
   * is replaced from the staged keys and the marker cleared. A crash between them leaves the
   * marker, and open() finishes the move before anything reads the state — the staged keys are
   * durable and complete before the marker exists, so the move can always be redone.
   */
  async installStaged(meta: StoredSnapshotMeta): Promise<LogPosition> {
    this.assertUsable();
    invariant(meta.index >= this.applied, `snapshot at ${meta.index} is behind the applied index ${this.applied}`);
    const b = this.db.batch();
    b.put(metaKey(META.pendingInstall), encodeMeta(meta));
    const old = await this.replaceLogInBatch(b, meta);
    await this.writeSynced(b, 'rocksdb staged snapshot install');
    const position = this.afterInstall(meta, old);
    await this.finishStagedInstall();
    await this.db.clear({ gte: logKey(Math.min(old.firstIndex, meta.index + 1)), lt: logKey(meta.index + 1) });
    return position;
  }

  /** Replace the state keyspace by the staged one (bounded batches), then clear the marker. */
  async finishStagedInstall(): Promise<void> {
    await this.db.clear({ gte: STATE_KEY_MIN, lt: STATE_KEY_END });
    const it = this.db.iterator({ gte: STAGED_KEY_MIN, lt: STAGED_KEY_END, keys: true, values: true });
    try {
      let b = this.db.batch();
      let bytes = 0;
      for (;;) {
        const rows = await it.nextv(1024);
        if (rows.length === 0) break;
        for (const [k, v] of rows) {
          const value = v ?? Buffer.alloc(0);
          b.put(stateKey(k.subarray(1)), value);
          bytes += k.length + value.length;
        }
        if (bytes >= STAGED_MOVE_BATCH_BYTES) {
          // Unsynced: the marker stays until the last batch, which is synced (and syncs these).
          await this.writeUnsynced(b, 'rocksdb staged snapshot move');
          b = this.db.batch();
          bytes = 0;
        }
      }
      b.del(metaKey(META.pendingInstall));
      await this.writeSynced(b, 'rocksdb staged snapshot move');
    } finally {
      await it.close();
    }
    await this.db.clear({ gte: STAGED_KEY_MIN, lt: STAGED_KEY_END });
  }

  /**
   * Replace the state keyspace and empty the log in one synced batch: new state, applied =
   * meta.index, log start = meta.index + 1 with prevTerm = meta.term, conf = meta.conf. Log
   * entries above meta.index are deleted inside the batch (they would otherwise look like the
   * log); those at or below are invisible once the start moves and are range-deleted after.
   */
  async install(meta: StoredSnapshotMeta, state: Array<[Uint8Array, Uint8Array]>): Promise<LogPosition> {
    this.assertUsable();
    // Installing an older snapshot would roll the state machine back past applied entries.
    invariant(meta.index >= this.applied, `snapshot at ${meta.index} is behind the applied index ${this.applied}`);
    const b = this.db.batch();
    await forEachRow(this.db, { gte: STATE_KEY_MIN, lt: STATE_KEY_END, values: false }, (k) => {
      b.del(k);
    });
    for (const [k, v] of state) b.put(stateKey(k), v);
    const old = await this.replaceLogInBatch(b, meta);
    await this.writeSynced(b, 'rocksdb snapshot install');
    const position = this.afterInstall(meta, old);
    await this.db.clear({ gte: logKey(Math.min(old.firstIndex, meta.index + 1)), lt: logKey(meta.index + 1) });
    return position;
  }

  /**
   * Into `b`: the log emptied to start after the snapshot (entries above meta.index deleted, the
   * term runs dropped), applied = meta.index, the snapshot meta and conf, and a stored commit
   * below meta.index raised to it. Returns what the position was, for afterInstall.
   */
  private async replaceLogInBatch(
    b: RocksBatch,
    meta: StoredSnapshotMeta,
  ): Promise<{ firstIndex: number; hardState: StoredHardState | null }> {
    await forEachRow(this.db, { gte: logKey(meta.index + 1), lt: LOG_KEY_END, values: false }, (k) => {
      b.del(k);
    });
    for (const [r] of this.runs) b.del(termRunKey(r));
    const start: LogStart = { firstIndex: meta.index + 1, prevTerm: meta.term, prevCum: 0 };
    b.put(metaKey(META.logStart), encodeMeta(start));
    b.put(metaKey(META.applied), encodeMeta(meta.index));
    b.put(metaKey(META.snapshot), encodeMeta(meta));
    b.put(metaKey(META.conf), encodeMeta(meta.conf));
    let hardState = this.hardState;
    if (hardState !== null && hardState.commit < meta.index) {
      // A snapshot is committed state: the persisted commit must not stay below it.
      hardState = { ...hardState, commit: meta.index };
      b.put(metaKey(META.hardState), encodeMeta(hardState));
    }
    return { firstIndex: this.firstIndex, hardState };
  }

  /** The in-memory position once replaceLogInBatch's batch is durable. */
  private afterInstall(meta: StoredSnapshotMeta, o: { hardState: StoredHardState | null }): LogPosition {
    this.firstIndex = meta.index + 1;
    this.prevTerm = meta.term;
    this.prevCum = 0;
    this.lastIndex = meta.index;
    this.lastTerm = meta.term;
    this.lastCum = 0;
    this.runs = [];
    this.applied = meta.index;
    this.conf = meta.conf;
    this.hardState = o.hardState;
    return this.position();
  }

  private writeUnsynced(b: RocksBatch, during: string): Promise<void> {
    return this.writeBatch(b, during, false);
  }

  private writeSynced(b: RocksBatch, during: string): Promise<void> {
    return this.writeBatch(b, during, true);
  }

  private async writeBatch(b: RocksBatch, during: string, sync: boolean): Promise<void> {
    try {
      await b.write({ sync });
    } catch (err) {
      const e = classifyRocksError(err, during);
      if (e.failureClass === 'fatal') this.broken = e;
      throw e;
    }
  }

  async close(): Promise<void> {
    for (const [id, it] of this.exports) {
      this.exports.delete(id);
      await it.close().catch(() => undefined);
    }
    await this.db.close();
  }
}

import { BufReader, BufWriter } from '../../protocol/bytes';
import type { StateOp } from '../storage/storage';

/**
 * The offset index and the time index of one partition, on disk (the state keyspace) behind a
 * bounded in-memory tail. Nothing here grows with the log (DESIGN §4).
 *
 *   offset index  'x' · u64 END offset (base + count)  → base, count, log index, max timestamp,
 *                 record bytes, cumulative record bytes since offset 0
 *   time index    't' · u64 running max timestamp       → end offset of the batch that raised it
 *
 * Keyed by the END offset, "the batch holding offset o" is the first key > o: one forward seek,
 * and "every batch wholly below the log start s" is the key range ≤ s: one range delete, which
 * retention can issue without reading a row. The cumulative byte count makes the retained size
 * one subtraction (last row's count − first retained row's count before it).
 *
 * The time index is sparse, as Kafka's: a key is written when a batch raises the running
 * maximum timestamp and at least TIME_INDEX_INTERVAL_BYTES of records were written since the last
 * key. Lookup of "the first batch with a timestamp ≥ T": the last key < T (one reverse seek)
 * gives an offset below which every record is older than T; the offset index is walked from
 * there (a bounded stretch, unless producers set timestamps far out of order).
 *
 * Rows are written as state ops with the applied index, in the apply's storage batch (the
 * atomicity recovery relies on). Until that batch is written a row is visible only here: the
 * tail keeps every row not yet written (pinned) plus the most recent ones up to `cacheBytes`,
 * which is also what tailing consumers and the produce path read. Everything older is read from
 * RocksDB through the reader (its block cache in front of the disk).
 */

export interface IndexRow {
  /** First offset of the batch. */
  base: number;
  count: number;
  /** The Raft log entry holding the batch. */
  logIndex: number;
  maxTimestampMs: number;
  /** Record bytes of the batch (recordBytes). */
  bytes: number;
  /** Record bytes of every batch up to and including this one, since offset 0. */
  cumBytes: number;
}

/** Async reads of the persisted state keyspace (ReplicaStorage get/scan, or a test's map). */
export interface StateReader {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  scan(o: {
    gte: Uint8Array;
    lt: Uint8Array;
    limit?: number;
    reverse?: boolean;
  }): Promise<Array<[Uint8Array, Uint8Array]>>;
}

export const P_OFFSET_INDEX = 0x78; // 'x'
export const P_TIME_INDEX = 0x74; // 't'
/** A time-index key at most every this many record bytes (Kafka's index.interval.bytes). */
export const TIME_INDEX_INTERVAL_BYTES = 4096;
/** JS heap per cached row (object header, 6 number slots, the array slot), for the byte bound. */
export const INDEX_ROW_BYTES = 96;
export const DEFAULT_INDEX_CACHE_BYTES = 4 * 1024 * 1024;
/** Rows per disk read when a reader walks the index (retention, fetch of many small batches). */
const PAGE_ROWS = 512;

function u64Key(prefix: number, v: number): Uint8Array {
  const b = Buffer.alloc(9);
  b[0] = prefix;
  b.writeUInt32BE(Math.floor(v / 2 ** 32), 1);
  b.writeUInt32BE(v % 2 ** 32, 5);
  return b;
}
function readU64(k: Uint8Array, at: number): number {
  const b = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  return b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4);
}
/** Timestamps may be negative in principle: keys keep their order with a 2^53 bias. */
const TS_BIAS = 2 ** 53;
function timeKey(ts: number): Uint8Array {
  return u64Key(P_TIME_INDEX, Math.max(0, Math.min(2 ** 64 - 1, ts + TS_BIAS)));
}
export const offsetIndexKey = (end: number): Uint8Array => u64Key(P_OFFSET_INDEX, end);
const OFFSET_INDEX_END = Buffer.of(P_OFFSET_INDEX + 1);
const TIME_INDEX_START = Buffer.of(P_TIME_INDEX);

export function encodeRow(r: IndexRow): Uint8Array {
  return new BufWriter(48)
    .i53(r.base)
    .u32(r.count)
    .i53(r.logIndex)
    .i53(r.maxTimestampMs, Number.MIN_SAFE_INTEGER)
    .u32(r.bytes)
    .i53(r.cumBytes)
    .finish();
}
export function decodeRow(v: Uint8Array): IndexRow {
  const rd = new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  return {
    base: rd.i53('base'),
    count: rd.u32('count'),
    logIndex: rd.i53('logIndex'),
    maxTimestampMs: rd.i53('ts', Number.MIN_SAFE_INTEGER),
    bytes: rd.u32('bytes'),
    cumBytes: rd.i53('cum'),
  };
}

export interface IndexStats {
  cachedRows: number;
  cachedBytes: number;
  cacheReads: number;
  diskReads: number;
}

export class OffsetIndex {
  /** The most recent rows, contiguous, ending at the last applied batch: tail[head..]. */
  private tail: IndexRow[] = [];
  private head = 0;
  /** Log index up to which apply batches are written (readable from storage). */
  private writtenIndex = 0;
  /** The time index: running max timestamp, and the cumulative bytes at its last key. */
  runningMaxTs = Number.MIN_SAFE_INTEGER;
  lastTimeKeyCum = -Infinity;
  /** Counts for the metrics. */
  cacheReads = 0;
  diskReads = 0;

  constructor(
    private readonly reader: StateReader,
    private readonly cacheBytes: number,
  ) {}

  reset(): void {
    this.tail = [];
    this.head = 0;
    this.writtenIndex = 0;
    this.runningMaxTs = Number.MIN_SAFE_INTEGER;
    this.lastTimeKeyCum = -Infinity;
  }

  /** After recovery or a snapshot install: everything in storage is readable. */
  markAllWritten(appliedIndex: number): void {
    this.writtenIndex = Math.max(this.writtenIndex, appliedIndex);
  }

  /** Apply batches up to `logIndex` are written: their rows may leave the tail. */
  markWritten(logIndex: number): void {
    if (logIndex > this.writtenIndex) this.writtenIndex = logIndex;
    this.evict();
  }

  get cachedRows(): number {
    return this.tail.length - this.head;
  }

  stats(): IndexStats {
    return {
      cachedRows: this.cachedRows,
      cachedBytes: this.cachedRows * INDEX_ROW_BYTES,
      cacheReads: this.cacheReads,
      diskReads: this.diskReads,
    };
  }

  /** A new batch (apply): its row and time-index ops go into the apply's batch. */
  add(row: IndexRow, ops: StateOp[]): void {
    this.tail.push(row);
    ops.push({ op: 'put', key: offsetIndexKey(row.base + row.count), value: encodeRow(row) });
    if (row.maxTimestampMs > this.runningMaxTs) {
      this.runningMaxTs = row.maxTimestampMs;
      if (row.cumBytes - this.lastTimeKeyCum >= TIME_INDEX_INTERVAL_BYTES) {
        this.lastTimeKeyCum = row.cumBytes;
        ops.push({ op: 'put', key: timeKey(row.maxTimestampMs), value: encodeEnd(row.base) });
      }
    }
    this.evict();
  }

  /**
   * The log start moved to `start`: drop rows wholly below it (one range delete on disk, the
   * tail trimmed in memory) and time keys no longer useful. The row holding `start` stays.
   */
  dropBelow(start: number, ops: StateOp[]): void {
    ops.push({ op: 'delRange', gte: offsetIndexKey(0), lt: offsetIndexKey(start + 1) });
    while (this.head < this.tail.length && this.tail[this.head].base + this.tail[this.head].count <= start) this.head++;
    this.compactTail();
  }

  /**
   * Up to `limit` rows, in offset order, from the one holding `offset` (rows ending at or below
   * `offset` are skipped), and only rows ending above `floor` (the log start: rows below it may
   * still be on disk while their range delete waits in the apply queue). Tail first; disk below
   * it. A row evicted from the tail is written before it leaves (markWritten), so a disk read
   * that missed it (it was issued before that write) is simply issued again. `end`: the next
   * offset (nothing at or past it).
   */
  async rowsFrom(offset: number, limit: number, floor: number, end: number): Promise<IndexRow[]> {
    const out: IndexRow[] = [];
    let cursor = Math.max(offset, floor);
    let misses = 0;
    while (out.length < limit) {
      const t = this.tailFind(cursor);
      if (t !== -1) {
        this.cacheReads++;
        for (let i = t; i < this.tail.length && out.length < limit; i++) out.push(this.tail[i]);
        break;
      }
      if (cursor >= end) break;
      this.diskReads++;
      const got = await this.reader.scan({
        gte: offsetIndexKey(cursor + 1),
        lt: OFFSET_INDEX_END,
        limit: Math.min(PAGE_ROWS, limit - out.length),
      });
      if (got.length === 0) {
        // Either the log ends here (empty tail too) or the rows in between left the tail after
        // this read was issued: read again (bounded: a row leaves the tail only once written).
        if (this.cachedRows === 0 || ++misses > 3) break;
        continue;
      }
      for (const [, v] of got) {
        const r = decodeRow(v);
        if (r.base + r.count <= cursor) continue;
        out.push(r);
        cursor = r.base + r.count;
        if (out.length >= limit) break;
      }
    }
    return out;
  }

  /** The row holding `offset`, or undefined (below the first row or past the last). */
  async rowAt(offset: number, floor: number, end: number): Promise<IndexRow | undefined> {
    const [r] = await this.rowsFrom(offset, 1, floor, end);
    return r !== undefined && r.base <= offset ? r : undefined;
  }

  /**
   * Walk the rows from `offset` in pages, calling `visit` until it returns false; at most
   * `maxRows` rows (a walk that is cut short resumes on the next call).
   */
  async walk(
    offset: number,
    floor: number,
    end: number,
    maxRows: number,
    visit: (r: IndexRow) => boolean,
  ): Promise<void> {
    let cursor = offset;
    let seen = 0;
    while (seen < maxRows) {
      const page = await this.rowsFrom(cursor, Math.min(PAGE_ROWS, maxRows - seen), floor, end);
      if (page.length === 0) return;
      for (const r of page) {
        seen++;
        if (!visit(r)) return;
        cursor = r.base + r.count;
      }
    }
  }

  /**
   * The first row whose max timestamp is ≥ `ts`, searched from `floor` (the log start), or
   * undefined when no retained batch is that new. One reverse seek in the time index, then a
   * walk of the offset index from the offset it gives.
   */
  async firstRowAtOrAfter(ts: number, floor: number, end: number): Promise<IndexRow | undefined> {
    const got = await this.reader.scan({ gte: TIME_INDEX_START, lt: timeKey(ts), limit: 1, reverse: true });
    const from = Math.max(floor, got.length > 0 ? decodeEnd(got[0][1]) : 0);
    let found: IndexRow | undefined;
    await this.walk(from, floor, end, Number.MAX_SAFE_INTEGER, (r) => {
      if (r.maxTimestampMs >= ts) {
        found = r;
        return false;
      }
      return true;
    });
    return found;
  }

  /** Index in `tail` of the row holding `offset`, or -1 when the tail does not reach back to it. */
  private tailFind(offset: number): number {
    let lo = this.head;
    let hi = this.tail.length - 1;
    if (lo > hi || this.tail[lo].base > offset) return -1;
    if (offset >= this.tail[hi].base + this.tail[hi].count) return -1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.tail[mid].base + this.tail[mid].count <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private evict(): void {
    // Keep every unwritten row.
    let n = this.tail.length - this.head;
    while (n > 0 && n * INDEX_ROW_BYTES > this.cacheBytes && this.tail[this.head].logIndex <= this.writtenIndex) {
      this.head++;
      n--;
    }
    this.compactTail();
  }

  private compactTail(): void {
    // Array.shift on a long array is a memmove of the whole array (V8): drop the dead prefix
    // in one slice once it is half the array.
    if (this.head > 1024 && this.head * 2 > this.tail.length) {
      this.tail = this.tail.slice(this.head);
      this.head = 0;
    } else if (this.head === this.tail.length) {
      this.tail = [];
      this.head = 0;
    }
  }
}

function encodeEnd(offset: number): Uint8Array {
  return new BufWriter(8).i53(offset).finish();
}
function decodeEnd(v: Uint8Array): number {
  return new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength)).i53('offset');
}

/** For tests and tools: the offset a time-index or offset-index key names. */
export function keyOffset(k: Uint8Array): number {
  return readU64(k, 1);
}

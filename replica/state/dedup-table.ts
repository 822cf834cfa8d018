import { BufReader, BufWriter } from '../../protocol/bytes';
import type { StateOp } from '../storage/storage';

/**
 * The idempotency dedup table of one partition: Idempotency-Key → the batch's offsets and payload
 * hash. Replicated state, so every replica — running or restarted — must hold exactly the same
 * keys after the same entries, or a retry could be `duplicate` on one and written at new offsets
 * on another (the replicas' offsets would diverge).
 *
 * Bounded up front (TigerBeetle's client_sessions): at most `maxEntries` keys and `maxBytes` of
 * them. Rows live in insertion (log) order and leave oldest first:
 *   - expiry: a row older than `windowMs` on the state clock (below) is dropped;
 *   - eviction: inserting past either bound drops the oldest rows first. The consequence, in
 *     docs/replica.md: a retry whose key was evicted before its window ended is written again
 *     (at-least-once still holds; the exactly-once promise for that key is lost). Evictions are
 *     counted (daftka_dedup_evictions_total{reason="full"}): size the bounds so it stays 0.
 *
 * Time is the state clock: the largest leaderTimeMs applied so far (monotonic), never one
 * command's own leaderTimeMs. A new leader whose wall clock is behind cannot make rows look
 * younger than rows inserted before them, so insertion order is time order, expiry stops at the
 * first row still inside the window, and a restarted replica (rows sorted by their insertion
 * sequence, the log index) expires exactly the same keys as one that kept running.
 *
 * The bounds and the window are part of the state machine's definition: every replica of a
 * partition must run with the same values (they come from the same topic spec).
 *
 *   key 'i' · utf8 idempotency key → i53 base · u32 count · i53 timeMs · bytes32 hash · i53 seq
 */

export const P_DEDUP = 0x69; // 'i'
/** Heap per row beyond key and hash (the row object, the map entry). */
const ROW_OVERHEAD_BYTES = 120;

interface DedupRow {
  baseOffset: number;
  count: number;
  /** State clock when inserted. */
  timeMs: number;
  hash: Uint8Array;
  /** Insertion order: the log index of the entry that inserted it. */
  seq: number;
  bytes: number;
}

export interface DedupSettings {
  windowMs: number;
  maxEntries: number;
  maxBytes: number;
}

function dedupKey(key: string): Uint8Array {
  return Buffer.concat([Buffer.of(P_DEDUP), Buffer.from(key, 'utf8')]);
}

export class DedupTable {
  private readonly rows = new Map<string, DedupRow>();
  private bytes = 0;
  expired = 0;
  evicted = 0;
  private loaded: Array<[string, DedupRow]> = [];

  constructor(private readonly s: DedupSettings) {}

  get size(): number {
    return this.rows.size;
  }
  get sizeBytes(): number {
    return this.bytes;
  }

  clear(): void {
    this.rows.clear();
    this.bytes = 0;
    this.loaded = [];
  }

  get(key: string): DedupRow | undefined {
    return this.rows.get(key);
  }

  /** Recovery: one persisted row (call finishLoad after the last). */
  load(k: Uint8Array, v: Uint8Array): void {
    const rd = new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    const key = Buffer.from(k.buffer, k.byteOffset + 1, k.byteLength - 1).toString('utf8');
    const baseOffset = rd.i53('b');
    const count = rd.u32('c');
    const timeMs = rd.i53('t');
    const hash = rd.view32('h');
    // Rows written before the sequence existed sort by time (their old order).
    const seq = rd.remaining >= 8 ? rd.i53('seq') : 0;
    this.loaded.push([key, { baseOffset, count, timeMs, hash, seq, bytes: rowBytes(key, hash) }]);
  }

  finishLoad(): void {
    this.loaded.sort((a, b) => a[1].seq - b[1].seq || a[1].timeMs - b[1].timeMs);
    for (const [key, row] of this.loaded) {
      this.rows.set(key, row);
      this.bytes += row.bytes;
    }
    this.loaded = [];
  }

  insert(
    key: string,
    baseOffset: number,
    count: number,
    hash: Uint8Array,
    clockMs: number,
    seq: number,
    ops: StateOp[],
  ): void {
    const old = this.rows.get(key);
    if (old) {
      this.rows.delete(key);
      this.bytes -= old.bytes;
    }
    const row: DedupRow = { baseOffset, count, timeMs: clockMs, hash, seq, bytes: rowBytes(key, hash) };
    this.rows.set(key, row);
    this.bytes += row.bytes;
    ops.push({
      op: 'put',
      key: dedupKey(key),
      value: new BufWriter(64).i53(baseOffset).u32(count).i53(clockMs).bytes32(hash).i53(seq).finish(),
    });
    // Over a bound: the oldest go first (never the row just inserted).
    while (this.rows.size > 1 && (this.rows.size > this.s.maxEntries || this.bytes > this.s.maxBytes)) {
      this.dropOldest(ops);
      this.evicted++;
    }
  }

  /** Drop rows older than the window on the state clock, oldest first. */
  expire(clockMs: number, ops: StateOp[]): void {
    const cutoff = clockMs - this.s.windowMs;
    for (const row of this.rows.values()) {
      if (row.timeMs >= cutoff) break;
      this.dropOldest(ops);
      this.expired++;
    }
  }

  private dropOldest(ops: StateOp[]): void {
    const first = this.rows.entries().next();
    if (first.done) return;
    const [key, row] = first.value;
    this.rows.delete(key);
    this.bytes -= row.bytes;
    ops.push({ op: 'del', key: dedupKey(key) });
  }
}

function rowBytes(key: string, hash: Uint8Array): number {
  return Buffer.byteLength(key, 'utf8') + hash.byteLength + ROW_OVERHEAD_BYTES;
}

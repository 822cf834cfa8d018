/**
 * On-disk layout of the replica database: key prefixes and the log entry format.
 *
 * One RocksDB holds three keyspaces, separated by their first byte:
 *   0x01 meta   — 0x01 + ASCII name → JSON value (incarnation, hard state, conf, applied index, …)
 *   0x02 log    — 0x02 + u64 big-endian index → entry (big-endian so key order = index order)
 *   0x03 state  — 0x03 + caller key → caller value (the state machine; opaque to storage)
 *   0x04 terms  — 0x04 + u64 big-endian start index → u64 term: one key per run of equal terms
 *                 in the retained log, written in the same batch as the entries it describes
 *   0x05 staged — 0x05 + caller key → caller value: a snapshot's state as it arrives in chunks
 *                 from the leader, moved into the state keyspace by installStaged (engine.ts)
 *
 * Entry value (all integers big-endian):
 *   [0, 4)   crc32 (zlib) over the 9-byte key, then bytes [4, end) of the value
 *   [4, 8)   type (u32); bit 8 (REWRITTEN_TYPE_FLAG) marks an entry rewritten in place by key
 *            compaction (same index, term and cumulative count; other data)
 *   [8, 16)  term (u64)
 *   [16, 24) cumulative log bytes up to and including this entry (u64)
 *   [24, …)  data
 * The CRC covers the key, so a value that lands under the wrong index is detected like a torn one.
 * The cumulative byte count makes `logBytes` an O(1) subtraction and lets compaction delete a
 * range without reading the values it drops.
 */
import { crc32 } from 'node:zlib';
import type { StoredEntry } from './types';

export const PREFIX_META = 0x01;
export const PREFIX_LOG = 0x02;
export const PREFIX_STATE = 0x03;
export const PREFIX_TERM_RUN = 0x04;
export const PREFIX_STAGED = 0x05;

export const META = {
  formatVersion: 'format_version',
  incarnation: 'incarnation',
  hardState: 'hard_state',
  conf: 'conf',
  applied: 'applied_index',
  /** {firstIndex, prevTerm, prevCum}: where the retained log starts and what precedes it. */
  logStart: 'log_start',
  snapshot: 'snapshot',
  /**
   * Set (with the new log position) while a staged snapshot replaces the state keyspace: the
   * staged keys are complete and durable, the state keys may be half replaced. Recovery finishes
   * the move before anything reads the state (engine.ts, finishStagedInstall).
   */
  pendingInstall: 'pending_install',
  /** Written only to carry an otherwise empty synced batch (fsync 'interval'). */
  syncMark: 'sync_mark',
} as const;
export type MetaName = (typeof META)[keyof typeof META];

export const FORMAT_VERSION = 1;
/**
 * Set in the stored type of an entry whose data key compaction rewrote (docs/compaction.md). Its
 * cumulative count stays the count as written, so its stored size no longer is the difference
 * to its predecessor's count (its CRC still covers it); readers see the type without the flag.
 */
export const REWRITTEN_TYPE_FLAG = 0x100;
export const ENTRY_HEADER_BYTES = 24;
const TWO_32 = 2 ** 32;

export function metaKey(name: MetaName): Buffer {
  const k = Buffer.allocUnsafe(1 + name.length);
  k[0] = PREFIX_META;
  k.write(name, 1, 'latin1');
  return k;
}
export const META_KEY_MIN = Buffer.from([PREFIX_META]);
export const META_KEY_END = Buffer.from([PREFIX_META + 1]);

function writeU64(buf: Uint8Array, off: number, n: number): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  dv.setUint32(off, Math.floor(n / TWO_32));
  dv.setUint32(off + 4, n >>> 0);
}

function readU64(buf: Uint8Array, off: number): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return dv.getUint32(off) * TWO_32 + dv.getUint32(off + 4);
}

export function logKey(index: number): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = PREFIX_LOG;
  writeU64(k, 1, index);
  return k;
}
/** Lower bound of the log keyspace (index 0) and its exclusive upper bound. */
export const LOG_KEY_MIN = logKey(0);
export const LOG_KEY_END = Buffer.from([PREFIX_LOG + 1]);

export function isLogKey(key: Uint8Array): boolean {
  return key.length === 9 && key[0] === PREFIX_LOG;
}

export function logIndexOf(key: Uint8Array): number {
  return readU64(key, 1);
}

export function stateKey(userKey: Uint8Array): Buffer {
  const k = Buffer.allocUnsafe(1 + userKey.length);
  k[0] = PREFIX_STATE;
  k.set(userKey, 1);
  return k;
}
export const STATE_KEY_MIN = Buffer.from([PREFIX_STATE]);
export const STATE_KEY_END = Buffer.from([PREFIX_STATE + 1]);

export function stagedKey(userKey: Uint8Array): Buffer {
  const k = Buffer.allocUnsafe(1 + userKey.length);
  k[0] = PREFIX_STAGED;
  k.set(userKey, 1);
  return k;
}
export const STAGED_KEY_MIN = Buffer.from([PREFIX_STAGED]);
export const STAGED_KEY_END = Buffer.from([PREFIX_STAGED + 1]);

export function termRunKey(startIndex: number): Buffer {
  const k = Buffer.allocUnsafe(9);
  k[0] = PREFIX_TERM_RUN;
  writeU64(k, 1, startIndex);
  return k;
}
export const TERM_RUN_KEY_MIN = termRunKey(0);
export const TERM_RUN_KEY_END = Buffer.from([PREFIX_TERM_RUN + 1]);

export function encodeTerm(term: number): Buffer {
  const v = Buffer.allocUnsafe(8);
  writeU64(v, 0, term);
  return v;
}

/** Decode a term-run row; null if it is malformed. */
export function decodeTermRun(key: Uint8Array, value: Uint8Array): [number, number] | null {
  if (key.length !== 9 || key[0] !== PREFIX_TERM_RUN || value.byteLength !== 8) return null;
  return [readU64(key, 1), readU64(value, 0)];
}

/** Fill the header of `value` (header space + data already in place) and compute its CRC. */
export function sealEntry(
  key: Uint8Array,
  value: Uint8Array,
  e: { term: number; type: number },
  cumBytes: number,
): void {
  const dv = new DataView(value.buffer, value.byteOffset, ENTRY_HEADER_BYTES);
  dv.setUint32(4, e.type >>> 0);
  dv.setUint32(8, Math.floor(e.term / TWO_32));
  dv.setUint32(12, e.term >>> 0);
  dv.setUint32(16, Math.floor(cumBytes / TWO_32));
  dv.setUint32(20, cumBytes >>> 0);
  dv.setUint32(0, entryCrc(key, value));
}

function entryCrc(key: Uint8Array, value: Uint8Array): number {
  return crc32(value.subarray(4), crc32(key)) >>> 0;
}

/** Encode one entry into a fresh buffer (tests and tools; the hot path seals in place). */
export function encodeEntry(e: StoredEntry, cumBytes: number): Buffer {
  const value = Buffer.allocUnsafe(ENTRY_HEADER_BYTES + e.data.byteLength);
  value.set(e.data, ENTRY_HEADER_BYTES);
  sealEntry(logKey(e.index), value, e, cumBytes);
  return value;
}

export interface DecodedEntry {
  index: number;
  term: number;
  type: number;
  cumBytes: number;
  /** Stored size of this entry (header + data); what it adds to `cumBytes` (unless rewritten). */
  storedBytes: number;
  /** Rewritten in place by key compaction (REWRITTEN_TYPE_FLAG). */
  rewritten: boolean;
  /** View into the value buffer; copy before the buffer is reused. */
  data: Uint8Array;
}

/** Decode and verify one stored entry. Returns null when the value is short or its CRC is wrong. */
export function decodeEntry(key: Uint8Array, value: Uint8Array): DecodedEntry | null {
  if (!isLogKey(key) || value.byteLength < ENTRY_HEADER_BYTES) return null;
  const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
  if (dv.getUint32(0) !== entryCrc(key, value)) return null;
  const type = dv.getUint32(4);
  return {
    index: logIndexOf(key),
    type: type & ~REWRITTEN_TYPE_FLAG,
    rewritten: (type & REWRITTEN_TYPE_FLAG) !== 0,
    term: readU64(value, 8),
    cumBytes: readU64(value, 16),
    storedBytes: value.byteLength,
    data: value.subarray(ENTRY_HEADER_BYTES),
  };
}

/**
 * State pairs as one block — (u32 key length · key · u32 value length · value)*, big-endian, in
 * key order — as a snapshot's state travels between replicas: made by the leader's storage
 * worker, carried as bytes by both main threads, written by the follower's worker.
 */
export function encodePairsBlock(pairs: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Uint8Array {
  let size = 0;
  for (const [k, v] of pairs) size += 8 + k.byteLength + v.byteLength;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let off = 0;
  for (const [k, v] of pairs) {
    dv.setUint32(off, k.byteLength);
    out.set(k, off + 4);
    off += 4 + k.byteLength;
    dv.setUint32(off, v.byteLength);
    out.set(v, off + 4);
    off += 4 + v.byteLength;
  }
  return out;
}

/** Visit each pair of a block (views into it); throws RangeError when it is malformed. */
export function decodePairsBlock(block: Uint8Array, visit: (key: Uint8Array, value: Uint8Array) => void): number {
  const dv = new DataView(block.buffer, block.byteOffset, block.byteLength);
  let off = 0;
  let n = 0;
  const take = (what: string): Uint8Array => {
    if (off + 4 > block.byteLength) throw new RangeError(`pairs block: ${what} length past the end at ${off}`);
    const len = dv.getUint32(off);
    if (off + 4 + len > block.byteLength)
      throw new RangeError(`pairs block: ${what} of ${len} bytes past the end at ${off}`);
    const view = block.subarray(off + 4, off + 4 + len);
    off += 4 + len;
    return view;
  };
  while (off < block.byteLength) {
    const k = take('key');
    if (k.byteLength === 0) throw new RangeError(`pairs block: empty key at pair ${n}`);
    visit(k, take('value'));
    n++;
  }
  return n;
}

/** Meta values are small JSON documents. */
export function encodeMeta(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

export function decodeMeta<T>(v: Uint8Array): T {
  return JSON.parse(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8')) as T;
}

import { createHash } from 'node:crypto';
import type { RecordIn } from '../../common/partition-api';
import { offsetOf, recordBytes, spanOf, type ProduceCommand } from './commands';

/**
 * Key compaction, the pure part (docs/compaction.md): the bounded key → latest-offset map of one
 * pass and the rewrite of one produce batch. No I/O; replica/driver/compactor.ts drives a pass
 * over the log with these.
 *
 * A pass over the clean section [logStart, cleanedTo) and a dirty stretch [cleanedTo, passEnd):
 *  1. map every keyed record of the dirty stretch: key → its latest offset there. The map is
 *     bounded in bytes (Kafka's log.cleaner.dedupe.buffer.size); when it is full the stretch
 *     ends at the last batch that fit, and the rest waits for the next pass;
 *  2. rewrite every batch in [logStart, passEnd): a keyed record whose key maps to a later
 *     offset is superseded and goes; a tombstone below `tombstonesBefore` goes; everything
 *     else — keyless records, the latest record of each key — stays with its offset.
 *
 * After all passes up to X, a record below X survives iff it is keyless, or it is the latest
 * record of its key below X and not a tombstone below the tombstone bound — whatever the pass
 * boundaries were, so replicas with different buffer sizes end in the same place.
 */

/** Bytes per slot: a 16-byte key digest and a float64 offset (Kafka's SkimpyOffsetMap: 24). */
export const DEDUPE_SLOT_BYTES = 24;
const DIGEST_BYTES = 16;
/** The map is "full" at this load factor (open addressing degrades past it). */
const MAX_LOAD = 0.75;

/**
 * Key digest → latest offset, open addressing in two typed arrays: memory is fixed when it is
 * made, whatever the keys. Keys are identified by their MD5 (as Kafka's cleaner does): two keys
 * with one digest would be treated as one key — 2^-128 per pair, accepted.
 */
export class DedupeMap {
  private readonly digests: Uint8Array;
  private readonly offsets: Float64Array;
  private readonly slots: number;
  private used = 0;
  readonly maxEntries: number;

  constructor(bufferBytes: number) {
    this.slots = Math.max(16, Math.floor(bufferBytes / DEDUPE_SLOT_BYTES));
    this.maxEntries = Math.floor(this.slots * MAX_LOAD);
    this.digests = new Uint8Array(this.slots * DIGEST_BYTES);
    // -1 = empty slot (offsets are ≥ 0).
    this.offsets = new Float64Array(this.slots).fill(-1);
  }

  get size(): number {
    return this.used;
  }

  /** Bytes held by the map (fixed at construction). */
  get bytes(): number {
    return this.digests.byteLength + this.offsets.byteLength;
  }

  clear(): void {
    this.offsets.fill(-1);
    this.used = 0;
  }

  /** `newKeys` keys not yet in the map would still fit (each new key takes one slot). */
  fits(newKeys: number): boolean {
    return this.used + newKeys <= this.maxEntries;
  }

  /** Record `offset` as the latest for `key` (offsets are put in increasing order). */
  put(key: Uint8Array, offset: number): void {
    const d = digest(key);
    const at = this.find(d);
    if (this.offsets[at] < 0) {
      if (this.used >= this.maxEntries) throw new RangeError('dedupe map is full');
      this.digests.set(d, at * DIGEST_BYTES);
      this.used++;
    }
    this.offsets[at] = offset;
  }

  /** The latest offset recorded for `key`, or -1. */
  get(key: Uint8Array): number {
    return this.offsets[this.find(digest(key))];
  }

  /** Whether `key` is in the map (no new slot needed). */
  has(key: Uint8Array): boolean {
    return this.get(key) >= 0;
  }

  /** The slot holding digest `d`, or the empty slot where it would go (linear probing). */
  private find(d: Uint8Array): number {
    // The digest is uniform: its first 4 bytes are a good start position.
    let i = ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0;
    i %= this.slots;
    for (;;) {
      if (this.offsets[i] < 0) return i;
      const base = i * DIGEST_BYTES;
      let same = true;
      for (let b = 0; b < DIGEST_BYTES; b++)
        if (this.digests[base + b] !== d[b]) {
          same = false;
          break;
        }
      if (same) return i;
      i = i + 1 === this.slots ? 0 : i + 1;
    }
  }
}

function digest(key: Uint8Array): Uint8Array {
  return createHash('md5').update(key).digest();
}

/**
 * Map the keyed records of one batch (at `base`) with offsets in [from, end) into `map`, in
 * offset order, until the map is full. Returns the first offset not mapped: `end` when the whole
 * stretch fit (a pass may thus end inside a batch; the next one starts there).
 */
export function mapBatch(map: DedupeMap, c: ProduceCommand, base: number, from: number, end: number): number {
  for (let i = 0; i < c.records.length; i++) {
    const o = offsetOf(c, base, i);
    if (o < from) continue;
    if (o >= end) break;
    const k = c.records[i].key;
    if (k === null) continue;
    if (!map.fits(1) && !map.has(k)) return o;
    map.put(k, o);
  }
  return end;
}

/** Whether a record at `offset` survives a pass with `map` and the tombstone bound. */
export function survives(r: RecordIn, offset: number, map: DedupeMap, tombstonesBefore: number): boolean {
  // Keyless records are never removed (a compacted topic refuses them; older ones stay).
  if (r.key === null) return true;
  if (r.tombstone === true && offset < tombstonesBefore) return false;
  return map.get(r.key) <= offset;
}

export interface BatchRewrite {
  /** The rewritten batch (same span), or undefined when every record survives. */
  command?: ProduceCommand;
  removedRecords: number;
  /** recordBytes of the removed records. */
  removedBytes: number;
  /** recordBytes of the survivors. */
  keptBytes: number;
}

/**
 * One batch through a pass: the survivors with their positions, the span and the index-row
 * values of the batch as written kept, everything else (idempotency key and hash, producer,
 * replay section) unchanged — so applying the rewritten entry has the same outcome as applying
 * the original, on a replica that has not applied it yet.
 */
export function rewriteBatch(c: ProduceCommand, base: number, map: DedupeMap, tombstonesBefore: number): BatchRewrite {
  const records: RecordIn[] = [];
  const positions: number[] = [];
  let removedBytes = 0;
  let keptBytes = 0;
  for (let i = 0; i < c.records.length; i++) {
    const r = c.records[i];
    const o = offsetOf(c, base, i);
    const b = recordBytes([r]);
    if (survives(r, o, map, tombstonesBefore)) {
      records.push(r);
      positions.push(o - base);
      keptBytes += b;
    } else removedBytes += b;
  }
  const removedRecords = c.records.length - records.length;
  if (removedRecords === 0) return { removedRecords, removedBytes, keptBytes };
  let maxTs = Number.MIN_SAFE_INTEGER;
  if (c.compacted) maxTs = c.compacted.maxTimestampMs;
  else for (const r of c.records) if (r.timestampMs > maxTs) maxTs = r.timestampMs;
  return {
    command: {
      ...c,
      records,
      compacted: {
        span: spanOf(c),
        bytes: c.compacted ? c.compacted.bytes : recordBytes(c.records),
        maxTimestampMs: maxTs,
        positions,
      },
    },
    removedRecords,
    removedBytes,
    keptBytes,
  };
}

/**
 * Messages between the storage facade (main thread) and the storage worker. Every request
 * carries an id; the worker answers each exactly once, in the order it received them (it is a
 * serial executor), with either a result or a marshalled error.
 */
import type { MarshalledError } from './errors';
import type { Recovered, StateOp, StoredConf, StoredHardState, StoredSnapshotMeta } from './types';

/**
 * Log entries in flat form. Structured clone of one object per entry costs microseconds each on
 * both threads (milliseconds for a big group, on the event loop); two typed arrays cost nothing
 * and are transferred. Entry i has index firstIndex + i, term meta[3i], type meta[3i+1] and
 * meta[3i+2] data bytes; in `arena`, entries lie back to back, each as headerBytes of header
 * space (ENTRY_HEADER_BYTES on the way in, filled by the worker; 0 on the way out) then data.
 */
export interface WireEntries {
  firstIndex: number;
  count: number;
  headerBytes: number;
  meta: Float64Array;
  arena: Uint8Array;
}

/**
 * Entries rewritten in place by key compaction: entry i is at index indexes[i], expected term
 * meta[3i], type meta[3i+1], meta[3i+2] data bytes, laid out in `arena` as in WireEntries (with
 * ENTRY_HEADER_BYTES of header space before each).
 */
export interface RewriteEntries {
  indexes: Float64Array;
  meta: Float64Array;
  arena: Uint8Array;
}

/**
 * One group commit: everything gathered while the previous write ran, merged into one atomic
 * RocksDB WriteBatch. Order inside the batch: log, hard state, conf, state ops, applied index.
 */
export interface WriteGroup {
  sync: boolean;
  /** Merged appends: contiguous entries; existing entries ≥ firstIndex are replaced. */
  log: WireEntries | null;
  hardState?: StoredHardState;
  conf?: StoredConf;
  /** Merged applyBatch ops in call order, then the highest applied index among them. */
  ops: StateOp[];
  applied?: number;
  /** Payload bytes (for FlushStats). */
  bytes: number;
}

export interface OpenParams {
  path: string;
  verifyTailEntries: number;
  /** RocksDB block cache (data, index and filter blocks), bytes. */
  blockCacheBytes: number;
  /** RocksDB memtables, bytes (a quarter per memtable, at most six). */
  memtableBytes: number;
}

/** RocksDB's own memory, from its properties. */
export interface RocksMemory {
  memtableBytes: number;
  blockCacheBytes: number;
  tableReaderBytes: number;
  /** The storage worker's V8 heap (committed), filled in by the worker, not the engine. */
  workerHeapBytes?: number;
}

export type Request =
  | { id: number; op: 'open'; params: OpenParams }
  | { id: number; op: 'write'; group: WriteGroup }
  | { id: number; op: 'readEntries'; lo: number; hi: number; maxBytes: number }
  | { id: number; op: 'get'; key: Uint8Array }
  | { id: number; op: 'scan'; gte: Uint8Array; lt: Uint8Array; limit: number; reverse: boolean }
  | { id: number; op: 'compact'; firstIndex: number }
  | { id: number; op: 'rewrite'; entries: RewriteEntries; ops: StateOp[] }
  | { id: number; op: 'install'; meta: StoredSnapshotMeta; state: Array<[Uint8Array, Uint8Array]> }
  | { id: number; op: 'exportOpen' }
  | { id: number; op: 'exportChunk'; exportId: number; after: Uint8Array | null; maxBytes: number }
  | { id: number; op: 'exportClose'; exportId: number }
  | { id: number; op: 'stageBegin' }
  | { id: number; op: 'stageBlock'; block: Uint8Array }
  | { id: number; op: 'installStaged'; meta: StoredSnapshotMeta }
  | { id: number; op: 'memory' }
  | { id: number; op: 'close' };

/** A chunk of an export: the pairs after the asked key as one block (codec.ts encodePairsBlock). */
export interface ExportChunk {
  block: Uint8Array;
  count: number;
  /** The block's last key (null when it is empty): where the next chunk starts after. */
  lastKey: Uint8Array | null;
  done: boolean;
  /** The export is no longer open (closed, replaced, or this process restarted). */
  gone: boolean;
}

/** The log position after a mutation; the facade mirrors it for stats(). */
export interface LogPosition {
  firstIndex: number;
  lastIndex: number;
  logBytes: number;
}

export interface OpenResult {
  recovered: Recovered;
}

export interface WriteResult extends LogPosition {
  fsyncSeconds: number;
  writeSeconds: number;
}

export type Response = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: MarshalledError };

/**
 * The units of the storage facade's queue (storage.ts): a group slot gathers appends and applies
 * for one group commit, a barrier slot is a write merged with nothing (compaction, snapshot
 * install). `packGroup` lays a group out for the worker: entry data and state-op bytes in one
 * arena, entry metadata in one Float64Array, both transferred rather than cloned.
 */

import type { RequestBody } from './channel';
import { ENTRY_HEADER_BYTES } from './codec';
import type { WireEntries, WriteGroup } from './protocol';
import type { StateOp, StoredConf, StoredEntry, StoredHardState } from './types';

export interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Appends and applies gathered for one group commit. */
export interface GroupSlot {
  kind: 'group';
  entries: StoredEntry[];
  hardState?: StoredHardState;
  conf?: StoredConf;
  ops: StateOp[];
  applied?: number;
  /** Set by the 'interval' fsync timer: this group carries the periodic synced write. */
  syncRequested: boolean;
  /** Payload bytes accepted into this slot (counted in pendingBytes until it completes). */
  bytes: number;
  waiters: Waiter[];
}

/** A write that is not merged with anything (compaction, snapshot install). */
export interface BarrierSlot {
  kind: 'barrier';
  body: () => { body: RequestBody; transfer: ArrayBuffer[] };
  bytes: number;
  waiter: Waiter;
}

export type Slot = GroupSlot | BarrierSlot;

export function entryBytes(entries: StoredEntry[]): number {
  let n = 0;
  for (const e of entries) n += e.data.byteLength;
  return n;
}

export function opBytes(ops: StateOp[]): number {
  let n = 0;
  for (const o of ops)
    n +=
      o.op === 'put'
        ? o.key.byteLength + o.value.byteLength
        : o.op === 'del'
          ? o.key.byteLength
          : o.gte.byteLength + o.lt.byteLength;
  return n;
}

/**
 * One group as the worker's WriteGroup. Synced when the interval timer asked for it, or in
 * 'always' mode when it holds anything durable (entries, hard state, conf).
 */
export function packGroup(g: GroupSlot, fsyncAlways: boolean): { group: WriteGroup; transfer: ArrayBuffer[] } {
  const n = g.entries.length;
  let size = 0;
  for (const e of g.entries) size += ENTRY_HEADER_BYTES + e.data.byteLength;
  const payloadOps = opBytes(g.ops);
  const arena = new Uint8Array(size + payloadOps);
  const meta = new Float64Array(3 * n);
  let off = 0;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const e = g.entries[i];
    meta[3 * i] = e.term;
    meta[3 * i + 1] = e.type;
    meta[3 * i + 2] = e.data.byteLength;
    arena.set(e.data, off + ENTRY_HEADER_BYTES);
    off += ENTRY_HEADER_BYTES + e.data.byteLength;
    bytes += e.data.byteLength;
  }
  const log: WireEntries | null =
    n === 0
      ? null
      : {
          firstIndex: g.entries[0].index,
          count: n,
          headerBytes: ENTRY_HEADER_BYTES,
          meta,
          arena: arena.subarray(0, size),
        };
  const take = (src: Uint8Array): Uint8Array => {
    arena.set(src, off);
    off += src.byteLength;
    return arena.subarray(off - src.byteLength, off);
  };
  const ops: StateOp[] = g.ops.map((o) =>
    o.op === 'put'
      ? { op: 'put', key: take(o.key), value: take(o.value) }
      : o.op === 'del'
        ? { op: 'del', key: take(o.key) }
        : { op: 'delRange', gte: take(o.gte), lt: take(o.lt) },
  );
  bytes += payloadOps;
  const durable = n > 0 || g.hardState !== undefined || g.conf !== undefined;
  const group: WriteGroup = {
    sync: g.syncRequested || (fsyncAlways && durable),
    log,
    hardState: g.hardState,
    conf: g.conf,
    ops,
    applied: g.applied,
    bytes,
  };
  return { group, transfer: [arena.buffer, meta.buffer] };
}

import type { Entry } from '../../replica/raft';

/**
 * Hash chains over logs: chain(i) = H(chain(i-1), term_i, type_i, data_i). Two logs with equal
 * chain values at index i are identical up to i, so log matching, prefix and "same committed
 * entry" checks are O(1) comparisons. 52-bit values (two 32-bit lanes, folded).
 */

/** Chain value at the bootstrap snapshot (index 1), shared by every founding member. */
export const BOOT_CHAIN = 0x1b00_7000;

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function dataHash(data: Uint8Array): number {
  let h = 0x811c9dc5 ^ data.length;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i], 0x01000193);
  return h >>> 0;
}

export function chainStep(prev: number, e: Entry): number {
  const hi = Math.floor(prev / 0x100000);
  const lo = prev % 0x100000;
  const d = dataHash(e.data);
  const a = fmix(Math.imul(hi ^ e.term, 0x9e3779b1) ^ fmix(d ^ e.type) ^ lo);
  const b = fmix(Math.imul(lo ^ e.index, 0x85ebca77) ^ fmix(d + e.term) ^ hi);
  return (a % 0x100000) * 0x100000000 + b; // < 2^52
}

/** Snapshot data in the simulator: the state machine is its chain value. */
export function encodeChain(chain: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setFloat64(0, chain);
  return out;
}

/** Empty data: the empty state of a node that has not joined yet (index 0). */
export function decodeChain(data: Uint8Array): number {
  if (data.length === 0) return 0;
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getFloat64(0);
}

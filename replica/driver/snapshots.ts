import { BufReader, BufWriter } from '../../protocol/bytes';

/**
 * The state-machine part of a Raft snapshot, in one of two forms:
 *
 *   inline    version u8 (1) · i53 stateIndex · u32 n · (bytes32 key · bytes32 value)*
 *   streamed  version u8 (2) · i53 stateIndex · str16 exportKey
 *
 * Inline carries every pair of the state keyspace (only the founding snapshot's empty state is
 * sent so now); streamed names an export on the sending leader, from which the follower pulls
 * the state in chunks (snapshot-transfer.ts). Either way the state index X is the applied index
 * the state was exported at: a follower that installs it skips the state changes of entries ≤ X
 * when they reach it again (its state already holds them).
 */

/** Where the state index is kept in the state keyspace (written with the state it belongs to). */
export const K_STATE_INDEX = new TextEncoder().encode('m/stateIndex');

const SNAPSHOT_STATE_VERSION = 1;
const SNAPSHOT_STREAMED_VERSION = 2;

export function encodeStreamedSnapshot(stateIndex: number, exportKey: string): Uint8Array {
  return new BufWriter(64).u8(SNAPSHOT_STREAMED_VERSION).i53(stateIndex).str16(exportKey).finish();
}

/** The export a streamed snapshot names, or null for an inline one. Throws on malformed data. */
export function streamedSnapshotOf(data: Uint8Array): { stateIndex: number; exportKey: string } | null {
  if (data.byteLength === 0 || data[0] !== SNAPSHOT_STREAMED_VERSION) return null;
  const rd = new BufReader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  rd.u8('snapshot.version');
  const stateIndex = rd.i53('snapshot.stateIndex');
  const exportKey = rd.str16('snapshot.exportKey');
  rd.end('streamed snapshot');
  return { stateIndex, exportKey };
}

export function encodeSnapshotState(state: Array<[Uint8Array, Uint8Array]>, stateIndex: number): Uint8Array {
  const w = new BufWriter(1024);
  w.u8(SNAPSHOT_STATE_VERSION).i53(stateIndex).u32(state.length);
  for (const [k, v] of state) w.bytes32(k).bytes32(v);
  return w.finish();
}

/**
 * The pairs to install — sorted, with the state index written under K_STATE_INDEX in place of
 * any exported one — and the state index.
 */
export function decodeSnapshotState(data: Uint8Array): { pairs: Array<[Uint8Array, Uint8Array]>; stateIndex: number } {
  const rd = new BufReader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  const version = rd.u8('snapshot.version');
  if (version !== SNAPSHOT_STATE_VERSION) throw new Error(`unknown snapshot version ${version}`);
  const stateIndex = rd.i53('snapshot.stateIndex');
  const n = rd.u32('snapshot.count');
  const pairs: Array<[Uint8Array, Uint8Array]> = [];
  for (let i = 0; i < n; i++) {
    const k = rd.bytes32('k');
    const v = rd.bytes32('v');
    if (!isStateIndexKey(k)) pairs.push([k, v]);
  }
  pairs.push([K_STATE_INDEX, encodeStateIndex(stateIndex)]);
  pairs.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
  return { pairs, stateIndex };
}

export function encodeStateIndex(stateIndex: number): Uint8Array {
  return new BufWriter(8).i53(stateIndex).finish();
}

/** The state index recovered from the state keyspace (0 when none was ever written). */
export function stateIndexOf(pairs: Array<[Uint8Array, Uint8Array]>): number {
  const si = pairs.find(([k]) => isStateIndexKey(k));
  return si ? new BufReader(Buffer.from(si[1])).i53('stateIndex') : 0;
}

function isStateIndexKey(k: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(k), Buffer.from(K_STATE_INDEX)) === 0;
}

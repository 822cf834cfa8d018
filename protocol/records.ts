import type { RecordIn } from '../common/partition-api';
import { BufReader, BufWriter, CodecError } from './bytes';

/**
 * The record layout: one record as it travels in client-port frames (produce, fetch, leased
 * fetch, dead-letter pages) and as it sits inside Raft log entries (replica/state/commands.ts)
 * and dead-letter rows. Because it is also an on-disk format, changing it needs a log-format
 * version, not only a frame version bump.
 */

// ---- records ----
//
// record   := u8 flags (bit 0: key present) · [u32 keyLen · key] · u32 valueLen · value
//             · i53 timestampMs · u16 headerCount · header*
// header   := u16 nameLen · name (UTF-8) · u32 valueLen · value
// recordOut:= i53 offset · record

const FLAG_KEY = 0x01;
/** Smallest possible encoded record (no key, empty value, no headers): bounds a forged count. */
export const MIN_RECORD_BYTES = 1 + 4 + 8 + 2;
const MIN_HEADER_BYTES = 2 + 4;

/** Encoded size of one record (exact), for sizing buffers up front. */
export function recordBytes(r: RecordIn): number {
  let n = MIN_RECORD_BYTES + r.value.byteLength + (r.key === null ? 0 : 4 + r.key.byteLength);
  for (const [name, v] of r.headers) n += MIN_HEADER_BYTES + Buffer.byteLength(name, 'utf8') + v.byteLength;
  return n;
}

/** One record in the layout above. */
export function writeRecord(w: BufWriter, r: RecordIn): void {
  if (r.key === null) w.u8(0);
  else w.u8(FLAG_KEY).bytes32(r.key);
  w.bytes32(r.value);
  w.i53(r.timestampMs, Number.MIN_SAFE_INTEGER);
  w.u16(r.headers.length);
  for (const [name, v] of r.headers) w.str16(name).bytes32(v);
}

/** Inverse of writeRecord; key, value and header values are views into the reader's buffer. */
export function readRecord(rd: BufReader): RecordIn {
  const flags = rd.u8('record.flags');
  if ((flags & ~FLAG_KEY) !== 0) throw new CodecError('bad_value', `record.flags 0x${flags.toString(16)}`);
  const key = flags & FLAG_KEY ? rd.view32('record.key') : null;
  const value = rd.view32('record.value');
  const timestampMs = rd.i53('record.timestampMs', Number.MIN_SAFE_INTEGER);
  const n = rd.u16('record.headerCount');
  if (n * MIN_HEADER_BYTES > rd.remaining)
    throw new CodecError('bad_length', `record.headerCount ${n} exceeds the ${rd.remaining} bytes left`);
  const headers: Array<[string, Uint8Array]> = new Array(n);
  for (let i = 0; i < n; i++) headers[i] = [rd.str16('header.name'), rd.view32('header.value')];
  return { key, value, headers, timestampMs };
}

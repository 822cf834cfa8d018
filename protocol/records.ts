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
// record   := u8 flags · [u32 keyLen · key] · u32 valueLen · value · i53 timestampMs
//             · [i53 deliverAtMs] · [i53 expiresAtMs] · u16 headerCount · header*
//   flags    bit 0: key present · bit 1: null value (tombstone; valueLen is 0)
//            bit 2: deliverAtMs present · bit 3: expiresAtMs present; other bits must be 0.
//   Records written before bits 1–3 existed have them clear, so the layout needs no new log
//   version: an old record reads as a non-null value with no delivery times.
// header   := u16 nameLen · name (UTF-8) · u32 valueLen · value
// recordOut:= i53 offset · record

const FLAG_KEY = 0x01;
const FLAG_TOMBSTONE = 0x02;
const FLAG_DELIVER_AT = 0x04;
const FLAG_EXPIRES_AT = 0x08;
const KNOWN_FLAGS = FLAG_KEY | FLAG_TOMBSTONE | FLAG_DELIVER_AT | FLAG_EXPIRES_AT;
/** Smallest possible encoded record (no key, empty value, no headers): bounds a forged count. */
export const MIN_RECORD_BYTES = 1 + 4 + 8 + 2;
const MIN_HEADER_BYTES = 2 + 4;

/** Encoded size of one record (exact), for sizing buffers up front. */
export function recordBytes(r: RecordIn): number {
  let n = MIN_RECORD_BYTES + r.value.byteLength + (r.key === null ? 0 : 4 + r.key.byteLength);
  if (r.deliverAtMs !== undefined) n += 8;
  if (r.expiresAtMs !== undefined) n += 8;
  for (const [name, v] of r.headers) n += MIN_HEADER_BYTES + Buffer.byteLength(name, 'utf8') + v.byteLength;
  return n;
}

/** One record in the layout above. */
export function writeRecord(w: BufWriter, r: RecordIn): void {
  let flags = r.key === null ? 0 : FLAG_KEY;
  if (r.tombstone === true) {
    // A tombstone has no bytes: a reader could not tell them from a value.
    if (r.value.byteLength !== 0) throw new CodecError('bad_value', 'record.value of a tombstone must be empty');
    flags |= FLAG_TOMBSTONE;
  }
  if (r.deliverAtMs !== undefined) flags |= FLAG_DELIVER_AT;
  if (r.expiresAtMs !== undefined) flags |= FLAG_EXPIRES_AT;
  w.u8(flags);
  if (r.key !== null) w.bytes32(r.key);
  w.bytes32(r.value);
  w.i53(r.timestampMs, Number.MIN_SAFE_INTEGER);
  if (r.deliverAtMs !== undefined) w.i53(r.deliverAtMs);
  if (r.expiresAtMs !== undefined) w.i53(r.expiresAtMs);
  w.u16(r.headers.length);
  for (const [name, v] of r.headers) w.str16(name).bytes32(v);
}

/** Inverse of writeRecord; key, value and header values are views into the reader's buffer. */
export function readRecord(rd: BufReader): RecordIn {
  const flags = rd.u8('record.flags');
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new CodecError('bad_value', `record.flags 0x${flags.toString(16)}`);
  const key = flags & FLAG_KEY ? rd.view32('record.key') : null;
  const value = rd.view32('record.value');
  if (flags & FLAG_TOMBSTONE && value.byteLength !== 0)
    throw new CodecError('bad_value', `record.value of a tombstone has ${value.byteLength} bytes`);
  const timestampMs = rd.i53('record.timestampMs', Number.MIN_SAFE_INTEGER);
  const deliverAtMs = flags & FLAG_DELIVER_AT ? rd.i53('record.deliverAtMs') : undefined;
  const expiresAtMs = flags & FLAG_EXPIRES_AT ? rd.i53('record.expiresAtMs') : undefined;
  const n = rd.u16('record.headerCount');
  if (n * MIN_HEADER_BYTES > rd.remaining)
    throw new CodecError('bad_length', `record.headerCount ${n} exceeds the ${rd.remaining} bytes left`);
  const headers: Array<[string, Uint8Array]> = new Array(n);
  for (let i = 0; i < n; i++) headers[i] = [rd.str16('header.name'), rd.view32('header.value')];
  const r: RecordIn = { key, value, headers, timestampMs };
  // Only present fields are set, so records without them compare equal to those built by hand.
  if (flags & FLAG_TOMBSTONE) r.tombstone = true;
  if (deliverAtMs !== undefined) r.deliverAtMs = deliverAtMs;
  if (expiresAtMs !== undefined) r.expiresAtMs = expiresAtMs;
  return r;
}

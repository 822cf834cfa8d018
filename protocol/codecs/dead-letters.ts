import type { DeadLetterFilter, DeadLetterRow, DeadLetterState } from '../../common/leased-api';
import { BufReader, BufWriter, CodecError } from '../bytes';
import { readRecord, writeRecord } from '../records';

/**
 * Dead letters in bytes: the row layout (kept in the partition's state keyspace and carried in
 * dead-letter pages on the client port) and the filter's JSON (in replay-job commands and wire
 * bodies). One codec for both places, so a page is the stored row, never a re-encoding.
 */

const STATES: readonly DeadLetterState[] = ['active', 'archived', 'replayed'];

/** A filter with a fixed field order, so its JSON is the same on every replica. */
export function normalizeFilter(f: DeadLetterFilter): DeadLetterFilter {
  const out: DeadLetterFilter = {};
  if (f.fromMs !== undefined) out.fromMs = f.fromMs;
  if (f.toMs !== undefined) out.toMs = f.toMs;
  if (f.group !== undefined) out.group = f.group;
  if (f.errorClass !== undefined) out.errorClass = f.errorClass;
  if (f.seqs !== undefined) out.seqs = [...f.seqs];
  if (f.states !== undefined) out.states = [...f.states];
  return out;
}

/** Parse a filter from JSON (commands and wire bodies), checking every field. */
export function parseFilter(json: string): DeadLetterFilter {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new CodecError('bad_json', 'dead-letter filter is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new CodecError('bad_json', 'dead-letter filter is not an object');
  const o = v as Record<string, unknown>;
  const f: DeadLetterFilter = {};
  const int = (k: string) => {
    if (o[k] === undefined) return undefined;
    if (!Number.isSafeInteger(o[k])) throw new CodecError('bad_json', `filter.${k} is not an integer`);
    return o[k] as number;
  };
  const str = (k: string) => {
    if (o[k] === undefined) return undefined;
    if (typeof o[k] !== 'string') throw new CodecError('bad_json', `filter.${k} is not a string`);
    return o[k] as string;
  };
  const fromMs = int('fromMs');
  const toMs = int('toMs');
  const group = str('group');
  const errorClass = str('errorClass');
  if (fromMs !== undefined) f.fromMs = fromMs;
  if (toMs !== undefined) f.toMs = toMs;
  if (group !== undefined) f.group = group;
  if (errorClass !== undefined) f.errorClass = errorClass;
  if (o.seqs !== undefined) {
    if (!Array.isArray(o.seqs) || !o.seqs.every((s) => Number.isSafeInteger(s) && (s as number) >= 0))
      throw new CodecError('bad_json', 'filter.seqs is not a list of sequence numbers');
    f.seqs = o.seqs as number[];
  }
  if (o.states !== undefined) {
    if (!Array.isArray(o.states) || !o.states.every((s) => (STATES as readonly unknown[]).includes(s)))
      throw new CodecError('bad_json', 'filter.states is not a list of active, archived, replayed');
    f.states = o.states as DeadLetterState[];
  }
  for (const k of Object.keys(o))
    if (!['fromMs', 'toMs', 'group', 'errorClass', 'seqs', 'states'].includes(k))
      throw new CodecError('bad_json', `filter.${k} is not a filter field`);
  return f;
}

// ---- the row ----

const STATE_CODE: Record<DeadLetterState, number> = { active: 0, archived: 1, replayed: 2 };

export function encodeDeadLetter(row: DeadLetterRow): Buffer {
  const w = new BufWriter(128 + row.record.value.byteLength + (row.record.key?.byteLength ?? 0));
  // Version 2 adds where a replay to another topic wrote the record; rows without one stay version 1.
  const toTopic = row.replay?.topic !== undefined;
  w.u8(toTopic ? 2 : 1)
    .str16(row.group)
    .i53(row.originOffset)
    .u32(row.attempts)
    .str16(row.lastError)
    .str16(row.errorClass)
    .i53(row.firstDeliveryMs)
    .i53(row.lastDeliveryMs)
    .i53(row.deadLetteredMs)
    .u8(STATE_CODE[row.state])
    .bool(row.replay !== undefined);
  if (row.replay) w.str16(row.replay.jobId).i53(row.replay.offset).i53(row.replay.atMs);
  if (toTopic) w.str16(row.replay!.topic!).u32(row.replay!.partition ?? 0);
  writeRecord(w, row.record);
  return w.finish();
}

export function decodeDeadLetter(seq: number, v: Uint8Array): DeadLetterRow {
  const rd = new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  const version = rd.u8('deadLetter.version');
  if (version !== 1 && version !== 2) throw new CodecError('bad_value', `dead letter version ${version}`);
  const row: DeadLetterRow = {
    seq,
    group: rd.str16('group'),
    originOffset: rd.i53('originOffset'),
    attempts: rd.u32('attempts'),
    lastError: rd.str16('lastError'),
    errorClass: rd.str16('errorClass'),
    firstDeliveryMs: rd.i53('firstDeliveryMs'),
    lastDeliveryMs: rd.i53('lastDeliveryMs'),
    deadLetteredMs: rd.i53('deadLetteredMs'),
    state: STATES[rd.u8('state')] ?? 'active',
    record: { key: null, value: new Uint8Array(0), headers: [], timestampMs: 0 },
  };
  if (rd.bool('hasReplay')) row.replay = { jobId: rd.str16('jobId'), offset: rd.i53('offset'), atMs: rd.i53('atMs') };
  if (version === 2) {
    if (!row.replay) throw new CodecError('bad_value', 'dead letter version 2 without a replay');
    row.replay.topic = rd.str16('replay.topic');
    row.replay.partition = rd.u32('replay.partition');
  }
  row.record = readRecord(rd);
  rd.end('dead letter');
  return row;
}

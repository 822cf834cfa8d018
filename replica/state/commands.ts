import { createHash } from 'node:crypto';
import type { ProducerIdentity, RecordIn } from '../../common/partition-api';
import { readRecord, writeRecord } from '../../protocol/records';
import {
  readLeasedCommand,
  readReplaySection,
  writeLeasedCommand,
  writeReplaySection,
  type LeasedCommand,
  type ReplaySection,
} from '../leased/commands';
import { BufReader, BufWriter, CodecError } from '../../protocol/bytes';

/**
 * State-machine commands: the `data` of Normal Raft entries. Binary, versioned by a kind byte.
 * A produce entry carries its records exactly as they will be served, so fetch decodes entries
 * straight from the log; offsets are assigned when the entry is applied (log order), so every
 * replica assigns the same ones.
 *
 *   produce      := u8 1 · i53 leaderTimeMs · u8 flags · [str16 idempotencyKey · bytes32 hash]
 *                   · [str16 producerId · u32 epoch · i53 seq] · u32 count · record*
 *   groupCommit  := u8 2 · i53 leaderTimeMs · str16 group · i53 offset · str16 metadata
 *   logStart     := u8 3 · i53 leaderTimeMs · i53 newLogStartOffset
 *   kinds 4–9    := leased groups and dead letters, see replica/leased/commands.ts
 *   compact      := u8 10 · i53 leaderTimeMs · i53 upToOffset · i53 tombstonesBefore
 *                   · i53 horizonOffset · i53 horizonMs     (docs/compaction.md)
 *
 * A produce with flag 4 carries a replay section (str16 jobId · u32 n · i53 seq* · i53 cursorTo,
 * after the producer section): its records are dead letters written back by a replay job, and
 * applying it marks them replayed in the same step (replica/leased/dead-letters.ts).
 *
 * A produce with flag 8 was rewritten by key compaction (replica/state/compaction.ts): after the
 * other sections it carries `u32 span · u32 spanBytes · i53 spanMaxTimestampMs · bitmap`, the
 * offset span, the record bytes and newest timestamp of the batch as written, and which positions
 * of the span survive (⌈span/8⌉ bytes, bit i of byte i>>3 = position i, LSB first; as many bits
 * set as records follow). Applying it gives the same offsets and index row as the original
 * batch; fetch serves the k-th surviving record at base + the k-th set position.
 */
export const enum CommandKind {
  Produce = 1,
  GroupCommit = 2,
  AdvanceLogStart = 3,
  LeaseGrant = 4,
  LeaseAck = 5,
  LeaseExpire = 6,
  GroupPolicy = 7,
  DeadLetterAdmin = 8,
  ReplayJob = 9,
  Compact = 10,
}

export interface ProduceCommand {
  kind: CommandKind.Produce;
  leaderTimeMs: number;
  idempotencyKey?: string;
  /** sha256 of keys, values and headers (not timestamps, which the gateway may fill per try). */
  payloadHash?: Uint8Array;
  producer?: ProducerIdentity;
  /** Dead letters written back by a replay job (flag 4). */
  replay?: ReplaySection;
  /** The surviving records (all of them unless `compacted`). */
  records: RecordIn[];
  /** Set on a batch rewritten by key compaction (flag 8). */
  compacted?: CompactedSpan;
}
/** What a compacted produce entry keeps of the batch as written. */
export interface CompactedSpan {
  /** Records the batch was written with: its offset span (offsets never move). */
  span: number;
  /** recordBytes of the batch as written (the offset index row is the same as before). */
  bytes: number;
  maxTimestampMs: number;
  /** Position in the span of each surviving record, increasing; `records[i]` is at base + positions[i]. */
  positions: number[];
}
/**
 * Key compaction request (docs/compaction.md): every replica compacts the records below
 * `upToOffset` (latest per key survives), dropping tombstones below `tombstonesBefore`. The
 * horizon is the leader's bookkeeping for the tombstone delay: offsets covered by a request at
 * `horizonMs` (state clock) become droppable `deleteRetentionMs` later.
 */
export interface CompactCommand {
  kind: CommandKind.Compact;
  leaderTimeMs: number;
  upToOffset: number;
  tombstonesBefore: number;
  horizonOffset: number;
  horizonMs: number;
}
export interface GroupCommitCommand {
  kind: CommandKind.GroupCommit;
  leaderTimeMs: number;
  group: string;
  offset: number;
  metadata: string;
}
export interface AdvanceLogStartCommand {
  kind: CommandKind.AdvanceLogStart;
  leaderTimeMs: number;
  logStartOffset: number;
}
export type Command = ProduceCommand | GroupCommitCommand | AdvanceLogStartCommand | CompactCommand | LeasedCommand;

const F_IDEM = 1;
const F_PRODUCER = 2;
const F_REPLAY = 4;
const F_COMPACTED = 8;

/**
 * Hash of what makes two produce requests "the same payload" for idempotency. A null value
 * hashes its length as -2, so a tombstone never equals an empty value; delivery times are
 * not hashed (a retry may recompute a relative delay, like the timestamp).
 */
export function payloadHash(records: readonly RecordIn[]): Uint8Array {
  const h = createHash('sha256');
  const n = Buffer.alloc(4);
  for (const r of records) {
    n.writeInt32BE(r.key === null ? -1 : r.key.length);
    h.update(n);
    if (r.key) h.update(r.key);
    n.writeInt32BE(r.tombstone === true ? -2 : r.value.length);
    h.update(n);
    h.update(r.value);
    n.writeInt32BE(r.headers.length);
    h.update(n);
    for (const [k, v] of r.headers) {
      h.update(k);
      h.update('\0');
      n.writeInt32BE(v.length);
      h.update(n);
      h.update(v);
    }
  }
  return h.digest();
}

export function encodeCommand(c: Command): Buffer {
  const w = new BufWriter(
    c.kind === CommandKind.Produce ? 64 + c.records.reduce((s, r) => s + r.value.length + 32, 0) : 64,
  );
  w.u8(c.kind).i53(c.leaderTimeMs);
  switch (c.kind) {
    case CommandKind.Produce: {
      const flags =
        (c.idempotencyKey !== undefined ? F_IDEM : 0) |
        (c.producer ? F_PRODUCER : 0) |
        (c.replay ? F_REPLAY : 0) |
        (c.compacted ? F_COMPACTED : 0);
      w.u8(flags);
      if (c.idempotencyKey !== undefined) w.str16(c.idempotencyKey).bytes32(c.payloadHash ?? payloadHash(c.records));
      if (c.producer) w.str16(c.producer.producerId).u32(c.producer.epoch).i53(c.producer.seq);
      if (c.replay) writeReplaySection(w, c.replay);
      const k = c.compacted;
      if (k) {
        if (k.positions.length !== c.records.length)
          throw new CodecError('bad_length', `${k.positions.length} positions for ${c.records.length} records`);
        w.u32(k.span).u32(k.bytes).i53(k.maxTimestampMs, Number.MIN_SAFE_INTEGER);
        const bitmap = Buffer.alloc(Math.ceil(k.span / 8));
        for (let i = 0; i < k.positions.length; i++) {
          const at = k.positions[i];
          if (at >= k.span || (i > 0 && at <= k.positions[i - 1]))
            throw new CodecError('bad_value', `position ${at} out of order or past the span ${k.span}`);
          bitmap[at >> 3] |= 1 << (at & 7);
        }
        w.bytes(bitmap);
      }
      w.u32(c.records.length);
      for (const r of c.records) writeRecord(w, r);
      break;
    }
    case CommandKind.Compact:
      w.i53(c.upToOffset).i53(c.tombstonesBefore).i53(c.horizonOffset).i53(c.horizonMs);
      break;
    case CommandKind.GroupCommit:
      w.str16(c.group).i53(c.offset).str16(c.metadata);
      break;
    case CommandKind.AdvanceLogStart:
      w.i53(c.logStartOffset);
      break;
    default:
      writeLeasedCommand(w, c);
  }
  return w.finish();
}

/** Decode a command; throws CodecError on malformed data (a corrupt entry is fatal to the caller). */
export function decodeCommand(data: Uint8Array): Command {
  const rd = new BufReader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  const kind = rd.u8('command.kind');
  const leaderTimeMs = rd.i53('command.leaderTimeMs');
  switch (kind) {
    case CommandKind.Produce: {
      const flags = rd.u8('produce.flags');
      const c: ProduceCommand = { kind, leaderTimeMs, records: [] };
      if (flags & F_IDEM) {
        c.idempotencyKey = rd.str16('produce.idempotencyKey');
        c.payloadHash = rd.view32('produce.hash');
      }
      if (flags & F_PRODUCER)
        c.producer = {
          producerId: rd.str16('producer.id'),
          epoch: rd.u32('producer.epoch'),
          seq: rd.i53('producer.seq'),
        };
      if (flags & F_REPLAY) c.replay = readReplaySection(rd);
      if (flags & F_COMPACTED) {
        const span = rd.u32('produce.span');
        const bytes = rd.u32('produce.spanBytes');
        const maxTimestampMs = rd.i53('produce.spanMaxTimestampMs', Number.MIN_SAFE_INTEGER);
        if (Math.ceil(span / 8) > rd.remaining)
          throw new CodecError('bad_length', `produce.span ${span} exceeds ${rd.remaining} bytes left`);
        const bitmap = rd.bytes(Math.ceil(span / 8), 'produce.bitmap');
        const positions: number[] = [];
        for (let i = 0; i < span; i++) if (bitmap[i >> 3] & (1 << (i & 7))) positions.push(i);
        c.compacted = { span, bytes, maxTimestampMs, positions };
      }
      const n = rd.u32('produce.count');
      if (n > rd.remaining) throw new CodecError('bad_length', `produce.count ${n} exceeds ${rd.remaining} bytes left`);
      if (c.compacted && n !== c.compacted.positions.length)
        throw new CodecError('bad_length', `produce.count ${n}, but ${c.compacted.positions.length} positions survive`);
      c.records = new Array(n);
      for (let i = 0; i < n; i++) c.records[i] = readRecord(rd);
      rd.end('produce command');
      return c;
    }
    case CommandKind.Compact: {
      const c: CompactCommand = {
        kind,
        leaderTimeMs,
        upToOffset: rd.i53('upToOffset'),
        tombstonesBefore: rd.i53('tombstonesBefore'),
        horizonOffset: rd.i53('horizonOffset'),
        horizonMs: rd.i53('horizonMs'),
      };
      rd.end('compact command');
      return c;
    }
    case CommandKind.GroupCommit: {
      const c: GroupCommitCommand = {
        kind,
        leaderTimeMs,
        group: rd.str16('group'),
        offset: rd.i53('offset'),
        metadata: rd.str16('metadata'),
      };
      rd.end('group commit command');
      return c;
    }
    case CommandKind.AdvanceLogStart: {
      const c: AdvanceLogStartCommand = { kind, leaderTimeMs, logStartOffset: rd.i53('logStartOffset') };
      rd.end('log start command');
      return c;
    }
    case CommandKind.LeaseGrant:
    case CommandKind.LeaseAck:
    case CommandKind.LeaseExpire:
    case CommandKind.GroupPolicy:
    case CommandKind.DeadLetterAdmin:
    case CommandKind.ReplayJob:
      return readLeasedCommand(kind, leaderTimeMs, rd);
    default:
      throw new CodecError('bad_value', `unknown command kind ${kind}`);
  }
}

/** Offsets a produce entry spans (records as written; a compacted entry keeps its span). */
export function spanOf(c: ProduceCommand): number {
  return c.compacted ? c.compacted.span : c.records.length;
}

/** Offset of `c.records[i]` in a batch whose first offset is `base`. */
export function offsetOf(c: ProduceCommand, base: number, i: number): number {
  return base + (c.compacted ? c.compacted.positions[i] : i);
}

/**
 * The records of a produce entry by position in its span: `[o - base]` is the record at offset
 * o, undefined where compaction removed it.
 */
export function recordsBySpan(c: ProduceCommand): Array<RecordIn | undefined> {
  if (!c.compacted) return c.records;
  const out = new Array<RecordIn | undefined>(c.compacted.span);
  for (let i = 0; i < c.records.length; i++) out[c.compacted.positions[i]] = c.records[i];
  return out;
}

/** Record bytes of a produce entry's records (key, value, header names and values). */
export function recordBytes(records: readonly RecordIn[]): number {
  let n = 0;
  for (const r of records) {
    n += r.value.length + (r.key?.length ?? 0);
    for (const [k, v] of r.headers) n += k.length + v.length;
  }
  return n;
}

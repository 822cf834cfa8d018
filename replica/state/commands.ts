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
 *
 * A produce with flag 4 carries a replay section (str16 jobId · u32 n · i53 seq* · i53 cursorTo,
 * after the producer section): its records are dead letters written back by a replay job, and
 * applying it marks them replayed in the same step (replica/leased/dead-letters.ts).
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
  records: RecordIn[];
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
export type Command = ProduceCommand | GroupCommitCommand | AdvanceLogStartCommand | LeasedCommand;

const F_IDEM = 1;
const F_PRODUCER = 2;
const F_REPLAY = 4;

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
        (c.idempotencyKey !== undefined ? F_IDEM : 0) | (c.producer ? F_PRODUCER : 0) | (c.replay ? F_REPLAY : 0);
      w.u8(flags);
      if (c.idempotencyKey !== undefined) w.str16(c.idempotencyKey).bytes32(c.payloadHash ?? payloadHash(c.records));
      if (c.producer) w.str16(c.producer.producerId).u32(c.producer.epoch).i53(c.producer.seq);
      if (c.replay) writeReplaySection(w, c.replay);
      w.u32(c.records.length);
      for (const r of c.records) writeRecord(w, r);
      break;
    }
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
      const n = rd.u32('produce.count');
      if (n > rd.remaining) throw new CodecError('bad_length', `produce.count ${n} exceeds ${rd.remaining} bytes left`);
      c.records = new Array(n);
      for (let i = 0; i < n; i++) c.records[i] = readRecord(rd);
      rd.end('produce command');
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

/** Number of records in a produce entry without decoding them (for offset assignment on apply). */
export function recordBytes(records: readonly RecordIn[]): number {
  let n = 0;
  for (const r of records) {
    n += r.value.length + (r.key?.length ?? 0);
    for (const [k, v] of r.headers) n += k.length + v.length;
  }
  return n;
}

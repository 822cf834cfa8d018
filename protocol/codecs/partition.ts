import type {
  AddLearnerRequest,
  FetchRequest,
  FetchResult,
  GroupOffset,
  GroupOffsetCommit,
  GroupOffsetQuery,
  MemberRequest,
  PartitionStatus,
  ProduceRequest,
  ProduceResult,
  RecordIn,
  RecordOut,
  ReplicaRole,
  TransferLeadershipRequest,
} from '../../common/partition-api';
import { BufReader, BufWriter, CodecError } from '../bytes';
import { MIN_RECORD_BYTES, readRecord, recordBytes, writeRecord } from '../records';

/**
 * Binary bodies for every call of the partition API (common/partition-api.ts) on the client
 * port; layouts in docs/wire-protocol.md §Partition API. Records are length-prefixed bytes, not
 * JSON: produce and fetch are the hot path. `status` is a small control body and is JSON.
 *
 * The request id is not repeated in bodies: it travels once, in the RPC header, and decoders
 * take it as an argument. Decoders check every length against the bytes that remain and throw
 * CodecError on anything malformed (the server answers INVALID_REQUEST). Decoded keys, values
 * and header values are plain Uint8Array views into the received frame, not copies (copy them
 * if they must outlive it cheaply; they keep the whole frame's memory alive).
 */

const EMPTY = Buffer.alloc(0);

function readCount(rd: BufReader, minBytes: number, what: string): number {
  const n = rd.u32(what);
  if (n * minBytes > rd.remaining)
    throw new CodecError('bad_length', `${what} ${n} exceeds the ${rd.remaining} bytes left`);
  return n;
}

// ---- produce ----
//
// request := str16 topic · u32 partition · u32 timeoutMs · u8 flags (1: idempotencyKey, 2: producer)
//            · [str16 idempotencyKey] · [str16 producerId · u32 epoch · i53 seq]
//            · u32 recordCount · record*
// result  := i53 baseOffset · u32 count · bool duplicate

const P_IDEMPOTENCY = 0x01;
const P_PRODUCER = 0x02;

export function encodeProduceRequest(req: ProduceRequest): Buffer {
  let size = 64 + Buffer.byteLength(req.topic) + (req.idempotencyKey?.length ?? 0) * 3;
  if (req.producer) size += Buffer.byteLength(req.producer.producerId);
  for (const r of req.records) size += recordBytes(r);
  const w = new BufWriter(size);
  w.str16(req.topic).u32(req.partition).u32(req.timeoutMs);
  w.u8((req.idempotencyKey !== undefined ? P_IDEMPOTENCY : 0) | (req.producer ? P_PRODUCER : 0));
  if (req.idempotencyKey !== undefined) w.str16(req.idempotencyKey);
  if (req.producer) w.str16(req.producer.producerId).u32(req.producer.epoch).i53(req.producer.seq);
  w.u32(req.records.length);
  for (const r of req.records) writeRecord(w, r);
  return w.finish();
}

export function decodeProduceRequest(body: Buffer, requestId: string): ProduceRequest {
  const rd = new BufReader(body);
  const topic = rd.str16('topic');
  const partition = rd.u32('partition');
  const timeoutMs = rd.u32('timeoutMs');
  const flags = rd.u8('flags');
  if ((flags & ~(P_IDEMPOTENCY | P_PRODUCER)) !== 0)
    throw new CodecError('bad_value', `produce.flags 0x${flags.toString(16)}`);
  const req: ProduceRequest = { topic, partition, records: [], requestId, timeoutMs };
  if (flags & P_IDEMPOTENCY) req.idempotencyKey = rd.str16('idempotencyKey');
  if (flags & P_PRODUCER)
    req.producer = { producerId: rd.str16('producerId'), epoch: rd.u32('epoch'), seq: rd.i53('seq') };
  const n = readCount(rd, MIN_RECORD_BYTES, 'recordCount');
  const records: RecordIn[] = new Array(n);
  for (let i = 0; i < n; i++) records[i] = readRecord(rd);
  req.records = records;
  rd.end('produce request');
  return req;
}

export function encodeProduceResult(r: ProduceResult): Buffer {
  return new BufWriter(13).i53(r.baseOffset).u32(r.count).bool(r.duplicate).finish();
}

export function decodeProduceResult(body: Buffer): ProduceResult {
  const rd = new BufReader(body);
  const res = { baseOffset: rd.i53('baseOffset'), count: rd.u32('count'), duplicate: rd.bool('duplicate') };
  rd.end('produce result');
  return res;
}

// ---- fetch ----
//
// request := str16 topic · u32 partition · i53 offset · u32 maxRecords · u32 maxBytes · u32 waitMs
// result  := i53 nextOffset · i53 highWatermark · i53 logStartOffset · u32 recordCount · recordOut*

export function encodeFetchRequest(req: FetchRequest): Buffer {
  return new BufWriter(32 + Buffer.byteLength(req.topic))
    .str16(req.topic)
    .u32(req.partition)
    .i53(req.offset)
    .u32(req.maxRecords)
    .u32(req.maxBytes)
    .u32(req.waitMs)
    .finish();
}

export function decodeFetchRequest(body: Buffer, requestId: string): FetchRequest {
  const rd = new BufReader(body);
  const req: FetchRequest = {
    topic: rd.str16('topic'),
    partition: rd.u32('partition'),
    offset: rd.i53('offset'),
    maxRecords: rd.u32('maxRecords'),
    maxBytes: rd.u32('maxBytes'),
    waitMs: rd.u32('waitMs'),
    requestId,
  };
  rd.end('fetch request');
  return req;
}

export function encodeFetchResult(res: FetchResult): Buffer {
  let size = 32;
  for (const r of res.records) size += 8 + recordBytes(r);
  const w = new BufWriter(size);
  w.i53(res.nextOffset).i53(res.highWatermark).i53(res.logStartOffset).u32(res.records.length);
  for (const r of res.records) {
    w.i53(r.offset);
    writeRecord(w, r);
  }
  return w.finish();
}

export function decodeFetchResult(body: Buffer): FetchResult {
  const rd = new BufReader(body);
  const nextOffset = rd.i53('nextOffset');
  const highWatermark = rd.i53('highWatermark');
  const logStartOffset = rd.i53('logStartOffset');
  const n = readCount(rd, 8 + MIN_RECORD_BYTES, 'recordCount');
  const records: RecordOut[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const offset = rd.i53('record.offset');
    const r = readRecord(rd) as RecordOut;
    r.offset = offset;
    records[i] = r;
  }
  rd.end('fetch result');
  return { records, nextOffset, highWatermark, logStartOffset };
}

// ---- group offsets ----
//
// commit  := str16 group · str16 topic · u32 partition · i53 offset · u8 hasMetadata · [str32 metadata]
// query   := str16 group · str16 topic · u32 partition
// offset  := str16 group · str16 topic · u32 partition · u8 flags (1: offset, 2: metadata)
//            · [i53 offset] · [str32 metadata] · i53 highWatermark · i53 logStartOffset · i53 lag

export function encodeGroupOffsetCommit(c: GroupOffsetCommit): Buffer {
  const w = new BufWriter(64 + c.group.length + c.topic.length + (c.metadata?.length ?? 0) * 3);
  w.str16(c.group)
    .str16(c.topic)
    .u32(c.partition)
    .i53(c.offset)
    .bool(c.metadata !== undefined);
  if (c.metadata !== undefined) w.str32(c.metadata);
  return w.finish();
}

export function decodeGroupOffsetCommit(body: Buffer, requestId: string): GroupOffsetCommit {
  const rd = new BufReader(body);
  const c: GroupOffsetCommit = {
    group: rd.str16('group'),
    topic: rd.str16('topic'),
    partition: rd.u32('partition'),
    offset: rd.i53('offset'),
    requestId,
  };
  if (rd.bool('hasMetadata')) c.metadata = rd.str32('metadata');
  rd.end('offset commit');
  return c;
}

export function encodeGroupOffsetQuery(q: GroupOffsetQuery): Buffer {
  return new BufWriter(16 + q.group.length + q.topic.length).str16(q.group).str16(q.topic).u32(q.partition).finish();
}

export function decodeGroupOffsetQuery(body: Buffer, requestId: string): GroupOffsetQuery {
  const rd = new BufReader(body);
  const q = { group: rd.str16('group'), topic: rd.str16('topic'), partition: rd.u32('partition'), requestId };
  rd.end('offset query');
  return q;
}

const G_OFFSET = 0x01;
const G_METADATA = 0x02;

export function encodeGroupOffset(g: GroupOffset): Buffer {
  const w = new BufWriter(64 + g.group.length + g.topic.length + (g.metadata?.length ?? 0) * 3);
  w.str16(g.group).str16(g.topic).u32(g.partition);
  w.u8((g.offset !== null ? G_OFFSET : 0) | (g.metadata !== undefined ? G_METADATA : 0));
  if (g.offset !== null) w.i53(g.offset);
  if (g.metadata !== undefined) w.str32(g.metadata);
  // lag may be negative if a group committed past the high watermark of a lagging replica's view.
  w.i53(g.highWatermark).i53(g.logStartOffset).i53(g.lag, Number.MIN_SAFE_INTEGER);
  return w.finish();
}

export function decodeGroupOffset(body: Buffer): GroupOffset {
  const rd = new BufReader(body);
  const group = rd.str16('group');
  const topic = rd.str16('topic');
  const partition = rd.u32('partition');
  const flags = rd.u8('flags');
  if ((flags & ~(G_OFFSET | G_METADATA)) !== 0)
    throw new CodecError('bad_value', `groupOffset.flags 0x${flags.toString(16)}`);
  const offset = flags & G_OFFSET ? rd.i53('offset') : null;
  const g: GroupOffset = { group, topic, partition, offset, highWatermark: 0, logStartOffset: 0, lag: 0 };
  if (flags & G_METADATA) g.metadata = rd.str32('metadata');
  g.highWatermark = rd.i53('highWatermark');
  g.logStartOffset = rd.i53('logStartOffset');
  g.lag = rd.i53('lag', Number.MIN_SAFE_INTEGER);
  rd.end('group offset');
  return g;
}

// ---- status (JSON) ----
//
// request := str16 topic · u32 partition
// result  := UTF-8 JSON PartitionStatus

export interface PartitionRef {
  topic: string;
  partition: number;
}

export function encodePartitionRef(topic: string, partition: number): Buffer {
  return new BufWriter(8 + topic.length).str16(topic).u32(partition).finish();
}

export function decodePartitionRef(body: Buffer): PartitionRef {
  const rd = new BufReader(body);
  const ref = { topic: rd.str16('topic'), partition: rd.u32('partition') };
  rd.end('partition ref');
  return ref;
}

export function encodeStatus(s: PartitionStatus): Buffer {
  return Buffer.from(JSON.stringify(s), 'utf8');
}

const ROLES: readonly ReplicaRole[] = ['leader', 'follower', 'candidate', 'learner'];

export function decodeStatus(body: Buffer): PartitionStatus {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new CodecError('bad_json', 'status body is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new CodecError('bad_json', 'status is not an object');
  const o = v as Record<string, unknown>;
  const str = (k: string) => {
    if (typeof o[k] !== 'string') throw new CodecError('bad_json', `status.${k} is not a string`);
    return o[k] as string;
  };
  const strOrNull = (k: string) => (o[k] === null ? null : str(k));
  const int = (k: string) => {
    if (!Number.isSafeInteger(o[k])) throw new CodecError('bad_json', `status.${k} is not an integer`);
    return o[k] as number;
  };
  const strs = (k: string) => {
    const a = o[k];
    if (!Array.isArray(a) || !a.every((x) => typeof x === 'string'))
      throw new CodecError('bad_json', `status.${k} is not a list of strings`);
    return a as string[];
  };
  const role = str('role');
  if (!(ROLES as readonly string[]).includes(role)) throw new CodecError('bad_json', `status.role ${role}`);
  return {
    topic: str('topic'),
    partition: int('partition'),
    replicaId: str('replicaId'),
    role: role as ReplicaRole,
    term: int('term'),
    leaderId: strOrNull('leaderId'),
    leaderEndpoint: strOrNull('leaderEndpoint'),
    highWatermark: int('highWatermark'),
    logStartOffset: int('logStartOffset'),
    commitIndex: int('commitIndex'),
    appliedIndex: int('appliedIndex'),
    lastIndex: int('lastIndex'),
    logBytes: int('logBytes'),
    voters: strs('voters'),
    learners: strs('learners'),
    ...(typeof o.diskFull === 'boolean' ? { diskFull: o.diskFull } : {}),
  };
}

// ---- admin ----
//
// transferLeadership := str16 topic · u32 partition · str16 to
// addLearner         := str16 topic · u32 partition · str16 id · str16 endpoint
// promote, removeMember := str16 topic · u32 partition · str16 id
// every answer       := empty body

export function encodeTransferLeadership(r: TransferLeadershipRequest): Buffer {
  return new BufWriter(16 + r.topic.length + r.to.length).str16(r.topic).u32(r.partition).str16(r.to).finish();
}

export function decodeTransferLeadership(body: Buffer, requestId: string): TransferLeadershipRequest {
  const rd = new BufReader(body);
  const r = { topic: rd.str16('topic'), partition: rd.u32('partition'), to: rd.str16('to'), requestId };
  rd.end('transferLeadership');
  return r;
}

export function encodeAddLearner(r: AddLearnerRequest): Buffer {
  return new BufWriter(16 + r.topic.length + r.id.length + r.endpoint.length)
    .str16(r.topic)
    .u32(r.partition)
    .str16(r.id)
    .str16(r.endpoint)
    .finish();
}

export function decodeAddLearner(body: Buffer, requestId: string): AddLearnerRequest {
  const rd = new BufReader(body);
  const r = {
    topic: rd.str16('topic'),
    partition: rd.u32('partition'),
    id: rd.str16('id'),
    endpoint: rd.str16('endpoint'),
    requestId,
  };
  rd.end('addLearner');
  return r;
}

export function encodeMemberRequest(r: MemberRequest): Buffer {
  return new BufWriter(16 + r.topic.length + r.id.length).str16(r.topic).u32(r.partition).str16(r.id).finish();
}

export function decodeMemberRequest(body: Buffer, requestId: string): MemberRequest {
  const rd = new BufReader(body);
  const r = { topic: rd.str16('topic'), partition: rd.u32('partition'), id: rd.str16('id'), requestId };
  rd.end('member request');
  return r;
}

export function decodeEmpty(body: Buffer, what: string): void {
  if (body.byteLength !== 0)
    throw new CodecError('trailing_bytes', `${what}: expected an empty body, got ${body.byteLength} bytes`);
}

export { EMPTY as EMPTY_BODY };

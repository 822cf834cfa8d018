import type {
  GroupList,
  GroupListRequest,
  AckAction,
  DeadLetter,
  DeadLetterAdminRequest,
  DeadLetterPage,
  DeadLetterQuery,
  GroupLeaseInfo,
  GroupPolicyRequest,
  GroupTarget,
  LeaseAckItem,
  LeaseAckRequest,
  LeaseAckResult,
  LeaseAckStatus,
  LeasedRecord,
  LeaseFetchRequest,
  LeaseFetchResult,
  LeasePolicy,
  ReplayJobQuery,
  ReplayJobRequest,
  ReplayJobStatus,
} from '../../common/leased-api';
import { decodeDeadLetter, encodeDeadLetter, normalizeFilter, parseFilter } from './dead-letters';
import { normalizeOverride, parseOverride } from './policy';
import { BufReader, BufWriter, CodecError } from '../bytes';
import { readRecord, writeRecord } from '../records';

/**
 * Client-port bodies of the leased-group and dead-letter calls (common/leased-api.ts). Leased
 * fetch, acks and dead-letter pages carry records and are binary; the small control calls
 * (policy, group info, archive/purge, replay jobs) are JSON, checked field by field on decode.
 * Like codecs/partition.ts, the request id travels in the RPC header only.
 *
 *   fetch     := str16 group · str16 topic · u32 partition · u32 maxRecords · u32 waitMs
 *                · u8 hasLeaseMs · [i53 leaseMs]
 *   fetched   := u8 available · i53 highWatermark · u8 hasCommitted · [i53 committed]
 *                · u32 n · (i53 offset · u32 attempt · i53 leaseUntilMs · record)*
 *   ack       := str16 group · str16 topic · u32 partition · u32 n · ackItem*
 *   ackItem   := i53 offset · u32 attempt · u8 action · u8 flags (1 delay, 2 lease, 4 error, 8 class)
 *                · [i53 delayMs] · [i53 leaseMs] · [str16 error] · [str16 errorClass]
 *   acked     := u32 n · (u8 status · u8 flags (1 until, 2 deadLettered, 4 discarded, 8 detail)
 *                · [i53 leaseUntilMs] · [str16 detail])*
 *   dlList    := JSON {topic, partition, filter, afterSeq?, limit}
 *   dlPage    := u8 hasNext · [i53 nextAfterSeq] · u32 n · (str16 topic · u32 partition · i53 seq
 *                · bytes32 deadLetterRow)*   (row layout: codecs/dead-letters.ts)
 */

const ACTIONS: readonly AckAction[] = ['accept', 'release', 'reject', 'extend'];
const STATUSES: readonly LeaseAckStatus[] = ['ok', 'lease_expired', 'stale_attempt'];

// ---- leased fetch ----

export function encodeLeaseFetch(r: LeaseFetchRequest): Buffer {
  const w = new BufWriter(32 + r.group.length * 3 + r.topic.length);
  w.str16(r.group)
    .str16(r.topic)
    .u32(r.partition)
    .u32(r.maxRecords)
    .u32(r.waitMs)
    .bool(r.leaseMs !== undefined);
  if (r.leaseMs !== undefined) w.i53(r.leaseMs);
  return w.finish();
}

export function decodeLeaseFetch(body: Buffer, requestId: string): LeaseFetchRequest {
  const rd = new BufReader(body);
  const r: LeaseFetchRequest = {
    group: rd.str16('group'),
    topic: rd.str16('topic'),
    partition: rd.u32('partition'),
    maxRecords: rd.u32('maxRecords'),
    waitMs: rd.u32('waitMs'),
    requestId,
  };
  if (rd.bool('hasLeaseMs')) r.leaseMs = rd.i53('leaseMs');
  rd.end('lease fetch');
  return r;
}

export function encodeLeaseFetchResult(r: LeaseFetchResult): Buffer {
  const w = new BufWriter(64 + r.records.reduce((n, x) => n + 64 + x.value.byteLength, 0));
  w.bool(r.available)
    .i53(r.highWatermark)
    .bool(r.committedOffset !== null);
  if (r.committedOffset !== null) w.i53(r.committedOffset);
  w.u32(r.records.length);
  for (const x of r.records) {
    w.i53(x.offset).u32(x.attempt).i53(x.leaseUntilMs);
    writeRecord(w, x);
  }
  return w.finish();
}

export function decodeLeaseFetchResult(body: Buffer): LeaseFetchResult {
  const rd = new BufReader(body);
  const available = rd.bool('available');
  const highWatermark = rd.i53('highWatermark');
  const committedOffset = rd.bool('hasCommitted') ? rd.i53('committed') : null;
  const n = rd.u32('records');
  if (n * 35 > rd.remaining) throw new CodecError('bad_length', `records ${n} exceed ${rd.remaining} bytes`);
  const records: LeasedRecord[] = [];
  for (let i = 0; i < n; i++) {
    const offset = rd.i53('offset');
    const attempt = rd.u32('attempt');
    const leaseUntilMs = rd.i53('leaseUntilMs');
    records.push({ ...readRecord(rd), offset, attempt, leaseUntilMs });
  }
  rd.end('lease fetch result');
  return { records, available, highWatermark, committedOffset };
}

// ---- acks ----

export function encodeLeaseAck(r: LeaseAckRequest): Buffer {
  const w = new BufWriter(32 + r.items.length * 32);
  w.str16(r.group).str16(r.topic).u32(r.partition).u32(r.items.length);
  for (const it of r.items) {
    const flags =
      (it.delayMs !== undefined ? 1 : 0) |
      (it.leaseMs !== undefined ? 2 : 0) |
      (it.error !== undefined ? 4 : 0) |
      (it.errorClass !== undefined ? 8 : 0);
    w.i53(it.offset).u32(it.attempt).u8(ACTIONS.indexOf(it.action)).u8(flags);
    if (it.delayMs !== undefined) w.i53(it.delayMs);
    if (it.leaseMs !== undefined) w.i53(it.leaseMs);
    if (it.error !== undefined) w.str16(it.error);
    if (it.errorClass !== undefined) w.str16(it.errorClass);
  }
  return w.finish();
}

export function decodeLeaseAck(body: Buffer, requestId: string): LeaseAckRequest {
  const rd = new BufReader(body);
  const group = rd.str16('group');
  const topic = rd.str16('topic');
  const partition = rd.u32('partition');
  const n = rd.u32('items');
  if (n * 14 > rd.remaining) throw new CodecError('bad_length', `ack items ${n} exceed ${rd.remaining} bytes`);
  const items: LeaseAckItem[] = [];
  for (let i = 0; i < n; i++) {
    const offset = rd.i53('offset');
    const attempt = rd.u32('attempt');
    const action = ACTIONS[rd.u8('action')];
    if (action === undefined) throw new CodecError('bad_value', 'ack action');
    const flags = rd.u8('flags');
    if ((flags & ~15) !== 0) throw new CodecError('bad_value', `ack flags 0x${flags.toString(16)}`);
    const it: LeaseAckItem = { offset, attempt, action };
    if (flags & 1) it.delayMs = rd.i53('delayMs');
    if (flags & 2) it.leaseMs = rd.i53('leaseMs');
    if (flags & 4) it.error = rd.str16('error');
    if (flags & 8) it.errorClass = rd.str16('errorClass');
    items.push(it);
  }
  rd.end('lease ack');
  return { group, topic, partition, items, requestId };
}

export function encodeLeaseAckResults(rs: LeaseAckResult[]): Buffer {
  const w = new BufWriter(8 + rs.length * 24);
  w.u32(rs.length);
  for (const r of rs) {
    const flags =
      (r.leaseUntilMs !== undefined ? 1 : 0) |
      (r.deadLettered ? 2 : 0) |
      (r.discarded ? 4 : 0) |
      (r.detail !== undefined ? 8 : 0);
    w.u8(STATUSES.indexOf(r.status)).u8(flags);
    if (r.leaseUntilMs !== undefined) w.i53(r.leaseUntilMs);
    if (r.detail !== undefined) w.str16(r.detail);
  }
  return w.finish();
}

export function decodeLeaseAckResults(body: Buffer): LeaseAckResult[] {
  const rd = new BufReader(body);
  const n = rd.u32('results');
  if (n * 2 > rd.remaining) throw new CodecError('bad_length', `results ${n} exceed ${rd.remaining} bytes`);
  const out: LeaseAckResult[] = [];
  for (let i = 0; i < n; i++) {
    const status = STATUSES[rd.u8('status')];
    if (status === undefined) throw new CodecError('bad_value', 'ack status');
    const flags = rd.u8('flags');
    const r: LeaseAckResult = { status };
    if (flags & 1) r.leaseUntilMs = rd.i53('leaseUntilMs');
    if (flags & 2) r.deadLettered = true;
    if (flags & 4) r.discarded = true;
    if (flags & 8) r.detail = rd.str16('detail');
    out.push(r);
  }
  rd.end('ack results');
  return out;
}

// ---- dead-letter pages ----

export function encodeDeadLetterPage(p: DeadLetterPage): Buffer {
  const w = new BufWriter(256);
  w.bool(p.nextAfterSeq !== null);
  if (p.nextAfterSeq !== null) w.i53(p.nextAfterSeq);
  w.u32(p.items.length);
  for (const d of p.items)
    w.str16(d.topic)
      .u32(d.partition)
      .i53(d.seq)
      .bytes32(encodeDeadLetter({ ...d }));
  return w.finish();
}

export function decodeDeadLetterPage(body: Buffer): DeadLetterPage {
  const rd = new BufReader(body);
  const nextAfterSeq = rd.bool('hasNext') ? rd.i53('nextAfterSeq') : null;
  const n = rd.u32('items');
  if (n * 18 > rd.remaining) throw new CodecError('bad_length', `items ${n} exceed ${rd.remaining} bytes`);
  const items: DeadLetter[] = [];
  for (let i = 0; i < n; i++) {
    const topic = rd.str16('topic');
    const partition = rd.u32('partition');
    const seq = rd.i53('seq');
    const row = decodeDeadLetter(seq, rd.view32('row'));
    items.push({ ...row, topic, partition });
  }
  rd.end('dead-letter page');
  return { items, nextAfterSeq };
}

// ---- JSON control bodies ----

type Obj = Record<string, unknown>;

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v), 'utf8');
}

function parse(body: Buffer, what: string): Obj {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new CodecError('bad_json', `${what} is not JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new CodecError('bad_json', `${what} is not an object`);
  return v as Obj;
}

function str(o: Obj, k: string, what: string): string {
  if (typeof o[k] !== 'string') throw new CodecError('bad_json', `${what}.${k} is not a string`);
  return o[k] as string;
}

function int(o: Obj, k: string, what: string, min = 0): number {
  const v = o[k];
  if (!Number.isSafeInteger(v) || (v as number) < min)
    throw new CodecError('bad_json', `${what}.${k} is not an integer ≥ ${min}`);
  return v as number;
}

function intOrNull(o: Obj, k: string, what: string): number | null {
  return o[k] === null ? null : int(o, k, what);
}

function bool(o: Obj, k: string, what: string): boolean {
  if (typeof o[k] !== 'boolean') throw new CodecError('bad_json', `${what}.${k} is not a boolean`);
  return o[k] as boolean;
}

function num(o: Obj, k: string, what: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new CodecError('bad_json', `${what}.${k} is not a number`);
  return v;
}

function target(o: Obj, what: string, requestId: string): GroupTarget {
  return {
    group: str(o, 'group', what),
    topic: str(o, 'topic', what),
    partition: int(o, 'partition', what),
    requestId,
  };
}

export function encodeGroupTarget(r: GroupTarget): Buffer {
  return json({ group: r.group, topic: r.topic, partition: r.partition });
}

export function decodeGroupTarget(body: Buffer, requestId: string): GroupTarget {
  return target(parse(body, 'group'), 'group', requestId);
}

export function encodeGroupPolicy(r: GroupPolicyRequest): Buffer {
  return json({
    group: r.group,
    topic: r.topic,
    partition: r.partition,
    policy: r.policy === null ? null : normalizeOverride(r.policy),
  });
}

export function decodeGroupPolicy(body: Buffer, requestId: string): GroupPolicyRequest {
  const o = parse(body, 'policy request');
  return {
    ...target(o, 'policy request', requestId),
    policy: o.policy === null ? null : parseOverride(JSON.stringify(o.policy ?? {})),
  };
}

function policyOf(v: unknown): LeasePolicy {
  const o = (typeof v === 'object' && v !== null ? v : {}) as Obj;
  return {
    maxAttempts: int(o, 'maxAttempts', 'policy'),
    leaseMs: int(o, 'leaseMs', 'policy'),
    backoffInitialMs: int(o, 'backoffInitialMs', 'policy'),
    backoffMaxMs: int(o, 'backoffMaxMs', 'policy'),
    backoffMultiplier: num(o, 'backoffMultiplier', 'policy'),
    deadLetter: bool(o, 'deadLetter', 'policy'),
    ordered: bool(o, 'ordered', 'policy'),
    // Absent from an older replica's answer: the defaults.
    orderingKey: o.orderingKey === undefined ? false : bool(o, 'orderingKey', 'policy'),
    expired: o.expired === 'drop' ? 'drop' : 'dead_letter',
  };
}

export function encodeGroupLeaseInfo(i: GroupLeaseInfo): Buffer {
  return json(i);
}

export function decodeGroupLeaseInfo(body: Buffer): GroupLeaseInfo {
  const o = parse(body, 'group info');
  const w = 'group info';
  return {
    group: str(o, 'group', w),
    topic: str(o, 'topic', w),
    partition: int(o, 'partition', w),
    override: o.override === null ? null : parseOverride(JSON.stringify(o.override ?? {})),
    effective: policyOf(o.effective),
    committedOffset: intOrNull(o, 'committedOffset', w),
    highWatermark: int(o, 'highWatermark', w),
    leased: int(o, 'leased', w),
    waiting: int(o, 'waiting', w),
    done: int(o, 'done', w),
    known: bool(o, 'known', w),
  };
}

export function encodeDeadLetterQuery(q: DeadLetterQuery): Buffer {
  return json({
    topic: q.topic,
    partition: q.partition,
    filter: normalizeFilter(q.filter),
    afterSeq: q.afterSeq ?? null,
    limit: q.limit,
  });
}

export function decodeDeadLetterQuery(body: Buffer, requestId: string): DeadLetterQuery {
  const o = parse(body, 'dead-letter query');
  const w = 'dead-letter query';
  const q: DeadLetterQuery = {
    topic: str(o, 'topic', w),
    partition: int(o, 'partition', w),
    filter: parseFilter(JSON.stringify(o.filter ?? {})),
    limit: int(o, 'limit', w, 1),
    requestId,
  };
  if (o.afterSeq !== null && o.afterSeq !== undefined) q.afterSeq = int(o, 'afterSeq', w, -1);
  return q;
}

export function encodeDeadLetterAdmin(r: DeadLetterAdminRequest): Buffer {
  return json({ topic: r.topic, partition: r.partition, action: r.action, filter: normalizeFilter(r.filter) });
}

export function decodeDeadLetterAdmin(body: Buffer, requestId: string): DeadLetterAdminRequest {
  const o = parse(body, 'dead-letter admin');
  const w = 'dead-letter admin';
  const action = str(o, 'action', w);
  if (action !== 'archive' && action !== 'purge') throw new CodecError('bad_json', `${w}.action ${action}`);
  return {
    topic: str(o, 'topic', w),
    partition: int(o, 'partition', w),
    action,
    filter: parseFilter(JSON.stringify(o.filter ?? {})),
    requestId,
  };
}

export function encodeCount(c: { count: number }): Buffer {
  return json({ count: c.count });
}

export function decodeCount(body: Buffer): { count: number } {
  return { count: int(parse(body, 'count'), 'count', 'count') };
}

export function encodeReplayJob(r: ReplayJobRequest): Buffer {
  return json({
    topic: r.topic,
    partition: r.partition,
    jobId: r.jobId,
    filter: normalizeFilter(r.filter),
    ratePerSec: r.ratePerSec,
    dryRun: r.dryRun,
    ...(r.target ? { target: { topic: r.target.topic, partitions: r.target.partitions } } : {}),
  });
}

function targetOf(o: Obj, w: string): { topic: string; partitions: number } | undefined {
  if (o.target === undefined || o.target === null) return undefined;
  if (typeof o.target !== 'object' || Array.isArray(o.target))
    throw new CodecError('bad_json', `${w}.target is not an object`);
  const t = o.target as Obj;
  const partitions = int(t, 'partitions', `${w}.target`);
  if (partitions < 1) throw new CodecError('bad_json', `${w}.target.partitions must be at least 1`);
  return { topic: str(t, 'topic', `${w}.target`), partitions };
}

export function decodeReplayJob(body: Buffer, requestId: string): ReplayJobRequest {
  const o = parse(body, 'replay job');
  const w = 'replay job';
  return {
    topic: str(o, 'topic', w),
    partition: int(o, 'partition', w),
    jobId: str(o, 'jobId', w),
    filter: parseFilter(JSON.stringify(o.filter ?? {})),
    ratePerSec: num(o, 'ratePerSec', w),
    dryRun: bool(o, 'dryRun', w),
    ...(targetOf(o, w) ? { target: targetOf(o, w) } : {}),
    requestId,
  };
}

export function encodeReplayQuery(q: ReplayJobQuery): Buffer {
  return json({ topic: q.topic, partition: q.partition, jobId: q.jobId });
}

export function decodeReplayQuery(body: Buffer, requestId: string): ReplayJobQuery {
  const o = parse(body, 'replay query');
  return {
    topic: str(o, 'topic', 'replay query'),
    partition: int(o, 'partition', 'replay query'),
    jobId: str(o, 'jobId', 'replay query'),
    requestId,
  };
}

export function encodeReplayStatus(s: ReplayJobStatus | null): Buffer {
  return json(s);
}

export function decodeReplayStatus(body: Buffer): ReplayJobStatus | null {
  if (body.toString('utf8') === 'null') return null;
  const o = parse(body, 'replay status');
  const w = 'replay status';
  const state = str(o, 'state', w);
  if (state !== 'running' && state !== 'done') throw new CodecError('bad_json', `${w}.state ${state}`);
  return {
    jobId: str(o, 'jobId', w),
    topic: str(o, 'topic', w),
    partition: int(o, 'partition', w),
    state,
    dryRun: bool(o, 'dryRun', w),
    ratePerSec: num(o, 'ratePerSec', w),
    matched: int(o, 'matched', w),
    written: int(o, 'written', w),
    skipped: int(o, 'skipped', w),
    createdMs: int(o, 'createdMs', w),
    finishedMs: intOrNull(o, 'finishedMs', w),
    target: targetOf(o, w) ?? null,
    ...(typeof o.lastError === 'string' ? { lastError: o.lastError } : {}),
  };
}

// ---- group list ----
//
// request := str16 topic · u32 partition · u32 limit
// result  := UTF-8 JSON GroupList

export function encodeGroupListRequest(r: GroupListRequest): Buffer {
  return new BufWriter(16 + r.topic.length).str16(r.topic).u32(r.partition).u32(r.limit).finish();
}

export function decodeGroupListRequest(body: Buffer, requestId: string): GroupListRequest {
  const rd = new BufReader(body);
  const r = { topic: rd.str16('topic'), partition: rd.u32('partition'), limit: rd.u32('limit'), requestId };
  rd.end('group list request');
  return r;
}

export function encodeGroupList(l: GroupList): Buffer {
  return Buffer.from(JSON.stringify(l), 'utf8');
}

export function decodeGroupList(body: Buffer): GroupList {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new CodecError('bad_value', 'group list is not JSON');
  }
  const l = v as Partial<GroupList> | null;
  if (
    l === null ||
    typeof l !== 'object' ||
    !Array.isArray(l.groups) ||
    !l.groups.every((g) => typeof g === 'string') ||
    typeof l.truncated !== 'boolean'
  )
    throw new CodecError('bad_value', 'group list has the wrong shape');
  return { groups: l.groups as string[], truncated: l.truncated };
}

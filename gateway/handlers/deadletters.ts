import { createHash, randomBytes } from 'node:crypto';
import { DaftkaError, isDaftkaError } from '../../common/errors';
import type { DeadLetter, DeadLetterFilter, DeadLetterState, ReplayJobStatus } from '../../common/leased-api';
import { authorize } from '../auth';
import type { TopicInfo } from '../catalog';
import { encodeRecord, type OutputEncoding } from '../codec';
import { invalidParameter } from '../validation';
import { withPartialResults } from './partial';
import {
  errorEntry,
  idempotencyKeyOf,
  mapPool,
  topicFromPath,
  type Call,
  type GatewayContext,
  type Reply,
} from './context';
import { leasedOf } from './leased';

/**
 * Dead letters (DESIGN §6). Each partition keeps its own dead-letter stream in its replicated
 * state (replica/leased/dead-letters.ts), so the API fans out over partitions: ids are
 * `<partition>-<seq>`, pages walk partitions in order, and a replay job is one job record per
 * partition, run by that partition's leader. Job ids are `<topic>.<suffix>`: the suffix comes
 * from the Idempotency-Key when given (the same request is the same job), else it is random.
 * GET /v1/jobs/{id} sums what the partitions report: no job state lives in any gateway.
 */

const FANOUT = 32;
const DEFAULT_RATE = 100;

interface FilterIn {
  from?: number;
  to?: number;
  group?: string;
  error_class?: string;
  ids?: string[];
}

function parseId(id: string): { partition: number; seq: number } {
  const [p, s] = id.split('-');
  return { partition: Number(p), seq: Number(s) };
}

/** The filter as each partition applies it; ids of other partitions drop out. */
function filterFor(f: FilterIn | undefined, partition: number, extra: DeadLetterFilter = {}): DeadLetterFilter | null {
  const out: DeadLetterFilter = { ...extra };
  if (f?.from !== undefined) out.fromMs = f.from;
  if (f?.to !== undefined) out.toMs = f.to;
  if (f?.group !== undefined) out.group = f.group;
  if (f?.error_class !== undefined) out.errorClass = f.error_class;
  if (f?.ids !== undefined) {
    out.seqs = f.ids
      .map(parseId)
      .filter((x) => x.partition === partition)
      .map((x) => x.seq);
    if (out.seqs.length === 0) return null;
  }
  return out;
}

export function deadLetterJson(d: DeadLetter, enc: OutputEncoding) {
  const { offset: _o, ...rec } = encodeRecord({ ...d.record, offset: d.originOffset }, enc);
  return {
    id: `${d.partition}-${d.seq}`,
    topic: d.topic,
    partition: d.partition,
    offset: d.originOffset,
    group: d.group,
    ...rec,
    attempts: d.attempts,
    last_error: d.lastError,
    error_class: d.errorClass,
    first_delivery_at: d.firstDeliveryMs,
    last_delivery_at: d.lastDeliveryMs,
    dead_lettered_at: d.deadLetteredMs,
    state: d.state,
    ...(d.replay
      ? {
          replay: {
            job_id: d.replay.jobId,
            offset: d.replay.offset,
            at: d.replay.atMs,
            ...(d.replay.topic !== undefined ? { topic: d.replay.topic, partition: d.replay.partition } : {}),
          },
        }
      : {}),
  };
}

interface ListQuery {
  from?: number;
  to?: number;
  group?: string;
  error_class?: string;
  state?: DeadLetterState;
  partition?: number;
  limit?: number;
  cursor?: string;
  encoding?: OutputEncoding;
}

function decodeCursor(s: string, t: TopicInfo): { p: number; after: number } {
  try {
    const v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as { p?: unknown; s?: unknown };
    if (Number.isInteger(v.p) && Number.isInteger(v.s) && (v.p as number) >= 0 && (v.p as number) < t.partitions)
      return { p: v.p as number, after: v.s as number };
  } catch {
    /* below */
  }
  throw invalidParameter('cursor', 'is not a next_cursor of this listing');
}

function encodeCursor(p: number, after: number): string {
  return Buffer.from(JSON.stringify({ p, s: after })).toString('base64url');
}

export async function listDeadLettersHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const { client } = leasedOf(g, false);
  const t = topicFromPath(g, c, 'consume');
  const q = c.query as unknown as ListQuery;
  if (q.partition !== undefined && q.partition >= t.partitions)
    throw new DaftkaError('PARTITION_NOT_FOUND', `topic ${t.name} has ${t.partitions} partitions`);
  const limit = q.limit ?? 100;
  const partitions = q.partition !== undefined ? [q.partition] : Array.from({ length: t.partitions }, (_, p) => p);
  let start = q.cursor !== undefined ? decodeCursor(q.cursor, t) : { p: partitions[0], after: -1 };
  if (!partitions.includes(start.p)) start = { p: partitions[0], after: -1 };
  const filter: FilterIn = { from: q.from, to: q.to, group: q.group, error_class: q.error_class };
  const out: DeadLetter[] = [];
  let next: string | null = null;
  for (let i = partitions.indexOf(start.p); i < partitions.length; i++) {
    const p = partitions[i];
    const f = filterFor(filter, p, q.state ? { states: [q.state] } : {})!;
    const page = await client.listDeadLetters({
      topic: t.name,
      partition: p,
      filter: f,
      afterSeq: p === start.p ? start.after : -1,
      limit: limit - out.length,
      requestId: c.requestId,
    });
    out.push(...page.items);
    if (out.length >= limit) {
      if (page.nextAfterSeq !== null) next = encodeCursor(p, page.nextAfterSeq);
      else if (i + 1 < partitions.length) next = encodeCursor(partitions[i + 1], -1);
      break;
    }
  }
  const enc = q.encoding ?? 'base64';
  return { body: { deadletters: out.map((d) => deadLetterJson(d, enc)), next_cursor: next } };
}

export async function getDeadLetterHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const { client } = leasedOf(g, false);
  const t = topicFromPath(g, c, 'consume');
  const { partition, seq } = parseId(c.params.id);
  if (partition >= t.partitions) throw new DaftkaError('NOT_FOUND', `no dead letter ${c.params.id} on topic ${t.name}`);
  const page = await client.listDeadLetters({
    topic: t.name,
    partition,
    filter: { seqs: [seq] },
    limit: 1,
    requestId: c.requestId,
  });
  if (page.items.length === 0)
    throw new DaftkaError('NOT_FOUND', `no dead letter ${partition}-${seq} on topic ${t.name}`);
  return { body: deadLetterJson(page.items[0], (c.query.encoding as OutputEncoding | undefined) ?? 'base64') };
}

async function adminHandler(g: GatewayContext, c: Call, action: 'archive' | 'purge'): Promise<Reply> {
  const { client } = leasedOf(g, false);
  const t = topicFromPath(g, c, 'see');
  authorize(g.catalog, c.principal, t.name, 'admin');
  const body = await c.body<{ filter: FilterIn }>();
  const partitions = Array.from({ length: t.partitions }, (_, p) => p);
  const answers = await mapPool(partitions, FANOUT, async (p) => {
    const f = filterFor(body.filter, p);
    if (f === null) return { p, count: 0 };
    try {
      return {
        p,
        count: (
          await client.adminDeadLetters({ topic: t.name, partition: p, action, filter: f, requestId: c.requestId })
        ).count,
      };
    } catch (err) {
      return { p, err };
    }
  });
  const failed = answers.find((a) => 'err' in a);
  if (failed)
    throw withPartialResults(
      (failed as { err: unknown }).err,
      answers.map((a) => ({
        topic: t.name,
        partition: a.p,
        status: 'err' in a ? 'failed' : 'committed',
        ...('err' in a ? { code: isDaftkaError(a.err) ? a.err.code : 'INTERNAL' } : {}),
      })),
    );
  const n = answers.reduce((s, a) => s + ('count' in a ? (a.count ?? 0) : 0), 0);
  return { body: action === 'archive' ? { archived: n } : { purged: n } };
}

export const archiveDeadLettersHandler = (g: GatewayContext, c: Call) => adminHandler(g, c, 'archive');
export const purgeDeadLettersHandler = (g: GatewayContext, c: Call) => adminHandler(g, c, 'purge');

// ---- replay jobs ----

interface ReplayBody {
  filter?: FilterIn;
  target?: 'origin' | 'topic';
  target_topic?: string;
  rate_per_sec?: number;
  dry_run?: boolean;
}

function jobAnswer(
  topic: string,
  jobId: string,
  parts: Array<ReplayJobStatus | { partition: number; err: unknown } | null>,
) {
  const ok = parts.filter((x): x is ReplayJobStatus => x !== null && 'jobId' in x);
  const missing = parts.some((x) => x === null || !('jobId' in x));
  const sum = (k: 'matched' | 'written' | 'skipped') => ok.reduce((s, x) => s + x[k], 0);
  const done = ok.length > 0 && ok.every((x) => x.state === 'done');
  return {
    job_id: jobId,
    topic,
    state: missing ? 'incomplete' : done ? 'done' : 'running',
    dry_run: ok[0]?.dryRun ?? false,
    target: ok.find((x) => x.target)?.target?.topic ?? 'origin',
    ...(ok.some((x) => x.lastError) ? { last_error: ok.find((x) => x.lastError)!.lastError } : {}),
    rate_per_sec: ok.reduce((s, x) => s + x.ratePerSec, 0),
    matched: sum('matched'),
    written: sum('written'),
    skipped: sum('skipped'),
    created_at: ok.length ? Math.min(...ok.map((x) => x.createdMs)) : null,
    finished_at: done ? Math.max(...ok.map((x) => x.finishedMs ?? 0)) : null,
    partitions: parts.map((x, p) =>
      x === null
        ? { partition: p, state: 'missing' }
        : 'jobId' in x
          ? {
              partition: x.partition,
              state: x.state,
              matched: x.matched,
              written: x.written,
              skipped: x.skipped,
              ...(x.lastError ? { last_error: x.lastError } : {}),
            }
          : { partition: x.partition, error: errorEntry(x.err) },
    ),
  };
}

export async function replayDeadLettersHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const { client } = leasedOf(g, false);
  const t = topicFromPath(g, c, 'see');
  authorize(g.catalog, c.principal, t.name, 'admin');
  const key = idempotencyKeyOf(c);
  const body = await c.body<ReplayBody>();
  let target: { topic: string; partitions: number } | undefined;
  if ((body.target ?? 'origin') === 'topic') {
    if (body.target_topic === undefined) throw invalidParameter('target_topic', 'is required with target "topic"');
    if (body.target_topic === t.name)
      throw invalidParameter('target_topic', `is the dead letters' own topic: use target "origin"`);
    const to = authorize(g.catalog, c.principal, body.target_topic, 'produce');
    target = { topic: to.name, partitions: to.partitions };
  } else if (body.target_topic !== undefined)
    throw invalidParameter('target_topic', 'is only allowed with target "topic"');
  const suffix = key
    ? createHash('sha256').update(`${t.name}\0${key}`).digest('base64url').slice(0, 24)
    : randomBytes(18).toString('base64url');
  const jobId = `${t.name}.${suffix}`;
  const rate = (body.rate_per_sec ?? DEFAULT_RATE) / t.partitions;
  const partitions = Array.from({ length: t.partitions }, (_, p) => p);
  const parts = await mapPool(partitions, FANOUT, async (p) => {
    // A partition the filter's ids leave out gets a job that matches nothing (progress stays per partition).
    const f = filterFor(body.filter, p) ?? { seqs: [] };
    try {
      return await client.startReplay({
        topic: t.name,
        partition: p,
        jobId,
        filter: f,
        ratePerSec: rate,
        dryRun: body.dry_run ?? false,
        ...(target ? { target } : {}),
        requestId: c.requestId,
      });
    } catch (err) {
      return { partition: p, err };
    }
  });
  const failed = parts.find((x): x is { partition: number; err: unknown } => 'err' in x);
  if (failed && parts.every((x) => 'err' in x)) throw failed.err;
  g.leased?.metrics?.replayJobs.inc({ topic: t.name });
  c.setHeader('Location', `/v1/jobs/${jobId}`);
  return { status: 202, body: jobAnswer(t.name, jobId, parts) };
}

export async function getJobHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const { client } = leasedOf(g, false);
  const jobId = c.params.job;
  const topic = jobId.slice(0, jobId.indexOf('.'));
  let t: TopicInfo;
  try {
    t = authorize(g.catalog, c.principal, topic, 'consume');
  } catch (err) {
    // An unknown topic means an unknown job; do not say more.
    if (isDaftkaError(err) && err.code === 'TOPIC_NOT_FOUND') throw new DaftkaError('NOT_FOUND', `no job ${jobId}`);
    throw err;
  }
  c.noteTopic(t.name);
  const partitions = Array.from({ length: t.partitions }, (_, p) => p);
  const parts = await mapPool(partitions, FANOUT, async (p) => {
    try {
      return await client.getReplay({ topic: t.name, partition: p, jobId, requestId: c.requestId });
    } catch (err) {
      return { partition: p, err };
    }
  });
  if (parts.every((x) => x === null)) throw new DaftkaError('NOT_FOUND', `no job ${jobId}`);
  const failed = parts.find((x): x is { partition: number; err: unknown } => x !== null && 'err' in x);
  if (failed && parts.every((x) => x !== null && 'err' in x)) throw failed.err;
  return { body: jobAnswer(t.name, jobId, parts) };
}

import { DaftkaError, isDaftkaError } from '../../common/errors';
import type { FetchResult, GroupOffset } from '../../common/partition-api';
import { MAX_GROUP_LIST } from '../../common/limits';
import { authorize, authorizeGroup, can, canUseGroup } from '../auth';
import type { TopicInfo } from '../catalog';
import { invalidField, invalidParameter } from '../validation';
import { withPartialResults } from './partial';
import { errorEntry, groupFromPath, mapPool, type Call, type GatewayContext, type Reply } from './context';

/**
 * Consumer groups, cumulative mode (Kafka style): a group's committed offset per partition is
 * the next offset to consume; lag = high watermark − committed offset (− log start offset when
 * nothing is committed). Committing and resetting need the consume right on the topic.
 */

/** Partition calls one request may make at once (introspection over many partitions). */
const FANOUT = 32;
/** Bound on partitions scanned by GET /v1/groups/{group} without `topic`. */
const MAX_SCAN_PARTITIONS = 10_000;

interface CommitBody {
  offsets: Array<{ topic: string; partition: number; offset: number; metadata?: string }>;
}

/** Re-raise a topic error for a body field with its pointer. */
function atPointer<T>(pointer: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isDaftkaError(err)) throw new DaftkaError(err.code, err.message, { extra: { ...(err.extra ?? {}), pointer } });
    throw err;
  }
}

function checkPartition(t: TopicInfo, p: number, pointer: string): void {
  if (p >= t.partitions)
    throw new DaftkaError(
      'PARTITION_NOT_FOUND',
      `topic ${t.name} has ${t.partitions} partitions (0–${t.partitions - 1})`,
      {
        extra: { pointer },
      },
    );
}

function partitionJson(o: GroupOffset) {
  return {
    partition: o.partition,
    offset: o.offset,
    ...(o.metadata !== undefined ? { metadata: o.metadata } : {}),
    high_watermark: o.highWatermark,
    log_start_offset: o.logStartOffset,
    lag: o.lag,
  };
}

export async function commitOffsetsHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const group = groupFromPath(c);
  const body = await c.body<CommitBody>();
  const seen = new Set<string>();
  body.offsets.forEach((o, i) => {
    const t = atPointer(`/offsets/${i}/topic`, () => authorizeGroup(g.catalog, c.principal, o.topic, group));
    checkPartition(t, o.partition, `/offsets/${i}/partition`);
    const k = `${o.topic}/${o.partition}`;
    if (seen.has(k)) throw invalidField(`/offsets/${i}`, `repeats ${o.topic} partition ${o.partition}`);
    seen.add(k);
  });
  if (body.offsets.length === 1) c.noteTopic(body.offsets[0].topic);
  const settled = await Promise.allSettled(
    body.offsets.map((o) =>
      g.router.commitOffset({
        group,
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        ...(o.metadata !== undefined ? { metadata: o.metadata } : {}),
        requestId: c.requestId,
      }),
    ),
  );
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    if (settled.length === 1) throw failed.reason;
    throw withPartialResults(
      failed.reason,
      settled.map((s, i) => ({
        topic: body.offsets[i].topic,
        partition: body.offsets[i].partition,
        status: s.status === 'fulfilled' ? 'committed' : 'failed',
        ...(s.status === 'rejected' ? { code: isDaftkaError(s.reason) ? s.reason.code : 'INTERNAL' } : {}),
      })),
    );
  }
  return {
    body: { offsets: body.offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset })) },
  };
}

function readOffsets(g: GatewayContext, c: Call, group: string, t: TopicInfo, partitions: number[]) {
  return mapPool(partitions, FANOUT, (partition) =>
    g.router.getOffset({ group, topic: t.name, partition, requestId: c.requestId }),
  );
}

function allPartitions(t: TopicInfo): number[] {
  return Array.from({ length: t.partitions }, (_, p) => p);
}

export async function getOffsetsHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const group = groupFromPath(c);
  const topic = c.query.topic as string;
  const t = authorizeGroup(g.catalog, c.principal, topic, group);
  c.noteTopic(t.name);
  const offsets = await readOffsets(g, c, group, t, allPartitions(t));
  return {
    body: {
      group,
      topic: t.name,
      lag: offsets.reduce((s, o) => s + o.lag, 0),
      partitions: offsets.map(partitionJson),
    },
  };
}

interface ResetBody {
  topic: string;
  to: 'earliest' | 'latest' | 'offset' | 'timestamp';
  offset?: number;
  timestamp?: number;
  partitions?: number[];
  dry_run?: boolean;
}

/**
 * The first offset in [lo, hi) whose record timestamp is at least `ts`, or `hi` when there is
 * none: a binary search over single-record fetches (about log2(hi − lo) reads, each routed to the
 * leader like any fetch). Exact when timestamps do not decrease along the log, which holds for the
 * timestamps the gateway sets when a producer gives none; with producer-set timestamps out of
 * order it is an offset where the timestamps cross `ts`, not necessarily the first (Kafka's
 * CreateTime has the same caveat). Offsets that retention removed meanwhile are skipped.
 */
async function offsetForTimestamp(
  g: GatewayContext,
  c: Call,
  topic: string,
  partition: number,
  ts: number,
  lo: number,
  hi: number,
): Promise<number> {
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    let r: FetchResult;
    try {
      r = await g.router.fetch({
        topic,
        partition,
        offset: mid,
        maxRecords: 1,
        maxBytes: 1024,
        waitMs: 0,
        requestId: c.requestId,
      });
    } catch (err) {
      if (isDaftkaError(err) && err.code === 'OFFSET_OUT_OF_RANGE') {
        lo = mid + 1; // below the log start now: the answer lies above
        continue;
      }
      throw err;
    }
    const rec = r.records[0];
    if (rec === undefined || rec.offset !== mid) {
      // Nothing at mid any more (retention): continue from what the log starts with.
      lo = Math.max(mid + 1, r.logStartOffset);
      continue;
    }
    if (rec.timestampMs >= ts) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export async function resetOffsetsHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const group = groupFromPath(c);
  const body = await c.body<ResetBody>();
  const t = atPointer('/topic', () => authorizeGroup(g.catalog, c.principal, body.topic, group));
  c.noteTopic(t.name);
  if (body.to === 'offset' && body.offset === undefined) throw invalidField('/offset', 'is required with to=offset');
  if (body.to === 'timestamp' && body.timestamp === undefined)
    throw invalidField('/timestamp', 'is required with to=timestamp');
  const partitions = body.partitions ?? allPartitions(t);
  partitions.forEach((p, i) => checkPartition(t, p, `/partitions/${i}`));

  // Read every partition first: nothing is committed unless all could be read.
  const current = await readOffsets(g, c, group, t, partitions);
  const byTime =
    body.to === 'timestamp'
      ? await mapPool(current, FANOUT, (o) =>
          offsetForTimestamp(g, c, t.name, o.partition, body.timestamp!, o.logStartOffset, o.highWatermark),
        )
      : [];
  const plan = current.map((o, i) => {
    const wanted =
      body.to === 'earliest'
        ? o.logStartOffset
        : body.to === 'latest'
          ? o.highWatermark
          : body.to === 'timestamp'
            ? byTime[i]
            : body.offset!;
    const target = Math.min(Math.max(wanted, o.logStartOffset), o.highWatermark);
    return {
      partition: o.partition,
      previous_offset: o.offset,
      new_offset: target,
      high_watermark: o.highWatermark,
      log_start_offset: o.logStartOffset,
    };
  });
  const dryRun = body.dry_run ?? false;
  if (!dryRun) {
    const settled = await Promise.allSettled(
      plan.map((p) =>
        g.router.commitOffset({
          group,
          topic: t.name,
          partition: p.partition,
          offset: p.new_offset,
          requestId: c.requestId,
        }),
      ),
    );
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined)
      throw withPartialResults(
        failed.reason,
        settled.map((s, i) => ({
          topic: t.name,
          partition: plan[i].partition,
          status: s.status === 'fulfilled' ? 'committed' : 'failed',
          ...(s.status === 'rejected' ? { code: isDaftkaError(s.reason) ? s.reason.code : 'INTERNAL' } : {}),
        })),
      );
  }
  return { body: { group, topic: t.name, to: body.to, dry_run: dryRun, partitions: plan } };
}

/** `topic` given as repeated parameters and/or comma-separated lists. */
function topicsParam(c: Call): string[] | undefined {
  const raw = c.query.topic as string[] | undefined;
  if (raw === undefined) return undefined;
  const names = raw
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw invalidParameter('topic', 'must name at least one topic');
  return [...new Set(names)];
}

export async function getGroupHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const group = groupFromPath(c);
  const named = topicsParam(c);
  const topics = named
    ? named.map((n) => authorizeGroup(g.catalog, c.principal, n, group))
    : g.catalog.list().filter((t) => can(c.principal, t, 'consume') && canUseGroup(c.principal, t, group));
  if (topics.length === 1) c.noteTopic(topics[0].name);
  const work = topics.flatMap((t) => allPartitions(t).map((p) => ({ t, p })));
  if (work.length > MAX_SCAN_PARTITIONS)
    throw invalidParameter('topic', `name the topics to report: more than ${MAX_SCAN_PARTITIONS} partitions to scan`);
  const answers = await mapPool(work, FANOUT, async ({ t, p }) => {
    try {
      return partitionJson(await g.router.getOffset({ group, topic: t.name, partition: p, requestId: c.requestId }));
    } catch (err) {
      return { partition: p, error: errorEntry(err) };
    }
  });
  let total = 0;
  const out: Array<{ topic: string; lag: number; partitions: unknown[] }> = [];
  let k = 0;
  for (const t of topics) {
    const parts = answers.slice(k, k + t.partitions);
    k += t.partitions;
    // Without named topics, report only where the group has committed something.
    const committed = parts.some((p) => 'offset' in p && p.offset !== null);
    if (!named && !committed) continue;
    const lag = parts.reduce((s, p) => s + ('lag' in p ? p.lag : 0), 0);
    total += lag;
    out.push({ topic: t.name, lag, partitions: parts });
  }
  if (!named && out.length === 0)
    throw new DaftkaError('GROUP_NOT_FOUND', `group ${group} has no committed offsets on topics visible to you`);
  return { body: { group, lag: total, topics: out } };
}

/** GET /v1/groups: the groups known on the topics the caller may consume, that it may use. */
export async function listGroupsHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const leased = g.leased?.client;
  if (leased === undefined) throw new DaftkaError('NOT_IMPLEMENTED', 'this gateway runs without the group list');
  const named = topicsParam(c);
  const prefix = (c.query.prefix as string | undefined) ?? '';
  const topics = named
    ? named.map((n) => authorize(g.catalog, c.principal, n, 'consume'))
    : g.catalog.list().filter((t) => can(c.principal, t, 'consume'));
  if (topics.length === 1) c.noteTopic(topics[0].name);
  const work = topics.flatMap((t) => allPartitions(t).map((p) => ({ t, p })));
  if (work.length > MAX_SCAN_PARTITIONS)
    throw invalidParameter('topic', `name the topics to list: more than ${MAX_SCAN_PARTITIONS} partitions to scan`);
  const errors: Array<{ topic: string; partition: number; code: string }> = [];
  let truncated = false;
  const seen = new Set<string>();
  const out: Array<{ group: string; topic: string }> = [];
  const answers = await mapPool(work, FANOUT, async ({ t, p }) => {
    try {
      return await leased.listGroups({ topic: t.name, partition: p, limit: MAX_GROUP_LIST, requestId: c.requestId });
    } catch (err) {
      errors.push({ topic: t.name, partition: p, code: isDaftkaError(err) ? err.code : 'INTERNAL' });
      return null;
    }
  });
  answers.forEach((a, i) => {
    if (a === null) return;
    truncated ||= a.truncated;
    const t = work[i].t;
    for (const group of a.groups) {
      const k = `${group}\u0000${t.name}`;
      if (seen.has(k) || !group.startsWith(prefix) || !canUseGroup(c.principal, t, group)) continue;
      seen.add(k);
      out.push({ group, topic: t.name });
    }
  });
  out.sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : a.topic < b.topic ? -1 : 1));
  return { body: { groups: out, truncated, ...(errors.length > 0 ? { errors } : {}) } };
}

import type { LeasedPartitionClient } from '../../protocol/methods';
import { DaftkaError, isDaftkaError } from '../../common/errors';
import type {
  GroupLeaseInfo,
  LeaseAckItem,
  LeaseAckResult,
  LeasedRecord,
  LeasePolicy,
  LeasePolicyOverride,
} from '../../common/leased-api';
import { authorize, authorizeGroup } from '../auth';
import type { TopicInfo } from '../catalog';
import { encodeRecord, recordBytes, type OutputEncoding } from '../codec';
import type { LeaseTokens } from '../lease-token';
import type { LeasedMetrics } from '../metrics';
import { DEFAULT_LEASED_RECORDS } from '../leased-spec';
import { invalidField } from '../validation';
import { withPartialResults } from './partial';
import { errorEntry, groupFromPath, mapPool, type Call, type GatewayContext, type Reply } from './context';

/**
 * Leased consumption (DESIGN §6): POST /v1/groups/{g}/fetch hands out records under leases,
 * POST /v1/groups/{g}/acks settles them, PUT/GET /v1/groups/{g}/policy. The gateway keeps no
 * state: leases live in each partition's replicated state machine; the gateway signs tokens
 * (gateway/lease-token.ts) so that an ack can be routed to the right partition and cannot be
 * forged, and the partition refuses attempts that are not the record's current one.
 */

/** Partition calls one request may make at once. */
const FANOUT = 32;
/** Bound on partitions a leased fetch may span. */
const MAX_FETCH_PARTITIONS = 10_000;

export function leasedOf(
  g: GatewayContext,
  needTokens: boolean,
): { client: LeasedPartitionClient; tokens: LeaseTokens } {
  const l = g.leased;
  if (!l) throw new DaftkaError('NOT_IMPLEMENTED', 'leased groups and dead letters are not enabled on this gateway');
  if (needTokens && !l.tokens)
    throw new DaftkaError(
      'NOT_IMPLEMENTED',
      'leased mode needs a lease secret shared by every gateway pod: set DAFTKA_GATEWAY_LEASE_SECRET',
    );
  return { client: l.client, tokens: l.tokens as LeaseTokens };
}

function metricsOf(g: GatewayContext): LeasedMetrics | undefined {
  return g.leased?.metrics;
}

/** Re-raise an authorisation error for a body field with its pointer. */
function atPointer<T>(pointer: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isDaftkaError(err)) throw new DaftkaError(err.code, err.message, { extra: { ...(err.extra ?? {}), pointer } });
    throw err;
  }
}

// ---- fetch ----

interface FetchBody {
  topics: string[];
  max_records?: number;
  wait_ms?: number;
  lease_ms?: number;
  encoding?: OutputEncoding;
}

interface Slot {
  t: TopicInfo;
  p: number;
}

/**
 * `max` records shared over the partitions: each gets ⌊max/n⌋, and the remainder goes to
 * partitions starting at a random one, so no partition is favoured over many calls.
 */
export function shareOut(max: number, n: number, start: number): number[] {
  const base = Math.floor(max / n);
  const extra = max % n;
  return Array.from({ length: n }, (_, i) => base + ((i - start + n) % n < extra ? 1 : 0));
}

export async function leasedFetchHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const group = groupFromPath(c);
  const { client: leased, tokens } = leasedOf(g, true);
  const body = await c.body<FetchBody>();
  const topics = body.topics.map((name, i) =>
    atPointer(`/topics/${i}`, () => authorizeGroup(g.catalog, c.principal, name, group)),
  );
  if (topics.length === 1) c.noteTopic(topics[0].name);
  for (const t of topics) g.quotas.admitFetch(t, c.principal.name);
  const slots: Slot[] = topics.flatMap((t) => Array.from({ length: t.partitions }, (_, p) => ({ t, p })));
  if (slots.length > MAX_FETCH_PARTITIONS)
    throw invalidField('/topics', `spans more than ${MAX_FETCH_PARTITIONS} partitions; name fewer topics`);
  const max = Math.min(body.max_records ?? DEFAULT_LEASED_RECORDS, g.limits.fetchMaxRecords);
  const waitMs = body.wait_ms ?? 0;
  const deadline = Date.now() + waitMs;
  const enc = body.encoding ?? 'base64';
  const lease = (s: Slot, maxRecords: number, wait: number) =>
    leased.leaseFetch({
      group,
      topic: s.t.name,
      partition: s.p,
      maxRecords,
      waitMs: wait,
      ...(body.lease_ms !== undefined ? { leaseMs: body.lease_ms } : {}),
      requestId: c.requestId,
    });

  let got: Array<{ s: Slot; r: LeasedRecord }> = [];
  /** Partitions a wait found something on: asked first in the next round. */
  let ready: Slot[] = [];
  for (;;) {
    const remaining = Math.max(0, deadline - Date.now());
    if (slots.length === 1) {
      // One partition: the replica long-polls and leases in one call.
      got = (await lease(slots[0], max, remaining)).records.map((r) => ({ s: slots[0], r }));
      break;
    }
    const pool = ready.length > 0 ? ready : slots;
    const quotas = shareOut(max, pool.length, Math.floor(Math.random() * pool.length));
    const asked = pool.map((s, i) => ({ s, q: quotas[i] })).filter((x) => x.q > 0);
    const settled = await mapPool(asked, FANOUT, async ({ s, q }) => {
      try {
        return { s, records: (await lease(s, q, 0)).records };
      } catch (err) {
        return { s, err };
      }
    });
    for (const x of settled) if ('records' in x && x.records) for (const r of x.records) got.push({ s: x.s, r });
    const failed = settled.filter((x) => 'err' in x);
    if (got.length > 0) break;
    if (failed.length === settled.length) throw (failed[0] as { err: unknown }).err;
    if (deadline - Date.now() <= 0) break;
    // Nothing anywhere: wait (leasing nothing) until some partition has something, then lease there.
    ready = await new Promise<Slot[]>((resolve) => {
      let pending = slots.length;
      for (const s of slots)
        void lease(s, 0, Math.max(0, deadline - Date.now())).then(
          (r) => {
            if (r.available) resolve([s]);
            else if (--pending === 0) resolve([]);
          },
          () => {
            if (--pending === 0) resolve([]);
          },
        );
    });
    if (ready.length === 0) break;
  }

  const m = metricsOf(g);
  const records = got.map(({ s, r }) => {
    if (m) {
      m.leased.inc({ topic: s.t.name });
      if (r.attempt > 1) m.redelivered.inc({ topic: s.t.name });
    }
    return {
      topic: s.t.name,
      partition: s.p,
      ...encodeRecord(r, enc),
      delivery_attempt: r.attempt,
      lease_token: tokens.sign({
        principal: c.principal.name,
        group,
        topic: s.t.name,
        partition: s.p,
        offset: r.offset,
        attempt: r.attempt,
        leaseUntilMs: r.leaseUntilMs,
      }),
      lease_expires_at: r.leaseUntilMs,
    };
  });
  // Charged per topic with what was returned (admission was checked per topic above).
  if (records.length > 0) {
    const perTopic = new Map<TopicInfo, number>();
    for (const { s, r } of got) perTopic.set(s.t, (perTopic.get(s.t) ?? 0) + recordBytes(r));
    for (const [t, b] of perTopic) {
      g.quotas.chargeFetch(t, c.principal.name, b);
      g.metrics.fetchRecords.inc({ topic: t.name }, got.filter((x) => x.s.t === t).length);
      g.metrics.fetchBytes.inc({ topic: t.name }, b);
    }
  }
  return { body: { records } };
}

// ---- acks ----

interface AckIn {
  token: string;
  action: LeaseAckItem['action'];
  delay_ms?: number;
  lease_ms?: number;
  error?: string;
  error_class?: string;
}

interface AckOut {
  status: LeaseAckResult['status'] | 'invalid_token';
  detail?: string;
  lease_token?: string;
  lease_expires_at?: number;
  dead_lettered?: boolean;
  discarded?: boolean;
}

export async function leasedAcksHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const group = groupFromPath(c);
  const { client: leased, tokens } = leasedOf(g, true);
  const body = await c.body<{ acks: AckIn[] }>();
  body.acks.forEach((a, i) => {
    if (a.delay_ms !== undefined && a.action !== 'release')
      throw invalidField(`/acks/${i}/delay_ms`, 'is only allowed with action release');
    if (a.lease_ms !== undefined && a.action !== 'extend')
      throw invalidField(`/acks/${i}/lease_ms`, 'is only allowed with action extend');
  });
  const results: AckOut[] = new Array(body.acks.length);
  const topicOf: Array<string | undefined> = new Array(body.acks.length);
  // Verify every token and group the acks by partition.
  const byPartition = new Map<string, { t: TopicInfo; p: number; idx: number[]; items: LeaseAckItem[] }>();
  body.acks.forEach((a, i) => {
    const claims = tokens.verify(a.token);
    if (claims === 'garbled' || claims === 'forged') {
      results[i] = {
        status: 'invalid_token',
        detail: claims === 'garbled' ? 'not a lease token' : 'the token was not issued by this gateway fleet',
      };
      return;
    }
    if (claims.group !== group) {
      results[i] = { status: 'invalid_token', detail: 'the token was issued to another group' };
      return;
    }
    // Bound to the principal that fetched: a token seen by someone else (logs, a shared queue) is useless to them.
    if (claims.principal !== c.principal.name) {
      results[i] = { status: 'invalid_token', detail: 'the token was issued to another principal' };
      return;
    }
    const t = atPointer(`/acks/${i}/token`, () => authorizeGroup(g.catalog, c.principal, claims.topic, group));
    if (claims.partition >= t.partitions) {
      results[i] = { status: 'invalid_token', detail: 'the token names a partition the topic does not have' };
      return;
    }
    topicOf[i] = t.name;
    const k = `${t.name}/${claims.partition}`;
    let b = byPartition.get(k);
    if (!b) byPartition.set(k, (b = { t, p: claims.partition, idx: [], items: [] }));
    b.idx.push(i);
    b.items.push({
      offset: claims.offset,
      attempt: claims.attempt,
      action: a.action,
      ...(a.delay_ms !== undefined ? { delayMs: a.delay_ms } : {}),
      ...(a.lease_ms !== undefined ? { leaseMs: a.lease_ms } : {}),
      ...(a.error !== undefined ? { error: a.error } : {}),
      ...(a.error_class !== undefined ? { errorClass: a.error_class } : {}),
    });
  });
  const batches = [...byPartition.values()];
  if (batches.length === 1) c.noteTopic(batches[0].t.name);
  const settled = await mapPool(batches, FANOUT, async (b) => {
    try {
      return {
        b,
        out: await leased.leaseAck({ group, topic: b.t.name, partition: b.p, items: b.items, requestId: c.requestId }),
      };
    } catch (err) {
      return { b, err };
    }
  });
  const failed = settled.find((s) => 'err' in s);
  if (failed !== undefined) {
    // Acks are idempotent: the whole request can be sent again.
    if (settled.length === 1) throw (failed as { err: unknown }).err;
    throw withPartialResults(
      (failed as { err: unknown }).err,
      settled.map((s) => ({
        topic: s.b.t.name,
        partition: s.b.p,
        status: 'err' in s ? 'failed' : 'committed',
        ...('err' in s ? { code: isDaftkaError(s.err) ? s.err.code : 'INTERNAL' } : {}),
      })),
    );
  }
  for (const s of settled) {
    if (!('out' in s) || !s.out) continue;
    s.out.forEach((r, j) => {
      const i = s.b.idx[j];
      const item = s.b.items[j];
      const o: AckOut = { status: r.status, ...(r.detail !== undefined ? { detail: r.detail } : {}) };
      if (r.leaseUntilMs !== undefined) {
        o.lease_expires_at = r.leaseUntilMs;
        o.lease_token = tokens.sign({
          principal: c.principal.name,
          group,
          topic: s.b.t.name,
          partition: s.b.p,
          offset: item.offset,
          attempt: item.attempt,
          leaseUntilMs: r.leaseUntilMs,
        });
      }
      if (r.deadLettered) o.dead_lettered = true;
      if (r.discarded) o.discarded = true;
      results[i] = o;
    });
  }
  const m = metricsOf(g);
  if (m)
    results.forEach((r, i) =>
      m.acks.inc({ topic: topicOf[i] ?? 'unknown', action: body.acks[i].action, result: r.status }),
    );
  if (results.some((r) => r.status === 'ok')) return { body: { results } };
  // Nothing was applied: a problem, carrying the same per-ack results.
  if (results.every((r) => r.status === 'invalid_token'))
    throw new DaftkaError('INVALID_TOKEN', 'no ack was applied: every lease token is invalid (see results)', {
      extra: { results },
    });
  throw new DaftkaError(
    'CONFLICT',
    'no ack was applied: the leases expired or the records were delivered again since (see results)',
    { extra: { results } },
  );
}

// ---- policy ----

interface PolicyBody {
  topic: string;
  max_attempts?: number;
  lease_ms?: number;
  backoff?: { initial_ms?: number; max_ms?: number; multiplier?: number };
  dead_letter?: boolean;
  ordered?: boolean;
  ordering_key?: boolean;
  expired?: 'dead_letter' | 'drop';
}

function overrideOf(b: PolicyBody): LeasePolicyOverride {
  const o: LeasePolicyOverride = {};
  if (b.max_attempts !== undefined) o.maxAttempts = b.max_attempts;
  if (b.lease_ms !== undefined) o.leaseMs = b.lease_ms;
  if (b.backoff?.initial_ms !== undefined) o.backoffInitialMs = b.backoff.initial_ms;
  if (b.backoff?.max_ms !== undefined) o.backoffMaxMs = b.backoff.max_ms;
  if (b.backoff?.multiplier !== undefined) o.backoffMultiplier = b.backoff.multiplier;
  if (b.dead_letter !== undefined) o.deadLetter = b.dead_letter;
  if (b.ordered !== undefined) o.ordered = b.ordered;
  if (b.ordering_key !== undefined) o.orderingKey = b.ordering_key;
  if (b.expired !== undefined) o.expired = b.expired;
  return o;
}

export function policyJson(p: LeasePolicyOverride): Record<string, unknown> {
  const backoff: Record<string, number> = {};
  if (p.backoffInitialMs !== undefined) backoff.initial_ms = p.backoffInitialMs;
  if (p.backoffMaxMs !== undefined) backoff.max_ms = p.backoffMaxMs;
  if (p.backoffMultiplier !== undefined) backoff.multiplier = p.backoffMultiplier;
  return {
    ...(p.maxAttempts !== undefined ? { max_attempts: p.maxAttempts } : {}),
    ...(p.leaseMs !== undefined ? { lease_ms: p.leaseMs } : {}),
    ...(Object.keys(backoff).length > 0 ? { backoff } : {}),
    ...(p.deadLetter !== undefined ? { dead_letter: p.deadLetter } : {}),
    ...(p.ordered !== undefined ? { ordered: p.ordered } : {}),
    ...(p.orderingKey !== undefined ? { ordering_key: p.orderingKey } : {}),
    ...(p.expired !== undefined ? { expired: p.expired } : {}),
  };
}

function policyAnswer(group: string, t: TopicInfo, infos: Array<GroupLeaseInfo | { partition: number; err: unknown }>) {
  const ok = infos.filter((i): i is GroupLeaseInfo => 'effective' in i);
  const first = ok[0];
  return {
    group,
    topic: t.name,
    policy: first ? policyJson(first.effective as LeasePolicy) : {},
    override: first?.override ? policyJson(first.override) : {},
    partitions: infos.map((i) =>
      'effective' in i
        ? {
            partition: i.partition,
            committed_offset: i.committedOffset,
            high_watermark: i.highWatermark,
            leased: i.leased,
            waiting: i.waiting,
            done: i.done,
          }
        : { partition: i.partition, error: errorEntry(i.err) },
    ),
  };
}

export async function putPolicyHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const group = groupFromPath(c);
  const { client: leased } = leasedOf(g, false);
  const body = await c.body<PolicyBody>();
  // A policy decides what happens to records (max_attempts, dead_letter: false discards): admin only.
  const t = atPointer('/topic', () => authorize(g.catalog, c.principal, body.topic, 'admin'));
  c.noteTopic(t.name);
  const o = overrideOf(body);
  const policy = Object.keys(o).length === 0 ? null : o;
  const partitions = Array.from({ length: t.partitions }, (_, p) => p);
  const infos = await mapPool(partitions, FANOUT, async (p) => {
    try {
      return await leased.setGroupPolicy({ group, topic: t.name, partition: p, policy, requestId: c.requestId });
    } catch (err) {
      return { partition: p, err };
    }
  });
  const failed = infos.find((i): i is { partition: number; err: unknown } => 'err' in i);
  if (failed) {
    // A bad policy is refused by every partition alike: answer it plainly.
    if (isDaftkaError(failed.err) && failed.err.status < 500) throw failed.err;
    throw withPartialResults(
      failed.err,
      infos.map((i) => ({
        topic: t.name,
        partition: i.partition,
        status: 'err' in i ? 'failed' : 'committed',
        ...('err' in i ? { code: isDaftkaError(i.err) ? i.err.code : 'INTERNAL' } : {}),
      })),
    );
  }
  return { body: policyAnswer(group, t, infos) };
}

export async function getPolicyHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const group = groupFromPath(c);
  const { client: leased } = leasedOf(g, false);
  const t = authorizeGroup(g.catalog, c.principal, c.query.topic as string, group);
  c.noteTopic(t.name);
  const partitions = Array.from({ length: t.partitions }, (_, p) => p);
  const infos = await mapPool(partitions, FANOUT, async (p) => {
    try {
      return await leased.getGroupLeases({ group, topic: t.name, partition: p, requestId: c.requestId });
    } catch (err) {
      return { partition: p, err };
    }
  });
  const ok = infos.filter((i): i is GroupLeaseInfo => 'effective' in i);
  if (ok.length === 0) throw (infos[0] as { err: unknown }).err;
  if (!ok.some((i) => i.known))
    throw new DaftkaError('GROUP_NOT_FOUND', `group ${group} has no policy, leases or offsets on topic ${t.name}`);
  return { body: policyAnswer(group, t, infos) };
}

import type { LeasedPartitionClient, PartitionClient } from '../../protocol/methods';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { DaftkaError } from '../../common/errors';
import type { ProduceRequest, ProduceResult } from '../../common/partition-api';
import type { Logger } from '../../common/log';

import { GROUP_NAME_MAX_CHARS, GROUP_NAME_RE, TOPIC_NAME_RE } from '../../common/names';
import { IDEMPOTENCY_KEY_PATTERN } from '../route-spec';
import { authorize, visibleTopic, type Principal } from '../auth';
import type { TopicCatalog, TopicInfo } from '../catalog';
import type { LeaseTokens } from '../lease-token';
import type { GatewayMetrics, LeasedMetrics } from '../metrics';
import type { QuotaManager } from '../quotas';
import type { ReadinessSource } from '../readiness';
import { invalidParameter } from '../validation';

/** What route handlers share: their context, their input, and the path/header parsing. */

export interface GatewayLimits {
  /** Largest request body, after decompression, in bytes. */
  maxBodyBytes: number;
  /** Request bodies held in memory at once (reserved before reading, released after the answer). */
  maxBodyBytesInFlight: number;
  /** Most records in one produce request. */
  maxRecordsPerRequest: number;
  /** Fetch `max_records` above this is lowered to it. */
  fetchMaxRecords: number;
  /** Fetch `max_bytes` above this is lowered to it. */
  fetchMaxBytes: number;
  /** Produce commit deadline, and the deadline of every other replica call (fetch: wait + this). */
  requestTimeoutMs: number;
  /** A body slower than this on average after `uploadGraceMs` is cut (0 or absent: no minimum). */
  minUploadBytesPerSecond?: number;
  uploadGraceMs?: number;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  maxBodyBytes: 8 * 1_048_576,
  maxBodyBytesInFlight: 32 * 1_048_576,
  maxRecordsPerRequest: 1000,
  fetchMaxRecords: 1000,
  fetchMaxBytes: 8 * 1_048_576,
  requestTimeoutMs: 5000,
};

/** What a handler gets: the request, its validated query, and lazy, validated body reading. */
export interface Call {
  /** Path parameters, percent-decoded (`topic`, `partition`, `group`, …). */
  params: Readonly<Record<string, string>>;
  headers: IncomingHttpHeaders;
  /** Set a header of the answer (before the handler returns). */
  setHeader(name: string, value: string): void;
  requestId: string;
  principal: Principal;
  query: Record<string, unknown>;
  /** Read, parse and validate the JSON body (413 / 415 / 400 MALFORMED_JSON / 400 INVALID_REQUEST). */
  body<T>(): Promise<T>;
  /** Note the topic for the access log line (a catalog name, never raw input). */
  noteTopic(name: string): void;
  /**
   * Streaming routes only (RouteSpec.streaming): the request and response themselves, and the
   * route's body schema as a validator of one item (throws the 400 a body would get).
   */
  stream?: {
    req: IncomingMessage;
    res: ServerResponse;
    validateItem(doc: unknown): void;
    /** Reserve this stream's share of the body budget (503 OVERLOADED when it is spent). */
    reserve(): void;
  };
}

export interface Reply {
  status?: number;
  body: unknown;
}

/** What the leased routes need; absent when the gateway runs without them (501). */
export interface LeasedGateway {
  client: LeasedPartitionClient;
  /** null when no lease secret is configured: leased fetch and acks answer 501. */
  tokens: LeaseTokens | null;
  metrics?: LeasedMetrics;
}

/** Everything a handler may use, built once per app. */
export interface GatewayContext {
  catalog: TopicCatalog;
  router: PartitionClient;
  /** Produce through the coalescer (gateway/produce-coalescer.ts); `bytes`: the records' size. */
  produce(req: ProduceRequest, bytes: number, boundedElsewhere?: boolean): Promise<ProduceResult>;
  quotas: QuotaManager;
  logger: Logger;
  limits: GatewayLimits;
  metrics: GatewayMetrics;
  nowMs: () => number;
  /** Leased groups and dead letters (handlers/leased.ts); absent: those routes answer 501. */
  leased?: LeasedGateway;
  /** The launch-readiness report (handlers/readiness.ts); absent: those routes answer 501. */
  readiness?: ReadinessSource;
}

export type Handler = (g: GatewayContext, c: Call) => Promise<Reply>;

const PARTITION_RE = /^(0|[1-9][0-9]{0,8})$/;
const IDEMPOTENCY_KEY_RE = new RegExp(IDEMPOTENCY_KEY_PATTERN);

/** The topic named in the path, if `p` holds `right` on it (404 when it cannot see it, 403 when it can). */
export function topicFromPath(g: GatewayContext, c: Call, right: 'produce' | 'consume' | 'see'): TopicInfo {
  const name = c.params.topic;
  // A name no topic can have: answered like any unknown topic, without echoing the input.
  if (!TOPIC_NAME_RE.test(name)) throw new DaftkaError('TOPIC_NOT_FOUND', 'topic does not exist');
  const t =
    right === 'see' ? visibleTopic(g.catalog, c.principal, name) : authorize(g.catalog, c.principal, name, right);
  c.noteTopic(t.name);
  return t;
}

export function partitionFromPath(c: Call, t: TopicInfo): number {
  const raw = c.params.partition;
  if (!PARTITION_RE.test(raw)) throw invalidParameter('partition', 'must be a non-negative integer');
  const p = Number(raw);
  if (p >= t.partitions)
    throw new DaftkaError(
      'PARTITION_NOT_FOUND',
      `topic ${t.name} has ${t.partitions} partitions (0–${t.partitions - 1})`,
    );
  return p;
}

export function groupFromPath(c: Call): string {
  const g = c.params.group;
  if (!GROUP_NAME_RE.test(g))
    throw invalidParameter('group', `must be 1–${GROUP_NAME_MAX_CHARS} characters of [A-Za-z0-9._-]`);
  return g;
}

export function idempotencyKeyOf(c: Call): string | undefined {
  const k = c.headers['idempotency-key'];
  if (k === undefined) return undefined;
  if (typeof k !== 'string' || !IDEMPOTENCY_KEY_RE.test(k))
    throw invalidParameter('Idempotency-Key', 'must be 1–128 printable ASCII characters without spaces');
  return k;
}

/** Run `fn` over `items` with at most `limit` running at once; results in input order. */
export async function mapPool<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** A partition-level failure as reported inside a 200 answer (introspection). */
export function errorEntry(err: unknown): { code: string; detail: string } {
  if (err instanceof DaftkaError) return { code: err.code, detail: err.message };
  return { code: 'INTERNAL', detail: 'internal error; see server logs for the request id' };
}

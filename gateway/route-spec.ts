import { MAX_PARTITION_INDEX } from '../common/limits';
import { GROUP_NAME_PATTERN, TOPIC_NAME_PATTERN } from '../common/names';
import type { JsonSchema } from './validation';

/**
 * The vocabulary of a route description: what api-spec.ts and leased-spec.ts declare, what
 * routes.ts assembles into the route table, and what app.ts (validators, dispatch) and
 * openapi.ts (the document) read. Types and the few building blocks both spec files use; it
 * imports no spec, so the spec files depend on it and never on each other.
 */

export interface ParamSpec {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: JsonSchema;
  description: string;
}

/** Routes of records, offsets, topics and operations (api-spec.ts). */
export type CoreRouteId =
  | 'produce'
  | 'produce_stream'
  | 'fetch'
  | 'commit_offsets'
  | 'get_offsets'
  | 'reset_offsets'
  | 'get_group'
  | 'list_groups'
  | 'list_topics'
  | 'get_topic'
  | 'get_limits'
  | 'openapi'
  | 'healthz'
  | 'readyz'
  | 'metrics';

/** Leased-group and dead-letter routes (leased-spec.ts). */
export type LeasedRouteId =
  | 'leased_fetch'
  | 'leased_acks'
  | 'put_group_policy'
  | 'get_group_policy'
  | 'list_deadletters'
  | 'get_deadletter'
  | 'replay_deadletters'
  | 'archive_deadletters'
  | 'purge_deadletters'
  | 'get_job';

/** The launch-readiness report and its history (readiness-spec.ts). */
export type ReadinessRouteId = 'get_readiness' | 'get_readiness_history';

export type RouteId = CoreRouteId | LeasedRouteId | ReadinessRouteId;

export interface RouteSpec {
  /** Stable id: the OpenAPI operationId and the `route` metric label. */
  id: RouteId;
  method: 'get' | 'post' | 'put';
  /** OpenAPI path template (`{name}` parameters). */
  path: string;
  summary: string;
  description?: string;
  tag: 'records' | 'groups' | 'topics' | 'operations';
  /** Needs a bearer token when auth is on. */
  auth: boolean;
  params: ParamSpec[];
  body?: JsonSchema;
  /** The body's media type in the OpenAPI document (default application/json). */
  bodyContentType?: string;
  /**
   * The handler reads the request and writes the answer itself (a stream: produce_stream); the
   * dispatcher authenticates, validates the query and reserves the body budget first.
   */
  streaming?: boolean;
  ok: { status: number; description: string; schema: JsonSchema; contentType?: string };
  /** Problem statuses this route may answer. */
  errors: number[];
}

/** Idempotency-Key: 1–128 printable ASCII characters without spaces. */
export const IDEMPOTENCY_KEY_PATTERN = '^[\\x21-\\x7e]{1,128}$';

export const int = (min: number, max: number, description: string, extra: JsonSchema = {}): JsonSchema => ({
  type: 'integer',
  minimum: min,
  maximum: max,
  description,
  ...extra,
});

export const topicParam: ParamSpec = {
  name: 'topic',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: TOPIC_NAME_PATTERN },
  description: 'Topic name.',
};

export const partitionParam: ParamSpec = {
  name: 'partition',
  in: 'path',
  required: true,
  schema: { type: 'integer', minimum: 0, maximum: MAX_PARTITION_INDEX },
  description: 'Partition index.',
};

export const groupParam: ParamSpec = {
  name: 'group',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: GROUP_NAME_PATTERN },
  description: 'Consumer group name.',
};

import { MAX_WAIT_MS, LEASE_POLICY_BOUNDS as B, MAX_PARTITION_INDEX, MAX_RELEASE_DELAY_MS } from '../common/limits';
import { GROUP_NAME_PATTERN, TOPIC_NAME_PATTERN } from '../common/names';
import { MAX_FETCH_RECORDS } from './api-spec';
import { OUTPUT_ENCODING_SCHEMA } from './codec';
import {
  groupParam,
  IDEMPOTENCY_KEY_PATTERN,
  int,
  topicParam,
  type LeasedRouteId,
  type ParamSpec,
  type RouteSpec,
} from './route-spec';
import type { JsonSchema } from './validation';

/**
 * The leased-consumption and dead-letter routes (DESIGN §6), declared like every other route
 * (routes.ts appends them to the route table): one JSON Schema source for validation and OpenAPI.
 */

export const JOB_ID_PATTERN = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\\.[A-Za-z0-9_-]{8,64}$';
export const DEAD_LETTER_ID_PATTERN = '^(0|[1-9][0-9]{0,8})-(0|[1-9][0-9]{0,15})$';
export const ERROR_CLASS_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';
export const MAX_ACKS_PER_REQUEST = 1000;
export const DEFAULT_LEASED_RECORDS = 100;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const b64: JsonSchema = { type: 'string', contentEncoding: 'base64' };

const encodingParam: ParamSpec = {
  name: 'encoding',
  in: 'query',
  required: false,
  schema: OUTPUT_ENCODING_SCHEMA,
  description: 'base64: byte fields as *_b64; utf8: as text when valid UTF-8, else *_b64.',
};
const COMMON_ERRORS = [400, 401, 403, 404, 429, 500, 503, 504];

const policyFields: Record<string, JsonSchema> = {
  max_attempts: int(B.maxAttempts.min, B.maxAttempts.max, 'Deliveries before the record is dead-lettered.'),
  lease_ms: int(B.leaseMs.min, B.leaseMs.max, 'Lease length when a fetch names none.'),
  backoff: {
    type: 'object',
    additionalProperties: false,
    description: 'Redelivery delay after a release without delay_ms: min(max_ms, initial_ms × multiplier^(attempt−1)).',
    properties: {
      initial_ms: int(B.backoffInitialMs.min, B.backoffInitialMs.max, 'Delay after the first failed attempt.'),
      max_ms: int(B.backoffMaxMs.min, B.backoffMaxMs.max, 'Upper bound of the delay.'),
      multiplier: {
        type: 'number',
        minimum: B.backoffMultiplier.min,
        maximum: B.backoffMultiplier.max,
        description: 'Growth per attempt.',
      },
    },
  },
  dead_letter: { type: 'boolean', description: 'false: rejected and exhausted records are discarded.' },
  ordered: {
    type: 'boolean',
    description:
      'Exclusive mode: one lease holder per partition at a time, records handed out in offset order. ' +
      'A record delayed by deliver_at holds back every record after it.',
  },
  ordering_key: {
    type: 'boolean',
    description:
      'Ordering keys: at most one record per key leased (or waiting for redelivery) at a time, a key’s ' +
      'records in offset order — the next only after the previous is accepted, rejected or dead-lettered; ' +
      'other keys flow in parallel. A record without a key is its own key. Not with ordered.',
  },
  expired: {
    type: 'string',
    enum: ['dead_letter', 'drop'],
    description:
      'A record past its expires_at (produced with ttl_ms or expires_at) is no longer offered: dead_letter ' +
      '(default; dropped when dead_letter is false) or drop.',
  },
};

const policyOut: JsonSchema = {
  type: 'object',
  required: ['max_attempts', 'lease_ms', 'backoff', 'dead_letter', 'ordered', 'ordering_key', 'expired'],
  properties: {
    max_attempts: { type: 'integer' },
    lease_ms: { type: 'integer' },
    backoff: {
      type: 'object',
      properties: { initial_ms: { type: 'integer' }, max_ms: { type: 'integer' }, multiplier: { type: 'number' } },
    },
    dead_letter: { type: 'boolean' },
    ordered: { type: 'boolean' },
    ordering_key: { type: 'boolean' },
    expired: { type: 'string', enum: ['dead_letter', 'drop'] },
  },
};

export const POLICY_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['topic'],
  additionalProperties: false,
  properties: { topic: { type: 'string' }, ...policyFields },
};

const partitionError: JsonSchema = {
  type: 'object',
  required: ['code', 'detail'],
  properties: { code: { type: 'string' }, detail: { type: 'string' } },
};

export const POLICY_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['group', 'topic', 'policy', 'override', 'partitions'],
  properties: {
    group: { type: 'string' },
    topic: { type: 'string' },
    policy: { ...policyOut, description: 'The effective policy: the override over the topic defaults.' },
    override: { type: 'object', description: 'The fields this group sets (PUT replaces them all).' },
    partitions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['partition'],
        properties: {
          partition: { type: 'integer' },
          committed_offset: { type: ['integer', 'null'] },
          high_watermark: { type: 'integer' },
          leased: { type: 'integer', description: 'Records under a valid lease.' },
          waiting: {
            type: 'integer',
            description:
              'Delivered before and waiting for redelivery, or delayed (deliver_at) and held apart until its time.',
          },
          done: { type: 'integer', description: 'Finished above the committed offset (gaps below them).' },
          error: partitionError,
        },
      },
    },
  },
};

export const LEASED_FETCH_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['topics'],
  additionalProperties: false,
  properties: {
    topics: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      uniqueItems: true,
      items: { type: 'string' },
      description: 'Topics to lease from (every partition of each).',
    },
    max_records: int(1, MAX_FETCH_RECORDS, 'At most this many records in all (lowered to fetch_max_records).', {
      default: DEFAULT_LEASED_RECORDS,
    }),
    wait_ms: int(0, MAX_WAIT_MS, 'Long-poll: wait up to this long when nothing is available.', { default: 0 }),
    lease_ms: int(B.leaseMs.min, B.leaseMs.max, "Lease length; default the group's policy."),
    encoding: OUTPUT_ENCODING_SCHEMA,
  },
};

const leasedRecordOut: JsonSchema = {
  type: 'object',
  required: [
    'topic',
    'partition',
    'offset',
    'timestamp',
    'headers',
    'delivery_attempt',
    'lease_token',
    'lease_expires_at',
  ],
  properties: {
    topic: { type: 'string' },
    partition: { type: 'integer' },
    offset: { type: 'integer' },
    timestamp: { type: 'integer' },
    key: { type: ['string', 'null'] },
    key_b64: b64,
    value: { type: 'string' },
    value_b64: b64,
    headers: { type: 'array', items: { type: 'object' } },
    delivery_attempt: { type: 'integer', description: '1 for the first delivery.' },
    lease_token: { type: 'string', description: 'Bring it back in /acks. Bound to this delivery only.' },
    lease_expires_at: { type: 'integer', description: 'End of the lease (ms since the epoch, leader clock).' },
  },
};

export const LEASED_FETCH_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['records'],
  properties: { records: { type: 'array', items: leasedRecordOut } },
};

export const ACKS_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['acks'],
  additionalProperties: false,
  properties: {
    acks: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_ACKS_PER_REQUEST,
      items: {
        type: 'object',
        required: ['token', 'action'],
        additionalProperties: false,
        properties: {
          token: { type: 'string', minLength: 1, maxLength: 2048 },
          action: {
            enum: ['accept', 'release', 'reject', 'extend'],
            description:
              'accept: done. release: deliver again after delay_ms (default: the backoff). reject: to the ' +
              'dead-letter stream now. extend: keep the lease for lease_ms more (a new token is returned).',
          },
          delay_ms: int(0, MAX_RELEASE_DELAY_MS, 'release only: redeliver after this long.'),
          lease_ms: int(B.leaseMs.min, B.leaseMs.max, "extend only: new lease length from now (default the policy's)."),
          error: {
            type: 'string',
            maxLength: 4096,
            description: 'release/reject: what went wrong (kept with the record).',
          },
          error_class: {
            type: 'string',
            pattern: ERROR_CLASS_PATTERN,
            description: 'For dead-letter filtering; default the leading `Name:` of error.',
          },
        },
      },
    },
  },
};

const ackResult: JsonSchema = {
  type: 'object',
  required: ['status'],
  properties: {
    status: {
      enum: ['ok', 'lease_expired', 'stale_attempt', 'invalid_token'],
      description:
        'lease_expired: the lease ended first (the record will be delivered again); stale_attempt: the record ' +
        'was delivered again since (or this delivery was already finished); invalid_token: not a token of ours, ' +
        'or for another group.',
    },
    detail: { type: 'string' },
    lease_token: { type: 'string', description: 'extend: the token of the extended lease.' },
    lease_expires_at: { type: 'integer' },
    dead_lettered: { type: 'boolean' },
    discarded: { type: 'boolean' },
  },
};

export const ACKS_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['results'],
  properties: { results: { type: 'array', items: ackResult, description: 'One per ack, in request order.' } },
};

const filterIn: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: int(0, MAX_SAFE, 'Dead-lettered at or after (ms since the epoch).'),
    to: int(0, MAX_SAFE, 'Dead-lettered before.'),
    group: { type: 'string', pattern: GROUP_NAME_PATTERN },
    error_class: { type: 'string', pattern: ERROR_CLASS_PATTERN },
    ids: {
      type: 'array',
      maxItems: 1000,
      uniqueItems: true,
      items: { type: 'string', pattern: DEAD_LETTER_ID_PATTERN },
      description: 'Dead-letter ids (`<partition>-<seq>`).',
    },
  },
};

export const REPLAY_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    filter: filterIn,
    target: {
      enum: ['origin', 'topic'],
      default: 'origin',
      description:
        'origin: append each record again to its origin partition. topic: append it to `target_topic` ' +
        "(keyed records where Kafka's partitioner puts the key, keyless ones in the origin partition mod the " +
        "target's partition count); needs the produce right on that topic.",
    },
    target_topic: {
      type: 'string',
      pattern: TOPIC_NAME_PATTERN,
      description: 'The topic to write to; required with target "topic", refused otherwise.',
    },
    rate_per_sec: { type: 'number', exclusiveMinimum: 0, maximum: 100_000, default: 100 },
    dry_run: { type: 'boolean', default: false, description: 'Count what would be replayed, write nothing.' },
  },
};

export const DEADLETTER_ADMIN_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['filter'],
  additionalProperties: false,
  properties: { filter: { ...filterIn, description: 'Which entries; {} means all of them.' } },
};

const deadLetterOut: JsonSchema = {
  type: 'object',
  required: ['id', 'topic', 'partition', 'offset', 'group', 'attempts', 'state', 'dead_lettered_at'],
  properties: {
    id: { type: 'string', description: '`<partition>-<seq>`.' },
    topic: { type: 'string', description: 'Origin topic.' },
    partition: { type: 'integer', description: 'Origin partition.' },
    offset: { type: 'integer', description: 'Origin offset.' },
    group: { type: 'string' },
    timestamp: { type: 'integer' },
    key: { type: ['string', 'null'] },
    key_b64: b64,
    value: { type: 'string' },
    value_b64: b64,
    headers: { type: 'array', items: { type: 'object' } },
    attempts: { type: 'integer' },
    last_error: { type: 'string' },
    error_class: { type: 'string' },
    first_delivery_at: { type: 'integer' },
    last_delivery_at: { type: 'integer' },
    dead_lettered_at: { type: 'integer' },
    state: { enum: ['active', 'archived', 'replayed'] },
    replay: {
      type: 'object',
      properties: {
        job_id: { type: 'string' },
        offset: { type: 'integer' },
        at: { type: 'integer' },
        topic: { type: 'string', description: 'Present when the replay wrote to another topic.' },
        partition: { type: 'integer', description: 'Present when the replay wrote to another topic.' },
      },
    },
  },
};

export const DEADLETTERS_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['deadletters', 'next_cursor'],
  properties: {
    deadletters: { type: 'array', items: deadLetterOut },
    next_cursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page.' },
  },
};

const jobOut: JsonSchema = {
  type: 'object',
  required: ['job_id', 'topic', 'state', 'matched', 'written', 'skipped', 'partitions'],
  properties: {
    job_id: { type: 'string' },
    topic: { type: 'string' },
    state: {
      enum: ['running', 'done', 'incomplete'],
      description:
        'incomplete: some partition has no record of the job (re-send the request with its Idempotency-Key).',
    },
    dry_run: { type: 'boolean' },
    target: { type: 'string', description: '"origin", or the topic the job writes to.' },
    last_error: {
      type: 'string',
      description: 'The latest failure writing to the target topic (the job retries; gone after a success).',
    },
    rate_per_sec: { type: 'number' },
    matched: { type: 'integer', description: 'Active dead letters matching the filter when the job started.' },
    written: { type: 'integer', description: 'Records written back.' },
    skipped: { type: 'integer', description: 'Matching entries already replayed (not written again).' },
    created_at: { type: 'integer' },
    finished_at: { type: ['integer', 'null'] },
    partitions: { type: 'array', items: { type: 'object' } },
  },
};

const countOut = (k: string): JsonSchema => ({
  type: 'object',
  required: [k],
  properties: { [k]: { type: 'integer' } },
});

export const LEASED_ROUTES: readonly (RouteSpec & { id: LeasedRouteId })[] = [
  {
    id: 'leased_fetch',
    method: 'post',
    path: '/v1/groups/{group}/fetch',
    summary: 'Lease records (leased mode, per-record acks)',
    description:
      'Hands out records of the named topics that the group has not finished, that are not leased, and that ' +
      'are due for (re)delivery, each with its delivery_attempt and a lease token bound to that delivery. ' +
      'Long-polls up to wait_ms when nothing is available. Any gateway pod serves any call: the lease ' +
      'state lives in the partition’s replicated state machine.',
    tag: 'groups',
    auth: true,
    params: [groupParam],
    body: LEASED_FETCH_BODY_SCHEMA,
    ok: { status: 200, description: 'Leased records (possibly none).', schema: LEASED_FETCH_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 413, 415, 501],
  },
  {
    id: 'leased_acks',
    method: 'post',
    path: '/v1/groups/{group}/acks',
    summary: 'Acknowledge leased records: accept, release, reject, extend',
    description:
      'One result per ack, in order. 200 when at least one ack was applied; when none was, 400 INVALID_TOKEN ' +
      '(every token invalid) or 409 CONFLICT (expired or stale leases), with the same `results`. A late ack ' +
      'for a delivery that has since been redelivered is refused (stale_attempt). Acks are idempotent: a ' +
      'retried ack answers ok again.',
    tag: 'groups',
    auth: true,
    params: [groupParam],
    body: ACKS_BODY_SCHEMA,
    ok: { status: 200, description: 'Per-ack results.', schema: ACKS_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 409, 413, 415, 501],
  },
  {
    id: 'put_group_policy',
    method: 'put',
    path: '/v1/groups/{group}/policy',
    summary: 'Set a group’s leased-mode policy on a topic',
    description:
      'Replaces the group’s policy on every partition of the topic: the fields given override the topic’s ' +
      'defaults (Topic spec deadLetter), the others follow them. `{"topic": "t"}` alone clears the policy.',
    tag: 'groups',
    auth: true,
    params: [groupParam],
    body: POLICY_BODY_SCHEMA,
    ok: { status: 200, description: 'The policy now in force.', schema: POLICY_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 413, 415],
  },
  {
    id: 'get_group_policy',
    method: 'get',
    path: '/v1/groups/{group}/policy',
    summary: 'A group’s leased-mode policy and lease counts on a topic',
    tag: 'groups',
    auth: true,
    params: [
      groupParam,
      { name: 'topic', in: 'query', required: true, schema: { type: 'string' }, description: 'Topic name.' },
    ],
    ok: { status: 200, description: 'Policy and counts.', schema: POLICY_RESPONSE_SCHEMA },
    errors: COMMON_ERRORS,
  },
  {
    id: 'list_deadletters',
    method: 'get',
    path: '/v1/topics/{topic}/deadletters',
    summary: 'Dead letters of a topic',
    tag: 'topics',
    auth: true,
    params: [
      topicParam,
      {
        name: 'from',
        in: 'query',
        required: false,
        schema: int(0, MAX_SAFE, ''),
        description: 'Dead-lettered at or after (ms).',
      },
      {
        name: 'to',
        in: 'query',
        required: false,
        schema: int(0, MAX_SAFE, ''),
        description: 'Dead-lettered before (ms).',
      },
      {
        name: 'group',
        in: 'query',
        required: false,
        schema: { type: 'string', pattern: GROUP_NAME_PATTERN },
        description: 'Only this group’s.',
      },
      {
        name: 'error_class',
        in: 'query',
        required: false,
        schema: { type: 'string', pattern: ERROR_CLASS_PATTERN },
        description: 'Only this error class.',
      },
      {
        name: 'state',
        in: 'query',
        required: false,
        schema: { enum: ['active', 'archived', 'replayed'] },
        description: 'Only entries in this state (default: all).',
      },
      {
        name: 'partition',
        in: 'query',
        required: false,
        schema: int(0, MAX_PARTITION_INDEX, ''),
        description: 'Only this partition.',
      },
      {
        name: 'limit',
        in: 'query',
        required: false,
        schema: int(1, 1000, '', { default: 100 }),
        description: 'Entries per page.',
      },
      {
        name: 'cursor',
        in: 'query',
        required: false,
        schema: { type: 'string', maxLength: 200 },
        description: 'next_cursor of the previous page.',
      },
      encodingParam,
    ],
    ok: {
      status: 200,
      description: 'A page of dead letters, oldest first per partition.',
      schema: DEADLETTERS_RESPONSE_SCHEMA,
    },
    errors: COMMON_ERRORS,
  },
  {
    id: 'get_deadletter',
    method: 'get',
    path: '/v1/topics/{topic}/deadletters/{id}',
    summary: 'One dead letter',
    tag: 'topics',
    auth: true,
    params: [
      topicParam,
      {
        name: 'id',
        in: 'path',
        required: true,
        schema: { type: 'string', pattern: DEAD_LETTER_ID_PATTERN },
        description: '`<partition>-<seq>`.',
      },
      encodingParam,
    ],
    ok: { status: 200, description: 'The dead letter.', schema: deadLetterOut },
    errors: COMMON_ERRORS,
  },
  {
    id: 'replay_deadletters',
    method: 'post',
    path: '/v1/topics/{topic}/deadletters:replay',
    summary: 'Replay dead letters (a job)',
    description:
      'Starts a replay job on every partition (run by each partition’s leader from replicated state, at ' +
      'rate_per_sec across the topic) and answers 202 with its id; GET /v1/jobs/{id} reports progress. Each ' +
      'record is written back at most once: the write and the dead letter’s `replayed` mark are one Raft ' +
      'entry, so re-sending the request (same Idempotency-Key: same job), another job, or a leader change ' +
      'in the middle never writes a record twice. Needs the admin right.',
    tag: 'topics',
    auth: true,
    params: [
      topicParam,
      {
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        schema: { type: 'string', pattern: IDEMPOTENCY_KEY_PATTERN },
        description: 'The same key gives the same job id (the second request resumes, never duplicates).',
      },
    ],
    body: REPLAY_BODY_SCHEMA,
    ok: { status: 202, description: 'Job started.', schema: jobOut },
    errors: [...COMMON_ERRORS, 413, 415, 501],
  },
  {
    id: 'archive_deadletters',
    method: 'post',
    path: '/v1/topics/{topic}/deadletters:archive',
    summary: 'Archive dead letters (kept, hidden from replay)',
    tag: 'topics',
    auth: true,
    params: [topicParam],
    body: DEADLETTER_ADMIN_BODY_SCHEMA,
    ok: { status: 200, description: 'Entries archived.', schema: countOut('archived') },
    errors: [...COMMON_ERRORS, 413, 415],
  },
  {
    id: 'purge_deadletters',
    method: 'post',
    path: '/v1/topics/{topic}/deadletters:purge',
    summary: 'Delete dead letters',
    tag: 'topics',
    auth: true,
    params: [topicParam],
    body: DEADLETTER_ADMIN_BODY_SCHEMA,
    ok: { status: 200, description: 'Entries deleted.', schema: countOut('purged') },
    errors: [...COMMON_ERRORS, 413, 415],
  },
  {
    id: 'get_job',
    method: 'get',
    path: '/v1/jobs/{job}',
    summary: 'Progress of a replay job',
    tag: 'topics',
    auth: true,
    params: [
      {
        name: 'job',
        in: 'path',
        required: true,
        schema: { type: 'string', pattern: JOB_ID_PATTERN },
        description: 'Job id from the replay answer.',
      },
    ],
    ok: { status: 200, description: 'Progress, summed over partitions.', schema: jobOut },
    errors: COMMON_ERRORS,
  },
];

import { ERROR_CODES } from '../common/errors';
import { MAX_PARTITION_INDEX, MAX_WAIT_MS } from '../common/limits';
import {
  groupParam,
  IDEMPOTENCY_KEY_PATTERN,
  int,
  partitionParam,
  topicParam,
  type CoreRouteId,
  type RouteSpec,
} from './route-spec';
import type { JsonSchema } from './validation';
import { OUTPUT_ENCODING_SCHEMA } from './codec';

/**
 * The HTTP API, described once: every route's parameters, body and answer as JSON Schema
 * (draft 2020-12). The same objects compile into the request validators (gateway/app.ts) and
 * render the OpenAPI 3.1 document (gateway/openapi.ts, docs/api/openapi.json). This file holds
 * the records, offsets, topics and operations routes; leased-spec.ts the leased-group and
 * dead-letter routes; routes.ts puts them together.
 *
 * Nothing here depends on configuration, so the document is the same for every deployment;
 * configured limits are served at GET /v1/limits.
 */

export const API_VERSION = '1.0.0';

/** Hard bounds of the API itself; deployments configure lower limits (see GET /v1/limits). */
export const MAX_FETCH_RECORDS = 10_000;
export const MAX_FETCH_BYTES = 64 * 1_048_576;
export const DEFAULT_FETCH_RECORDS = 500;
export const DEFAULT_FETCH_BYTES = 1_048_576;
export const MAX_OFFSETS_PER_COMMIT = 1000;
/** Largest offset or timestamp a client may send: JSON numbers are exact up to 2^53 − 1. */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;
export const MAX_TIMESTAMP_MS = 8_640_000_000_000_000;
/** Longest relative delivery delay or time to live (365 days). */
export const MAX_DELIVERY_DELAY_MS = 365 * 86_400_000;

export const PRODUCER_ID_PATTERN = '^[A-Za-z0-9._:-]{1,128}$';

const offsetSchema = (description: string): JsonSchema => int(0, MAX_SAFE, description);
const b64 = (description: string): JsonSchema => ({ type: 'string', contentEncoding: 'base64', description });

// ---- records -------------------------------------------------------------------------------

const headerIn: JsonSchema = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 1024 },
    value: { type: 'string', description: 'Header value as text (sent as its UTF-8 bytes).' },
    value_b64: b64('Header value as base64 bytes.'),
  },
  oneOf: [{ required: ['value'] }, { required: ['value_b64'] }],
  'x-error': 'must have exactly one of value, value_b64',
};

const headersIn: JsonSchema = {
  description:
    'Record headers: an object of text values (`{"content-type": "application/json"}`), or a list of ' +
    '`{name, value | value_b64}` for binary values and repeated names. Order is kept.',
  oneOf: [
    { type: 'object', additionalProperties: { type: 'string' }, propertyNames: { minLength: 1, maxLength: 1024 } },
    { type: 'array', items: headerIn, maxItems: 1000 },
  ],
  'x-error': 'must be an object of string values or a list of {name, value | value_b64}',
};

export const RECORD_IN_SCHEMA: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    key: {
      type: ['string', 'null'],
      description: 'Key as text (its UTF-8 bytes are hashed). Records with a key go to murmur2(key) % partitions.',
    },
    key_b64: b64('Key as base64 bytes (hashed as these bytes).'),
    value: {
      description:
        'Value as text (stored as its UTF-8 bytes), or any other JSON value (stored as its JSON text; ' +
        'fetch with encoding=json returns it as JSON). null is a null value: in a compacted topic the ' +
        "key's delete marker (tombstone).",
    },
    value_b64: b64('Value as base64 bytes.'),
    headers: headersIn,
    partition: int(0, MAX_PARTITION_INDEX, 'Explicit partition; overrides the key.'),
    timestamp: int(0, MAX_TIMESTAMP_MS, 'Milliseconds since the epoch; the gateway sets it when absent.'),
    deliver_after_ms: int(
      0,
      MAX_DELIVERY_DELAY_MS,
      'Leased groups do not offer the record before this long after the gateway received it (at most 365 days). ' +
        'Cumulative fetch is not delayed.',
    ),
    deliver_at: int(
      0,
      MAX_TIMESTAMP_MS,
      'Leased groups do not offer the record before this time (ms since the epoch).',
    ),
    ttl_ms: int(
      1,
      MAX_DELIVERY_DELAY_MS,
      'Leased groups no longer offer the record this long after the gateway received it (dropped or ' +
        "dead-lettered as the group's policy says). Cumulative fetch still returns it while retained.",
    ),
    expires_at: int(
      0,
      MAX_TIMESTAMP_MS,
      'Leased groups no longer offer the record from this time (ms since the epoch).',
    ),
  },
  oneOf: [{ required: ['value'] }, { required: ['value_b64'] }],
  not: {
    anyOf: [
      { required: ['key', 'key_b64'] },
      { required: ['deliver_after_ms', 'deliver_at'] },
      { required: ['ttl_ms', 'expires_at'] },
    ],
  },
  'x-error':
    'must have exactly one of value, value_b64, at most one of key, key_b64, at most one of deliver_after_ms, ' +
    'deliver_at and at most one of ttl_ms, expires_at',
};

export const PRODUCE_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['records'],
  additionalProperties: false,
  properties: {
    records: {
      type: 'array',
      minItems: 1,
      items: RECORD_IN_SCHEMA,
      description: 'At most max_records_per_request records (GET /v1/limits; default 1000).',
    },
    producer_id: {
      type: 'string',
      pattern: PRODUCER_ID_PATTERN,
      description: 'Idempotent producer id; with producer_epoch and producer_seq. One partition per request.',
    },
    producer_epoch: int(0, 2_147_483_647, 'Producer epoch; a higher epoch fences older ones.'),
    producer_seq: int(0, 2_147_483_647, 'Sequence number of the first record of this request in its partition.'),
  },
  dependentRequired: {
    producer_id: ['producer_epoch', 'producer_seq'],
    producer_epoch: ['producer_id', 'producer_seq'],
    producer_seq: ['producer_id', 'producer_epoch'],
  },
};

const headerOut: JsonSchema = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string' }, value: { type: 'string' }, value_b64: b64('') },
};

export const RECORD_OUT_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['offset', 'timestamp', 'headers'],
  description:
    'Each byte field comes as text (`key`, `value`, header `value`) or as base64 (`key_b64`, `value_b64`, ' +
    'header `value_b64`): with encoding=base64 (the default) always base64; with encoding=utf8 as text when ' +
    'the bytes are valid UTF-8, else base64; with encoding=json `value` is the JSON value the bytes hold ' +
    '(any JSON type), else `value_b64`, and key and headers as with utf8. A record without key has `key: null`; ' +
    'a null value (tombstone) has `value: null` in every encoding, and only it does.',
  properties: {
    offset: { type: 'integer' },
    timestamp: { type: 'integer', description: 'Milliseconds since the epoch.' },
    key: { type: ['string', 'null'] },
    key_b64: b64(''),
    value: { description: 'Text (encoding=utf8), any JSON value (encoding=json), or null: a null value (tombstone).' },
    value_b64: b64(''),
    headers: { type: 'array', items: headerOut },
    deliver_at: { type: 'integer', description: 'When set at produce: leased groups offer it from this time.' },
    expires_at: { type: 'integer', description: 'When set at produce: leased groups stop offering it at this time.' },
  },
};

const produceResult: JsonSchema = {
  type: 'object',
  required: ['partition', 'offset', 'status'],
  properties: {
    partition: { type: 'integer' },
    offset: { type: 'integer' },
    status: { enum: ['written', 'duplicate'], description: 'duplicate: a retry of a committed write.' },
  },
};

export const PRODUCE_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['results'],
  properties: { results: { type: 'array', items: produceResult, description: 'One per record, in request order.' } },
};

/** One line of a streaming produce's answer (application/x-ndjson), in the order of the lines sent. */
export const PRODUCE_STREAM_LINE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['line'],
  properties: {
    line: {
      type: 'integer',
      minimum: 1,
      description: 'The request line this answers (1-based; empty lines are skipped but counted).',
    },
    partition: { type: 'integer' },
    offset: { type: 'integer' },
    status: { enum: ['written'], description: 'Present when the record was written.' },
    error: {
      $ref: '#/components/schemas/Problem',
      description: 'Present when this record was not written: the problem, as for a whole request.',
    },
  },
};

export const FETCH_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['records', 'next_offset', 'high_watermark', 'log_start_offset'],
  properties: {
    records: { type: 'array', items: RECORD_OUT_SCHEMA },
    next_offset: { type: 'integer', description: 'The offset to fetch next.' },
    high_watermark: { type: 'integer' },
    log_start_offset: { type: 'integer' },
  },
};

// ---- groups --------------------------------------------------------------------------------

const offsetCommitIn: JsonSchema = {
  type: 'object',
  required: ['topic', 'partition', 'offset'],
  additionalProperties: false,
  properties: {
    topic: { type: 'string' },
    partition: int(0, MAX_PARTITION_INDEX, 'Partition.'),
    offset: offsetSchema('The next offset to consume (Kafka semantics).'),
    metadata: { type: 'string', maxLength: 4096 },
  },
};

export const COMMIT_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['offsets'],
  additionalProperties: false,
  properties: { offsets: { type: 'array', minItems: 1, maxItems: MAX_OFFSETS_PER_COMMIT, items: offsetCommitIn } },
};

export const COMMIT_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['offsets'],
  properties: {
    offsets: {
      type: 'array',
      items: {
        type: 'object',
        required: ['topic', 'partition', 'offset'],
        properties: { topic: { type: 'string' }, partition: { type: 'integer' }, offset: { type: 'integer' } },
      },
    },
  },
};

export const RESET_BODY_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['topic', 'to'],
  additionalProperties: false,
  properties: {
    topic: { type: 'string' },
    to: {
      enum: ['earliest', 'latest', 'offset', 'timestamp'],
      description:
        'earliest = log start offset; latest = high watermark; offset = the given `offset`, clamped to ' +
        '[log start, high watermark]; timestamp = the first offset whose record timestamp is at least ' +
        '`timestamp` (the high watermark when none is), found by a binary search over the log; exact when ' +
        'timestamps do not decrease along the log (gateway-set timestamps).',
    },
    offset: offsetSchema('Required with to=offset.'),
    timestamp: int(0, MAX_TIMESTAMP_MS, 'Required with to=timestamp (ms since the epoch).'),
    partitions: {
      type: 'array',
      items: int(0, MAX_PARTITION_INDEX, 'Partition.'),
      uniqueItems: true,
      description: 'Partitions to reset; all when absent.',
    },
    dry_run: { type: 'boolean', default: false, description: 'Compute and return the new offsets, commit nothing.' },
  },
};

const groupPartition: JsonSchema = {
  type: 'object',
  required: ['partition', 'offset', 'high_watermark', 'log_start_offset', 'lag'],
  properties: {
    partition: { type: 'integer' },
    offset: { type: ['integer', 'null'], description: 'Committed offset; null when never committed.' },
    metadata: { type: 'string' },
    high_watermark: { type: 'integer' },
    log_start_offset: { type: 'integer' },
    lag: { type: 'integer', description: 'high_watermark − offset (− log_start_offset when never committed).' },
  },
};

export const GROUP_OFFSETS_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['group', 'topic', 'partitions', 'lag'],
  properties: {
    group: { type: 'string' },
    topic: { type: 'string' },
    lag: { type: 'integer', description: 'Sum over partitions.' },
    partitions: { type: 'array', items: groupPartition },
  },
};

export const RESET_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['group', 'topic', 'to', 'dry_run', 'partitions'],
  properties: {
    group: { type: 'string' },
    topic: { type: 'string' },
    to: { type: 'string' },
    dry_run: { type: 'boolean' },
    partitions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['partition', 'previous_offset', 'new_offset', 'high_watermark', 'log_start_offset'],
        properties: {
          partition: { type: 'integer' },
          previous_offset: { type: ['integer', 'null'] },
          new_offset: { type: 'integer' },
          high_watermark: { type: 'integer' },
          log_start_offset: { type: 'integer' },
        },
      },
    },
  },
};

const partitionError: JsonSchema = {
  type: 'object',
  required: ['code', 'detail'],
  description: 'Present instead of the figures when that partition could not be asked.',
  properties: { code: { type: 'string' }, detail: { type: 'string' } },
};

export const GROUP_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['group', 'lag', 'topics'],
  properties: {
    group: { type: 'string' },
    lag: { type: 'integer', description: 'Sum over the partitions listed.' },
    topics: {
      type: 'array',
      items: {
        type: 'object',
        required: ['topic', 'lag', 'partitions'],
        properties: {
          topic: { type: 'string' },
          lag: { type: 'integer' },
          partitions: {
            type: 'array',
            items: {
              ...groupPartition,
              required: ['partition'],
              properties: { ...(groupPartition.properties as object), error: partitionError },
            },
          },
        },
      },
    },
  },
};

// ---- introspection -------------------------------------------------------------------------

const quotasOut: JsonSchema = {
  type: 'object',
  description: 'Per principal; an absent field is unlimited.',
  properties: {
    produce_bytes_per_second: { type: 'number' },
    fetch_bytes_per_second: { type: 'number' },
    records_per_second: { type: 'number' },
  },
};

export const GROUP_LIST_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['groups', 'truncated'],
  properties: {
    groups: {
      type: 'array',
      items: {
        type: 'object',
        required: ['group', 'topic'],
        properties: { group: { type: 'string' }, topic: { type: 'string' } },
      },
    },
    truncated: { type: 'boolean', description: 'A partition had more groups than it reports.' },
    errors: {
      type: 'array',
      description: 'Partitions that could not be asked (the list may miss their groups).',
      items: {
        type: 'object',
        properties: { topic: { type: 'string' }, partition: { type: 'integer' }, code: { type: 'string' } },
      },
    },
  },
};

export const TOPICS_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['topics'],
  properties: {
    topics: {
      type: 'array',
      description: 'Only the topics the caller holds a right on.',
      items: {
        type: 'object',
        required: ['name', 'partition_count'],
        properties: { name: { type: 'string' }, partition_count: { type: 'integer' } },
      },
    },
  },
};

export const TOPIC_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['name', 'partition_count', 'max_record_bytes', 'quotas', 'rights', 'partitions'],
  properties: {
    name: { type: 'string' },
    partition_count: { type: 'integer' },
    max_record_bytes: { type: 'integer' },
    cleanup: {
      enum: ['delete', 'compact', 'compact,delete'],
      description:
        'How old records go: delete (time and size retention), compact (the latest record per key is kept; tombstones go after a delay; every record needs a key), or both. docs/compaction.md.',
    },
    quotas: quotasOut,
    rights: { type: 'array', items: { enum: ['produce', 'consume', 'admin'] }, description: "The caller's rights." },
    partitions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['partition'],
        properties: {
          partition: { type: 'integer' },
          leader: { type: ['string', 'null'], description: 'Replica id of the leader.' },
          term: { type: 'integer' },
          high_watermark: { type: 'integer' },
          log_start_offset: { type: 'integer' },
          voters: {
            type: 'integer',
            description: 'Voters in the Raft configuration, as the answering replica knows it.',
          },
          replicas: {
            type: 'integer',
            description: "Voters the partition should have (the topic's replication factor).",
          },
          under_replicated: {
            type: 'boolean',
            description: 'Fewer voters than replicas, or a learner still catching up.',
          },
          error: partitionError,
        },
      },
    },
  },
};

export const LIMITS_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: [
    'max_body_bytes',
    'max_records_per_request',
    'max_offsets_per_commit',
    'fetch_max_records',
    'fetch_max_bytes',
    'fetch_max_wait_ms',
    'request_timeout_ms',
    'topics',
  ],
  properties: {
    max_body_bytes: { type: 'integer' },
    max_records_per_request: { type: 'integer' },
    max_offsets_per_commit: { type: 'integer' },
    fetch_max_records: { type: 'integer', description: 'Larger max_records are lowered to this.' },
    fetch_max_bytes: { type: 'integer', description: 'Larger max_bytes are lowered to this.' },
    fetch_max_wait_ms: { type: 'integer' },
    request_timeout_ms: { type: 'integer' },
    topics: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'max_record_bytes', 'quotas'],
        properties: { name: { type: 'string' }, max_record_bytes: { type: 'integer' }, quotas: quotasOut },
      },
    },
  },
};

export const HEALTH_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['status'],
  properties: {
    status: { enum: ['ok', 'ready', 'degraded', 'not_ready'] },
    nats: { enum: ['connected', 'disconnected', 'disabled'] },
    reason: { type: 'string' },
  },
};

/** RFC 9457 problem, as produced by common/errors.ts toProblem. */
export const PROBLEM_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['type', 'title', 'status', 'code', 'detail', 'retryable'],
  properties: {
    type: { type: 'string', format: 'uri' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { enum: Object.keys(ERROR_CODES), description: 'Stable machine-readable code.' },
    detail: { type: 'string' },
    retryable: { type: 'boolean' },
    retry_after_ms: { type: 'integer', description: 'Also sent as Retry-After (whole seconds).' },
    leader_hint: { type: 'string' },
    request_id: { type: 'string' },
    pointer: { type: 'string', description: 'JSON pointer (RFC 6901) of the offending body field.' },
    parameter: { type: 'string', description: 'Name of the offending query/path parameter or header.' },
    limit: { type: 'integer', description: 'The limit exceeded (413).' },
    reason: { type: 'string', description: 'Which quota was exceeded (429).' },
    partial_results: {
      type: 'array',
      description:
        'Multi-partition writes: what happened on each partition when some failed. A retry with the ' +
        'same Idempotency-Key is safe: partitions already written answer duplicate.',
      items: {
        type: 'object',
        required: ['partition', 'status'],
        properties: {
          topic: { type: 'string' },
          partition: { type: 'integer' },
          status: { enum: ['written', 'duplicate', 'committed', 'failed', 'unknown'] },
          records: { type: 'integer' },
          base_offset: { type: 'integer' },
          code: { type: 'string' },
        },
      },
    },
  },
};

// ---- routes --------------------------------------------------------------------------------

const COMMON_ERRORS = [400, 401, 404, 429, 500, 503, 504];

/** In the order of the OpenAPI document; routes.ts appends the leased routes. */
export const CORE_ROUTES: readonly (RouteSpec & { id: CoreRouteId })[] = [
  {
    id: 'produce',
    method: 'post',
    path: '/v1/topics/{topic}/records',
    summary: 'Write records',
    description:
      'Validates the whole request, checks quotas for all of it, then writes each partition’s records as ' +
      'one batch (partitions in parallel) and answers after commit. Records with a key go to ' +
      'toPositive(murmur2(key)) % partitions (Kafka’s partitioner); records with neither key nor ' +
      'partition all go to one partition per request (round-robin across requests, or derived from ' +
      'the Idempotency-Key). Not atomic across partitions: if one partition fails, the answer is the ' +
      'first failure’s problem with `partial_results`; retrying with the same Idempotency-Key is safe.',
    tag: 'records',
    auth: true,
    params: [
      topicParam,
      {
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        schema: { type: 'string', pattern: IDEMPOTENCY_KEY_PATTERN },
        description:
          'Dedup key: a retry with the same key and payload returns the original offsets (status duplicate); ' +
          'the same key with a different payload is 422.',
      },
    ],
    body: PRODUCE_BODY_SCHEMA,
    ok: { status: 200, description: 'Committed.', schema: PRODUCE_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 403, 409, 413, 415, 422],
  },
  {
    id: 'produce_stream',
    method: 'post',
    path: '/v1/topics/{topic}/records:stream',
    summary: 'Write a stream of records (NDJSON in, one result line per record out)',
    description:
      'The body is `application/x-ndjson`: one record per line, each as an item of `records` in a ' +
      'produce (value or value_b64, key, headers, partition, timestamp). Records are written as they ' +
      'arrive — concurrent lines to one partition ride on one replica call — and the answer streams one ' +
      'line per request line, in request order: `{line, partition, offset, status: "written"}` or ' +
      '`{line, error}` with the problem of that line alone (a bad line does not stop the stream). ' +
      'Records without key or partition go to one partition per stream. Authentication, the topic and ' +
      'the right to produce are checked before the first line is read (then the answer is a plain ' +
      'problem). A client that stops half-way gets no more lines; records it already sent may be ' +
      'written (at-least-once). No Idempotency-Key: retry the lines that were not answered `written`. ' +
      'A stream lasts at most the upload timeout (uploadTimeoutMs, 60 s by default).',
    tag: 'records',
    auth: true,
    params: [topicParam],
    body: { ...RECORD_IN_SCHEMA, description: 'One such object per line (NDJSON).' },
    bodyContentType: 'application/x-ndjson',
    streaming: true,
    ok: {
      status: 200,
      description: 'One line per request line, in order, as each record is written or refused.',
      schema: PRODUCE_STREAM_LINE_SCHEMA,
      contentType: 'application/x-ndjson',
    },
    errors: [...COMMON_ERRORS, 403, 413, 415],
  },
  {
    id: 'fetch',
    method: 'get',
    path: '/v1/topics/{topic}/partitions/{partition}/records',
    summary: 'Read records from an offset (long-poll)',
    tag: 'records',
    auth: true,
    params: [
      topicParam,
      partitionParam,
      {
        name: 'offset',
        in: 'query',
        required: true,
        schema: offsetSchema('First offset to read.'),
        description: 'First offset to read.',
      },
      {
        name: 'max_records',
        in: 'query',
        required: false,
        schema: int(1, MAX_FETCH_RECORDS, '', { default: DEFAULT_FETCH_RECORDS }),
        description: 'At most this many records (lowered to fetch_max_records).',
      },
      {
        name: 'max_bytes',
        in: 'query',
        required: false,
        schema: int(1, MAX_FETCH_BYTES, '', { default: DEFAULT_FETCH_BYTES }),
        description: 'Soft cap on the bytes returned (lowered to fetch_max_bytes).',
      },
      {
        name: 'wait_ms',
        in: 'query',
        required: false,
        schema: int(0, MAX_WAIT_MS, '', { default: 0 }),
        description: 'Long-poll: wait up to this long for records when none are committed at offset.',
      },
      {
        name: 'encoding',
        in: 'query',
        required: false,
        schema: OUTPUT_ENCODING_SCHEMA,
        description:
          'base64: byte fields as *_b64; utf8: as text when valid UTF-8, else *_b64; json: the value as the ' +
          'JSON value it holds (else value_b64), key and headers as with utf8.',
      },
    ],
    ok: { status: 200, description: 'Records (possibly none).', schema: FETCH_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 403, 416],
  },
  {
    id: 'commit_offsets',
    method: 'post',
    path: '/v1/groups/{group}/offsets',
    summary: 'Commit consumer group offsets (cumulative mode)',
    description:
      'All entries are validated and authorised first; then each partition is committed (in parallel). ' +
      'Commits are idempotent: after a partial failure (`partial_results`) the whole request can be retried.',
    tag: 'groups',
    auth: true,
    params: [groupParam],
    body: COMMIT_BODY_SCHEMA,
    ok: { status: 200, description: 'Committed.', schema: COMMIT_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 403, 413, 415, 416],
  },
  {
    id: 'get_offsets',
    method: 'get',
    path: '/v1/groups/{group}/offsets',
    summary: 'Committed position and lag per partition of a topic',
    tag: 'groups',
    auth: true,
    params: [
      groupParam,
      { name: 'topic', in: 'query', required: true, schema: { type: 'string' }, description: 'Topic name.' },
    ],
    ok: { status: 200, description: 'Positions.', schema: GROUP_OFFSETS_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 403],
  },
  {
    id: 'reset_offsets',
    method: 'post',
    path: '/v1/groups/{group}/offsets:reset',
    summary: 'Reset a group’s offsets on a topic',
    description:
      'Reads every partition’s current offset and bounds first, then (unless dry_run) commits the new ' +
      'offsets. Consumers of the group that commit afterwards overwrite the reset: stop them first.',
    tag: 'groups',
    auth: true,
    params: [groupParam],
    body: RESET_BODY_SCHEMA,
    ok: { status: 200, description: 'New offsets (committed unless dry_run).', schema: RESET_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 403, 413, 415],
  },
  {
    id: 'get_group',
    method: 'get',
    path: '/v1/groups/{group}',
    summary: 'Lag per partition of a group',
    description:
      'For the topics given (`topic`, repeated or comma-separated), or else for every topic the caller may ' +
      'consume on which the group has committed offsets (404 when there is none).',
    tag: 'groups',
    auth: true,
    params: [
      groupParam,
      {
        name: 'topic',
        in: 'query',
        required: false,
        schema: { type: 'array', items: { type: 'string' }, maxItems: 100 },
        description: 'Topics to report.',
      },
    ],
    ok: { status: 200, description: 'Lag.', schema: GROUP_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 403],
  },
  {
    id: 'list_groups',
    method: 'get',
    path: '/v1/groups',
    summary: 'Consumer groups the caller may use',
    description:
      'Every group known on the topics given (`topic`, repeated or comma-separated), or else on every topic the ' +
      'caller may consume: a group with committed offsets, a lease policy or leases on any partition. Only ' +
      'groups the caller may use on that topic are listed (access.groups). Sorted by group, then topic; ' +
      '`prefix` keeps the names that start with it. Each partition reports at most 1,000 names: `truncated` ' +
      'says some were left out (narrow with `prefix` or `topic`). GET /v1/groups/{group} gives the lag.',
    tag: 'groups',
    auth: true,
    params: [
      {
        name: 'topic',
        in: 'query',
        required: false,
        schema: { type: 'array', items: { type: 'string' }, maxItems: 100 },
        description: 'Topics to list the groups of.',
      },
      {
        name: 'prefix',
        in: 'query',
        required: false,
        schema: { type: 'string', maxLength: 249 },
        description: 'Only groups whose name starts with this.',
      },
    ],
    ok: { status: 200, description: 'Groups.', schema: GROUP_LIST_RESPONSE_SCHEMA },
    errors: [...COMMON_ERRORS, 403],
  },
  {
    id: 'list_topics',
    method: 'get',
    path: '/v1/topics',
    summary: 'Topics the caller may see',
    tag: 'topics',
    auth: true,
    params: [],
    ok: { status: 200, description: 'Topics.', schema: TOPICS_RESPONSE_SCHEMA },
    errors: [401, 500],
  },
  {
    id: 'get_topic',
    method: 'get',
    path: '/v1/topics/{topic}',
    summary: 'A topic’s partitions with leader, term and watermarks',
    tag: 'topics',
    auth: true,
    params: [topicParam],
    ok: { status: 200, description: 'Topic.', schema: TOPIC_RESPONSE_SCHEMA },
    errors: [401, 404, 500],
  },
  {
    id: 'get_limits',
    method: 'get',
    path: '/v1/limits',
    summary: 'Configured request limits and the quotas of visible topics',
    tag: 'topics',
    auth: true,
    params: [],
    ok: { status: 200, description: 'Limits.', schema: LIMITS_RESPONSE_SCHEMA },
    errors: [401, 500],
  },
  {
    id: 'openapi',
    method: 'get',
    path: '/v1/openapi.json',
    summary: 'This document',
    tag: 'operations',
    auth: false,
    params: [],
    ok: { status: 200, description: 'OpenAPI 3.1 document.', schema: { type: 'object' } },
    errors: [],
  },
  {
    id: 'healthz',
    method: 'get',
    path: '/healthz',
    summary: 'Liveness: the process serves HTTP',
    tag: 'operations',
    auth: false,
    params: [],
    ok: { status: 200, description: 'Alive.', schema: HEALTH_RESPONSE_SCHEMA },
    errors: [],
  },
  {
    id: 'readyz',
    method: 'get',
    path: '/readyz',
    summary: 'Readiness: topic metadata loaded',
    description:
      '200 ready when metadata is loaded and NATS connected; 200 degraded when NATS is down (the gateway ' +
      'keeps serving from its leader table and replica redirects); 503 not_ready before metadata is loaded.',
    tag: 'operations',
    auth: false,
    params: [],
    ok: { status: 200, description: 'Ready or degraded.', schema: HEALTH_RESPONSE_SCHEMA },
    errors: [503],
  },
  {
    id: 'metrics',
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics',
    tag: 'operations',
    auth: false,
    params: [],
    ok: { status: 200, description: 'Prometheus text format.', schema: { type: 'string' }, contentType: 'text/plain' },
    errors: [],
  },
];

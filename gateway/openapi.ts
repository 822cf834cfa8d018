import { ERROR_CODES } from '../common/errors';
import { API_VERSION, PROBLEM_SCHEMA } from './api-spec';
import type { RouteSpec } from './route-spec';
import { ROUTES } from './routes';
import type { JsonSchema } from './validation';

/**
 * The OpenAPI 3.1 document, rendered from the route table in gateway/routes.ts (the same
 * schemas the validators are compiled from). Served at GET /v1/openapi.json and committed as
 * docs/api/openapi.json (gateway/openapi-export.ts; a unit test keeps them equal).
 */

const STATUS_TEXT: Record<number, string> = {
  400: 'Invalid request (MALFORMED_JSON, INVALID_REQUEST with the pointer or parameter at fault)',
  401: 'Missing or invalid bearer token (UNAUTHENTICATED)',
  403: 'The caller may see the topic but lacks the right (FORBIDDEN)',
  404: 'No such topic, partition or group, or one the caller may not see',
  409: 'Idempotent producer fenced or out of sequence',
  413: 'Body, batch or record larger than the limit (`limit` in the problem)',
  415: 'Content-Type is not JSON',
  416: 'Offset outside [log start, high watermark] (OFFSET_OUT_OF_RANGE)',
  422: 'Idempotency-Key reused with a different payload (IDEMPOTENCY_CONFLICT)',
  429: 'Quota exceeded (QUOTA_EXCEEDED, with Retry-After)',
  500: 'Internal error (never for bad input; report the request id)',
  501: 'Not implemented (NOT_IMPLEMENTED)',
  503: 'No leader reachable, no quorum, overloaded, or the partition storage is full (with Retry-After)',
  504: 'Timed out; for writes COMMIT_UNKNOWN: retry with the same Idempotency-Key',
};

function codesFor(status: number): string[] {
  return Object.entries(ERROR_CODES)
    .filter(([, d]) => d.status === status)
    .map(([c]) => c);
}

function operation(r: RouteSpec): Record<string, unknown> {
  const responses: Record<string, unknown> = {
    [String(r.ok.status)]: {
      description: r.ok.description,
      content: { [r.ok.contentType ?? 'application/json']: { schema: r.ok.schema } },
    },
  };
  for (const s of r.errors)
    responses[String(s)] = {
      description: `${STATUS_TEXT[s] ?? 'Error'}; codes: ${codesFor(s).join(', ')}`,
      content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
    };
  const op: Record<string, unknown> = {
    operationId: r.id,
    summary: r.summary,
    ...(r.description ? { description: r.description } : {}),
    tags: [r.tag],
    parameters: [
      ...r.params.map((p) => ({
        name: p.name,
        in: p.in,
        required: p.required,
        description: p.description,
        schema: p.schema,
        ...(p.schema.type === 'array' ? { style: 'form', explode: true } : {}),
      })),
      {
        name: 'X-Request-Id',
        in: 'header',
        required: false,
        description:
          'Echoed in the answer and carried to the replica; made up when absent or not [A-Za-z0-9._:-]{1,128}.',
        schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
      },
    ],
    responses,
    security: r.auth ? [{ bearer: [] }] : [],
  };
  if (r.body)
    op.requestBody = { required: true, content: { [r.bodyContentType ?? 'application/json']: { schema: r.body } } };
  return op;
}

export function buildOpenApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) (paths[r.path] ??= {})[r.method] = operation(r);
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    info: {
      title: 'Daftka gateway API',
      version: API_VERSION,
      description:
        'JSON HTTP API of Daftka, a Raft-replicated queue-log. Errors are RFC 9457 problems ' +
        '(application/problem+json) with a stable `code`. Every answer carries X-Request-Id. ' +
        'See docs/gateway.md for semantics (partitioning, idempotency, partial failures, encodings).',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    tags: [
      { name: 'records', description: 'Produce and fetch' },
      { name: 'groups', description: 'Consumer groups, cumulative (Kafka-style) offsets' },
      { name: 'topics', description: 'Introspection' },
      { name: 'operations', description: 'Health, readiness, metrics, this document' },
    ],
    paths,
    components: {
      schemas: { Problem: PROBLEM_SCHEMA as JsonSchema },
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'Tokens map to principals (tokens file / Kubernetes Secret). Not required when auth is off.',
        },
      },
    },
  };
}

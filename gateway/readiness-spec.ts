import { CHECK_IDS } from './readiness';
import { int, type ReadinessRouteId, type RouteSpec } from './route-spec';
import type { JsonSchema } from './validation';

/**
 * The launch-readiness routes (docs/readiness.md): the report and the history of its periodic
 * snapshots. Both need the admin right on every topic of the catalog (the report covers them all).
 */

/** Most snapshots one history answer carries (the history itself holds readinessHistorySize). */
export const MAX_HISTORY_LIMIT = 10_000;

const STATUS = { type: 'string', enum: ['ready', 'warning', 'not_ready'] } as const;
const CHECK_STATUS = { type: 'string', enum: ['ok', 'warning', 'not_ready', 'unknown'] } as const;
const VALUE: JsonSchema = { oneOf: [{ type: 'number' }, { type: 'string' }, { type: 'null' }] };

export const CHECK_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['id', 'status', 'value', 'threshold', 'unit', 'reason'],
  properties: {
    id: { type: 'string', enum: [...CHECK_IDS] },
    status: CHECK_STATUS,
    value: { ...VALUE, description: 'What was measured; null when nothing could be.' },
    threshold: {
      oneOf: [
        { type: 'null' },
        { type: 'object', properties: { warning: { type: 'number' }, not_ready: { type: 'number' } } },
      ],
      description: 'The value is held to these: above `warning` is a warning, above `not_ready` not ready.',
    },
    unit: { type: 'string' },
    reason: { type: 'string' },
  },
};

export const READINESS_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['status', 'at', 'checks', 'summary'],
  properties: {
    status: STATUS,
    at: { type: 'integer', description: 'When it was measured (ms since the epoch).' },
    checks: { type: 'array', items: CHECK_SCHEMA },
    summary: {
      type: 'object',
      description: 'Checks per status; `unknown` checks do not change the overall status.',
      properties: Object.fromEntries(CHECK_STATUS.enum.map((s) => [s, { type: 'integer', minimum: 0 }])),
    },
  },
};

export const HISTORY_RESPONSE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['interval_ms', 'capacity', 'snapshots'],
  properties: {
    interval_ms: { type: 'integer', description: 'Snapshot period.' },
    capacity: { type: 'integer', description: 'Snapshots kept (older ones are dropped).' },
    snapshots: {
      type: 'array',
      description: 'Oldest first.',
      items: {
        type: 'object',
        required: ['at', 'status', 'checks'],
        properties: {
          at: { type: 'integer' },
          status: STATUS,
          checks: {
            type: 'object',
            description: 'Per check id: its status and value at that time.',
            additionalProperties: {
              type: 'object',
              required: ['status', 'value'],
              properties: { status: CHECK_STATUS, value: VALUE },
            },
          },
        },
      },
    },
  },
};

export const READINESS_ROUTES: readonly (RouteSpec & { id: ReadinessRouteId })[] = [
  {
    id: 'get_readiness',
    method: 'get',
    path: '/v1/readiness',
    summary: 'Launch readiness: ready, warning or not_ready, with every check',
    description:
      'Evaluated on request: quorum (leaderless and under-replicated partitions), replica lag, storage, ' +
      'produce errors and latency against the SLOs, shedding, throttling, dead letters, NATS and the operator. ' +
      'Each check has its measured value, threshold and reason; a signal the gateway cannot reach is `unknown`. ' +
      'Needs the admin right on every topic. Thresholds: docs/readiness.md.',
    tag: 'operations',
    auth: true,
    params: [],
    ok: { status: 200, description: 'The report.', schema: READINESS_RESPONSE_SCHEMA },
    errors: [401, 403, 500],
  },
  {
    id: 'get_readiness_history',
    method: 'get',
    path: '/v1/readiness/history',
    summary: 'The periodic readiness snapshots (bounded), oldest first',
    tag: 'operations',
    auth: true,
    params: [
      {
        name: 'limit',
        in: 'query',
        required: false,
        schema: int(1, MAX_HISTORY_LIMIT, 'Newest snapshots to return (default: all kept).'),
        description: 'Newest snapshots to return (default: all kept).',
      },
    ],
    ok: { status: 200, description: 'The snapshots.', schema: HISTORY_RESPONSE_SCHEMA },
    errors: [400, 401, 403, 500],
  },
];

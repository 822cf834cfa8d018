import type client from 'prom-client';
import { counter, gauge, histogram } from '../common/metrics';
import type { RouterMetrics } from '../protocol/leader-router';

/**
 * The HTTP side's metrics (the router's — redirects, shed requests, leader table — are made by
 * `routerMetrics` below; the NATS feed registers its connection gauge). Labels are bounded: `route` is a RouteSpec id or
 * `unmatched`, `topic` only ever a catalog topic, `code` an HTTP status or a problem code.
 */
export interface GatewayMetrics {
  requests: client.Counter<'route' | 'code'>;
  errors: client.Counter<'route' | 'code'>;
  duration: client.Histogram<'route'>;
  produceRecords: client.Counter<'topic'>;
  produceBytes: client.Counter<'topic'>;
  fetchRecords: client.Counter<'topic'>;
  fetchBytes: client.Counter<'topic'>;
  throttled: client.Counter<'topic' | 'reason'>;
  shed: client.Counter<'reason' | 'kind'>;
  /** Produce requests per replica call (1: not coalesced); produce-coalescer.ts. */
  produceBatchRequests: client.Histogram;
}

/**
 * `daftka_gateway_shed_requests_total`: 503 OVERLOADED answers from a gateway bound, by bound
 * (`inflight_limit`: an endpoint's in-flight calls, counted by the router; `body_bytes`: request
 * bodies held in memory, counted by the app) and operation. Shared by both, so get-or-create.
 */
export function shedCounter(reg: client.Registry): client.Counter<'reason' | 'kind'> {
  const name = 'daftka_gateway_shed_requests_total';
  return (
    (reg.getSingleMetric(name) as client.Counter<'reason' | 'kind'> | undefined) ??
    counter(reg, {
      name,
      help: 'Requests refused with 503 OVERLOADED by a gateway bound (inflight_limit: calls in flight to an endpoint; body_bytes: request bodies in memory)',
      labelNames: ['reason', 'kind'],
    })
  );
}

export function createGatewayMetrics(reg: client.Registry): GatewayMetrics {
  return {
    requests: counter(reg, {
      name: 'daftka_gateway_requests_total',
      help: 'HTTP requests answered, by route and HTTP status code',
      labelNames: ['route', 'code'],
    }),
    errors: counter(reg, {
      name: 'daftka_gateway_errors_total',
      help: 'Problem answers, by route and problem code (QUOTA_EXCEEDED, COMMIT_UNKNOWN, …)',
      labelNames: ['route', 'code'],
    }),
    duration: histogram(reg, {
      name: 'daftka_gateway_request_duration_seconds',
      help: 'Time from request to the end of the answer, by route (fetch includes its long-poll wait)',
      labelNames: ['route'],
    }),
    produceRecords: counter(reg, {
      name: 'daftka_gateway_produce_records_total',
      help: 'Records written (committed, not counting duplicates), by topic',
      labelNames: ['topic'],
    }),
    produceBytes: counter(reg, {
      name: 'daftka_gateway_produce_bytes_total',
      help: 'Record bytes (key + value + headers) written, by topic',
      labelNames: ['topic'],
    }),
    fetchRecords: counter(reg, {
      name: 'daftka_gateway_fetch_records_total',
      help: 'Records returned by fetches, by topic',
      labelNames: ['topic'],
    }),
    fetchBytes: counter(reg, {
      name: 'daftka_gateway_fetch_bytes_total',
      help: 'Record bytes (key + value + headers) returned by fetches, by topic',
      labelNames: ['topic'],
    }),
    throttled: counter(reg, {
      name: 'daftka_gateway_throttled_requests_total',
      help: 'Requests refused with 429 QUOTA_EXCEEDED, by topic and quota (produce_bytes, produce_records, fetch_bytes)',
      labelNames: ['topic', 'reason'],
    }),
    shed: shedCounter(reg),
    produceBatchRequests: histogram(reg, {
      name: 'daftka_gateway_produce_coalesced_messages',
      help: 'Produce requests carried by one replica call: concurrent produces to a partition are coalesced while its calls are in flight',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    }),
  };
}

/** The leased routes' counters (gateway/handlers/leased.ts, deadletters.ts). */
export interface LeasedMetrics {
  leased: client.Counter<'topic'>;
  redelivered: client.Counter<'topic'>;
  acks: client.Counter<'topic' | 'action' | 'result'>;
  replayJobs: client.Counter<'topic'>;
}

export function leasedMetrics(reg: client.Registry): LeasedMetrics {
  return {
    leased: counter(reg, {
      name: 'daftka_gateway_leased_records_total',
      help: 'Records handed out by leased fetch',
      labelNames: ['topic'],
    }),
    redelivered: counter(reg, {
      name: 'daftka_gateway_redelivered_records_total',
      help: 'Records handed out again (delivery_attempt > 1)',
      labelNames: ['topic'],
    }),
    acks: counter(reg, {
      name: 'daftka_gateway_lease_acks_total',
      help: 'Acks by action and result (ok, lease_expired, stale_attempt, invalid_token)',
      labelNames: ['topic', 'action', 'result'],
    }),
    replayJobs: counter(reg, {
      name: 'daftka_gateway_replay_jobs_total',
      help: 'Dead-letter replay jobs started (dry runs included)',
      labelNames: ['topic'],
    }),
  };
}

/** The leader-following router's counters (protocol/leader-router.ts) and the leader table gauge. */
export function routerMetrics(reg: client.Registry, tableSize: () => number): RouterMetrics {
  const redirects = counter(reg, {
    name: 'daftka_gateway_redirects_total',
    help: 'Calls sent on to another replica: reason not_leader (redirect followed) or unreachable',
    labelNames: ['reason'],
  });
  const shed = shedCounter(reg);
  const updates = counter(reg, {
    name: 'daftka_gateway_leader_updates_total',
    help: 'Leader table changes by source (nats, discover, hint, status, answer)',
    labelNames: ['kind'],
  });
  const refused = counter(reg, {
    name: 'daftka_gateway_leader_refused_total',
    help: 'Leader announcements and hints not believed: endpoint (not in the catalog for the partition) or term_jump (asked the replica first)',
    labelNames: ['reason'],
  });
  gauge(reg, {
    name: 'daftka_gateway_leader_table_entries',
    help: 'Partitions with an entry in the leader table',
    collect() {
      this.set(tableSize());
    },
  });
  return {
    redirected: (reason) => redirects.inc({ reason }),
    shed: (kind) => shed.inc({ reason: 'inflight_limit', kind }),
    leaderUpdated: (source) => updates.inc({ kind: source }),
    leaderRefused: (reason) => refused.inc({ reason }),
  };
}

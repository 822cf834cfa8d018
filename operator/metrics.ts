/** The operator's Prometheus metrics (DESIGN §9), named by common/metrics.ts rules. */
import { counter, createRegistry, gauge, histogram, type promClient } from '../common/metrics';

export function operatorMetrics(registry: promClient.Registry = createRegistry('operator')) {
  return {
    registry,
    reconcileDuration: histogram(registry, {
      name: 'daftka_operator_reconcile_duration_seconds',
      help: 'Time of one reconcile (kind: topic or rebalance)',
      labelNames: ['kind', 'result'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    }),
    reconcileErrors: counter(registry, {
      name: 'daftka_operator_reconcile_errors_total',
      help: 'Reconciles that failed and were requeued with backoff',
      labelNames: ['kind'] as const,
    }),
    queueDepth: gauge(registry, { name: 'daftka_operator_workqueue_depth', help: 'Keys waiting in the work queue' }),
    kubeRequests: counter(registry, {
      name: 'daftka_operator_kube_requests_total',
      help: 'Requests to the Kubernetes API (kind = resource)',
      labelNames: ['method', 'kind', 'code'] as const,
    }),
    kubeRequestDuration: histogram(registry, {
      name: 'daftka_operator_kube_request_duration_seconds',
      help: 'Duration of Kubernetes API requests (watches excluded)',
      labelNames: ['method'] as const,
    }),
    applies: counter(registry, {
      name: 'daftka_operator_applies_total',
      help: 'Server-side applies, and applies skipped because the object was already as desired',
      labelNames: ['kind', 'result'] as const,
    }),
    rebalanceActions: counter(registry, {
      name: 'daftka_operator_rebalance_actions_total',
      help: 'Rebalancer decisions carried out (action: transferLeadership, deletePod, startOperation, finishOperation)',
      labelNames: ['action', 'reason', 'outcome'] as const,
    }),
    rebalanceBlocked: counter(registry, {
      name: 'daftka_operator_rebalance_blocked_total',
      help: 'Rebalancer passes in which a wanted move or roll had to wait',
      labelNames: ['reason'] as const,
    }),
    movesInFlight: gauge(registry, {
      name: 'daftka_operator_moves_in_flight',
      help: 'Partitions with a replica move or roll in progress',
    }),
    leaderSkew: gauge(registry, {
      name: 'daftka_operator_leader_skew',
      help: 'Most minus fewest partition leaders on one node',
    }),
    isLeader: gauge(registry, { name: 'daftka_operator_is_leader', help: '1 while this instance holds the Lease' }),
    reports: counter(registry, {
      name: 'daftka_operator_nats_reports_total',
      help: 'Replica reports received on NATS (kind: status or leader; result: ok or invalid)',
      labelNames: ['kind', 'result'] as const,
    }),
    natsConnected: gauge(registry, { name: 'daftka_operator_nats_connected', help: '1 while connected to NATS' }),
    topics: gauge(registry, { name: 'daftka_operator_topics', help: 'Topics the operator manages' }),
    events: counter(registry, {
      name: 'daftka_operator_events_total',
      help: 'Kubernetes Events emitted',
      labelNames: ['reason', 'kind'] as const,
    }),
  };
}

export type OperatorMetrics = ReturnType<typeof operatorMetrics>;

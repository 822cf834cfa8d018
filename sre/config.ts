/**
 * The names the alert rules and dashboards rely on, in one place. The Helm chart's PodMonitors set
 * these `job` labels (helm/daftka/templates/monitoring.yaml); a Prometheus scraping Daftka some
 * other way must set the same ones (docs/operations/helm.md, "Monitoring without the operator").
 */
export const JOBS = {
  replica: 'daftka-replica',
  gateway: 'daftka-gateway',
  operator: 'daftka-operator',
} as const;

/**
 * PersistentVolumeClaims of replicas: the StatefulSet `<topic>-<partition>` with the volume claim
 * template `data` makes `data-<topic>-<partition>-<ordinal>` (the operator's naming).
 */
export const REPLICA_PVC_REGEX = 'data-.+-[0-9]+-[0-9]+';

/**
 * Where runbook_url points. The chart rewrites this prefix with `prometheusRule.runbookBaseUrl`
 * (so an internal wiki or a fork's docs can serve them); the files are docs/runbooks/<Alert>.md.
 */
export const RUNBOOK_BASE_URL = 'https://github.com/daftka/daftka/blob/main/docs/runbooks/';

/** Label sets every partition-level expression aggregates to. */
export const PARTITION_LABELS = 'namespace, topic, partition';

/** Metrics scraped from elsewhere (Prometheus itself, the kubelet) that rules or panels may use. */
export const EXTERNAL_METRICS = new Set([
  'up',
  'ALERTS',
  'kubelet_volume_stats_available_bytes',
  'kubelet_volume_stats_capacity_bytes',
  'kubelet_volume_stats_used_bytes',
  // kube-state-metrics: container restarts (DaftkaCrashLooping), when it is installed.
  'kube_pod_container_status_restarts_total',
]);

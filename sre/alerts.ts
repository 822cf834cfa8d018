/**
 * Every Daftka alert, with its unit tests, in one place: sre/rules.ts renders the Prometheus rule
 * file shipped in the Helm chart and the `promtool test rules` file from this list. Each alert has
 * a case where it fires once its `for:` has passed (with exact labels and annotations) and cases
 * where it stays silent. Runbooks live in docs/runbooks/<alert>.md.
 *
 * Severity: `page` wakes someone (data path down or about to be); `ticket` is worked in office
 * hours (budget slowly burning, redundancy reduced, capacity trending).
 */
import { JOBS, PARTITION_LABELS, REPLICA_PVC_REGEX } from './config';
import { BURN_WINDOWS, errorBudget, recordName, SLOS, type Slo } from './slos';

export type Severity = 'page' | 'ticket';

/** One input series of a promtool test: a series selector and promtool's expanding notation. */
export interface SeriesInput {
  series: string;
  values: string;
}

export interface FiringCase {
  series: SeriesInput[];
  /** An evaluation time at which the expression is already true but `for:` has not passed. */
  pendingAt: string;
  /** An evaluation time at which the alert fires. */
  at: string;
  /** The alerts expected at `at`: their labels (besides alertname and severity) and `$value` as text. */
  alerts: Array<{ labels: Record<string, string>; value?: string }>;
}

export interface SilentCase {
  why: string;
  series: SeriesInput[];
  at: string;
}

export interface AlertRule {
  alert: string;
  /** Rule group (one per area); also the dashboard the alert belongs to. */
  group: string;
  expr: string;
  for: string;
  severity: Severity;
  /** Extra static labels. */
  labels?: Record<string, string>;
  /** One line; may use {{ $labels.x }}. */
  summary: string;
  /** May use {{ $labels.x }} and {{ $value | humanize… }}. */
  description: string;
  fires: FiringCase;
  silent: SilentCase[];
}

// ---- series helpers for the test cases ---------------------------------------------------------

const NS = 'daftka';

export function sel(metric: string, labels: Record<string, string>): string {
  return `${metric}{${Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ')}}`;
}

/** Target labels of replica `ordinal` of partition `p` of topic `events`, as a PodMonitor scrape sets them. */
function replica(p: number, ordinal: number): Record<string, string> {
  return {
    namespace: NS,
    job: JOBS.replica,
    pod: `events-${p}-${ordinal}`,
    instance: `10.0.${p}.${ordinal + 1}:9102`,
    component: 'replica',
    topic: 'events',
    partition: String(p),
  };
}

const gatewayPod = (i: number) => ({
  namespace: NS,
  job: JOBS.gateway,
  pod: `daftka-gateway-7d9f-${i}`,
  instance: `10.1.0.${i + 1}:8080`,
  component: 'gateway',
});
const operatorPod = (i: number) => ({
  namespace: NS,
  job: JOBS.operator,
  pod: `daftka-operator-5c7b-${i}`,
  instance: `10.2.0.${i + 1}:9090`,
  component: 'operator',
});
const pvc = (name: string) => ({ namespace: NS, job: 'kubelet', persistentvolumeclaim: name });
const partitionLabels = { namespace: NS, topic: 'events', partition: '0' };

// ---- SLO burn-rate alerts ----------------------------------------------------------------------

/** `(long > f·budget and short > f·budget) or …` for the windows of one severity. */
function burnExpr(slo: Slo, severity: Severity): string {
  const b = errorBudget(slo);
  return BURN_WINDOWS.filter((w) => w.severity === severity)
    .map(
      (w) =>
        `(\n  ${recordName(slo, w.long)} > (${w.factor} * ${b})\nand\n  ${recordName(slo, w.short)} > (${w.factor} * ${b})\n)`,
    )
    .join('\nor\n');
}

/**
 * Test traffic for an SLO: `good` and `bad` events per minute, as the gateway's counters (or the
 * latency histogram's bucket and count) would show them. `badUntilMin` stops the bad events then.
 */
function sloTraffic(slo: Slo, good: number, bad: number, minutes: number, badUntilMin = minutes): SeriesInput[] {
  const gw = { namespace: NS, job: JOBS.gateway, pod: 'daftka-gateway-7d9f-0', instance: '10.1.0.1:8080' };
  const badValues =
    badUntilMin >= minutes
      ? `0+${bad}x${minutes}`
      : `0+${bad}x${badUntilMin} ${bad * badUntilMin}+0x${minutes - badUntilMin}`;
  if (slo.id === 'produce_latency') {
    // Good = answered within the threshold (le="0.05" bucket); bad = the rest of _count.
    const total =
      badUntilMin >= minutes
        ? `0+${good + bad}x${minutes}`
        : `0+${good + bad}x${badUntilMin} ${(good + bad) * badUntilMin}+${good}x${minutes - badUntilMin}`;
    return [
      {
        series: sel('daftka_gateway_request_duration_seconds_bucket', { ...gw, route: 'produce', le: '0.05' }),
        values: `0+${good}x${minutes}`,
      },
      { series: sel('daftka_gateway_request_duration_seconds_count', { ...gw, route: 'produce' }), values: total },
    ];
  }
  const route = slo.id === 'fetch_availability' ? 'fetch' : 'produce';
  return [
    { series: sel('daftka_gateway_requests_total', { ...gw, route, code: '200' }), values: `0+${good}x${minutes}` },
    { series: sel('daftka_gateway_requests_total', { ...gw, route, code: '503' }), values: badValues },
  ];
}

function sloAlerts(slo: Slo): AlertRule[] {
  const pct = (x: number) => `${Number((x * 100).toPrecision(4))}%`;
  const objective = pct(slo.objective);
  const labels = { slo: slo.id.replace(/_/g, '-') };
  return [
    {
      alert: `${slo.alertStem}FastBurn`,
      group: 'daftka-slo',
      expr: burnExpr(slo, 'page'),
      for: '2m',
      severity: 'page',
      labels,
      summary: `${slo.title} SLO: error budget burning fast in {{ $labels.namespace }}`,
      description:
        `{{ $value | humanizePercentage }} of ${slo.badEvents} over the last hour (or 6 hours); ` +
        `at this rate the 30-day budget of the ${objective} objective is gone within days. ` +
        `Clients are seeing it now.`,
      fires: {
        // 20 % (latency) or 1.96 % (availability) bad: above 14.4 × budget in both windows.
        series: slo.id === 'produce_latency' ? sloTraffic(slo, 80, 20, 20) : sloTraffic(slo, 1000, 20, 20),
        pendingAt: '2m',
        at: '10m',
        alerts: [{ labels: { namespace: NS }, value: slo.id === 'produce_latency' ? '20%' : '1.961%' }],
      },
      silent: [
        {
          why: 'bad ratio above the ticket threshold but below 6 × budget',
          series: slo.id === 'produce_latency' ? sloTraffic(slo, 95, 5, 20) : sloTraffic(slo, 1000, 5, 20),
          at: '15m',
        },
        {
          why: 'the burst stopped 40 minutes ago: the long windows are still high, the short ones recovered',
          series: slo.id === 'produce_latency' ? sloTraffic(slo, 50, 50, 60, 20) : sloTraffic(slo, 1000, 50, 60, 20),
          at: '60m',
        },
      ],
    },
    {
      alert: `${slo.alertStem}SlowBurn`,
      group: 'daftka-slo',
      expr: burnExpr(slo, 'ticket'),
      for: '15m',
      severity: 'ticket',
      labels,
      summary: `${slo.title} SLO: error budget burning in {{ $labels.namespace }}`,
      description:
        `{{ $value | humanizePercentage }} of ${slo.badEvents} over the last day (or 3 days): ` +
        `at this rate the 30-day budget of the ${objective} objective runs out before the window ends.`,
      fires: {
        series: slo.id === 'produce_latency' ? sloTraffic(slo, 95, 5, 40) : sloTraffic(slo, 1000, 5, 40),
        pendingAt: '10m',
        at: '30m',
        alerts: [{ labels: { namespace: NS }, value: slo.id === 'produce_latency' ? '5%' : '0.4975%' }],
      },
      silent: [
        {
          why: 'bad ratio within budget',
          series: slo.id === 'produce_latency' ? sloTraffic(slo, 1990, 10, 40) : sloTraffic(slo, 10000, 5, 40),
          at: '30m',
        },
      ],
    },
  ];
}

// ---- everything else ---------------------------------------------------------------------------

const onlyLeaders = `and on (namespace, instance, topic, partition) (daftka_raft_leader{job="${JOBS.replica}"} == 1)`;
const pvcSel = `persistentvolumeclaim=~"${REPLICA_PVC_REGEX}"`;

export const ALERTS: readonly AlertRule[] = [
  ...SLOS.flatMap(sloAlerts),

  // ---- partitions ----
  {
    alert: 'DaftkaPartitionLeaderless',
    group: 'daftka-partitions',
    expr: `max by (${PARTITION_LABELS}) (daftka_raft_leader{job="${JOBS.replica}"}) == 0`,
    for: '1m',
    severity: 'page',
    summary: 'Partition {{ $labels.topic }}/{{ $labels.partition }} has no leader',
    description:
      'No replica of {{ $labels.topic }}/{{ $labels.partition }} in {{ $labels.namespace }} has been leader ' +
      'for a minute: produces to it fail with 503 NO_QUORUM or time out with 504 COMMIT_UNKNOWN; ' +
      'committed records can still be fetched.',
    fires: {
      series: [0, 1, 2].map((o) => ({ series: sel('daftka_raft_leader', replica(0, o)), values: '0x10' })),
      pendingAt: '0m',
      at: '5m',
      alerts: [{ labels: partitionLabels }],
    },
    silent: [
      {
        why: 'one replica leads',
        series: [0, 1, 2].map((o) => ({
          series: sel('daftka_raft_leader', replica(0, o)),
          values: o === 1 ? '1x10' : '0x10',
        })),
        at: '5m',
      },
      {
        why: 'a leader election that took less than the for: window',
        series: [0, 1, 2].map((o) => ({
          series: sel('daftka_raft_leader', replica(0, o)),
          values: o === 0 ? '1 1 0 0 0 0 0 0 0 0 0' : o === 2 ? '0 0 0 1 1 1 1 1 1 1 1' : '0x10',
        })),
        at: '5m',
      },
    ],
  },
  {
    alert: 'DaftkaQuorumLost',
    group: 'daftka-partitions',
    expr:
      `count by (${PARTITION_LABELS}) (daftka_raft_voters{job="${JOBS.replica}"})\n` +
      `  < on (${PARTITION_LABELS})\n` +
      `floor(max by (${PARTITION_LABELS}) (daftka_raft_voters{job="${JOBS.replica}"}) / 2) + 1`,
    for: '1m',
    severity: 'page',
    summary: 'Partition {{ $labels.topic }}/{{ $labels.partition }} lost its Raft quorum',
    description:
      'Only {{ $value }} replica(s) of {{ $labels.topic }}/{{ $labels.partition }} in {{ $labels.namespace }} ' +
      'report, fewer than a majority of its voters: the partition cannot elect a leader or commit; ' +
      'produces fail with 503 NO_QUORUM.',
    fires: {
      series: [{ series: sel('daftka_raft_voters', replica(0, 0)), values: '3x10' }],
      pendingAt: '0m',
      at: '5m',
      alerts: [{ labels: partitionLabels, value: '1' }],
    },
    silent: [
      {
        why: 'two of three replicas report: a majority',
        series: [0, 1].map((o) => ({ series: sel('daftka_raft_voters', replica(0, o)), values: '3x10' })),
        at: '5m',
      },
    ],
  },
  {
    alert: 'DaftkaUnderReplicatedPartitions',
    group: 'daftka-partitions',
    expr:
      `count by (${PARTITION_LABELS}) (daftka_raft_voters{job="${JOBS.replica}"})\n` +
      `  < on (${PARTITION_LABELS})\n` +
      `max by (${PARTITION_LABELS}) (daftka_raft_voters{job="${JOBS.replica}"})`,
    for: '10m',
    severity: 'ticket',
    summary: 'Partition {{ $labels.topic }}/{{ $labels.partition }} is under-replicated',
    description:
      'Only {{ $value }} replica(s) of {{ $labels.topic }}/{{ $labels.partition }} in {{ $labels.namespace }} ' +
      'have reported for 10 minutes, fewer than its voters: one more failure may cost the quorum.',
    fires: {
      series: [0, 1].map((o) => ({ series: sel('daftka_raft_voters', replica(0, o)), values: '3x20' })),
      pendingAt: '5m',
      at: '15m',
      alerts: [{ labels: partitionLabels, value: '2' }],
    },
    silent: [
      {
        why: 'every voter reports',
        series: [0, 1, 2].map((o) => ({ series: sel('daftka_raft_voters', replica(0, o)), values: '3x20' })),
        at: '15m',
      },
    ],
  },
  {
    alert: 'DaftkaReplicaDown',
    group: 'daftka-partitions',
    expr: `up{job="${JOBS.replica}"} == 0`,
    for: '5m',
    severity: 'ticket',
    summary: 'Replica pod {{ $labels.pod }} is down',
    description:
      'Prometheus has not scraped replica {{ $labels.pod }} in {{ $labels.namespace }} for 5 minutes ' +
      '(crashed, crash-looping or unreachable). Its partition runs on the other replicas.',
    fires: {
      series: [
        {
          series: sel('up', { namespace: NS, job: JOBS.replica, pod: 'events-0-1', instance: '10.0.0.2:9102' }),
          values: '0x10',
        },
      ],
      pendingAt: '3m',
      at: '8m',
      alerts: [{ labels: { namespace: NS, job: JOBS.replica, pod: 'events-0-1', instance: '10.0.0.2:9102' } }],
    },
    silent: [
      {
        why: 'a restart shorter than 5 minutes',
        series: [
          {
            series: sel('up', { namespace: NS, job: JOBS.replica, pod: 'events-0-1', instance: '10.0.0.2:9102' }),
            values: '1 1 0 0 0 1 1 1 1 1 1',
          },
        ],
        at: '8m',
      },
    ],
  },
  {
    alert: 'DaftkaSlowLeaderRecovery',
    group: 'daftka-partitions',
    expr:
      `histogram_quantile(0.99,\n` +
      `  sum by (namespace, le) (rate(daftka_raft_leader_recovery_seconds_bucket{job="${JOBS.replica}"}[6h]))\n` +
      `) > 1\n` +
      `and on (namespace)\n` +
      `sum by (namespace) (increase(daftka_raft_leader_recovery_seconds_bucket{job="${JOBS.replica}", le="+Inf"}[6h])) >= 3`,
    for: '5m',
    severity: 'ticket',
    summary: 'Partitions take more than a second to get a new leader',
    description:
      'Over the last 6 hours, the 99th percentile of the time partitions in {{ $labels.namespace }} went ' +
      'without a reachable leader before a new one took over is {{ $value | humanizeDuration }} (objective: 1 s). ' +
      'Produces to a partition stall, or fail with 504 COMMIT_UNKNOWN, for that long at every failover.',
    fires: {
      series: ['0.5', '1', '2', '+Inf'].map((le) => ({
        series: sel('daftka_raft_leader_recovery_seconds_bucket', { ...replica(0, 0), le }),
        values: le === '0.5' || le === '1' ? '0x40' : '0+1x40',
      })),
      pendingAt: '5m',
      at: '30m',
      alerts: [{ labels: { namespace: NS }, value: '1.99s' }],
    },
    silent: [
      {
        why: 'every recovery within half a second',
        series: ['0.5', '1', '2', '+Inf'].map((le) => ({
          series: sel('daftka_raft_leader_recovery_seconds_bucket', { ...replica(0, 0), le }),
          values: '0+1x40',
        })),
        at: '30m',
      },
      {
        why: 'one slow recovery is not a trend',
        series: ['0.5', '1', '2', '+Inf'].map((le) => ({
          series: sel('daftka_raft_leader_recovery_seconds_bucket', { ...replica(0, 0), le }),
          values: le === '0.5' || le === '1' ? '0x40' : '0 1x39',
        })),
        at: '30m',
      },
    ],
  },
  {
    alert: 'DaftkaLeadershipFlapping',
    group: 'daftka-partitions',
    expr: `max by (${PARTITION_LABELS}) (increase(daftka_raft_leader_changes_total{job="${JOBS.replica}"}[15m])) > 6`,
    for: '5m',
    severity: 'ticket',
    summary: 'Leadership of {{ $labels.topic }}/{{ $labels.partition }} keeps changing',
    description:
      'Replicas of {{ $labels.topic }}/{{ $labels.partition }} in {{ $labels.namespace }} saw more than 6 leader ' +
      'changes in 15 minutes (a failover counts 2: leader lost, leader found). Each change stalls produces ' +
      'for an election timeout.',
    fires: {
      series: [{ series: sel('daftka_raft_leader_changes_total', replica(0, 0)), values: '0+1x40' }],
      pendingAt: '10m',
      at: '30m',
      alerts: [{ labels: partitionLabels }],
    },
    silent: [
      {
        why: 'a rolling restart: a few changes, then quiet',
        series: [{ series: sel('daftka_raft_leader_changes_total', replica(0, 0)), values: '0+1x4 4+0x36' }],
        at: '30m',
      },
    ],
  },
  {
    alert: 'DaftkaFollowerLag',
    group: 'daftka-partitions',
    expr:
      `max by (${PARTITION_LABELS}) (\n` +
      `  daftka_raft_follower_lag_entries{job="${JOBS.replica}"}\n` +
      `  ${onlyLeaders}\n` +
      `) > 10000`,
    for: '10m',
    severity: 'ticket',
    summary: 'A follower of {{ $labels.topic }}/{{ $labels.partition }} is falling behind',
    description:
      'The leader of {{ $labels.topic }}/{{ $labels.partition }} in {{ $labels.namespace }} reports a follower ' +
      '{{ $value | humanize }} entries behind for 10 minutes. Rolls and replica moves wait for it; if the ' +
      'leader fails, the partition has less redundancy than it appears to.',
    fires: {
      series: [
        { series: sel('daftka_raft_leader', replica(0, 0)), values: '1x20' },
        { series: sel('daftka_raft_follower_lag_entries', replica(0, 0)), values: '50000x20' },
      ],
      pendingAt: '5m',
      at: '15m',
      alerts: [{ labels: partitionLabels, value: '50k' }],
    },
    silent: [
      {
        why: 'a stale gauge on a former leader does not count',
        series: [
          { series: sel('daftka_raft_leader', replica(0, 0)), values: '0x20' },
          { series: sel('daftka_raft_follower_lag_entries', replica(0, 0)), values: '50000x20' },
          { series: sel('daftka_raft_leader', replica(0, 1)), values: '1x20' },
          { series: sel('daftka_raft_follower_lag_entries', replica(0, 1)), values: '12x20' },
        ],
        at: '15m',
      },
    ],
  },

  {
    alert: 'DaftkaCompactionStalled',
    group: 'daftka-partitions',
    expr:
      `max by (${PARTITION_LABELS}, pod) (daftka_compaction_dirty_ratio{job="${JOBS.replica}"}) > 0.9\n` +
      `unless on (${PARTITION_LABELS}, pod)\n` +
      `sum by (${PARTITION_LABELS}, pod) (\n` +
      `  increase(daftka_compaction_passes_total{job="${JOBS.replica}", result=~"done|partial"}[1h])\n` +
      `) > 0`,
    for: '30m',
    severity: 'ticket',
    summary: 'Key compaction of {{ $labels.topic }}/{{ $labels.partition }} is not keeping up on {{ $labels.pod }}',
    description:
      'On {{ $labels.pod }} ({{ $labels.namespace }}), {{ $value | humanizePercentage }} of the log of the compacted ' +
      'topic {{ $labels.topic }}/{{ $labels.partition }} has not been through a compaction pass, and no pass ' +
      'finished in the last hour: superseded records and tombstones stay, the log and reads of it grow.',
    fires: {
      series: [{ series: sel('daftka_compaction_dirty_ratio', replica(0, 1)), values: '0.95x90' }],
      pendingAt: '10m',
      at: '45m',
      alerts: [{ labels: { ...partitionLabels, pod: 'events-0-1' }, value: '95%' }],
    },
    silent: [
      {
        why: 'passes run: a high ratio between them is a busy topic, not a stalled one',
        series: [
          { series: sel('daftka_compaction_dirty_ratio', replica(0, 1)), values: '0.95x90' },
          {
            series: sel('daftka_compaction_passes_total', { ...replica(0, 1), result: 'done' }),
            values: '0+1x90',
          },
        ],
        at: '45m',
      },
      {
        why: 'a mostly compacted log',
        series: [{ series: sel('daftka_compaction_dirty_ratio', replica(0, 1)), values: '0.3x90' }],
        at: '45m',
      },
    ],
  },

  // ---- storage ----
  {
    alert: 'DaftkaDiskFillingUp',
    group: 'daftka-storage',
    expr:
      `(\n` +
      `  kubelet_volume_stats_available_bytes{${pvcSel}}\n` +
      `  /\n` +
      `  kubelet_volume_stats_capacity_bytes{${pvcSel}}\n` +
      `) < 0.25\n` +
      `and\n` +
      `predict_linear(kubelet_volume_stats_available_bytes{${pvcSel}}[6h], 24 * 3600) < 0`,
    for: '1h',
    severity: 'ticket',
    summary: 'Replica volume {{ $labels.persistentvolumeclaim }} will be full within a day',
    description:
      'Volume {{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} has {{ $value | humanizePercentage }} ' +
      'free and, at the rate of the last 6 hours, fills up within 24 hours. A full volume stops produce ' +
      'to that replica (OVERLOADED).',
    fires: {
      series: [
        { series: sel('kubelet_volume_stats_capacity_bytes', pvc('data-events-0-0')), values: '100000000000x150' },
        {
          series: sel('kubelet_volume_stats_available_bytes', pvc('data-events-0-0')),
          values: '20000000000-100000000x150',
        },
      ],
      pendingAt: '30m',
      at: '120m',
      alerts: [{ labels: pvc('data-events-0-0'), value: '8%' }],
    },
    silent: [
      {
        why: 'little space left, but not shrinking',
        series: [
          { series: sel('kubelet_volume_stats_capacity_bytes', pvc('data-events-0-0')), values: '100000000000x150' },
          { series: sel('kubelet_volume_stats_available_bytes', pvc('data-events-0-0')), values: '20000000000x150' },
        ],
        at: '120m',
      },
      {
        why: 'shrinking fast, but most of the volume is free',
        series: [
          { series: sel('kubelet_volume_stats_capacity_bytes', pvc('data-events-0-0')), values: '100000000000x150' },
          {
            series: sel('kubelet_volume_stats_available_bytes', pvc('data-events-0-0')),
            values: '90000000000-100000000x150',
          },
        ],
        at: '120m',
      },
      {
        why: 'not a Daftka volume',
        series: [
          { series: sel('kubelet_volume_stats_capacity_bytes', pvc('postgres-0')), values: '100000000000x150' },
          {
            series: sel('kubelet_volume_stats_available_bytes', pvc('postgres-0')),
            values: '20000000000-100000000x150',
          },
        ],
        at: '120m',
      },
    ],
  },
  {
    alert: 'DaftkaDiskAlmostFull',
    group: 'daftka-storage',
    expr:
      `kubelet_volume_stats_available_bytes{${pvcSel}}\n` +
      `/\n` +
      `kubelet_volume_stats_capacity_bytes{${pvcSel}}\n` +
      `< 0.1`,
    for: '5m',
    severity: 'page',
    summary: 'Replica volume {{ $labels.persistentvolumeclaim }} is almost full',
    description:
      'Volume {{ $labels.persistentvolumeclaim }} in {{ $labels.namespace }} has only ' +
      '{{ $value | humanizePercentage }} free. Below its reserve (storageMinFreeBytes, 64 MiB) the replica ' +
      'refuses produce (503 STORAGE_FULL) and RocksDB cannot compact.',
    fires: {
      series: [
        { series: sel('kubelet_volume_stats_capacity_bytes', pvc('data-events-0-0')), values: '100000000000x20' },
        { series: sel('kubelet_volume_stats_available_bytes', pvc('data-events-0-0')), values: '4000000000x20' },
      ],
      pendingAt: '2m',
      at: '10m',
      alerts: [{ labels: pvc('data-events-0-0'), value: '4%' }],
    },
    silent: [
      {
        why: '30 % free',
        series: [
          { series: sel('kubelet_volume_stats_capacity_bytes', pvc('data-events-0-0')), values: '100000000000x20' },
          { series: sel('kubelet_volume_stats_available_bytes', pvc('data-events-0-0')), values: '30000000000x20' },
        ],
        at: '10m',
      },
    ],
  },
  {
    alert: 'DaftkaStorageFull',
    group: 'daftka-storage',
    expr: `max by (${PARTITION_LABELS}, pod) (daftka_storage_disk_full{job="${JOBS.replica}"}) == 1`,
    for: '1m',
    severity: 'page',
    summary: 'Replica {{ $labels.pod }} is out of disk space and refuses produce',
    description:
      'Replica {{ $labels.pod }} ({{ $labels.topic }}/{{ $labels.partition }}, {{ $labels.namespace }}) has ' +
      'less free space than its reserve, or a write failed with ENOSPC: as leader it answers produce ' +
      '503 STORAGE_FULL; reads are served. It recovers by itself once space is back.',
    fires: {
      series: [
        { series: sel('daftka_storage_disk_full', replica(0, 1)), values: '0 0 1x10' },
        { series: sel('daftka_storage_disk_full', replica(0, 0)), values: '0x12' },
      ],
      pendingAt: '2m',
      at: '4m',
      alerts: [{ labels: { ...partitionLabels, pod: 'events-0-1' }, value: '1' }],
    },
    silent: [
      {
        why: 'full for less than a minute, then space came back',
        series: [{ series: sel('daftka_storage_disk_full', replica(0, 0)), values: '0 1 0x10' }],
        at: '4m',
      },
      {
        why: 'every replica has room',
        series: [0, 1, 2].map((o) => ({ series: sel('daftka_storage_disk_full', replica(0, o)), values: '0x12' })),
        at: '4m',
      },
    ],
  },
  {
    alert: 'DaftkaSlowFsync',
    group: 'daftka-storage',
    expr:
      `histogram_quantile(0.99,\n` +
      `  sum by (${PARTITION_LABELS}, pod, le) (rate(daftka_storage_fsync_duration_seconds_bucket{job="${JOBS.replica}"}[5m]))\n` +
      `) > 0.1`,
    for: '15m',
    severity: 'ticket',
    summary: 'Slow fsync on {{ $labels.pod }}',
    description:
      'The 99th percentile of group-commit fsyncs on {{ $labels.pod }} ({{ $labels.topic }}/{{ $labels.partition }}, ' +
      '{{ $labels.namespace }}) is {{ $value | humanizeDuration }}. Every acknowledged produce waits for a ' +
      "quorum's fsync: slow disks become produce latency.",
    fires: {
      series: ['0.05', '0.1', '0.25', '+Inf'].map((le) => ({
        series: sel('daftka_storage_fsync_duration_seconds_bucket', { ...replica(0, 0), le }),
        values: le === '0.05' || le === '0.1' ? '0x40' : '0+10x40',
      })),
      pendingAt: '10m',
      at: '30m',
      alerts: [{ labels: { ...partitionLabels, pod: 'events-0-0' }, value: '248.5ms' }],
    },
    silent: [
      {
        why: 'fsyncs within 50 ms',
        series: ['0.05', '0.1', '0.25', '+Inf'].map((le) => ({
          series: sel('daftka_storage_fsync_duration_seconds_bucket', { ...replica(0, 0), le }),
          values: '0+10x40',
        })),
        at: '30m',
      },
    ],
  },

  // ---- consumers ----
  {
    alert: 'DaftkaConsumerLagGrowing',
    group: 'daftka-consumers',
    expr:
      `sum by (namespace, topic, group) (max by (${PARTITION_LABELS}, group) (daftka_group_lag_records{job="${JOBS.replica}"})) > 1000\n` +
      `and\n` +
      `sum by (namespace, topic, group) (max by (${PARTITION_LABELS}, group) (deriv(daftka_group_lag_records{job="${JOBS.replica}"}[30m]))) > 0`,
    for: '30m',
    severity: 'ticket',
    summary: 'Consumer group {{ $labels.group }} is falling behind on {{ $labels.topic }}',
    description:
      'Group {{ $labels.group }} is {{ $value | humanize }} records behind the high watermark of ' +
      '{{ $labels.topic }} ({{ $labels.namespace }}) and the gap has grown for 30 minutes: its consumers ' +
      'read slower than producers write. Retention may delete records before they are read.',
    fires: {
      series: [{ series: sel('daftka_group_lag_records', { ...replica(0, 0), group: 'billing' }), values: '0+100x90' }],
      pendingAt: '30m',
      at: '60m',
      alerts: [{ labels: { namespace: NS, topic: 'events', group: 'billing' }, value: '6k' }],
    },
    silent: [
      {
        why: 'a steady backlog that does not grow',
        series: [
          { series: sel('daftka_group_lag_records', { ...replica(0, 0), group: 'billing' }), values: '5000x90' },
        ],
        at: '60m',
      },
      {
        why: 'growing but small',
        series: [{ series: sel('daftka_group_lag_records', { ...replica(0, 0), group: 'billing' }), values: '0+5x90' }],
        at: '60m',
      },
    ],
  },

  // ---- processes and the gateway ----
  {
    alert: 'DaftkaEventLoopLag',
    group: 'daftka-processes',
    expr: `max by (namespace, component, pod) (daftka_nodejs_eventloop_lag_p99_seconds{job=~"daftka-.+"}) > 0.1`,
    for: '10m',
    severity: 'ticket',
    summary: 'Event loop of {{ $labels.pod }} is lagging',
    description:
      'The p99 event-loop delay of {{ $labels.component }} {{ $labels.pod }} ({{ $labels.namespace }}) is ' +
      '{{ $value | humanizeDuration }}. A replica that stalls near the election timeout (150 ms) loses ' +
      'leadership; every request it serves waits as long.',
    fires: {
      series: [{ series: sel('daftka_nodejs_eventloop_lag_p99_seconds', replica(0, 0)), values: '0.25x20' }],
      pendingAt: '5m',
      at: '15m',
      alerts: [{ labels: { namespace: NS, component: 'replica', pod: 'events-0-0' }, value: '250ms' }],
    },
    silent: [
      {
        why: 'a 20 ms p99 (the 10 ms sampling resolution included)',
        series: [{ series: sel('daftka_nodejs_eventloop_lag_p99_seconds', replica(0, 0)), values: '0.02x20' }],
        at: '15m',
      },
    ],
  },
  {
    alert: 'DaftkaNatsDisconnected',
    group: 'daftka-processes',
    expr:
      `max by (namespace, component, pod) (daftka_nats_connected{job="${JOBS.replica}"}) == 0\n` +
      `or\n` +
      `max by (namespace, component, pod) (daftka_gateway_nats_connected{job="${JOBS.gateway}"}) == 0\n` +
      `or\n` +
      `max by (namespace, component, pod) (daftka_operator_nats_connected{job="${JOBS.operator}"}) == 0`,
    for: '5m',
    severity: 'ticket',
    summary: '{{ $labels.pod }} is disconnected from NATS',
    description:
      '{{ $labels.component }} {{ $labels.pod }} ({{ $labels.namespace }}) has not been connected to NATS for ' +
      '5 minutes. Reads and writes continue; leader announcements, replica status and operator control ' +
      'requests do not reach it (degraded routing freshness, stale Partition status).',
    fires: {
      series: [{ series: sel('daftka_gateway_nats_connected', gatewayPod(0)), values: '0x10' }],
      pendingAt: '2m',
      at: '8m',
      alerts: [{ labels: { namespace: NS, component: 'gateway', pod: gatewayPod(0).pod } }],
    },
    silent: [
      {
        why: 'a reconnect within 2 minutes',
        series: [
          { series: sel('daftka_gateway_nats_connected', gatewayPod(0)), values: '1 0 0 1 1 1 1 1 1 1' },
          { series: sel('daftka_nats_connected', replica(0, 0)), values: '1x10' },
        ],
        at: '8m',
      },
    ],
  },
  {
    alert: 'DaftkaThrottlingSustained',
    group: 'daftka-processes',
    expr: `sum by (namespace, topic, reason) (rate(daftka_gateway_throttled_requests_total{job="${JOBS.gateway}"}[5m])) > 1`,
    for: '15m',
    severity: 'ticket',
    summary: 'Topic {{ $labels.topic }} is being throttled ({{ $labels.reason }})',
    description:
      'The gateways in {{ $labels.namespace }} refuse {{ $value | humanize }} requests/s on {{ $labels.topic }} ' +
      'with 429 QUOTA_EXCEEDED ({{ $labels.reason }}) for 15 minutes: a tenant is above its quota.',
    fires: {
      series: [
        {
          series: sel('daftka_gateway_throttled_requests_total', {
            ...gatewayPod(0),
            topic: 'events',
            reason: 'produce_bytes',
          }),
          values: '0+120x40',
        },
      ],
      pendingAt: '10m',
      at: '30m',
      alerts: [{ labels: { namespace: NS, topic: 'events', reason: 'produce_bytes' }, value: '2' }],
    },
    silent: [
      {
        why: 'an occasional 429',
        series: [
          {
            series: sel('daftka_gateway_throttled_requests_total', {
              ...gatewayPod(0),
              topic: 'events',
              reason: 'produce_bytes',
            }),
            values: '0+30x40',
          },
        ],
        at: '30m',
      },
    ],
  },
  {
    alert: 'DaftkaGatewayDown',
    group: 'daftka-processes',
    expr: `sum by (namespace) (up{job="${JOBS.gateway}"}) == 0`,
    for: '2m',
    severity: 'page',
    summary: 'No Daftka gateway is up in {{ $labels.namespace }}',
    description:
      'Prometheus cannot scrape any gateway pod in {{ $labels.namespace }}: clients cannot produce or fetch, ' +
      'and the SLO alerts have no data to fire on.',
    fires: {
      series: [0, 1].map((i) => ({ series: sel('up', gatewayPod(i)), values: '0x10' })),
      pendingAt: '1m',
      at: '5m',
      alerts: [{ labels: { namespace: NS } }],
    },
    silent: [
      {
        why: 'one of two gateways is up',
        series: [0, 1].map((i) => ({ series: sel('up', gatewayPod(i)), values: i === 0 ? '0x10' : '1x10' })),
        at: '5m',
      },
    ],
  },
  {
    alert: 'DaftkaTargetDown',
    group: 'daftka-processes',
    expr:
      `100 * (\n` +
      `  count by (namespace, job) (up{job=~"${JOBS.gateway}|${JOBS.operator}"} == 0)\n` +
      `  /\n` +
      `  count by (namespace, job) (up{job=~"${JOBS.gateway}|${JOBS.operator}"})\n` +
      `) > 10`,
    for: '10m',
    severity: 'ticket',
    summary: '{{ $value | humanize }}% of the {{ $labels.job }} targets are down',
    description:
      'Prometheus cannot scrape {{ $value | humanize }}% of the {{ $labels.job }} pods in {{ $labels.namespace }} ' +
      'for 10 minutes: the pods are crashing, not ready to serve /metrics, or a NetworkPolicy blocks the scrape.',
    fires: {
      series: [0, 1, 2].map((i) => ({ series: sel('up', gatewayPod(i)), values: i === 2 ? '0x20' : '1x20' })),
      pendingAt: '5m',
      at: '15m',
      alerts: [{ labels: { namespace: NS, job: JOBS.gateway }, value: '33.33' }],
    },
    silent: [
      {
        why: 'every target up',
        series: [0, 1].map((i) => ({ series: sel('up', operatorPod(i)), values: '1x20' })),
        at: '15m',
      },
    ],
  },

  // ---- operator ----
  {
    alert: 'DaftkaOperatorReconcileErrors',
    group: 'daftka-operator',
    expr:
      `sum by (namespace, kind) (rate(daftka_operator_reconcile_errors_total{job="${JOBS.operator}"}[10m]))\n` +
      `/\n` +
      `sum by (namespace, kind) (rate(daftka_operator_reconcile_duration_seconds_count{job="${JOBS.operator}"}[10m]))\n` +
      `> 0.1`,
    for: '15m',
    severity: 'ticket',
    summary: 'The operator fails {{ $value | humanizePercentage }} of its {{ $labels.kind }} reconciles',
    description:
      "For 15 minutes, {{ $value | humanizePercentage }} of the operator's {{ $labels.kind }} reconciles in " +
      '{{ $labels.namespace }} ended in an error and were requeued with backoff. The Topic and Partition ' +
      'conditions and the operator log say why.',
    fires: {
      series: [
        {
          series: sel('daftka_operator_reconcile_errors_total', { ...operatorPod(0), kind: 'topic' }),
          values: '0+5x40',
        },
        {
          series: sel('daftka_operator_reconcile_duration_seconds_count', {
            ...operatorPod(0),
            kind: 'topic',
            result: 'error',
          }),
          values: '0+5x40',
        },
        {
          series: sel('daftka_operator_reconcile_duration_seconds_count', {
            ...operatorPod(0),
            kind: 'topic',
            result: 'ok',
          }),
          values: '0+5x40',
        },
      ],
      pendingAt: '10m',
      at: '30m',
      alerts: [{ labels: { namespace: NS, kind: 'topic' }, value: '50%' }],
    },
    silent: [
      {
        why: 'an occasional conflict (1 %)',
        series: [
          {
            series: sel('daftka_operator_reconcile_errors_total', { ...operatorPod(0), kind: 'topic' }),
            values: '0+1x40',
          },
          {
            series: sel('daftka_operator_reconcile_duration_seconds_count', {
              ...operatorPod(0),
              kind: 'topic',
              result: 'ok',
            }),
            values: '0+100x40',
          },
        ],
        at: '30m',
      },
    ],
  },
  {
    alert: 'DaftkaOperatorReconcileStalled',
    group: 'daftka-operator',
    expr:
      `(\n` +
      `  sum by (namespace) (daftka_operator_workqueue_depth{job="${JOBS.operator}"}) > 0\n` +
      `  unless on (namespace)\n` +
      `  sum by (namespace) (increase(daftka_operator_reconcile_duration_seconds_count{job="${JOBS.operator}"}[15m])) > 0\n` +
      `)\n` +
      `or\n` +
      `max by (namespace) (daftka_operator_is_leader{job="${JOBS.operator}"}) == 0`,
    for: '15m',
    severity: 'ticket',
    summary: 'The Daftka operator in {{ $labels.namespace }} is not reconciling',
    description:
      'For 15 minutes the operator in {{ $labels.namespace }} has had work queued and finished no reconcile, ' +
      'or no operator pod holds the leader Lease. New topics, partition repairs, rolls and rebalancing wait; ' +
      'the data path is unaffected.',
    fires: {
      series: [
        { series: sel('daftka_operator_is_leader', operatorPod(0)), values: '1x40' },
        { series: sel('daftka_operator_is_leader', operatorPod(1)), values: '0x40' },
        { series: sel('daftka_operator_workqueue_depth', operatorPod(0)), values: '3x40' },
        {
          series: sel('daftka_operator_reconcile_duration_seconds_count', {
            ...operatorPod(0),
            kind: 'topic',
            result: 'ok',
          }),
          values: '10x40',
        },
      ],
      pendingAt: '10m',
      at: '35m',
      alerts: [{ labels: { namespace: NS } }],
    },
    silent: [
      {
        why: 'work queued and being done',
        series: [
          { series: sel('daftka_operator_is_leader', operatorPod(0)), values: '1x40' },
          { series: sel('daftka_operator_workqueue_depth', operatorPod(0)), values: '3x40' },
          {
            series: sel('daftka_operator_reconcile_duration_seconds_count', {
              ...operatorPod(0),
              kind: 'topic',
              result: 'ok',
            }),
            values: '0+2x40',
          },
        ],
        at: '35m',
      },
      {
        why: 'nothing to do',
        series: [
          { series: sel('daftka_operator_is_leader', operatorPod(0)), values: '1x40' },
          { series: sel('daftka_operator_workqueue_depth', operatorPod(0)), values: '0x40' },
          {
            series: sel('daftka_operator_reconcile_duration_seconds_count', {
              ...operatorPod(0),
              kind: 'topic',
              result: 'ok',
            }),
            values: '10x40',
          },
        ],
        at: '35m',
      },
    ],
  },
  // ---- crash loops, dead letters, launch readiness ----
  {
    alert: 'DaftkaCrashLooping',
    group: 'daftka-processes',
    expr:
      `max by (namespace, pod) (increase(kube_pod_container_status_restarts_total{container=~"replica|gateway|operator"}[15m])) > 2\n` +
      `or\n` +
      `max by (namespace, pod) (changes(daftka_process_start_time_seconds{job=~"daftka-.+"}[15m])) > 2`,
    for: '5m',
    severity: 'page',
    summary: '{{ $labels.pod }} keeps restarting',
    description:
      '{{ $labels.pod }} in {{ $labels.namespace }} restarted {{ $value }} times in 15 minutes (from kube-state-metrics, ' +
      'or from its process start time changing between scrapes). Crash-only processes exit on storage corruption, ' +
      'invariant breaches and bad configuration: a loop means the cause survives a restart.',
    fires: {
      series: [
        {
          series: sel('kube_pod_container_status_restarts_total', {
            namespace: NS,
            pod: 'events-0-1',
            container: 'replica',
            job: 'kube-state-metrics',
          }),
          values: '0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20',
        },
      ],
      pendingAt: '4m',
      at: '12m',
      alerts: [{ labels: { namespace: NS, pod: 'events-0-1' }, value: '12' }],
    },
    silent: [
      {
        why: 'one restart (a roll or an OOM) is not a loop',
        series: [
          {
            series: sel('kube_pod_container_status_restarts_total', {
              namespace: NS,
              pod: 'events-0-1',
              container: 'replica',
              job: 'kube-state-metrics',
            }),
            values: '0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1',
          },
          { series: sel('daftka_process_start_time_seconds', replica(0, 1)), values: '1000x10 1300x10' },
        ],
        at: '12m',
      },
      {
        why: 'a process that started once and keeps running',
        series: [{ series: sel('daftka_process_start_time_seconds', gatewayPod(0)), values: '1000x20' }],
        at: '12m',
      },
    ],
  },
  {
    alert: 'DaftkaDeadLetterGrowth',
    group: 'daftka-consumers',
    expr:
      `sum by (namespace, topic) (\n` +
      `  increase(daftka_dead_letter_writes_total{job="${JOBS.replica}"}[30m])\n` +
      `  ${onlyLeaders}\n` +
      `) > 50`,
    for: '15m',
    severity: 'ticket',
    summary: 'Dead letters of {{ $labels.topic }} are piling up',
    description:
      '{{ $value | humanize }} records of {{ $labels.topic }} ({{ $labels.namespace }}) were dead-lettered in the last ' +
      '30 minutes and it has kept up for 15 minutes: consumers reject them or run out of attempts. They wait in ' +
      'the dead-letter stream until someone replays, archives or purges them.',
    fires: {
      series: [
        { series: sel('daftka_raft_leader', replica(0, 0)), values: '1x60' },
        {
          series: sel('daftka_dead_letter_writes_total', { ...replica(0, 0), group: 'billing', reason: 'reject' }),
          values: '0+5x60',
        },
      ],
      pendingAt: '20m',
      at: '45m',
      alerts: [{ labels: { namespace: NS, topic: 'events' }, value: '150' }],
    },
    silent: [
      {
        why: 'a handful of poison records',
        series: [
          { series: sel('daftka_raft_leader', replica(0, 0)), values: '1x60' },
          {
            series: sel('daftka_dead_letter_writes_total', { ...replica(0, 0), group: 'billing', reason: 'reject' }),
            values: '0x20 10x40',
          },
        ],
        at: '45m',
      },
      {
        why: 'a stale counter on a former leader does not count',
        series: [
          { series: sel('daftka_raft_leader', replica(0, 0)), values: '0x60' },
          {
            series: sel('daftka_dead_letter_writes_total', { ...replica(0, 0), group: 'billing', reason: 'reject' }),
            values: '0+5x60',
          },
        ],
        at: '45m',
      },
    ],
  },
  {
    alert: 'DaftkaNotLaunchReady',
    group: 'daftka-processes',
    expr: `max by (namespace) (daftka_gateway_readiness_status{job="${JOBS.gateway}"}) == 2`,
    for: '10m',
    severity: 'ticket',
    summary: 'The launch-readiness report of {{ $labels.namespace }} says not_ready',
    description:
      'A gateway in {{ $labels.namespace }} has reported not_ready in its launch-readiness report for 10 minutes ' +
      '(GET /v1/readiness, `daftka readiness`): some check is past its not_ready threshold. The report names it, ' +
      'with its value, threshold and reason.',
    fires: {
      series: [{ series: sel('daftka_gateway_readiness_status', gatewayPod(0)), values: '2x20' }],
      pendingAt: '5m',
      at: '15m',
      alerts: [{ labels: { namespace: NS } }],
    },
    silent: [
      {
        why: 'warning is not not_ready',
        series: [{ series: sel('daftka_gateway_readiness_status', gatewayPod(0)), values: '1x20' }],
        at: '15m',
      },
      {
        why: 'a blip shorter than 10 minutes',
        series: [
          { series: sel('daftka_gateway_readiness_status', gatewayPod(0)), values: '0 0 2 2 2 0 0 0 0 0 0 0 0 0 0 0' },
        ],
        at: '15m',
      },
    ],
  },
];

/** The alert names, for docs and the chart's `prometheusRule.disabledAlerts` check. */
export const ALERT_NAMES: readonly string[] = ALERTS.map((a) => a.alert);

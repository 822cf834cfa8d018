/**
 * Grafana dashboards as code (plain objects in Grafana's dashboard JSON model, schemaVersion 39).
 * sre/gen.ts writes them to helm/daftka/files/dashboards/, which the chart ships as ConfigMaps for
 * Grafana's dashboard sidecar. A test checks that every query reads only metrics the programs
 * export (against a live scrape of local mode) or our recording rules.
 */
import { JOBS, REPLICA_PVC_REGEX } from './config';
import { BURN_WINDOWS, errorBudget, PRODUCE_LATENCY_THRESHOLD_SECONDS, recordName, SLOS } from './slos';

export interface Target {
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  format?: 'time_series' | 'table';
}

export interface Panel {
  id: number;
  type: 'timeseries' | 'stat' | 'table' | 'row';
  title: string;
  description?: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: 'prometheus'; uid: string };
  targets?: Array<Target & { refId: string; datasource: { type: 'prometheus'; uid: string } }>;
  fieldConfig?: { defaults: Record<string, unknown>; overrides: unknown[] };
  options?: Record<string, unknown>;
  collapsed?: boolean;
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  description: string;
  tags: string[];
  schemaVersion: number;
  version: number;
  editable: boolean;
  graphTooltip: number;
  refresh: string;
  time: { from: string; to: string };
  timezone: string;
  templating: { list: unknown[] };
  annotations: { list: unknown[] };
  links: unknown[];
  panels: Panel[];
}

const DS = { type: 'prometheus' as const, uid: '${datasource}' };
const NS = 'namespace=~"$namespace"';
const R = `job="${JOBS.replica}", ${NS}`;
const RT = `${R}, topic=~"$topic"`;
const G = `job="${JOBS.gateway}", ${NS}`;
const O = `job="${JOBS.operator}", ${NS}`;
const RATE = '$__rate_interval';

/** A panel before layout: width in grid units (24 = full), height defaults to 8. */
interface PanelSpec {
  type: 'timeseries' | 'stat' | 'table';
  title: string;
  description: string;
  targets: Target[];
  unit?: string;
  w?: number;
  h?: number;
  min?: number;
  max?: number;
  /** Stat colour steps: [[value, color], …] (the first value is ignored: base). */
  thresholds?: Array<[number | null, string]>;
  stack?: boolean;
}

type Section = { row: string; panels: PanelSpec[] };

function ts(
  title: string,
  description: string,
  targets: Target[],
  unit = 'short',
  extra: Partial<PanelSpec> = {},
): PanelSpec {
  return { type: 'timeseries', title, description, targets, unit, ...extra };
}
function stat(
  title: string,
  description: string,
  expr: string,
  unit = 'short',
  extra: Partial<PanelSpec> = {},
): PanelSpec {
  return { type: 'stat', title, description, targets: [{ expr, instant: true }], unit, w: 4, h: 5, ...extra };
}
const q = (expr: string, legendFormat?: string): Target => (legendFormat ? { expr, legendFormat } : { expr });

function build(uid: string, title: string, description: string, variables: unknown[], sections: Section[]): Dashboard {
  const panels: Panel[] = [];
  let id = 1;
  let y = 0;
  for (const section of sections) {
    panels.push({
      id: id++,
      type: 'row',
      title: section.row,
      collapsed: false,
      gridPos: { x: 0, y, w: 24, h: 1 },
      panels: [],
    });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const p of section.panels) {
      const w = p.w ?? 12;
      const h = p.h ?? 8;
      if (x + w > 24) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      const steps = (p.thresholds ?? [[null, 'green']]).map(([value, color]) => ({ value, color }));
      panels.push({
        id: id++,
        type: p.type,
        title: p.title,
        description: p.description,
        gridPos: { x, y, w, h },
        datasource: DS,
        targets: p.targets.map((t, i) => ({
          refId: String.fromCharCode(65 + i),
          datasource: DS,
          ...t,
          ...(p.type === 'table' ? { format: 'table' as const, instant: true } : {}),
        })),
        fieldConfig: {
          defaults: {
            unit: p.unit ?? 'short',
            ...(p.min !== undefined ? { min: p.min } : {}),
            ...(p.max !== undefined ? { max: p.max } : {}),
            thresholds: { mode: 'absolute', steps },
            ...(p.type === 'timeseries'
              ? {
                  custom: {
                    drawStyle: 'line',
                    lineWidth: 1,
                    fillOpacity: p.stack ? 30 : 10,
                    stacking: { mode: p.stack ? 'normal' : 'none' },
                  },
                }
              : {}),
          },
          overrides: [],
        },
        options:
          p.type === 'stat'
            ? {
                reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
                colorMode: 'background',
                graphMode: 'none',
              }
            : p.type === 'table'
              ? { showHeader: true }
              : {
                  legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'] },
                  tooltip: { mode: 'multi', sort: 'desc' },
                },
      });
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    uid,
    title,
    description,
    tags: ['daftka'],
    schemaVersion: 39,
    version: 1,
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timezone: 'browser',
    templating: { list: variables },
    annotations: {
      list: [
        {
          name: 'Annotations & Alerts',
          builtIn: 1,
          type: 'dashboard',
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
        },
      ],
    },
    links: [
      { title: 'Daftka', type: 'dashboards', tags: ['daftka'], asDropdown: true, includeVars: true, keepTime: true },
    ],
    panels,
  };
}

// ---- template variables ------------------------------------------------------------------------

const datasourceVar = {
  name: 'datasource',
  label: 'Data source',
  type: 'datasource',
  query: 'prometheus',
  current: {},
  hide: 0,
};
function queryVar(name: string, label: string, query: string, multi = true) {
  return {
    name,
    label,
    type: 'query',
    datasource: DS,
    query: { query, refId: `${name}-var` },
    definition: query,
    refresh: 2,
    sort: 1,
    multi,
    includeAll: true,
    allValue: '.*',
    current: {},
    hide: 0,
  };
}
const namespaceVar = queryVar(
  'namespace',
  'Namespace',
  `label_values(daftka_raft_term{job="${JOBS.replica}"}, namespace)`,
);
const topicVar = queryVar('topic', 'Topic', `label_values(daftka_raft_term{${R}}, topic)`);

// ---- shared panels -----------------------------------------------------------------------------

function processPanels(job: string, what: string): PanelSpec[] {
  const sel = `job="${job}", ${NS}`;
  return [
    ts(
      'Event-loop delay p99',
      `p99 event-loop delay of each ${what} pod over the last scrape interval (includes the 10 ms sampling resolution). Above the 150 ms election timeout a replica loses leadership.`,
      [q(`max by (pod) (daftka_nodejs_eventloop_lag_p99_seconds{${sel}})`, '{{pod}}')],
      's',
      { w: 8 },
    ),
    ts(
      'CPU',
      `CPU seconds per second used by each ${what} pod.`,
      [q(`sum by (pod) (rate(daftka_process_cpu_seconds_total{${sel}}[${RATE}]))`, '{{pod}}')],
      'percentunit',
      { w: 8 },
    ),
    ts(
      'Resident memory',
      `RSS of each ${what} pod.`,
      [q(`max by (pod) (daftka_process_resident_memory_bytes{${sel}})`, '{{pod}}')],
      'bytes',
      { w: 8 },
    ),
  ];
}

// ---- Overview ----------------------------------------------------------------------------------

function overview(): Dashboard {
  const slo30 = SLOS.map((slo) => {
    const r30 = `max(${recordName(slo, `${slo.windowDays}d`)}{${NS}})`;
    return [
      stat(
        `${slo.title} (${slo.windowDays} d)`,
        `Share of good events over the compliance window; objective ${slo.objective * 100} %. Bad: ${slo.badEvents}.`,
        `1 - ${r30}`,
        'percentunit',
        {
          thresholds: [
            [null, 'red'],
            [slo.objective, 'green'],
          ],
          w: 4,
        },
      ),
      stat(
        `${slo.title}: budget left`,
        `Error budget (1 − ${slo.objective}) not yet spent over the last ${slo.windowDays} days. Below 0 the SLO is missed.`,
        `1 - ${r30} / ${errorBudget(slo)}`,
        'percentunit',
        {
          thresholds: [
            [null, 'red'],
            [0, 'orange'],
            [0.25, 'green'],
          ],
          w: 4,
        },
      ),
    ];
  }).flat();
  const burns = SLOS.map((slo) =>
    ts(
      `${slo.title}: burn rate`,
      `Bad-event ratio divided by the error budget (1 = spending exactly the budget over ${slo.windowDays} days). Pages at ${BURN_WINDOWS.filter(
        (b) => b.severity === 'page',
      )
        .map((b) => `${b.factor}× over ${b.long} and ${b.short}`)
        .join(', ')}.`,
      ['5m', '1h', '6h', '1d'].map((w) => q(`max(${recordName(slo, w)}{${NS}}) / ${errorBudget(slo)}`, w)),
      'short',
      { w: 8 },
    ),
  );
  return build(
    'daftka-overview',
    'Daftka / Overview',
    'SLOs, error budgets, traffic and the health of every partition.',
    [datasourceVar, namespaceVar],
    [
      { row: 'Service level objectives', panels: slo30 },
      { row: 'Burn rates', panels: burns },
      {
        row: 'Health',
        panels: [
          stat(
            'Firing alerts',
            'Daftka alerts firing now (see the Alerting view for details and runbooks).',
            `count(ALERTS{alertname=~"Daftka.*", alertstate="firing", ${NS}}) or vector(0)`,
            'short',
            {
              thresholds: [
                [null, 'green'],
                [1, 'red'],
              ],
            },
          ),
          stat(
            'Leaderless partitions',
            'Partitions none of whose reporting replicas is leader.',
            `count(max by (namespace, topic, partition) (daftka_raft_leader{${R}}) == 0) or vector(0)`,
            'short',
            {
              thresholds: [
                [null, 'green'],
                [1, 'red'],
              ],
            },
          ),
          stat(
            'Under-replicated partitions',
            'Partitions with fewer reporting replicas than voters.',
            `count(count by (namespace, topic, partition) (daftka_raft_voters{${R}}) < on (namespace, topic, partition) max by (namespace, topic, partition) (daftka_raft_voters{${R}})) or vector(0)`,
            'short',
            {
              thresholds: [
                [null, 'green'],
                [1, 'orange'],
              ],
            },
          ),
          stat(
            'Partitions',
            'Partitions with at least one reporting replica.',
            `count(count by (namespace, topic, partition) (daftka_raft_term{${R}}))`,
          ),
          stat('Replicas up', 'Replica pods Prometheus scrapes successfully, of all it discovered.', `sum(up{${R}})`),
          stat('Gateways up', 'Gateway pods Prometheus scrapes successfully.', `sum(up{${G}})`),
        ],
      },
      {
        row: 'Traffic',
        panels: [
          ts(
            'Requests by route',
            'Gateway HTTP requests per second.',
            [q(`sum by (route) (rate(daftka_gateway_requests_total{${G}}[${RATE}]))`, '{{route}}')],
            'reqps',
            { w: 8 },
          ),
          ts(
            'Error ratio by route',
            'Share of gateway answers that are 5xx (the availability SLIs use produce and fetch).',
            [
              q(
                `sum by (route) (rate(daftka_gateway_requests_total{${G}, code=~"5.."}[${RATE}])) / sum by (route) (rate(daftka_gateway_requests_total{${G}}[${RATE}]))`,
                '{{route}}',
              ),
            ],
            'percentunit',
            { w: 8 },
          ),
          ts(
            'Produce latency',
            `Gateway produce latency (request to answer, quorum fsync included). The latency SLO counts answers above ${PRODUCE_LATENCY_THRESHOLD_SECONDS * 1000} ms.`,
            ['0.5', '0.99', '0.999'].map((p) =>
              q(
                `histogram_quantile(${p}, sum by (le) (rate(daftka_gateway_request_duration_seconds_bucket{${G}, route="produce"}[${RATE}])))`,
                `p${Number(p) * 100}`,
              ),
            ),
            's',
            { w: 8 },
          ),
          ts(
            'Records written',
            'Records committed per second, by topic.',
            [q(`sum by (topic) (rate(daftka_gateway_produce_records_total{${G}}[${RATE}]))`, '{{topic}}')],
            'short',
            { w: 12 },
          ),
          ts(
            'Records read',
            'Records returned by fetches per second, by topic.',
            [q(`sum by (topic) (rate(daftka_gateway_fetch_records_total{${G}}[${RATE}]))`, '{{topic}}')],
            'short',
            { w: 12 },
          ),
        ],
      },
    ],
  );
}

// ---- Partitions --------------------------------------------------------------------------------

function partitions(): Dashboard {
  const tp = 'topic, partition';
  return build(
    'daftka-partitions',
    'Daftka / Partitions',
    'Raft groups: leaders, terms, commit progress, replication lag, consumer groups, peer traffic.',
    [datasourceVar, namespaceVar, topicVar],
    [
      {
        row: 'Leadership',
        panels: [
          {
            type: 'table',
            title: 'Leaders',
            description: 'The pod leading each partition now, with its term.',
            targets: [
              {
                expr: `max by (${tp}, pod) (daftka_raft_term{${RT}} and on (namespace, instance, ${tp}) (daftka_raft_leader{${RT}} == 1))`,
              },
            ],
            w: 8,
          },
          ts(
            'Raft term',
            'Highest term seen per partition; a rising term means elections.',
            [q(`max by (${tp}) (daftka_raft_term{${RT}})`, '{{topic}}/{{partition}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Leader changes',
            'Leader changes seen per partition (max over its replicas; a failover counts 2).',
            [
              q(
                `max by (${tp}) (increase(daftka_raft_leader_changes_total{${RT}}[${RATE}]))`,
                '{{topic}}/{{partition}}',
              ),
            ],
            'short',
            { w: 8 },
          ),
          ts(
            'Recovery after leader loss (p99, objective 1 s)',
            'Per leader change, measured by the new leader: time since a leader last spoke to it. p99 over 6 h.',
            [
              q(
                `histogram_quantile(0.99, sum by (namespace, le) (rate(daftka_raft_leader_recovery_seconds_bucket{${RT}}[6h])))`,
                'p99',
              ),
            ],
            's',
            { w: 12 },
          ),
          ts(
            'Reporting replicas vs voters',
            'Replicas scraped per partition and the voters in its configuration.',
            [
              q(`count by (${tp}) (daftka_raft_voters{${RT}})`, '{{topic}}/{{partition}} reporting'),
              q(`max by (${tp}) (daftka_raft_voters{${RT}})`, '{{topic}}/{{partition}} voters'),
            ],
            'short',
            { w: 12 },
          ),
          ts(
            'Follower lag',
            'Entries the slowest follower is behind its leader (leaders only).',
            [
              q(
                `max by (${tp}) (daftka_raft_follower_lag_entries{${RT}} and on (namespace, instance, ${tp}) (daftka_raft_leader{${RT}} == 1))`,
                '{{topic}}/{{partition}}',
              ),
            ],
            'short',
            { w: 12 },
          ),
        ],
      },
      {
        row: 'Log',
        panels: [
          ts(
            'Produce rate',
            'Records committed per second through each leader.',
            [
              q(
                `sum by (${tp}) (rate(daftka_replica_produce_records_total{${RT}}[${RATE}]))`,
                '{{topic}}/{{partition}}',
              ),
            ],
            'short',
            { w: 8 },
          ),
          ts(
            'Commit latency p99',
            'Propose to applied on the leader (quorum fsynced), p99 per partition.',
            [
              q(
                `histogram_quantile(0.99, sum by (${tp}, le) (rate(daftka_replica_commit_latency_seconds_bucket{${RT}}[${RATE}])))`,
                '{{topic}}/{{partition}}',
              ),
            ],
            's',
            { w: 8 },
          ),
          ts(
            'Produce answers by code',
            'Produce calls answered by replicas, by code (OK, NOT_LEADER, NO_QUORUM, OVERLOADED, …).',
            [q(`sum by (code) (rate(daftka_replica_produce_requests_total{${RT}}[${RATE}]))`, '{{code}}')],
            'reqps',
            { w: 8 },
          ),
          ts(
            'High watermark',
            'Offset after the last committed record.',
            [q(`max by (${tp}) (daftka_partition_high_watermark{${RT}})`, '{{topic}}/{{partition}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Log start offset',
            'First retained offset; it moves with retention.',
            [q(`max by (${tp}) (daftka_partition_log_start_offset{${RT}})`, '{{topic}}/{{partition}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Commit and apply index',
            'Raft commit and applied index on each replica: followers track the leader.',
            [
              q(`max by (${tp}, pod) (daftka_raft_commit_index{${RT}})`, '{{pod}} commit'),
              q(`max by (${tp}, pod) (daftka_raft_applied_index{${RT}})`, '{{pod}} applied'),
            ],
            'short',
            { w: 8 },
          ),
          ts(
            'Shed requests',
            'Requests replicas refused with OVERLOADED, by bound.',
            [q(`sum by (reason) (rate(daftka_replica_shed_requests_total{${RT}}[${RATE}]))`, '{{reason}}')],
            'reqps',
            { w: 8 },
          ),
          ts(
            'Snapshots and membership changes',
            'Snapshots built, sent and installed; membership changes proposed.',
            [
              q(`sum by (action) (increase(daftka_raft_snapshots_total{${RT}}[${RATE}]))`, 'snapshot {{action}}'),
              q(
                `sum by (action) (increase(daftka_raft_membership_changes_total{${RT}}[${RATE}]))`,
                'membership {{action}}',
              ),
            ],
            'short',
            { w: 8 },
          ),
          ts(
            'Records fetched',
            'Records served by fetch per second.',
            [q(`sum by (${tp}) (rate(daftka_replica_fetch_records_total{${RT}}[${RATE}]))`, '{{topic}}/{{partition}}')],
            'short',
            { w: 8 },
          ),
        ],
      },
      {
        row: 'Consumer groups',
        panels: [
          ts(
            'Group lag',
            "Records between each group's committed offset and the high watermark (updated when the group's position is read).",
            [
              q(
                `sum by (topic, group) (max by (${tp}, group) (daftka_group_lag_records{${RT}}))`,
                '{{group}} on {{topic}}',
              ),
            ],
            'short',
            { w: 24 },
          ),
        ],
      },
      {
        row: 'Dead letters',
        panels: [
          ts(
            'Dead letters by state',
            'Entries in the dead-letter streams (active: waiting for replay, archive or purge), per topic.',
            [
              q(
                `sum by (topic, state) (max by (${tp}, state) (daftka_dead_letter_entries{${RT}}))`,
                '{{state}} on {{topic}}',
              ),
            ],
            'short',
            { w: 8 },
          ),
          ts(
            'Dead-letter writes',
            'Records dead-lettered per second, by group and reason (reject, max_attempts), counted by leaders. DaftkaDeadLetterGrowth fires on a sustained rate.',
            [
              q(
                `sum by (topic, group, reason) (rate(daftka_dead_letter_writes_total{${RT}}[${RATE}]) and on (namespace, instance, topic, partition) (daftka_raft_leader{${RT}} == 1))`,
                '{{group}} {{reason}} on {{topic}}',
              ),
            ],
            'short',
            { w: 8 },
          ),
          ts(
            'Dead-letter replays',
            'Dead letters in replay batches by outcome (attempted, written, skipped).',
            [
              q(
                `sum by (topic, outcome) (rate(daftka_dead_letter_replays_total{${RT}}[${RATE}]))`,
                '{{outcome}} on {{topic}}',
              ),
            ],
            'short',
            { w: 8 },
          ),
        ],
      },
      {
        row: 'Replication transport',
        panels: [
          ts(
            'Peer bytes sent',
            'Raft traffic out of each replica pod.',
            [q(`sum by (pod) (rate(daftka_peer_sent_bytes_total{${R}}[${RATE}]))`, '{{pod}}')],
            'Bps',
            { w: 8 },
          ),
          ts(
            'Connected peers',
            'Peers with a handshaken outbound connection, per pod.',
            [q(`max by (pod) (daftka_peer_connected_peers{${R}})`, '{{pod}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Peer queue drops and reconnects',
            'Raft messages dropped from full send queues, and reconnect attempts.',
            [
              q(
                `sum by (reason) (rate(daftka_peer_queue_dropped_messages_total{${R}}[${RATE}]))`,
                'dropped {{reason}}',
              ),
              q(`sum (rate(daftka_peer_reconnects_total{${R}}[${RATE}]))`, 'reconnects'),
              q(`sum by (reason) (rate(daftka_peer_bad_frames_total{${R}}[${RATE}]))`, 'bad frame {{reason}}'),
            ],
            'short',
            { w: 8 },
          ),
        ],
      },
      { row: 'Replica processes', panels: processPanels(JOBS.replica, 'replica') },
    ],
  );
}

// ---- Gateway -----------------------------------------------------------------------------------

function gateway(): Dashboard {
  return build(
    'daftka-gateway',
    'Daftka / Gateway',
    'The HTTP gateway: requests, latency, errors, quotas, routing to leaders, NATS.',
    [datasourceVar, namespaceVar],
    [
      {
        row: 'Requests',
        panels: [
          ts(
            'Requests by route and code',
            'HTTP answers per second.',
            [q(`sum by (route, code) (rate(daftka_gateway_requests_total{${G}}[${RATE}]))`, '{{route}} {{code}}')],
            'reqps',
            { w: 12, stack: true },
          ),
          ts(
            'Problem answers by code',
            'Answers carrying a problem code (QUOTA_EXCEEDED, NO_QUORUM, COMMIT_UNKNOWN, …).',
            [q(`sum by (route, code) (rate(daftka_gateway_errors_total{${G}}[${RATE}]))`, '{{route}} {{code}}')],
            'reqps',
            { w: 12 },
          ),
          ...['0.5', '0.99'].map((p) =>
            ts(
              `Latency p${Number(p) * 100} by route`,
              'Request to end of answer; fetch includes its long-poll wait.',
              [
                q(
                  `histogram_quantile(${p}, sum by (route, le) (rate(daftka_gateway_request_duration_seconds_bucket{${G}}[${RATE}])))`,
                  '{{route}}',
                ),
              ],
              's',
              { w: 12 },
            ),
          ),
        ],
      },
      {
        row: 'Data',
        panels: [
          ts(
            'Produced',
            'Records and bytes written per second, by topic.',
            [
              q(`sum by (topic) (rate(daftka_gateway_produce_records_total{${G}}[${RATE}]))`, '{{topic}} records'),
              q(`sum by (topic) (rate(daftka_gateway_produce_bytes_total{${G}}[${RATE}]))`, '{{topic}} bytes'),
            ],
            'short',
            { w: 12 },
          ),
          ts(
            'Fetched',
            'Records and bytes read per second, by topic.',
            [
              q(`sum by (topic) (rate(daftka_gateway_fetch_records_total{${G}}[${RATE}]))`, '{{topic}} records'),
              q(`sum by (topic) (rate(daftka_gateway_fetch_bytes_total{${G}}[${RATE}]))`, '{{topic}} bytes'),
            ],
            'short',
            { w: 12 },
          ),
        ],
      },
      {
        row: 'Back-pressure',
        panels: [
          ts(
            'Throttled (429)',
            'Requests refused by per-topic quotas, by topic and quota.',
            [
              q(
                `sum by (topic, reason) (rate(daftka_gateway_throttled_requests_total{${G}}[${RATE}]))`,
                '{{topic}} {{reason}}',
              ),
            ],
            'reqps',
            { w: 12 },
          ),
          ts(
            'Shed (503 OVERLOADED)',
            'Requests refused because an endpoint had too many calls in flight.',
            [
              q(
                `sum by (reason, kind) (rate(daftka_gateway_shed_requests_total{${G}}[${RATE}]))`,
                '{{kind}} {{reason}}',
              ),
            ],
            'reqps',
            { w: 12 },
          ),
        ],
      },
      {
        row: 'Routing',
        panels: [
          ts(
            'Redirects',
            'Calls sent on to another replica (not_leader: redirect followed; unreachable).',
            [q(`sum by (reason) (rate(daftka_gateway_redirects_total{${G}}[${RATE}]))`, '{{reason}}')],
            'reqps',
            { w: 8 },
          ),
          ts(
            'Leader table updates',
            'Leader table changes by source.',
            [q(`sum by (kind) (rate(daftka_gateway_leader_updates_total{${G}}[${RATE}]))`, '{{kind}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Leader table entries',
            'Partitions with a known leader, per gateway pod.',
            [q(`max by (pod) (daftka_gateway_leader_table_entries{${G}})`, '{{pod}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'NATS connected',
            '1 while the gateway receives leader announcements.',
            [q(`max by (pod) (daftka_gateway_nats_connected{${G}})`, '{{pod}}')],
            'short',
            { w: 8, min: 0, max: 1 },
          ),
          ts(
            'NATS reconnects and bad messages',
            'Reconnections to NATS and messages ignored because they did not validate.',
            [
              q(`sum (rate(daftka_gateway_nats_reconnects_total{${G}}[${RATE}]))`, 'reconnects'),
              q(`sum by (kind) (rate(daftka_gateway_nats_bad_messages_total{${G}}[${RATE}]))`, 'bad {{kind}}'),
            ],
            'short',
            { w: 8 },
          ),
          ts(
            'Replica connections',
            'Connection attempts to replica client ports by outcome; late answers and bad frames.',
            [
              q(`sum by (outcome) (rate(daftka_rpc_client_connects_total{${G}}[${RATE}]))`, 'connect {{outcome}}'),
              q(`sum (rate(daftka_rpc_client_late_responses_total{${G}}[${RATE}]))`, 'late answers'),
              q(`sum by (reason) (rate(daftka_rpc_client_bad_frames_total{${G}}[${RATE}]))`, 'bad frame {{reason}}'),
            ],
            'short',
            { w: 8 },
          ),
        ],
      },
      { row: 'Gateway processes', panels: processPanels(JOBS.gateway, 'gateway') },
    ],
  );
}

// ---- Storage -----------------------------------------------------------------------------------

function storage(): Dashboard {
  const pvc = `persistentvolumeclaim=~"${REPLICA_PVC_REGEX}", ${NS}`;
  return build(
    'daftka-storage',
    'Daftka / Storage',
    'RocksDB group commits, fsync latency, volumes, retention and the replica client port.',
    [datasourceVar, namespaceVar, topicVar],
    [
      {
        row: 'Durability path',
        panels: [
          ...['0.5', '0.99'].map((p) =>
            ts(
              `fsync p${Number(p) * 100}`,
              'Synced RocksDB write (WAL + fsync) per group commit, per pod. Every acknowledged produce waits for a quorum of these.',
              [
                q(
                  `histogram_quantile(${p}, sum by (pod, le) (rate(daftka_storage_fsync_duration_seconds_bucket{${RT}}[${RATE}])))`,
                  '{{pod}}',
                ),
              ],
              's',
              { w: 8 },
            ),
          ),
          ts(
            'Group commits per second',
            'Synced writes per second per pod (one per group commit).',
            [q(`sum by (pod) (rate(daftka_storage_fsync_duration_seconds_count{${RT}}[${RATE}]))`, '{{pod}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Entries per append',
            'Raft entries persisted per Ready (batching): median and p99.',
            ['0.5', '0.99'].map((p) =>
              q(
                `histogram_quantile(${p}, sum by (le) (rate(daftka_raft_append_batch_entries_bucket{${RT}}[${RATE}])))`,
                `p${Number(p) * 100}`,
              ),
            ),
            'short',
            { w: 12 },
          ),
          ts(
            'Commit latency p99',
            'Propose to applied on leaders (includes the quorum fsync).',
            [
              q(
                `histogram_quantile(0.99, sum by (topic, partition, le) (rate(daftka_replica_commit_latency_seconds_bucket{${RT}}[${RATE}])))`,
                '{{topic}}/{{partition}}',
              ),
            ],
            's',
            { w: 12 },
          ),
        ],
      },
      {
        row: 'Volumes',
        panels: [
          ts(
            'Volume free',
            'Free share of each replica volume (kubelet volume stats). DaftkaDiskAlmostFull pages below 10 %.',
            [
              q(
                `kubelet_volume_stats_available_bytes{${pvc}} / kubelet_volume_stats_capacity_bytes{${pvc}}`,
                '{{persistentvolumeclaim}}',
              ),
            ],
            'percentunit',
            { w: 12, min: 0, max: 1 },
          ),
          ts(
            'Volume used',
            'Bytes used on each replica volume.',
            [q(`kubelet_volume_stats_used_bytes{${pvc}}`, '{{persistentvolumeclaim}}')],
            'bytes',
            { w: 12 },
          ),
          ts(
            'Free disk (replica view)',
            "Free share of each replica's data directory as the replica measures it (statfs), and whether it is disk-full: below its reserve (storageMinFreeBytes) or after an ENOSPC it refuses produce 503 STORAGE_FULL (DaftkaStorageFull pages).",
            [
              q(
                `max by (pod) (daftka_storage_free_bytes{${RT}} / daftka_storage_capacity_bytes{${RT}})`,
                'free {{pod}}',
              ),
              q(`max by (pod) (daftka_storage_disk_full{${RT}})`, 'disk full {{pod}}'),
            ],
            'percentunit',
            { w: 24, min: 0, max: 1 },
          ),
          ts(
            'Retention',
            'Log start advances by retention, and how far the log start moved.',
            [
              q(
                `sum by (topic, partition) (increase(daftka_retention_advances_total{${RT}}[${RATE}]))`,
                'advances {{topic}}/{{partition}}',
              ),
              q(
                `max by (topic, partition) (deriv(daftka_partition_log_start_offset{${RT}}[${RATE}]))`,
                'offsets/s {{topic}}/{{partition}}',
              ),
            ],
            'short',
            { w: 24 },
          ),
        ],
      },
      {
        row: 'Replica client port',
        panels: [
          ts(
            'Calls by method and code',
            'Client-port calls (from gateways and the CLI) answered per second.',
            [q(`sum by (method, code) (rate(daftka_rpc_server_requests_total{${R}}[${RATE}]))`, '{{method}} {{code}}')],
            'reqps',
            { w: 8 },
          ),
          ts(
            'Call latency p99',
            'From a call being read to its answer being written, by method.',
            [
              q(
                `histogram_quantile(0.99, sum by (method, le) (rate(daftka_rpc_server_request_duration_seconds_bucket{${R}}[${RATE}])))`,
                '{{method}}',
              ),
            ],
            's',
            { w: 8 },
          ),
          ts(
            'In flight and refused',
            'Calls running now, open connections, and calls or connections refused by a bound.',
            [
              q(`sum (daftka_rpc_server_inflight_requests{${R}})`, 'in flight'),
              q(`sum (daftka_rpc_server_connections{${R}})`, 'connections'),
              q(`sum by (reason) (rate(daftka_rpc_server_rejected_total{${R}}[${RATE}]))`, 'refused {{reason}}'),
              q(`sum by (reason) (rate(daftka_rpc_server_bad_frames_total{${R}}[${RATE}]))`, 'bad frame {{reason}}'),
            ],
            'short',
            { w: 8 },
          ),
        ],
      },
    ],
  );
}

// ---- Operator ----------------------------------------------------------------------------------

function operator(): Dashboard {
  return build(
    'daftka-operator',
    'Daftka / Operator',
    'Reconciles, the work queue, leader election, the rebalancer and the Kubernetes API calls of the operator.',
    [datasourceVar, namespaceVar],
    [
      {
        row: 'Reconcile',
        panels: [
          ts(
            'Reconciles by kind and result',
            'Reconciles finished per second (kind: topic or rebalance).',
            [
              q(
                `sum by (kind, result) (rate(daftka_operator_reconcile_duration_seconds_count{${O}}[${RATE}]))`,
                '{{kind}} {{result}}',
              ),
            ],
            'short',
            { w: 8, stack: true },
          ),
          ts(
            'Reconcile errors',
            'Reconciles that failed and were requeued with backoff, per second.',
            [q(`sum by (kind) (rate(daftka_operator_reconcile_errors_total{${O}}[${RATE}]))`, '{{kind}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Reconcile duration p99',
            'Time one reconcile takes, by kind.',
            [
              q(
                `histogram_quantile(0.99, sum by (kind, le) (rate(daftka_operator_reconcile_duration_seconds_bucket{${O}}[${RATE}])))`,
                '{{kind}}',
              ),
            ],
            's',
            { w: 8 },
          ),
          ts(
            'Work queue depth',
            'Keys waiting to be reconciled, per operator pod.',
            [q(`max by (pod) (daftka_operator_workqueue_depth{${O}})`, '{{pod}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Leader',
            'Which operator pod holds the Lease (1).',
            [q(`max by (pod) (daftka_operator_is_leader{${O}})`, '{{pod}}')],
            'short',
            { w: 8, min: 0, max: 1 },
          ),
          ts(
            'Topics managed',
            'Topics the active operator manages.',
            [q(`max (daftka_operator_topics{${O}} and on (pod) (daftka_operator_is_leader{${O}} == 1))`, 'topics')],
            'short',
            { w: 8 },
          ),
        ],
      },
      {
        row: 'Rebalancer',
        panels: [
          ts(
            'Actions',
            'Rebalancer decisions carried out (leadership transfers, pod deletions for moves and rolls), by outcome.',
            [
              q(
                `sum by (action, outcome) (increase(daftka_operator_rebalance_actions_total{${O}}[${RATE}]))`,
                '{{action}} {{outcome}}',
              ),
            ],
            'short',
            { w: 8 },
          ),
          ts(
            'Blocked passes',
            'Passes in which a wanted move or roll had to wait, by reason (e.g. a follower not caught up).',
            [q(`sum by (reason) (increase(daftka_operator_rebalance_blocked_total{${O}}[${RATE}]))`, '{{reason}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Moves in flight and leader skew',
            'Partitions with a move or roll in progress; most minus fewest leaders on one node.',
            [
              q(`max (daftka_operator_moves_in_flight{${O}})`, 'moves in flight'),
              q(`max (daftka_operator_leader_skew{${O}})`, 'leader skew'),
            ],
            'short',
            { w: 8 },
          ),
        ],
      },
      {
        row: 'Kubernetes API and NATS',
        panels: [
          ts(
            'API requests by code',
            'Requests to the Kubernetes API per second, by method and HTTP code.',
            [
              q(
                `sum by (method, code) (rate(daftka_operator_kube_requests_total{${O}}[${RATE}]))`,
                '{{method}} {{code}}',
              ),
            ],
            'reqps',
            { w: 8 },
          ),
          ts(
            'Server-side applies',
            'Applies sent, and applies skipped because the object was already as desired.',
            [q(`sum by (kind, result) (rate(daftka_operator_applies_total{${O}}[${RATE}]))`, '{{kind}} {{result}}')],
            'short',
            { w: 8 },
          ),
          ts(
            'Replica reports and NATS',
            'Replica reports received on NATS by kind and result; 1 while connected.',
            [
              q(
                `sum by (kind, result) (rate(daftka_operator_nats_reports_total{${O}}[${RATE}]))`,
                '{{kind}} {{result}}',
              ),
              q(`min (daftka_operator_nats_connected{${O}})`, 'connected'),
            ],
            'short',
            { w: 8 },
          ),
        ],
      },
      { row: 'Operator processes', panels: processPanels(JOBS.operator, 'operator') },
    ],
  );
}

export function dashboards(): Dashboard[] {
  return [overview(), partitions(), gateway(), storage(), operator()];
}

/** Every PromQL expression in a dashboard: panel targets and variable queries. */
export function dashboardQueries(d: Dashboard): Array<{ where: string; expr: string }> {
  const out: Array<{ where: string; expr: string }> = [];
  for (const p of d.panels) for (const t of p.targets ?? []) out.push({ where: `${d.uid} / ${p.title}`, expr: t.expr });
  for (const v of d.templating.list as Array<{ name: string; definition?: string }>)
    if (v.definition)
      out.push({ where: `${d.uid} / $${v.name}`, expr: v.definition.replace(/^label_values\((.*),\s*\w+\)$/, '$1') });
  return out;
}

import client from 'prom-client';

/**
 * prom-client helpers that enforce the naming rules of DESIGN §9:
 * prefix `daftka_`, snake_case, base units as suffix (`_seconds`, `_bytes`), counters end in
 * `_total`, nothing else does, and labels come from a bounded allow-list (never keys or ids).
 */

export const METRIC_PREFIX = 'daftka_';
/** Labels with bounded cardinality. Record keys, request ids, offsets and tokens are never labels. */
export const ALLOWED_LABELS = new Set([
  'topic',
  'partition',
  'group',
  'route',
  'method',
  'code',
  'status',
  'role',
  'reason',
  'result',
  'action',
  'kind',
  'class',
  'peer',
  'op',
  'component',
  'outcome',
  'mode',
  'state',
  'alert',
]);
const UNIT_SUFFIXES = ['_seconds', '_bytes', '_ratio', '_total', '_info', '_records', '_entries', '_messages'];

export class MetricNameError extends Error {
  constructor(name: string, why: string) {
    super(`metric ${JSON.stringify(name)}: ${why}`);
    this.name = 'MetricNameError';
  }
}

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** Throws MetricNameError naming the rule broken. Exported for tests and for dashboards-as-code. */
export function checkMetricName(name: string, type: MetricType, labelNames: readonly string[] = []): void {
  if (!name.startsWith(METRIC_PREFIX)) throw new MetricNameError(name, `must start with "${METRIC_PREFIX}"`);
  if (!/^[a-z][a-z0-9_]*[a-z0-9]$/.test(name) || name.includes('__'))
    throw new MetricNameError(name, 'must be snake_case: lowercase letters, digits and single underscores');
  if (/_(ms|milliseconds|us|microseconds|kb|mb|kib|mib|minutes|hours)(_|$)/.test(name))
    throw new MetricNameError(name, 'must use base units (_seconds, _bytes)');
  if (type === 'counter' && !name.endsWith('_total')) throw new MetricNameError(name, 'a counter must end in "_total"');
  if (type !== 'counter' && name.endsWith('_total'))
    throw new MetricNameError(name, 'only counters may end in "_total"');
  if (type === 'histogram' && !UNIT_SUFFIXES.some((s) => name.endsWith(s)))
    throw new MetricNameError(name, `a histogram must end in a unit suffix (${UNIT_SUFFIXES.join(', ')})`);
  for (const l of labelNames)
    if (!ALLOWED_LABELS.has(l))
      throw new MetricNameError(
        name,
        `label "${l}" is not in the bounded allow-list (${[...ALLOWED_LABELS].join(', ')})`,
      );
}

export interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

/** A registry per program, with Node process metrics (event-loop lag, heap, GC) prefixed `daftka_`. */
export function createRegistry(component: string, opts: { defaultMetrics?: boolean } = {}): client.Registry {
  const registry = new client.Registry();
  registry.setDefaultLabels({ component });
  if (opts.defaultMetrics !== false) client.collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

export function counter<L extends string>(reg: client.Registry, o: MetricOptions<L>): client.Counter<L> {
  checkMetricName(o.name, 'counter', o.labelNames);
  return new client.Counter<L>({ name: o.name, help: o.help, labelNames: o.labelNames ?? [], registers: [reg] });
}

export function gauge<L extends string>(
  reg: client.Registry,
  o: MetricOptions<L> & { collect?: (this: client.Gauge<L>) => void | Promise<void> },
): client.Gauge<L> {
  checkMetricName(o.name, 'gauge', o.labelNames);
  return new client.Gauge<L>({
    name: o.name,
    help: o.help,
    labelNames: o.labelNames ?? [],
    registers: [reg],
    ...(o.collect ? { collect: o.collect } : {}),
  });
}

/** Latency buckets from 100 µs to 10 s, fine enough for a p99 ≤ 2 ms objective. */
export const LATENCY_BUCKETS_SECONDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export function histogram<L extends string>(
  reg: client.Registry,
  o: MetricOptions<L> & { buckets?: number[] },
): client.Histogram<L> {
  checkMetricName(o.name, 'histogram', o.labelNames);
  return new client.Histogram<L>({
    name: o.name,
    help: o.help,
    labelNames: o.labelNames ?? [],
    buckets: o.buckets ?? LATENCY_BUCKETS_SECONDS,
    registers: [reg],
  });
}

/**
 * Get-or-create wrappers: several transports or RPC clients in one
 * process (e.g. one RpcClient per leader endpoint in the gateway) share one registry, and each
 * metric may be registered only once there. Names and labels are checked by the common helpers.
 */
export function sharedCounter<L extends string>(reg: client.Registry, o: MetricOptions<L>): client.Counter<L> {
  return (reg.getSingleMetric(o.name) as client.Counter<L> | undefined) ?? counter(reg, o);
}

export function sharedGauge<L extends string>(reg: client.Registry, o: MetricOptions<L>): client.Gauge<L> {
  return (reg.getSingleMetric(o.name) as client.Gauge<L> | undefined) ?? gauge(reg, o);
}

export function sharedHistogram<L extends string>(
  reg: client.Registry,
  o: MetricOptions<L> & { buckets?: number[] },
): client.Histogram<L> {
  return (reg.getSingleMetric(o.name) as client.Histogram<L> | undefined) ?? histogram(reg, o);
}

export { client as promClient };

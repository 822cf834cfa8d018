import type { promClient } from '../../common/metrics';
import { counter, gauge, histogram, type MetricOptions } from '../../common/metrics';

type Registry = promClient.Registry;

/**
 * Get-or-create wrappers over common/metrics.ts: several transports or RPC clients in one
 * process (e.g. one RpcClient per leader endpoint in the gateway) share one registry, and each
 * metric may be registered only once there. Names and labels are checked by the common helpers.
 */
export function sharedCounter<L extends string>(reg: Registry, o: MetricOptions<L>): promClient.Counter<L> {
  return (reg.getSingleMetric(o.name) as promClient.Counter<L> | undefined) ?? counter(reg, o);
}

export function sharedGauge<L extends string>(reg: Registry, o: MetricOptions<L>): promClient.Gauge<L> {
  return (reg.getSingleMetric(o.name) as promClient.Gauge<L> | undefined) ?? gauge(reg, o);
}

export function sharedHistogram<L extends string>(
  reg: Registry,
  o: MetricOptions<L> & { buckets?: number[] },
): promClient.Histogram<L> {
  return (reg.getSingleMetric(o.name) as promClient.Histogram<L> | undefined) ?? histogram(reg, o);
}

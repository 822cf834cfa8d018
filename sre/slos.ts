/**
 * The service level objectives (docs/slos.md) and the recording rules that measure them. The SLIs
 * are read at the gateway, which is what clients see: every produce and fetch passes through it.
 * Burn-rate alerts (sre/alerts.ts) compare these ratios with the error budget.
 */
import { JOBS } from './config';

export type SloId = 'produce_availability' | 'produce_latency' | 'fetch_availability';

export interface Slo {
  id: SloId;
  /** Human name, as in docs/slos.md. */
  title: string;
  /** Fraction of good events, e.g. 0.999. */
  objective: number;
  /** Compliance window, in days. */
  windowDays: number;
  /** The recording rule base name: `<record>` + `_rate<window>` is the bad-event ratio. */
  record: string;
  /** PromQL of the bad-event ratio over `[w]`, aggregated by namespace. */
  badRatio(window: string): string;
  /** Alert name stem: `<stem>FastBurn` (page) and `<stem>SlowBurn` (ticket). */
  alertStem: string;
  /** What "bad" means, for annotations and docs. */
  badEvents: string;
}

const gw = `job="${JOBS.gateway}"`;

/**
 * Ratio of 5xx answers on one gateway route. A route that never answered 5xx has no such series:
 * `or … * 0` makes the numerator 0 then, so the ratio (and the dashboards' budget) reads 0, not
 * "no data".
 */
function errorRatio(route: string) {
  return (w: string) => {
    const all = `sum by (namespace) (rate(daftka_gateway_requests_total{${gw}, route="${route}"}[${w}]))`;
    return (
      `(\n` +
      `  sum by (namespace) (rate(daftka_gateway_requests_total{${gw}, route="${route}", code=~"5.."}[${w}]))\n` +
      `  or\n` +
      `  ${all} * 0\n` +
      `)\n` +
      `/\n` +
      all
    );
  };
}

/** The produce latency threshold of the latency SLO; it must be a bucket boundary (common/metrics.ts). */
export const PRODUCE_LATENCY_THRESHOLD_SECONDS = 0.05;

export const SLOS: readonly Slo[] = [
  {
    id: 'produce_availability',
    title: 'Produce availability',
    objective: 0.999,
    windowDays: 30,
    record: 'namespace:daftka_produce_errors:ratio',
    badRatio: errorRatio('produce'),
    alertStem: 'DaftkaProduceAvailability',
    badEvents: 'produce requests answered 5xx',
  },
  {
    id: 'produce_latency',
    title: 'Produce latency',
    objective: 0.99,
    windowDays: 30,
    record: 'namespace:daftka_produce_slow_requests:ratio',
    badRatio: (w) =>
      `1 - (\n` +
      `  sum by (namespace) (rate(daftka_gateway_request_duration_seconds_bucket{${gw}, route="produce", le="${PRODUCE_LATENCY_THRESHOLD_SECONDS}"}[${w}]))\n` +
      `  /\n` +
      `  sum by (namespace) (rate(daftka_gateway_request_duration_seconds_count{${gw}, route="produce"}[${w}]))\n` +
      `)`,
    alertStem: 'DaftkaProduceLatency',
    badEvents: `produce requests slower than ${PRODUCE_LATENCY_THRESHOLD_SECONDS * 1000} ms`,
  },
  {
    id: 'fetch_availability',
    title: 'Fetch availability',
    objective: 0.999,
    windowDays: 30,
    record: 'namespace:daftka_fetch_errors:ratio',
    badRatio: errorRatio('fetch'),
    alertStem: 'DaftkaFetchAvailability',
    badEvents: 'fetch requests answered 5xx',
  },
];

/**
 * Multiwindow, multi-burn-rate alerting (the Google SRE workbook, chapter 5): an alert needs both
 * its long window (is enough budget gone?) and its short window (is it still burning?) above the
 * burn rate. 14.4× over 1 h spends 2 % of a 30-day budget; 6× over 6 h spends 5 %; 3× over 1 d
 * 10 %; 1× over 3 d 10 %.
 */
export interface BurnWindow {
  long: string;
  short: string;
  factor: number;
  severity: 'page' | 'ticket';
}

export const BURN_WINDOWS: readonly BurnWindow[] = [
  { long: '1h', short: '5m', factor: 14.4, severity: 'page' },
  { long: '6h', short: '30m', factor: 6, severity: 'page' },
  { long: '1d', short: '2h', factor: 3, severity: 'ticket' },
  { long: '3d', short: '6h', factor: 1, severity: 'ticket' },
];

/** Every window a recording rule is needed for (burn rates), plus the compliance window. */
export function sloWindows(slo: Slo): string[] {
  const ws = new Set<string>();
  for (const b of BURN_WINDOWS) {
    ws.add(b.short);
    ws.add(b.long);
  }
  ws.add(`${slo.windowDays}d`);
  return [...ws];
}

export const recordName = (slo: Slo, window: string): string => `${slo.record}_rate${window}`;

/** The error budget as a fraction (1 − objective), rounded so that 1 − 0.999 prints as 0.001. */
export const errorBudget = (slo: Slo): number => Number((1 - slo.objective).toPrecision(6));

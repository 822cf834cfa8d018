/**
 * Latency histograms (HDR, microseconds, 3 significant digits), medians and spreads over
 * repeats, and plain-text / Markdown tables.
 */
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export function summarize(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, p50Ms: NaN, p99Ms: NaN, p999Ms: NaN, maxMs: NaN };
  return {
    count: h.totalCount,
    p50Ms: h.getValueAtPercentile(50) / 1000,
    p99Ms: h.getValueAtPercentile(99) / 1000,
    p999Ms: h.getValueAtPercentile(99.9) / 1000,
    maxMs: h.maxValue / 1000,
  };
}

export function merge(hs: Histogram[]): Histogram {
  const out = newHistogram();
  for (const h of hs) out.add(h);
  return out;
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Spread of repeats as ± half the min–max range relative to the median, in percent. */
export function spreadPct(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x));
  if (s.length < 2) return NaN;
  const m = median(s);
  return m === 0 ? NaN : ((Math.max(...s) - Math.min(...s)) / 2 / m) * 100;
}

export function fmt(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  const d = digits ?? (a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}×` : '–';
}

/** A Markdown table (numbers right-aligned), readable as plain text too. */
export function table(headers: string[], rows: string[][], align?: ('l' | 'r')[]): string {
  const al = align ?? headers.map((_, i) => (i === 0 ? 'l' : 'r'));
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length), 3));
  const pad = (s: string, i: number) => (al[i] === 'r' ? s.padStart(w[i]) : s.padEnd(w[i]));
  const line = (r: string[]) => `| ${r.map((c, i) => pad(c ?? '', i)).join(' | ')} |`;
  const sep = `| ${w.map((n, i) => (al[i] === 'r' ? '-'.repeat(n - 1) + ':' : '-'.repeat(n))).join(' | ')} |`;
  return [line(headers), sep, ...rows.map(line)].join('\n');
}

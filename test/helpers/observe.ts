/**
 * For tests that run servers inside the test process (peer transport, RPC client and server): a
 * quiet logger, a private metrics registry and its values, and polling until a condition holds.
 */
import { PassThrough } from 'node:stream';
import { createLogger, type Logger } from '../../common/log';
import { createRegistry, type promClient } from '../../common/metrics';

/** A logger whose lines go nowhere (set DAFTKA_TEST_LOGS=1 to see them on stdout). */
export function quietLogger(component = 'test'): Logger {
  if (process.env.DAFTKA_TEST_LOGS === '1') return createLogger(component, { level: 'debug' });
  const sink = new PassThrough();
  sink.resume();
  return createLogger(component, { level: 'error', stream: sink });
}

export function testRegistry(): promClient.Registry {
  return createRegistry('test', { defaultMetrics: false });
}

/** Current value of one counter/gauge series (0 when the series does not exist yet). */
export async function metricValue(
  reg: promClient.Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = reg.getSingleMetric(name);
  if (!m) return 0;
  const got = await m.get();
  const series = got.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return series?.value ?? 0;
}

/** Poll until `check` returns true (or stops throwing); fails with the last error after timeoutMs. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < until) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms));

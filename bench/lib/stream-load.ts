/**
 * Streaming produce as a client sees it (`POST /v1/topics/{t}/records:stream`): one connection,
 * one record per NDJSON line, written as fast as the socket drains for `durationMs`; every
 * result line parsed. Returns what was written (partition, offset, value) for read-back, the
 * lines answered `written` inside the measured window, and the errors by code.
 */
import { request } from 'node:http';

export interface StreamLoadResult {
  /** Lines answered `written` whose answer arrived inside the window (after the warm-up). */
  okInWindow: number;
  windowMs: number;
  errors: Record<string, number>;
  written: Array<{ partition: number; offset: number; value: string }>;
}

export function streamLoad(o: {
  baseUrl: string;
  topic: string;
  valueBytes: number;
  run: number;
  warmupMs: number;
  durationMs: number;
  onWindowStart?: () => void;
  onWindowEnd?: () => void;
}): Promise<StreamLoadResult> {
  return new Promise((resolve, reject) => {
    const pad = 'x'.repeat(o.valueBytes);
    const values: string[] = [];
    const written: StreamLoadResult['written'] = [];
    const errors: Record<string, number> = {};
    let okInWindow = 0;
    let inWindow = false;
    let windowStart = 0;
    let windowEnd = 0;
    let stop = false;
    const req = request(
      `${o.baseUrl}/v1/topics/${o.topic}/records:stream`,
      { method: 'POST', headers: { 'content-type': 'application/x-ndjson' } },
      (res) => {
        let rest = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const text = rest + chunk;
          const lines = text.split('\n');
          rest = lines.pop()!;
          for (const l of lines) {
            const a = JSON.parse(l) as { line: number; partition?: number; offset?: number; error?: { code?: string } };
            if (a.error !== undefined) {
              const k = a.error.code ?? 'unknown';
              errors[k] = (errors[k] ?? 0) + 1;
              continue;
            }
            written.push({ partition: a.partition!, offset: a.offset!, value: values[a.line - 1] });
            if (inWindow) okInWindow++;
          }
        });
        res.on('end', () => resolve({ okInWindow, windowMs: windowEnd - windowStart, errors, written }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    let i = 0;
    const pump = () => {
      while (!stop) {
        const value = `s${o.run}-${i}-${pad}`.slice(0, Math.max(o.valueBytes, 16));
        values.push(value);
        i++;
        if (!req.write(`{"value":"${value}"}\n`)) return void req.once('drain', pump);
      }
    };
    setTimeout(() => {
      inWindow = true;
      windowStart = Date.now();
      o.onWindowStart?.();
      setTimeout(() => {
        inWindow = false;
        windowEnd = Date.now();
        o.onWindowEnd?.();
        stop = true;
        req.end();
      }, o.durationMs);
    }, o.warmupMs);
    pump();
  });
}

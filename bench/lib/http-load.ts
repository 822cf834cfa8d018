/**
 * Closed-loop HTTP load: `inflight` workers, each with its own keep-alive connection, send a
 * request, wait for the answer, send the next — for `durationMs` after a `warmupMs` that is not
 * measured. Latency is recorded per request (send → complete answer) in an HDR histogram, in
 * microseconds; requests that *complete* inside the measured window count (wherever they
 * started), so a window shorter than the latency still measures throughput.
 *
 *   const r = await closedLoop({ url: 'http://127.0.0.1:8080/v1/topics/t/records', method: 'POST',
 *                                body: '{"records":[{"value":"x"}]}', inflight: 16, durationMs: 5000 });
 *   r.ok, r.errors, r.okPerSecond, r.histogram.getValueAtPercentile(99) / 1000 // ms
 *
 * `body` may be a function of (worker, seq) for unique payloads (e.g. idempotency checks), and
 * `headers` likewise. A 2xx answer is a success unless `isOk` says otherwise; everything else is
 * counted in `errors` by "<status> <problem code>" (and "transport" for a connection failure).
 * node:http with an Agent per run (lighter per request than fetch(), which matters when the
 * load generator shares the CPUs with the system under test).
 */
import { Agent, request } from 'node:http';
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

/** An HDR histogram in µs, 1 µs to 120 s, 3 significant digits. */
export function newHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

export interface ClosedLoopOptions {
  url: string;
  method?: 'GET' | 'POST' | 'PUT';
  /** Request body, fixed or per (worker, seq). JSON content type is sent when there is a body. */
  body?: string | ((worker: number, seq: number) => string);
  headers?: Record<string, string> | ((worker: number, seq: number) => Record<string, string>);
  /** Requests in flight (= workers = connections). */
  inflight: number;
  durationMs: number;
  /** Run before the measured window (not counted). Default 0. */
  warmupMs?: number;
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
  /** Success test on an answer (default: 2xx). */
  isOk?: (status: number, body: string) => boolean;
  /** Called with every successful answer inside the window (e.g. to count records or verify). */
  onOk?: (body: string, worker: number, seq: number) => void;
  /** Called with every answer, warm-up and requests finishing after the window included (status 0: transport error). */
  onAnswer?: (status: number, body: string) => void;
}

export interface ClosedLoopResult {
  /** Successful requests completed inside the measured window. */
  ok: number;
  /** Failed requests inside the window by "<status> <code>" ("transport" for connection errors). */
  errors: Record<string, number>;
  /** Latency of the successful requests, µs. */
  histogram: Histogram;
  /** Measured window length, ms (from its start to the last completion inside it). */
  elapsedMs: number;
  okPerSecond: number;
  /** Request body bytes sent inside the window (successful requests). */
  bytesSent: number;
}

function problemCode(body: string): string {
  try {
    const p = JSON.parse(body) as { code?: unknown };
    return typeof p.code === 'string' ? p.code : '';
  } catch {
    return '';
  }
}

function send(
  agent: Agent,
  u: URL,
  method: string,
  body: string | undefined,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const h: Record<string, string | number> = { ...headers };
    if (body !== undefined) {
      h['content-type'] ??= 'application/json';
      h['content-length'] = Buffer.byteLength(body);
    }
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Run the closed loop; see the module comment. */
export async function closedLoop(o: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const u = new URL(o.url);
  const method = o.method ?? (o.body !== undefined ? 'POST' : 'GET');
  const agent = new Agent({ keepAlive: true, maxSockets: o.inflight, maxFreeSockets: o.inflight });
  const isOk = o.isOk ?? ((s: number) => s >= 200 && s < 300);
  const histogram = newHistogram();
  const errors: Record<string, number> = {};
  let ok = 0;
  let bytesSent = 0;
  const t0 = performance.now();
  const windowStart = t0 + (o.warmupMs ?? 0);
  const windowEnd = windowStart + o.durationMs;
  let lastDone = windowStart;

  const worker = async (w: number) => {
    for (let seq = 0; performance.now() < windowEnd; seq++) {
      const body = typeof o.body === 'function' ? o.body(w, seq) : o.body;
      const headers = typeof o.headers === 'function' ? o.headers(w, seq) : (o.headers ?? {});
      const start = performance.now();
      let status = 0;
      let text = '';
      let failed = false;
      try {
        ({ status, text } = await send(agent, u, method, body, headers, o.timeoutMs ?? 30_000));
      } catch {
        failed = true;
      }
      const end = performance.now();
      o.onAnswer?.(failed ? 0 : status, text);
      if (end < windowStart || end > windowEnd) continue; // completed during warm-up, or after the window
      lastDone = Math.max(lastDone, end);
      if (!failed && isOk(status, text)) {
        ok++;
        bytesSent += body === undefined ? 0 : Buffer.byteLength(body);
        histogram.recordValue(Math.max(1, Math.round((end - start) * 1000)));
        o.onOk?.(text, w, seq);
      } else {
        const k = failed ? 'transport' : `${status} ${problemCode(text)}`.trim();
        errors[k] = (errors[k] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: o.inflight }, (_, w) => worker(w)));
  agent.destroy();
  const elapsedMs = Math.max(1, lastDone - windowStart);
  return { ok, errors, histogram, elapsedMs, okPerSecond: (ok * 1000) / elapsedMs, bytesSent };
}

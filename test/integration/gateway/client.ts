import type { LocalStack } from '../../helpers/local-stack';

/** What a well-behaved client of the gateway does, for the end-to-end tests. */

export interface Problem {
  status: number;
  code: string;
  retryable: boolean;
  retry_after_ms?: number;
  detail?: string;
  [k: string]: unknown;
}

export interface ProduceAnswer {
  results: Array<{ partition: number; offset: number; status: 'written' | 'duplicate' }>;
}

export interface RecordOut {
  offset: number;
  timestamp: number;
  key?: string | null;
  key_b64?: string;
  value?: string;
  value_b64?: string;
  headers: Array<{ name: string; value?: string; value_b64?: string }>;
}

export interface FetchAnswer {
  records: RecordOut[];
  next_offset: number;
  high_watermark: number;
  log_start_offset: number;
}

/** One failed attempt of an idempotent produce, as the client saw it. */
export interface Attempt {
  status: number;
  code: string;
  retryable: boolean;
  retryAfter: string | null;
  ms: number;
}

/** A retryable answer per DESIGN §6: 503/504 with retryable=true. */
export function isRetryable(status: number, body: unknown): boolean {
  const p = body as Partial<Problem> | null;
  return (status === 503 || status === 504) && p?.retryable === true;
}

/**
 * Produce with an Idempotency-Key, retrying the identical request on retryable answers (and on
 * transport errors) until it succeeds or `deadlineMs` passes. Every failed attempt is returned.
 */
export async function produceIdempotent(
  stack: LocalStack,
  topic: string,
  records: unknown[],
  key: string,
  opts: { deadlineMs?: number; maxPauseMs?: number } = {},
): Promise<{ ok: ProduceAnswer | null; failures: Attempt[]; final?: { status: number; body: unknown } }> {
  const failures: Attempt[] = [];
  const deadline = Date.now() + (opts.deadlineMs ?? 30_000);
  for (;;) {
    const t0 = performance.now();
    try {
      const r = await stack.http<ProduceAnswer | Problem>('POST', `/v1/topics/${topic}/records`, {
        body: { records },
        headers: { 'idempotency-key': key },
        timeoutMs: 20_000,
      });
      if (r.status === 200) return { ok: r.body as ProduceAnswer, failures };
      const p = r.body as Problem;
      failures.push({
        status: r.status,
        code: p?.code ?? '?',
        retryable: p?.retryable === true,
        retryAfter: r.headers.get('retry-after'),
        ms: r.ms,
      });
      if (!isRetryable(r.status, r.body) || Date.now() > deadline)
        return { ok: null, failures, final: { status: r.status, body: r.body } };
      const pause = Math.min(opts.maxPauseMs ?? 250, p.retry_after_ms ?? 100);
      await new Promise((res) => setTimeout(res, pause));
    } catch (err) {
      // The connection to the gateway itself failed (it was never killed in these tests, so this is a finding).
      failures.push({
        status: 0,
        code: `TRANSPORT:${(err as Error).message}`,
        retryable: false,
        retryAfter: null,
        ms: performance.now() - t0,
      });
      if (Date.now() > deadline) return { ok: null, failures };
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}

/** Every record of a partition from `from` up to the high watermark (retrying retryable answers). */
export async function readAll(stack: LocalStack, topic: string, partition: number, from = 0): Promise<RecordOut[]> {
  const out: RecordOut[] = [];
  let offset = from;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await stack.http<FetchAnswer | Problem>(
      'GET',
      `/v1/topics/${topic}/partitions/${partition}/records?offset=${offset}&max_records=1000&encoding=utf8`,
    );
    if (r.status !== 200) {
      if (isRetryable(r.status, r.body) && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 200));
        continue;
      }
      throw new Error(`fetch ${topic}/${partition}@${offset}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    const f = r.body as FetchAnswer;
    out.push(...f.records);
    if (f.records.length === 0 || f.next_offset >= f.high_watermark) return out;
    offset = f.next_offset;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

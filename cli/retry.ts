import { sleep } from './context';
import { ApiError, ConnectionError } from './errors';

/**
 * Retry a call that is safe to send again (a produce with its Idempotency-Key, a fetch, a commit):
 * on a retryable problem (429, 503, 504, or `retryable: true`) or no answer, wait the gateway's
 * `retry_after_ms` or a capped, jittered backoff (200 ms doubling to 5 s), then send it again.
 */
export interface RetryOptions {
  retries: number;
  signal?: AbortSignal;
  onRetry?: (err: Error, attempt: number, delayMs: number) => void;
}

export function isRetryable(err: unknown): boolean {
  return (err instanceof ApiError && err.retryable) || err instanceof ConnectionError;
}

export function backoffMs(attempt: number, retryAfterMs?: number, random: () => number = Math.random): number {
  const base = Math.min(5000, 200 * 2 ** attempt);
  const jittered = base / 2 + random() * (base / 2);
  return Math.max(retryAfterMs ?? 0, Math.round(jittered));
}

export async function withRetries<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= opts.retries || !isRetryable(err) || opts.signal?.aborted) throw err;
      const delay = backoffMs(attempt, err instanceof ApiError ? err.problem.retry_after_ms : undefined);
      opts.onRetry?.(err as Error, attempt + 1, delay);
      await sleep(delay, opts.signal);
      if (opts.signal?.aborted) throw err;
    }
  }
}

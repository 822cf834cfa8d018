import { DaftkaError, isDaftkaError } from '../common/errors';

/**
 * What a failed call tells the router about its request: never delivered (safe to send anywhere,
 * even a produce), or delivered with no answer (a produce's outcome is then unknown), and the
 * COMMIT_UNKNOWN answer that says so. See the contract in leader-router.ts.
 */

const NOT_DELIVERED_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
]);

export class DeadlineExceeded extends Error {
  constructor() {
    super('router deadline exceeded');
  }
}

/** The request certainly never reached a replica (safe to send elsewhere, even a produce). */
export function isNotDelivered(err: unknown): boolean {
  if (isDaftkaError(err)) return err.code === 'UNAVAILABLE' && err.extra?.delivery !== 'maybe_sent';
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && NOT_DELIVERED_CODES.has(code);
}

/** The request may have reached a replica, with no answer: a produce may or may not have committed. */
export function isOutcomeUnknown(err: unknown): boolean {
  if (err instanceof DeadlineExceeded) return true;
  if (isDaftkaError(err)) return err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT' || err.code === 'COMMIT_UNKNOWN';
  return true;
}

export function describe(err: unknown): string {
  if (isDaftkaError(err)) return err.code === 'UNAVAILABLE' ? 'connection to the leader lost' : err.message;
  return 'connection to the leader lost';
}

export function commitUnknown(topic: string, partition: number, why: string, cause?: unknown): DaftkaError {
  return new DaftkaError(
    'COMMIT_UNKNOWN',
    `outcome of the write to ${topic}/${partition} is unknown (${why}); retry with the same Idempotency-Key`,
    { retryAfterMs: 1000, cause },
  );
}

import { DaftkaError, isDaftkaError } from '../../common/errors';

/**
 * Multi-partition requests (produce, offset commits, leased acks, dead-letter jobs) are not
 * atomic across partitions: when some fail, the answer is the first failure's problem carrying
 * `partial_results`, what happened on each partition (PROBLEM_SCHEMA in api-spec.ts).
 */

/** The first failure, re-raised with what happened on every partition of the request. */
export function withPartialResults(err: unknown, partial: unknown[]): DaftkaError {
  const e = isDaftkaError(err)
    ? err
    : new DaftkaError('INTERNAL', 'internal error; see server logs for the request id', { cause: err });
  return new DaftkaError(e.code, e.message, {
    ...(e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}),
    ...(e.leaderHint !== undefined ? { leaderHint: e.leaderHint } : {}),
    extra: { ...(e.extra ?? {}), partial_results: partial },
    cause: e.cause ?? err,
  });
}

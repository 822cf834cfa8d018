/**
 * Typed error families with stable codes, and the one mapping from them to HTTP
 * problem+json (RFC 9457). Every program raises these; nothing else decides a status code.
 */

export const ERROR_CODES = {
  // 4xx: the caller's input or rights
  INVALID_REQUEST: { status: 400, retryable: false, title: 'Invalid request' },
  MALFORMED_JSON: { status: 400, retryable: false, title: 'Malformed JSON body' },
  INVALID_TOKEN: { status: 400, retryable: false, title: 'Invalid lease token' },
  UNAUTHENTICATED: { status: 401, retryable: false, title: 'Authentication required' },
  FORBIDDEN: { status: 403, retryable: false, title: 'Forbidden' },
  TOPIC_NOT_FOUND: { status: 404, retryable: false, title: 'Topic not found' },
  PARTITION_NOT_FOUND: { status: 404, retryable: false, title: 'Partition not found' },
  GROUP_NOT_FOUND: { status: 404, retryable: false, title: 'Group not found' },
  NOT_FOUND: { status: 404, retryable: false, title: 'Not found' },
  OFFSET_OUT_OF_RANGE: { status: 416, retryable: false, title: 'Offset out of range' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, title: 'Payload too large' },
  RECORD_TOO_LARGE: { status: 413, retryable: false, title: 'Record too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, title: 'Unsupported media type' },
  IDEMPOTENCY_CONFLICT: { status: 422, retryable: false, title: 'Idempotency key reused with a different payload' },
  PRODUCER_FENCED: { status: 409, retryable: false, title: 'Producer epoch is stale' },
  OUT_OF_ORDER_SEQUENCE: { status: 409, retryable: false, title: 'Producer sequence out of order' },
  CONFLICT: { status: 409, retryable: false, title: 'Conflict' },
  QUOTA_EXCEEDED: { status: 429, retryable: true, title: 'Quota exceeded' },
  // 5xx: ours, and all retryable unless they say otherwise
  NOT_LEADER: { status: 503, retryable: true, title: 'Not the partition leader' },
  NO_QUORUM: { status: 503, retryable: true, title: 'Partition has no quorum' },
  OVERLOADED: { status: 503, retryable: true, title: 'Overloaded' },
  STORAGE_FULL: { status: 503, retryable: true, title: 'Replica storage full' },
  UNAVAILABLE: { status: 503, retryable: true, title: 'Unavailable' },
  COMMIT_UNKNOWN: { status: 504, retryable: true, title: 'Commit outcome unknown' },
  TIMEOUT: { status: 504, retryable: true, title: 'Timed out' },
  INTERNAL: { status: 500, retryable: false, title: 'Internal error' },
  NOT_IMPLEMENTED: { status: 501, retryable: false, title: 'Not implemented' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface DaftkaErrorOptions {
  retryAfterMs?: number;
  leaderHint?: string;
  /** Extra machine-readable fields (e.g. `key`, `limit`) echoed in the problem body. */
  extra?: Record<string, unknown>;
  cause?: unknown;
}

export class DaftkaError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  readonly leaderHint?: string;
  readonly extra?: Record<string, unknown>;

  constructor(code: ErrorCode, detail: string, opts: DaftkaErrorOptions = {}) {
    super(detail, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DaftkaError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryable = ERROR_CODES[code].retryable;
    this.retryAfterMs = opts.retryAfterMs;
    this.leaderHint = opts.leaderHint;
    this.extra = opts.extra;
  }
}

export function isDaftkaError(e: unknown): e is DaftkaError {
  return e instanceof DaftkaError;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail: string;
  retryable: boolean;
  retry_after_ms?: number;
  leader_hint?: string;
  request_id?: string;
  [extra: string]: unknown;
}

export const PROBLEM_TYPE_BASE = 'https://daftka.io/problems/';

/** The one mapping from any thrown value to an RFC 9457 problem. Unknown errors become INTERNAL
 * with a generic detail: internal messages are logged, never echoed to clients. */
export function toProblem(err: unknown, requestId?: string): Problem {
  const e = isDaftkaError(err)
    ? err
    : new DaftkaError('INTERNAL', 'internal error; see server logs for the request id');
  const p: Problem = {
    ...(e.extra ?? {}),
    type: PROBLEM_TYPE_BASE + e.code.toLowerCase().replace(/_/g, '-'),
    title: ERROR_CODES[e.code].title,
    status: e.status,
    code: e.code,
    detail: e.message,
    retryable: e.retryable,
  };
  if (e.retryAfterMs !== undefined) p.retry_after_ms = e.retryAfterMs;
  if (e.leaderHint !== undefined) p.leader_hint = e.leaderHint;
  if (requestId !== undefined) p.request_id = requestId;
  return p;
}

/** HTTP headers that go with a problem (`Retry-After` is whole seconds, rounded up, at least 1). */
export function problemHeaders(p: Problem): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (p.retry_after_ms !== undefined) h['retry-after'] = String(Math.max(1, Math.ceil(p.retry_after_ms / 1000)));
  return h;
}

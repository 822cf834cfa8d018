/**
 * What can go wrong in the CLI, each with its exit code, and the one place that turns a
 * gateway problem (RFC 9457 problem+json) into the one line a person reads.
 *
 * Exit codes (docs/cli.md):
 *   0 ok · 1 usage (bad flags, config, input) · 2 not found · 3 authentication / authorisation
 *   4 unavailable or retryable (connection refused, 429, 503, 504) · 5 server error (500, 501,
 *   an answer that is not the gateway's) · 6 refused by the gateway (400, 409, 413, 415, 416, 422)
 *   7 unhealthy (status: a partition without leader; readiness: not_ready; an incomplete replay)
 */

export const EXIT = {
  OK: 0,
  USAGE: 1,
  NOT_FOUND: 2,
  AUTH: 3,
  UNAVAILABLE: 4,
  SERVER: 5,
  REFUSED: 6,
  UNHEALTHY: 7,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** The problem fields the CLI reads; the gateway may send more. */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  code?: string;
  detail?: string;
  retryable?: boolean;
  retry_after_ms?: number;
  leader_hint?: string;
  request_id?: string;
  pointer?: string;
  parameter?: string;
  limit?: number;
  reason?: string;
  partial_results?: Array<{ partition: number; status: string; code?: string; topic?: string }>;
  [extra: string]: unknown;
}

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Bad flags, arguments, config or input: nothing was sent. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.USAGE);
    this.name = 'UsageError';
  }
}

/** The gateway could not be reached, or did not answer in time. */
export class ConnectionError extends CliError {
  constructor(message: string) {
    super(message, EXIT.UNAVAILABLE);
    this.name = 'ConnectionError';
  }
}

/** The gateway answered with a problem. */
export class ApiError extends CliError {
  constructor(
    readonly problem: Problem,
    readonly method: string,
    readonly path: string,
  ) {
    super(formatProblem(problem), exitCodeFor(problem));
    this.name = 'ApiError';
  }

  get status(): number {
    return this.problem.status;
  }
  get code(): string | undefined {
    return this.problem.code;
  }
  /** Safe to send again as it was (the gateway says so, or nothing could have been done). */
  get retryable(): boolean {
    return this.problem.retryable ?? [429, 503, 504].includes(this.problem.status);
  }
}

export function exitCodeFor(p: Pick<Problem, 'status' | 'code'>): ExitCode {
  const s = p.status;
  if (s === 401 || s === 403) return EXIT.AUTH;
  if (s === 404) return EXIT.NOT_FOUND;
  if (s === 429 || s === 503 || s === 504) return EXIT.UNAVAILABLE;
  if (s >= 400 && s < 500) return EXIT.REFUSED;
  return EXIT.SERVER;
}

/** What a person should do next, for the codes where the detail alone does not say. */
function hintFor(p: Problem): string | undefined {
  switch (p.code) {
    case 'UNAUTHENTICATED':
      return 'hint: pass a valid token with --token, DAFTKA_TOKEN or a profile';
    case 'FORBIDDEN':
      return "hint: the token's principal lacks this right on the topic (Topic spec access)";
    case 'COMMIT_UNKNOWN':
      return 'hint: retry with the same idempotency key; it is then safe';
    case 'NOT_IMPLEMENTED':
      return 'hint: this gateway runs without that feature (e.g. no lease secret)';
    default:
      return undefined;
  }
}

/**
 * One line: `CODE (HTTP 404): detail; at /records/0/value; retry after 1000 ms; leader 10.0.0.1:7001;
 * hint: …; request 7c0e…`. Fields a problem lacks are left out.
 */
export function formatProblem(p: Problem): string {
  const parts: string[] = [];
  const head = `${p.code ?? p.title ?? 'ERROR'} (HTTP ${p.status})`;
  parts.push(p.detail ? `${head}: ${oneLine(p.detail)}` : head);
  if (p.pointer !== undefined) parts.push(`at ${p.pointer}`);
  if (p.parameter !== undefined) parts.push(`parameter ${p.parameter}`);
  if (p.limit !== undefined) parts.push(`limit ${p.limit}`);
  if (p.reason !== undefined) parts.push(`reason ${p.reason}`);
  if (p.retry_after_ms !== undefined) parts.push(`retry after ${p.retry_after_ms} ms`);
  if (p.leader_hint !== undefined) parts.push(`leader ${p.leader_hint}`);
  if (p.partial_results?.length)
    parts.push(
      'partitions: ' +
        p.partial_results.map((r) => `${r.partition} ${r.status}${r.code ? ` ${r.code}` : ''}`).join(', '),
    );
  const hint = hintFor(p);
  if (hint) parts.push(hint);
  if (p.request_id !== undefined) parts.push(`request ${p.request_id}`);
  return parts.join('; ');
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}

/** `daftka: <message>` for any thrown value, and its exit code. */
export function describeError(err: unknown): { line: string; exitCode: ExitCode } {
  if (err instanceof CliError) return { line: `daftka: ${oneLine(err.message)}`, exitCode: err.exitCode };
  const msg = err instanceof Error ? err.message : String(err);
  return { line: `daftka: internal error: ${oneLine(msg)}`, exitCode: EXIT.SERVER };
}

import { Backoff, RestartIntensity, sleep, type BackoffOptions, type RestartIntensityOptions } from './backoff';

/**
 * The crash-policy matrix (docs/crash-matrix.md), in code. Every failure a program meets is one
 * of these kinds; its class decides what the process does:
 *   fatal       — log, exit non-zero, let the supervisor (Kubernetes / local driver) restart us;
 *   recoverable — retry with capped, jittered backoff; repeated failure escalates to fatal;
 *   degradable  — keep serving, report not-ready or a condition, count it.
 */
export type FailureClass = 'fatal' | 'recoverable' | 'degradable';

export const FAILURE_KINDS = {
  storage_corruption: 'fatal',
  storage_io_error: 'fatal',
  invariant_violation: 'fatal',
  worker_crash: 'fatal',
  disk_full: 'degradable',
  config_invalid: 'fatal',
  repeated_startup_failure: 'fatal',
  peer_connection_lost: 'recoverable',
  dependency_timeout: 'recoverable',
  apiserver_conflict: 'recoverable',
  apiserver_unavailable: 'recoverable',
  nats_disconnected: 'degradable',
  nats_reconnect: 'recoverable',
  poison_input: 'degradable',
  quorum_lost: 'degradable',
  follower_lagging: 'degradable',
  quota_exhausted: 'degradable',
  queue_full: 'degradable',
} as const satisfies Record<string, FailureClass>;

export type FailureKind = keyof typeof FAILURE_KINDS;

/** An error that knows its failure kind. Throw these across module boundaries. */
export class ClassifiedError extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ClassifiedError';
  }
  get failureClass(): FailureClass {
    return FAILURE_KINDS[this.kind];
  }
}

const ERRNO_KINDS: Record<string, FailureKind> = {
  EIO: 'storage_io_error',
  ENOSPC: 'disk_full',
  EDQUOT: 'disk_full',
  EROFS: 'storage_io_error',
  ECONNREFUSED: 'peer_connection_lost',
  ECONNRESET: 'peer_connection_lost',
  EPIPE: 'peer_connection_lost',
  EHOSTUNREACH: 'peer_connection_lost',
  ENETUNREACH: 'peer_connection_lost',
  ETIMEDOUT: 'dependency_timeout',
  EAI_AGAIN: 'dependency_timeout',
};

/** Classify any thrown value. Unknown errors are fatal: crash-only beats limping on in an unknown state. */
export function classify(err: unknown): { kind: FailureKind | 'unknown'; class: FailureClass } {
  if (err instanceof ClassifiedError) return { kind: err.kind, class: err.failureClass };
  const e = err as { code?: unknown; message?: unknown; name?: unknown } | null;
  if (e && typeof e.code === 'string' && e.code in ERRNO_KINDS) {
    const kind = ERRNO_KINDS[e.code];
    return { kind, class: FAILURE_KINDS[kind] };
  }
  if (e && typeof e.message === 'string' && /corrupt/i.test(e.message))
    return { kind: 'storage_corruption', class: 'fatal' };
  if (e && e.name === 'InvariantViolation') return { kind: 'invariant_violation', class: 'fatal' };
  if (e && typeof e.code === 'number' && (e.code === 409 || e.code === 429))
    return { kind: 'apiserver_conflict', class: 'recoverable' };
  return { kind: 'unknown', class: 'fatal' };
}

export interface RetryOptions {
  backoff?: Partial<BackoffOptions>;
  intensity?: RestartIntensityOptions;
  signal?: AbortSignal;
  /** Called before each wait, for logs and metrics. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

export class RetriesExhaustedError extends ClassifiedError {
  constructor(cause: unknown, failures: number) {
    super(
      'repeated_startup_failure',
      `gave up after ${failures} failures: ${String((cause as Error)?.message ?? cause)}`,
      {
        cause,
      },
    );
  }
}

/**
 * Run `fn` until it succeeds, retrying recoverable failures with backoff. A fatal failure is
 * rethrown at once; more failures than the intensity allows are rethrown as fatal.
 */
export async function retryRecoverable<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const backoff = new Backoff(opts.backoff);
  const intensity = new RestartIntensity(opts.intensity ?? { maxFailures: 10, windowMs: 60_000 });
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const c = classify(err);
      if (c.class === 'fatal') throw err;
      if (intensity.record() === 'escalate') throw new RetriesExhaustedError(err, intensity.recentFailures);
      const delay = backoff.next();
      opts.onRetry?.(err, backoff.attempts, delay);
      await sleep(delay, opts.signal);
    }
  }
}

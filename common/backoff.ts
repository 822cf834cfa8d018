/**
 * Capped, jittered exponential backoff and a restart-intensity limit (crash-policy building blocks).
 * Time and randomness are injected so both are unit-testable and deterministic in tests.
 */

export interface BackoffOptions {
  /** First delay, before jitter. */
  initialMs: number;
  /** Cap on any delay, after jitter. */
  maxMs: number;
  /** Growth per attempt (≥ 1). */
  multiplier: number;
  /** Fraction of the delay that is randomised, 0..1 ("equal jitter": delay·(1-j) + rand·delay·j). */
  jitter: number;
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.5 };

export class Backoff {
  private attempt = 0;
  private readonly opts: Required<BackoffOptions>;

  constructor(opts: Partial<BackoffOptions> = {}) {
    const o = { random: Math.random, ...DEFAULT_BACKOFF, ...opts };
    if (!(o.initialMs > 0)) throw new RangeError(`backoff initialMs must be > 0, got ${o.initialMs}`);
    if (!(o.maxMs >= o.initialMs))
      throw new RangeError(`backoff maxMs (${o.maxMs}) must be ≥ initialMs (${o.initialMs})`);
    if (!(o.multiplier >= 1)) throw new RangeError(`backoff multiplier must be ≥ 1, got ${o.multiplier}`);
    if (!(o.jitter >= 0 && o.jitter <= 1)) throw new RangeError(`backoff jitter must be in [0, 1], got ${o.jitter}`);
    this.opts = o;
  }

  /** The delay before the next try, in ms: within [base·(1-jitter), base] where base = min(max, initial·mult^n). */
  next(): number {
    const { initialMs, maxMs, multiplier, jitter, random } = this.opts;
    const base = Math.min(maxMs, initialMs * Math.pow(multiplier, this.attempt));
    this.attempt++;
    return Math.round(base * (1 - jitter) + random() * base * jitter);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

export interface RestartIntensityOptions {
  /** How many failures are tolerated inside the window … */
  maxFailures: number;
  /** … of this length; one more escalates to fatal. */
  windowMs: number;
  now?: () => number;
}

/**
 * Bounded restart intensity (as in Erlang/OTP supervisors): N failures within T escalate a
 * recoverable failure to fatal, so a crash loop becomes a distinct, alerting state instead of
 * a silent spin.
 */
export class RestartIntensity {
  private failures: number[] = [];
  private readonly now: () => number;

  constructor(private readonly opts: RestartIntensityOptions) {
    if (!(opts.maxFailures >= 1)) throw new RangeError(`maxFailures must be ≥ 1, got ${opts.maxFailures}`);
    if (!(opts.windowMs > 0)) throw new RangeError(`windowMs must be > 0, got ${opts.windowMs}`);
    this.now = opts.now ?? Date.now;
  }

  /** Record a failure; 'escalate' when more than maxFailures fell inside the window. */
  record(): 'retry' | 'escalate' {
    const t = this.now();
    this.failures = this.failures.filter((f) => t - f < this.opts.windowMs);
    this.failures.push(t);
    return this.failures.length > this.opts.maxFailures ? 'escalate' : 'retry';
  }

  get recentFailures(): number {
    const t = this.now();
    return this.failures.filter((f) => t - f < this.opts.windowMs).length;
  }
}

/** Promise-based sleep that an AbortSignal can cut short. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', done);
      clearTimeout(t);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

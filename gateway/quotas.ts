import { DaftkaError } from '../common/errors';
import type { TopicInfo } from './catalog';

/**
 * Per-(topic, principal) token buckets for the quotas of a Topic spec: produce bytes/s and
 * records/s, fetch bytes/s. A bucket holds up to `burstSeconds` worth of its rate and starts full.
 *
 * A request is admitted when every bucket it draws on holds at least min(cost, capacity); it
 * then takes its whole cost, which may leave a bucket in debt. So a request larger than the
 * burst is still possible, and whoever sends it waits proportionally longer afterwards. A refusal
 * is 429 QUOTA_EXCEEDED with Retry-After = the time until the bucket holds enough again.
 *
 * Produce is checked for the whole request before any write. Fetch cannot know its size first:
 * it is admitted while the fetch bucket is not in debt and charged with the bytes returned.
 *
 * Memory is bounded: at most `maxBuckets` buckets, least recently used evicted first. An evicted
 * bucket comes back full, which can only be generous, never wrongly strict.
 */

export type QuotaKind = 'produce_bytes' | 'produce_records' | 'fetch_bytes';

export interface QuotaManagerOptions {
  /** Bound on buckets kept (LRU). Default 10 000. */
  maxBuckets?: number;
  /** Burst allowance: a bucket holds this many seconds of its rate. Default 1. */
  burstSeconds?: number;
  /** Monotonic clock in ms (tests inject one). */
  nowMs?: () => number;
}

interface Bucket {
  ratePerSecond: number;
  capacity: number;
  tokens: number;
  updatedMs: number;
}

export class QuotaManager {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxBuckets: number;
  private readonly burstSeconds: number;
  private readonly nowMs: () => number;

  constructor(opts: QuotaManagerOptions = {}) {
    this.maxBuckets = opts.maxBuckets ?? 10_000;
    this.burstSeconds = opts.burstSeconds ?? 1;
    this.nowMs = opts.nowMs ?? (() => performance.now());
    if (!(this.maxBuckets >= 1)) throw new RangeError(`maxBuckets must be ≥ 1, got ${this.maxBuckets}`);
    if (!(this.burstSeconds > 0)) throw new RangeError(`burstSeconds must be > 0, got ${this.burstSeconds}`);
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Admit a whole produce request or throw 429; nothing is taken from any bucket on refusal. */
  admitProduce(topic: TopicInfo, principal: string, bytes: number, records: number): void {
    const now = this.nowMs();
    const b = this.bucket(topic.name, principal, 'produce_bytes', topic.quotas.produceBytesPerSecond, now);
    const r = this.bucket(topic.name, principal, 'produce_records', topic.quotas.recordsPerSecond, now);
    const waitB = b ? waitMs(b, bytes) : 0;
    const waitR = r ? waitMs(r, records) : 0;
    if (waitB > 0 || waitR > 0) {
      const reason: QuotaKind = waitB >= waitR ? 'produce_bytes' : 'produce_records';
      throw quotaExceeded(topic.name, reason, Math.max(waitB, waitR));
    }
    if (b) b.tokens -= bytes;
    if (r) r.tokens -= records;
  }

  /** Admit a fetch while its bucket is not in debt, or throw 429. */
  admitFetch(topic: TopicInfo, principal: string): void {
    const b = this.bucket(topic.name, principal, 'fetch_bytes', topic.quotas.fetchBytesPerSecond, this.nowMs());
    if (!b) return;
    const w = waitMs(b, 0);
    if (w > 0) throw quotaExceeded(topic.name, 'fetch_bytes', w);
  }

  /** Charge the bytes a fetch returned. */
  chargeFetch(topic: TopicInfo, principal: string, bytes: number): void {
    const b = this.bucket(topic.name, principal, 'fetch_bytes', topic.quotas.fetchBytesPerSecond, this.nowMs());
    if (b) b.tokens -= bytes;
  }

  private bucket(
    topic: string,
    principal: string,
    kind: QuotaKind,
    ratePerSecond: number | undefined,
    now: number,
  ): Bucket | undefined {
    if (ratePerSecond === undefined || !(ratePerSecond > 0)) return undefined;
    const key = `${topic}\u0000${principal}\u0000${kind}`;
    const capacity = ratePerSecond * this.burstSeconds;
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { ratePerSecond, capacity, tokens: capacity, updatedMs: now };
      if (this.buckets.size >= this.maxBuckets) {
        // Map iteration order is insertion order; re-inserting on use makes the first key the LRU.
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    } else {
      this.buckets.delete(key);
      // The rate may have changed in the Topic spec; the new one applies from now.
      b.ratePerSecond = ratePerSecond;
      b.capacity = capacity;
      const elapsedMs = Math.max(0, now - b.updatedMs);
      b.tokens = Math.min(capacity, b.tokens + (elapsedMs / 1000) * ratePerSecond);
      b.updatedMs = now;
    }
    this.buckets.set(key, b);
    return b;
  }
}

/** How long until `b` holds min(cost, capacity) tokens (0 = now); `cost` 0 means "out of debt". */
function waitMs(b: Bucket, cost: number): number {
  const need = Math.min(cost, b.capacity);
  if (b.tokens >= need) return 0;
  return Math.max(1, Math.ceil(((need - b.tokens) / b.ratePerSecond) * 1000));
}

function quotaExceeded(topic: string, reason: QuotaKind, retryAfterMs: number): DaftkaError {
  return new DaftkaError('QUOTA_EXCEEDED', `quota ${reason} exceeded on topic ${topic}`, {
    retryAfterMs,
    extra: { reason, topic },
  });
}

import { MAX_WAIT_MS } from '../../common/limits';

/**
 * Long-polling fetches parked until records exist at their offset: woken when the high
 * watermark passes it, or at their own deadline (≤ MAX_WAIT_MS). Bounded: past `maxWaiters` a fetch
 * does not park and answers at once with what there is (counted as shed by the caller).
 */

interface Waiter {
  offset: number;
  wake: () => void;
}

export class FetchWaiters {
  private waiters: Waiter[] = [];

  constructor(private readonly maxWaiters: number) {}

  get size(): number {
    return this.waiters.length;
  }

  /** Wait until `wakeBelow` passes `offset` or `waitMs` elapses; false (at once) when full. */
  wait(offset: number, waitMs: number): { parked: boolean; done: Promise<void> } {
    if (this.waiters.length >= this.maxWaiters) return { parked: false, done: Promise.resolve() };
    const done = new Promise<void>((resolve) => {
      const w: Waiter = {
        offset,
        wake: () => {
          clearTimeout(t);
          resolve();
        },
      };
      const t = setTimeout(
        () => {
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve();
        },
        Math.min(waitMs, MAX_WAIT_MS),
      );
      this.waiters.push(w);
    });
    return { parked: true, done };
  }

  /** Wake every waiter whose offset is now below the high watermark. */
  wakeBelow(highWatermark: number): void {
    const keep: Waiter[] = [];
    for (const w of this.waiters)
      if (w.offset < highWatermark) w.wake();
      else keep.push(w);
    this.waiters = keep;
  }

  /** Wake all (shutdown). */
  wakeAll(): void {
    for (const w of this.waiters) w.wake();
    this.waiters = [];
  }
}

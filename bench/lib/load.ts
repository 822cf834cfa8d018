/**
 * Load generators over a `Target` (one Daftka produce request or one JetStream publish):
 *
 * - closed loop: `inflight` producers, each sends its next request when the previous one is
 *   acknowledged. Throughput at a fixed window; latency is the ack latency of each request.
 * - open loop: requests are due at a fixed rate (intended send time t0 + i/rate), whatever the
 *   answers do; at most `maxOutstanding` are outstanding (a due request waits for a free slot).
 *   Latency is measured from the *intended* send time, so a stall shows up in the tail instead
 *   of silently lowering the send rate (coordinated omission).
 *
 * Both warm up, then measure a window: requests *completed* inside the window count for
 * throughput and latency. Every acknowledged record's position is logged for verification.
 */
import { makeValue, nowUs } from './payload';
import { newHistogram, type Histogram } from './stats';

export interface Position {
  partition: number;
  /** Daftka: the record's offset; JetStream: the stream sequence. */
  offset: number;
}

export interface Target {
  label: string;
  recordsPerRequest: number;
  /** One request carrying `values` (in order); resolves with their positions, in order. */
  send(values: string[], idempotencyKey?: string): Promise<Position[]>;
}

/** Positions of acknowledged records and who sent them (parallel arrays). */
export class AckLog {
  partition: number[] = [];
  offset: number[] = [];
  worker: number[] = [];
  seq: number[] = [];
  get length(): number {
    return this.offset.length;
  }
  push(p: Position, worker: number, seq: number): void {
    this.partition.push(p.partition);
    this.offset.push(p.offset);
    this.worker.push(worker);
    this.seq.push(seq);
  }
}

export interface LoadResult {
  requests: number;
  records: number;
  bytes: number;
  windowMs: number;
  errors: number;
  errorSamples: string[];
  ack: Histogram;
  acks: AckLog;
  /** Completion time (performance.now ms) and partition of every acknowledged request (failover runs). */
  ackTimes: Array<{ tMs: number; partition: number }>;
  /** Records sent whose outcome is unknown at the end (errors not retried). */
  unacked: number;
}

export interface LoadOptions {
  size: number;
  warmupMs: number;
  measureMs: number;
  run: number;
  /** Called at the start / end of the measured window (CPU snapshots). */
  onWindowStart?: () => void;
  onWindowEnd?: () => void;
  /** Retry a failed request (same values, same idempotency key) every `retryEveryMs` until acknowledged. */
  retry?: boolean;
  retryEveryMs?: number;
  recordAckTimes?: boolean;
}

function errText(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}

class Window {
  startMs = Infinity;
  endMs = Infinity;
  stopped = false;
  constructor(
    readonly o: LoadOptions,
    readonly t0: number,
  ) {}
  arm(onStop: () => void): Promise<void> {
    return new Promise((resolve) => {
      setTimeout(() => {
        this.startMs = performance.now();
        this.o.onWindowStart?.();
        setTimeout(() => {
          this.endMs = performance.now();
          this.o.onWindowEnd?.();
          this.stopped = true;
          onStop();
          resolve();
        }, this.o.measureMs);
      }, this.o.warmupMs);
    });
  }
  inWindow(doneMs: number): boolean {
    return doneMs >= this.startMs && doneMs <= this.endMs;
  }
}

function newResult(): LoadResult {
  return {
    requests: 0,
    records: 0,
    bytes: 0,
    windowMs: 0,
    errors: 0,
    errorSamples: [],
    ack: newHistogram(),
    acks: new AckLog(),
    ackTimes: [],
    unacked: 0,
  };
}

/** Send one request (with retries when asked); account for it. Returns false when it was not acknowledged. */
async function sendOne(
  target: Target,
  o: LoadOptions,
  w: Window,
  res: LoadResult,
  worker: number,
  firstSeq: number,
  startMs: number,
  sentUs: number,
  key: string | undefined,
): Promise<boolean> {
  const n = target.recordsPerRequest;
  const values: string[] = new Array(n);
  for (let i = 0; i < n; i++) values[i] = makeValue(o.size, o.run, worker, firstSeq + i, sentUs);
  for (;;) {
    try {
      const pos = await target.send(values, key);
      const done = performance.now();
      for (let i = 0; i < n; i++) res.acks.push(pos[i], worker, firstSeq + i);
      if (o.recordAckTimes) res.ackTimes.push({ tMs: done, partition: pos[0].partition });
      if (w.inWindow(done)) {
        res.requests++;
        res.records += n;
        res.bytes += n * o.size;
        res.ack.recordValue(Math.max(1, Math.round((done - startMs) * 1000)));
      }
      return true;
    } catch (err) {
      res.errors++;
      if (res.errorSamples.length < 5) res.errorSamples.push(errText(err));
      // Without retry the record's fate is unknown; with retry, keep going until the run's grace ends.
      if (!o.retry || performance.now() > w.endMs + 30_000) {
        res.unacked += n;
        return false;
      }
      await new Promise((r) => setTimeout(r, o.retryEveryMs ?? 10));
    }
  }
}

export async function closedLoop(target: Target, inflight: number, o: LoadOptions): Promise<LoadResult> {
  const res = newResult();
  const w = new Window(o, performance.now());
  const windowDone = w.arm(() => undefined);
  const worker = async (id: number) => {
    let seq = 0;
    let req = 0;
    while (!w.stopped) {
      const start = performance.now();
      const ok = await sendOne(
        target,
        o,
        w,
        res,
        id,
        seq,
        start,
        nowUs(),
        o.retry ? `r${o.run}-w${id}-q${req}` : undefined,
      );
      seq += target.recordsPerRequest;
      req++;
      if (!ok) await new Promise((r) => setTimeout(r, 5));
    }
  };
  await Promise.all([windowDone, ...Array.from({ length: inflight }, (_, i) => worker(i))]);
  res.windowMs = w.endMs - w.startMs;
  return res;
}

/** `ratePerS` requests per second (each `target.recordsPerRequest` records). */
export async function openLoop(
  target: Target,
  ratePerS: number,
  maxOutstanding: number,
  o: LoadOptions,
): Promise<LoadResult & { lateSends: number }> {
  const res = { ...newResult(), lateSends: 0 };
  const t0 = performance.now();
  const w = new Window(o, t0);
  const intervalMs = 1000 / ratePerS;
  const endMs = t0 + o.warmupMs + o.measureMs;
  const free = Array.from({ length: maxOutstanding }, (_, i) => maxOutstanding - 1 - i);
  const seqOf = new Array<number>(maxOutstanding).fill(0);
  let i = 0;
  let timer: NodeJS.Timeout | null = null;
  let outstanding = 0;
  let finish: () => void = () => undefined;
  const allDone = new Promise<void>((r) => (finish = r));
  const pump = () => {
    timer = null;
    const now = performance.now();
    while (free.length > 0) {
      const intended = t0 + i * intervalMs;
      if (intended >= endMs) break;
      if (intended > now) break;
      if (now - intended > 1) res.lateSends++;
      const slot = free.pop()!;
      i++;
      outstanding++;
      const firstSeq = seqOf[slot];
      seqOf[slot] += target.recordsPerRequest;
      // Latency and the end-to-end clock start at the intended time, not the (late) actual send.
      void sendOne(target, o, w, res, slot, firstSeq, intended, Math.round(intended * 1000), undefined).then(() => {
        outstanding--;
        free.push(slot);
        pump();
      });
    }
    const nextIntended = t0 + i * intervalMs;
    if (nextIntended >= endMs) {
      if (outstanding === 0) finish();
      return;
    }
    if (free.length > 0 && timer === null) timer = setTimeout(pump, Math.max(0, nextIntended - performance.now()));
  };
  const windowDone = w.arm(() => undefined);
  pump();
  await Promise.all([windowDone, allDone]);
  if (timer) clearTimeout(timer);
  res.windowMs = w.endMs - w.startMs;
  return res;
}

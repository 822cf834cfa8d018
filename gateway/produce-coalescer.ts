import { DaftkaError, isDaftkaError } from '../common/errors';
import type { ProduceRequest, ProduceResult, RecordIn } from '../common/partition-api';
import type { PartitionClient } from '../protocol/methods';

/**
 * Produce coalescing: concurrent produces to one partition become one replica call, one Raft
 * entry and one fsync, without a delay when the partition is idle. A request that finds fewer
 * than `maxBatchesInFlight` calls in flight for its partition goes at once, alone; one that
 * arrives while they are full waits and rides on the next call with everything else that
 * arrived meanwhile. Each request gets its own slice of the batch's offsets, in arrival order.
 *
 * What is not coalesced: requests with an Idempotency-Key or a producer id (their dedup entry
 * is per request on the replica), and a request that is already a batch (more than 1/16 of a
 * call's record or byte bound): it goes at once, alone.
 *
 * Failure: every request of a failed batch gets the batch's error — the same answer each would
 * have had alone for NOT_LEADER, NO_QUORUM, OVERLOADED or COMMIT_UNKNOWN. An error that says the
 * batch was refused before anything was written (invalid input, too large) is not for all of
 * them to share: the batch's requests are then sent again one by one, so only the bad one fails.
 *
 * Bounds: a batch holds at most `maxRecords` records and `maxBytes` record bytes; at most
 * `maxWaiting` requests wait per partition (one more is answered 503 OVERLOADED with
 * Retry-After, counted as shed `produce_queue`), and each holds its body's reservation.
 */

export interface CoalescerOptions {
  /** Records in one coalesced call (at most the replica's maxBatchRecords). */
  maxRecords: number;
  /** Record bytes in one coalesced call (well under the replica's maxBatchBytes). */
  maxBytes: number;
  /** Calls in flight per partition before requests start to wait and coalesce. */
  maxBatchesInFlight: number;
  /** Requests waiting per partition; one more is refused 503 OVERLOADED (`onShed`). */
  maxWaiting: number;
  onShed?: () => void;
  /** A batch of `requests` requests was sent (metrics). */
  onBatch?: (requests: number, records: number) => void;
}

export const DEFAULT_COALESCER: CoalescerOptions = {
  maxRecords: 1000,
  maxBytes: 1024 * 1024,
  maxBatchesInFlight: 2,
  maxWaiting: 1024,
};

interface Waiting {
  req: ProduceRequest;
  bytes: number;
  resolve: (r: ProduceResult) => void;
  reject: (e: unknown) => void;
}

interface Lane {
  inFlight: number;
  queue: Waiting[];
}

/** A request with more than 1/ALREADY_A_BATCH of a call's bounds is not coalesced. */
const ALREADY_A_BATCH = 16;

/** Errors after which nothing of the batch was written, and each request deserves its own answer. */
const REFUSED_AS_A_WHOLE = new Set(['INVALID_REQUEST', 'RECORD_TOO_LARGE', 'PAYLOAD_TOO_LARGE']);

export class ProduceCoalescer {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly router: Pick<PartitionClient, 'produce'>,
    private readonly o: CoalescerOptions = DEFAULT_COALESCER,
  ) {}

  /**
   * Produce `req` (`bytes`: its records' size), coalesced with others to its partition when it
   * has to wait. `boundedElsewhere`: the caller bounds what it has waiting (a stream's window),
   * so the per-partition waiting bound does not refuse it.
   */
  produce(req: ProduceRequest, bytes: number, boundedElsewhere = false): Promise<ProduceResult> {
    if (
      req.idempotencyKey !== undefined ||
      req.producer !== undefined ||
      // Already a batch: it goes at once, alone, as before (queueing it behind other calls would
      // serialize what Raft pipelines; its own size amortizes the call).
      req.records.length * ALREADY_A_BATCH > this.o.maxRecords ||
      bytes * ALREADY_A_BATCH > this.o.maxBytes
    )
      return this.router.produce(req);
    const key = `${req.topic}\u0000${req.partition}`;
    let lane = this.lanes.get(key);
    if (lane === undefined) {
      lane = { inFlight: 0, queue: [] };
      this.lanes.set(key, lane);
    }
    if (!boundedElsewhere && lane.queue.length >= this.o.maxWaiting && lane.inFlight >= this.o.maxBatchesInFlight) {
      this.o.onShed?.();
      return Promise.reject(
        new DaftkaError(
          'OVERLOADED',
          `${lane.queue.length} produce requests are already waiting for partition ${req.partition}; retry later`,
          { retryAfterMs: 100 },
        ),
      );
    }
    return new Promise<ProduceResult>((resolve, reject) => {
      lane.queue.push({ req, bytes, resolve, reject });
      this.pump(key, lane);
    });
  }

  /** Requests waiting for a call (all partitions). */
  get waiting(): number {
    let n = 0;
    for (const l of this.lanes.values()) n += l.queue.length;
    return n;
  }

  private pump(key: string, lane: Lane): void {
    while (lane.inFlight < this.o.maxBatchesInFlight && lane.queue.length > 0) {
      const batch = this.take(lane);
      lane.inFlight++;
      void this.send(batch).finally(() => {
        lane.inFlight--;
        if (lane.queue.length > 0) this.pump(key, lane);
        else if (lane.inFlight === 0) this.lanes.delete(key);
      });
    }
  }

  /** The longest prefix of the queue within the batch bounds (at least one request). */
  private take(lane: Lane): Waiting[] {
    let records = 0;
    let bytes = 0;
    let n = 0;
    for (const w of lane.queue) {
      if (n > 0 && (records + w.req.records.length > this.o.maxRecords || bytes + w.bytes > this.o.maxBytes)) break;
      records += w.req.records.length;
      bytes += w.bytes;
      n++;
    }
    return lane.queue.splice(0, n);
  }

  private async send(batch: Waiting[]): Promise<void> {
    if (batch.length === 1) {
      const w = batch[0];
      this.o.onBatch?.(1, w.req.records.length);
      await this.router.produce(w.req).then(w.resolve, w.reject);
      return;
    }
    const first = batch[0].req;
    const records: RecordIn[] = [];
    for (const w of batch) for (const r of w.req.records) records.push(r);
    this.o.onBatch?.(batch.length, records.length);
    let result: ProduceResult;
    try {
      result = await this.router.produce({
        topic: first.topic,
        partition: first.partition,
        records,
        // The call carries its first request's id; each request's own id is in its access log line.
        requestId: first.requestId,
        timeoutMs: Math.min(...batch.map((w) => w.req.timeoutMs)),
      });
    } catch (err) {
      if (isDaftkaError(err) && REFUSED_AS_A_WHOLE.has(err.code)) {
        // Nothing was written: let each request be judged on its own records.
        await Promise.all(batch.map((w) => this.router.produce(w.req).then(w.resolve, w.reject)));
        return;
      }
      for (const w of batch) w.reject(err);
      return;
    }
    let offset = result.baseOffset;
    for (const w of batch) {
      w.resolve({ baseOffset: offset, count: w.req.records.length, duplicate: false });
      offset += w.req.records.length;
    }
  }
}

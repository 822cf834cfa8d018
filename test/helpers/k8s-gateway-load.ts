/**
 * Produce load through the gateway for the Kubernetes e2e tier (test/e2e/product-under-load.test.ts),
 * recorded per partition into a history for the checker (./history.ts), and each replica's whole
 * log read over its client port for the checker's final logs.
 *
 * Writers pin their records to one partition (`partition` in each record) and retry every write
 * with its Idempotency-Key until the gateway acknowledges it, so a retry after a lost answer is
 * answered `duplicate` with the first offsets. Every failed attempt is recorded as outcome unknown:
 * the gateway may have retried inside and cannot say "definitely not written" for a write it had
 * sent. Each acknowledgement's time is kept, so the longest gap between acknowledgements of a
 * partition (its write outage) can be measured over any window.
 */
import { RemotePartitionClient } from '../../protocol/partition-client';
import { RpcClient } from '../../protocol/rpc-client';
import { checkHistory, HistoryRecorder, type CheckReport, type FinalLog } from './history';
import { text } from './records';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface GatewayLoadOptions {
  /** http://host:port of the gateway. */
  baseUrl: string;
  token: string;
  topic: string;
  /** Concurrent writers per partition (default 2). */
  writersPerPartition?: number;
  /** Pause after each acknowledged write, per writer (default 20 ms): a steady, modest load. */
  pauseMs?: number;
  /** Records per write (default 2). */
  batch?: number;
  /** Per-attempt limit of one HTTP request (default 15 s). */
  requestTimeoutMs?: number;
}

/** One partition's history and its acknowledgement times. */
export interface PartitionLoad {
  rec: HistoryRecorder;
  /** Date.now() of every acknowledgement, in order. */
  ackTimesMs: number[];
}

export class GatewayLoad {
  readonly partitions = new Map<number, PartitionLoad>();
  /** Failed attempts by reason (the problem's code, HTTP status or the network error). */
  readonly errors = new Map<string, number>();
  private loops: Promise<void>[] = [];
  private stopping = false;
  private drainUntil = Infinity;
  private round = 0;

  constructor(private readonly o: GatewayLoadOptions) {}

  private part(p: number): PartitionLoad {
    let pl = this.partitions.get(p);
    if (!pl) {
      pl = { rec: new HistoryRecorder(), ackTimesMs: [] };
      this.partitions.set(p, pl);
    }
    return pl;
  }

  /** Starts writers on these partitions (a new round: write keys never repeat across rounds). */
  start(partitions: number[]): void {
    this.stopping = false;
    this.drainUntil = Infinity;
    this.round++;
    this.add(partitions);
  }

  /** More partitions under load in the running round. */
  add(partitions: number[]): void {
    for (const p of partitions)
      for (let w = 0; w < (this.o.writersPerPartition ?? 2); w++)
        this.loops.push(this.writer(p, `r${this.round}-p${p}w${w}`));
  }

  /** Stop new writes; writes in flight keep retrying until `drainMs` from now, then are left unknown. */
  async stop(drainMs: number): Promise<void> {
    this.stopping = true;
    this.drainUntil = Date.now() + drainMs;
    await Promise.all(this.loops);
    this.loops = [];
  }

  acked(p: number): number {
    return this.partitions.get(p)?.ackTimesMs.length ?? 0;
  }

  /**
   * The write outage of partition p in [fromMs, toMs]: the longest time without an
   * acknowledgement (from the window's start to the first one, between two, from the last to its end).
   */
  outageMs(p: number, fromMs: number, toMs: number): number {
    const times = (this.partitions.get(p)?.ackTimesMs ?? []).filter((t) => t >= fromMs && t <= toMs);
    let prev = fromMs;
    let longest = 0;
    for (const t of [...times, toMs]) {
      longest = Math.max(longest, t - prev);
      prev = t;
    }
    return longest;
  }

  private count(reason: string): void {
    this.errors.set(reason, (this.errors.get(reason) ?? 0) + 1);
  }

  private async writer(p: number, name: string): Promise<void> {
    const pl = this.part(p);
    const url = `${this.o.baseUrl}/v1/topics/${this.o.topic}/records`;
    for (let seq = 0; !this.stopping; seq++) {
      const key = `${name}-${seq}`;
      const values = Array.from({ length: this.o.batch ?? 2 }, (_, i) => `${key}/${i}`);
      const body = JSON.stringify({ records: values.map((value) => ({ partition: p, key, value })) });
      const op = pl.rec.produce(key, values);
      while (op.ack === null && Date.now() < this.drainUntil) {
        const pending = pl.rec.attempt(op, 'gateway');
        try {
          const r = await fetch(url, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${this.o.token}`,
              'content-type': 'application/json',
              'idempotency-key': key,
            },
            body,
            signal: AbortSignal.timeout(this.o.requestTimeoutMs ?? 15_000),
          });
          const text = await r.text();
          if (r.status !== 200) {
            const code = (safeJson(text) as { code?: string } | null)?.code ?? `HTTP ${r.status}`;
            throw new Error(code);
          }
          const results = (
            JSON.parse(text) as { results: Array<{ partition: number; offset: number; status: string }> }
          ).results;
          const statuses = new Set(results.map((x) => x.status));
          if (
            results.length !== values.length ||
            results.some((x, i) => x.partition !== p || x.offset !== results[0].offset + i) ||
            [...statuses].some((s) => s !== 'written' && s !== 'duplicate')
          )
            throw new Error(`malformed answer ${text}`); // recorded unknown; the checker sees the rest
          pending.ok({ baseOffset: results[0].offset, count: results.length, duplicate: statuses.has('duplicate') });
          pl.ackTimesMs.push(Date.now());
        } catch (err) {
          const reason = (err as Error).name === 'TimeoutError' ? 'timeout' : (err as Error).message.slice(0, 80);
          pending.failed(err); // not a DaftkaError: outcome unknown (see the file comment)
          this.count(reason);
          await sleep(100);
        }
      }
      await sleep(this.o.pauseMs ?? 20);
    }
  }

  /**
   * Checks partition p's history against the whole logs of its replicas (`logs`, read once the
   * load stopped and every replica caught up): no acknowledged write lost, none written twice
   * (idempotency keys), offsets dense, every replica holding the same log.
   */
  check(p: number, logs: FinalLog[]): CheckReport {
    const pl = this.part(p);
    pl.rec.history.finalLogs.length = 0; // the logs of an earlier check are shorter
    for (const l of logs) pl.rec.finalLog(l);
    return checkHistory(pl.rec.history);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** One replica's client port, with the topic's client key. */
export function replicaClient(
  host: string,
  port: number,
  key: Buffer,
): { client: RemotePartitionClient; close(): void } {
  const rpc = new RpcClient({ host, port, connectTimeoutMs: 2000, auth: { keyFor: () => key } });
  return { client: new RemotePartitionClient(rpc, { defaultTimeoutMs: 5000 }), close: () => rpc.close() };
}

/** A replica's whole log, [logStartOffset, highWatermark), read forward from its client port. */
export async function readWholeLog(
  c: RemotePartitionClient,
  topic: string,
  partition: number,
  process: string,
): Promise<FinalLog> {
  const st = await c.status({ topic, partition, requestId: 'final-status' });
  const records: Array<[number, string]> = [];
  let offset = st.logStartOffset;
  while (offset < st.highWatermark) {
    const r = await c.fetch({
      topic,
      partition,
      offset,
      maxRecords: 1000,
      maxBytes: 4 << 20,
      waitMs: 0,
      requestId: 'final-fetch',
    });
    for (const x of r.records) if (x.offset < st.highWatermark) records.push([x.offset, text(x.value) ?? '']);
    if (r.records.length === 0) break;
    offset = r.nextOffset;
  }
  return { process, logStartOffset: st.logStartOffset, highWatermark: st.highWatermark, records };
}

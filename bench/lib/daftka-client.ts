/**
 * Daftka through its HTTP gateway, as a benchmark client sees it: produce (`POST
 * /v1/topics/{t}/records`, N records per request, optional Idempotency-Key), a long-poll
 * consumer per partition for end-to-end latency, and the verifier that reads every acknowledged
 * record back.
 */
import type { Agent } from 'node:http';
import { httpRaw, newAgent } from './http';
import type { AckLog, Position, Target } from './load';
import { nowUs, parseValue } from './payload';
import { newHistogram, type Histogram } from './stats';

export class DaftkaTarget implements Target {
  readonly label: string;
  private readonly agent: Agent;
  private readonly url: string;

  constructor(
    baseUrl: string,
    topic: string,
    readonly recordsPerRequest: number,
    sockets: number,
    private readonly timeoutMs = 30_000,
  ) {
    this.label = `daftka ${recordsPerRequest} rec/req`;
    this.agent = newAgent(sockets);
    this.url = `${baseUrl}/v1/topics/${topic}/records`;
  }

  async send(values: string[], idempotencyKey?: string): Promise<Position[]> {
    // Values are ASCII without quotes or backslashes (payload.ts): they go into JSON as they are.
    let body = '{"records":[';
    for (let i = 0; i < values.length; i++) body += (i ? ',{"value":"' : '{"value":"') + values[i] + '"}';
    body += ']}';
    const r = await httpRaw(
      'POST',
      this.url,
      body,
      this.timeoutMs,
      idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
      this.agent,
    );
    if (r.status !== 200) {
      let code = '';
      try {
        code = (JSON.parse(r.text) as { code?: string }).code ?? '';
      } catch {
        /* not JSON */
      }
      throw new Error(`HTTP ${r.status} ${code}`);
    }
    const results = (JSON.parse(r.text) as { results: Array<{ partition: number; offset: number }> }).results;
    return results;
  }

  close(): void {
    this.agent.destroy();
  }
}

interface FetchedRecord {
  offset: number;
  value?: string | null;
  value_b64?: string;
}

async function fetchPage(
  agent: Agent,
  baseUrl: string,
  topic: string,
  partition: number,
  offset: number,
  waitMs: number,
  maxRecords = 1000,
): Promise<{ records: FetchedRecord[]; next_offset: number; high_watermark: number }> {
  const url =
    `${baseUrl}/v1/topics/${topic}/partitions/${partition}/records?offset=${offset}` +
    `&max_records=${maxRecords}&max_bytes=8388608&wait_ms=${waitMs}&encoding=utf8`;
  const r = await httpRaw('GET', url, undefined, waitMs + 30_000, {}, agent);
  if (r.status !== 200)
    throw new Error(`fetch ${topic}/${partition}@${offset}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
  return JSON.parse(r.text) as { records: FetchedRecord[]; next_offset: number; high_watermark: number };
}

export async function highWatermark(baseUrl: string, topic: string, partition: number): Promise<number> {
  const r = await httpRaw('GET', `${baseUrl}/v1/topics/${topic}`, undefined, 10_000);
  const parts = (JSON.parse(r.text) as { partitions?: Array<{ partition: number; high_watermark?: number }> })
    .partitions;
  const hw = parts?.find((p) => p.partition === partition)?.high_watermark;
  if (r.status !== 200 || hw === undefined)
    throw new Error(`high watermark of ${topic}/${partition}: HTTP ${r.status}`);
  return hw;
}

/** Long-polls every partition from its high watermark; records end-to-end latency of this run's records. */
export class DaftkaConsumer {
  readonly e2e: Histogram = newHistogram();
  received = 0;
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private readonly agent = newAgent(64);
  /** Only records sent at or after this time (µs, performance clock) count. */
  fromUs = 0;
  toUs = Infinity;

  constructor(
    private readonly baseUrl: string,
    private readonly topic: string,
    private readonly run: number,
  ) {}

  async start(partitions: number): Promise<void> {
    for (let p = 0; p < partitions; p++) {
      const from = await highWatermark(this.baseUrl, this.topic, p);
      this.loops.push(this.loop(p, from));
    }
  }

  private async loop(partition: number, from: number): Promise<void> {
    let offset = from;
    while (!this.stopped) {
      try {
        const page = await fetchPage(this.agent, this.baseUrl, this.topic, partition, offset, 500);
        const now = nowUs();
        for (const r of page.records) {
          const h = typeof r.value === 'string' ? parseValue(r.value) : null;
          if (h && h.run === this.run) {
            this.received++;
            if (h.sentUs >= this.fromUs && h.sentUs <= this.toUs) this.e2e.recordValue(Math.max(1, now - h.sentUs));
          }
        }
        offset = page.next_offset;
      } catch {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** Stop once `expected` records of the run arrived (or after `graceMs`). */
  async stop(expected: number, graceMs = 10_000): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.received < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.stopped = true;
    await Promise.all(this.loops);
    this.agent.destroy();
  }
}

export interface VerifyResult {
  acked: number;
  /** Acknowledged records not found at their acknowledged position (must be 0). */
  missing: number;
  /** Records found at an acknowledged position with other content (must be 0). */
  mismatched: number;
  /** A producer's records not in the order it sent them (must be 0). */
  outOfOrder: number;
  /** Records of the run in the range that were never acknowledged (errors, retries). */
  unackedPresent: number;
  /** The same (producer, seq) stored twice. */
  duplicates: number;
}

export function emptyVerify(): VerifyResult {
  return { acked: 0, missing: 0, mismatched: 0, outOfOrder: 0, unackedPresent: 0, duplicates: 0 };
}

/**
 * Checks stored records against the ack log: for every position, the record there (read with
 * `read`) must be the one acknowledged for it; per producer, offsets must rise with its
 * sequence numbers; everything else of the run in the range is counted.
 */
export async function verifyAgainst(
  acks: AckLog,
  run: number,
  read: (
    partition: number,
    from: number,
    to: number,
    each: (offset: number, value: string | null) => void,
  ) => Promise<void>,
): Promise<VerifyResult> {
  const v = emptyVerify();
  v.acked = acks.length;
  const byPartition = new Map<number, number[]>();
  for (let i = 0; i < acks.length; i++) {
    const p = acks.partition[i];
    if (!byPartition.has(p)) byPartition.set(p, []);
    byPartition.get(p)!.push(i);
  }
  for (const [partition, idx] of byPartition) {
    const expect = new Map<number, number>(); // offset → ack index
    let lo = Infinity;
    let hi = -Infinity;
    for (const i of idx) {
      expect.set(acks.offset[i], i);
      lo = Math.min(lo, acks.offset[i]);
      hi = Math.max(hi, acks.offset[i]);
    }
    const seen = new Set<number>();
    const stored = new Set<string>();
    await read(partition, lo, hi, (offset, value) => {
      const h = value === null ? null : parseValue(value);
      const i = expect.get(offset);
      if (h && h.run === run) {
        const id = `${h.worker}:${h.seq}`;
        if (stored.has(id)) v.duplicates++;
        stored.add(id);
      }
      if (i === undefined) {
        if (h && h.run === run) v.unackedPresent++;
        return;
      }
      seen.add(offset);
      if (!h || h.run !== run || h.worker !== acks.worker[i] || h.seq !== acks.seq[i]) v.mismatched++;
    });
    v.missing += expect.size - seen.size;
    // Per producer: sorted by seq, offsets must increase.
    const perWorker = new Map<number, Array<[number, number]>>();
    for (const i of idx) {
      const w = acks.worker[i];
      if (!perWorker.has(w)) perWorker.set(w, []);
      perWorker.get(w)!.push([acks.seq[i], acks.offset[i]]);
    }
    for (const list of perWorker.values()) {
      list.sort((a, b) => a[0] - b[0]);
      for (let k = 1; k < list.length; k++) if (list[k][1] <= list[k - 1][1]) v.outOfOrder++;
    }
  }
  return v;
}

/** Reads [from, to] of a partition through the gateway. */
export function daftkaReader(baseUrl: string, topic: string) {
  return async (partition: number, from: number, to: number, each: (offset: number, value: string | null) => void) => {
    const agent = newAgent(1);
    try {
      let offset = from;
      while (offset <= to) {
        let page;
        for (let attempt = 1; ; attempt++) {
          try {
            page = await fetchPage(agent, baseUrl, topic, partition, offset, 0);
            break;
          } catch (err) {
            // A leader change while reading back: the gateway answers 503 for a moment.
            if (attempt >= 20) throw err;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
        if (page.records.length === 0) break;
        for (const r of page.records) if (r.offset <= to) each(r.offset, typeof r.value === 'string' ? r.value : null);
        offset = page.next_offset;
      }
    } finally {
      agent.destroy();
    }
  };
}

export function verifyOk(v: VerifyResult): boolean {
  return v.missing === 0 && v.mismatched === 0 && v.outOfOrder === 0;
}

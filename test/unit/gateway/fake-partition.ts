import { CLIENT_METHOD_NAMES, type PartitionClient, type ReplicaClient } from '../../../protocol/methods';
import { createHash } from 'node:crypto';
import { DaftkaError } from '../../../common/errors';
import type {
  FetchRequest,
  FetchResult,
  GroupOffset,
  GroupOffsetCommit,
  GroupOffsetQuery,
  PartitionStatus,
  StatusRequest,
  ProduceRequest,
  ProduceResult,
  RecordOut,
} from '../../../common/partition-api';

/**
 * An in-memory partition leader for unit tests: dense offsets, idempotency keys (same key +
 * different payload → IDEMPOTENCY_CONFLICT), group offsets, long-poll. `fail` injects errors.
 */
export class FakePartitions implements PartitionClient {
  readonly logs = new Map<string, RecordOut[]>();
  readonly dedup = new Map<string, { digest: string; result: ProduceResult }>();
  readonly groups = new Map<string, { offset: number; metadata?: string }>();
  readonly calls: Array<{ op: string; topic: string; partition: number; requestId: string; idempotencyKey?: string }> =
    [];
  /** Return an error to throw for a call, or undefined to serve it. */
  fail: (op: string, topic: string, partition: number) => unknown = () => undefined;
  private waiters: Array<() => void> = [];

  private log(topic: string, partition: number): RecordOut[] {
    const k = `${topic}/${partition}`;
    let l = this.logs.get(k);
    if (!l) this.logs.set(k, (l = []));
    return l;
  }

  private check(op: string, topic: string, partition: number): void {
    const e = this.fail(op, topic, partition);
    if (e !== undefined) throw e;
  }

  async produce(req: ProduceRequest): Promise<ProduceResult> {
    this.calls.push({
      op: 'produce',
      topic: req.topic,
      partition: req.partition,
      requestId: req.requestId,
      idempotencyKey: req.idempotencyKey,
    });
    this.check('produce', req.topic, req.partition);
    const digest = createHash('sha256')
      .update(
        JSON.stringify(
          req.records.map((r) => [
            r.key && Buffer.from(r.key).toString('hex'),
            Buffer.from(r.value).toString('hex'),
            r.headers.map(([n, v]) => [n, Buffer.from(v).toString('hex')]),
          ]),
        ),
      )
      .digest('hex');
    const dk = req.idempotencyKey && `${req.topic}/${req.partition}/${req.idempotencyKey}`;
    if (dk) {
      const prev = this.dedup.get(dk);
      if (prev && prev.digest !== digest)
        throw new DaftkaError('IDEMPOTENCY_CONFLICT', 'idempotency key reused with a different payload');
      if (prev) return { ...prev.result, duplicate: true };
    }
    const l = this.log(req.topic, req.partition);
    const baseOffset = l.length;
    req.records.forEach((r, i) => l.push({ ...r, offset: baseOffset + i }));
    const result = { baseOffset, count: req.records.length, duplicate: false };
    if (dk) this.dedup.set(dk, { digest, result });
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
    return result;
  }

  async fetch(req: FetchRequest): Promise<FetchResult> {
    this.calls.push({ op: 'fetch', topic: req.topic, partition: req.partition, requestId: req.requestId });
    this.check('fetch', req.topic, req.partition);
    const l = this.log(req.topic, req.partition);
    if (req.offset > l.length)
      throw new DaftkaError('OFFSET_OUT_OF_RANGE', `offset ${req.offset} is beyond the high watermark ${l.length}`);
    if (req.offset === l.length && req.waitMs > 0)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, req.waitMs);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    const out: RecordOut[] = [];
    let bytes = 0;
    for (let o = req.offset; o < l.length && out.length < req.maxRecords; o++) {
      bytes += l[o].value.length;
      if (out.length > 0 && bytes > req.maxBytes) break;
      out.push(l[o]);
    }
    return { records: out, nextOffset: req.offset + out.length, highWatermark: l.length, logStartOffset: 0 };
  }

  async commitOffset(req: GroupOffsetCommit): Promise<void> {
    this.calls.push({ op: 'commit', topic: req.topic, partition: req.partition, requestId: req.requestId });
    this.check('commit', req.topic, req.partition);
    const hw = this.log(req.topic, req.partition).length;
    if (req.offset > hw) throw new DaftkaError('OFFSET_OUT_OF_RANGE', `offset ${req.offset} is beyond ${hw}`);
    this.groups.set(`${req.group}/${req.topic}/${req.partition}`, {
      offset: req.offset,
      ...(req.metadata !== undefined ? { metadata: req.metadata } : {}),
    });
  }

  async getOffset(req: GroupOffsetQuery): Promise<GroupOffset> {
    this.calls.push({ op: 'offset', topic: req.topic, partition: req.partition, requestId: req.requestId });
    this.check('offset', req.topic, req.partition);
    const hw = this.log(req.topic, req.partition).length;
    const g = this.groups.get(`${req.group}/${req.topic}/${req.partition}`);
    return {
      group: req.group,
      topic: req.topic,
      partition: req.partition,
      offset: g?.offset ?? null,
      ...(g?.metadata !== undefined ? { metadata: g.metadata } : {}),
      highWatermark: hw,
      logStartOffset: 0,
      lag: hw - (g?.offset ?? 0),
    };
  }

  async status({ topic, partition, requestId }: StatusRequest): Promise<PartitionStatus> {
    this.calls.push({ op: 'status', topic, partition, requestId });
    this.check('status', topic, partition);
    const hw = this.log(topic, partition).length;
    return {
      topic,
      partition,
      replicaId: 'r0',
      role: 'leader',
      term: 7,
      leaderId: 'r0',
      leaderEndpoint: `r0-${topic}-${partition}:9000`,
      highWatermark: hw,
      logStartOffset: 0,
      commitIndex: hw,
      appliedIndex: hw,
      lastIndex: hw,
      logBytes: 0,
      voters: ['r0', 'r1', 'r2'],
      learners: [],
    };
  }
}

/** A partition fake as the router's replica client: the leased methods answer NOT_IMPLEMENTED. */
export function asReplicaClient(p: PartitionClient): ReplicaClient {
  const notHere = () => Promise.reject(new DaftkaError('NOT_IMPLEMENTED', 'this fake has no leased groups'));
  const c = Object.fromEntries(CLIENT_METHOD_NAMES.map((n) => [n, notHere])) as unknown as ReplicaClient;
  return Object.assign(c, {
    produce: p.produce.bind(p),
    fetch: p.fetch.bind(p),
    commitOffset: p.commitOffset.bind(p),
    getOffset: p.getOffset.bind(p),
    status: p.status.bind(p),
  });
}

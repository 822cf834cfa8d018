import { connect, type NatsConnection, type Subscription } from 'nats';
import { DaftkaError, isDaftkaError } from '../../../common/errors';
import type { LeaderAnnouncement } from '../../../common/control-subjects';
import { SUBJECTS } from '../../../common/control-subjects';
import type { FetchResult, RecordOut } from '../../../common/partition-api';
import { record, text } from '../../helpers/records';
import { sleep, type ReplicaCluster } from '../../helpers/replica-cluster';

/** Env that keeps elections stable on a loaded 2-core CI machine and forms groups quickly. */
export const TEST_ENV = {
  DAFTKA_ELECTION_TIMEOUT_MS: '300',
  DAFTKA_HEARTBEAT_MS: '50',
  DAFTKA_MEMBERSHIP_CHECK_MS: '200',
  DAFTKA_ANNOUNCE_INTERVAL_MS: '200',
  DAFTKA_SHUTDOWN_TIMEOUT_MS: '5000',
};

/** Re-exported for the tests of this folder (test/helpers/records.ts). */
export { record, text };

/**
 * Every record from `from` up to the high watermark of `ordinal` at the time of the last page
 * (paged; no long-poll). Throws what fetch throws.
 */
export async function fetchAll(
  cluster: ReplicaCluster,
  ordinal: number,
  from = 0,
): Promise<{ records: RecordOut[]; last: FetchResult }> {
  const out: RecordOut[] = [];
  let offset = from;
  for (;;) {
    const r = await cluster.client(ordinal).fetch({
      topic: cluster.topic,
      partition: cluster.partition,
      offset,
      maxRecords: 5000,
      maxBytes: 8 << 20,
      waitMs: 0,
      requestId: `fetchall-${ordinal}`,
    });
    out.push(...r.records);
    // An empty page whose next offset moved on stepped over records key compaction removed.
    if (r.nextOffset >= r.highWatermark || (r.records.length === 0 && r.nextOffset <= offset))
      return { records: out, last: r };
    offset = r.nextOffset;
  }
}

/** Wait until `ordinal` has applied up to `offset` (its high watermark ≥ offset). */
export async function waitCaughtUp(cluster: ReplicaCluster, ordinal: number, hw: number, timeoutMs = 20_000) {
  await cluster.waitFor(
    async () => ((await cluster.status(ordinal))?.highWatermark ?? -1) >= hw,
    timeoutMs,
    `replica ${ordinal} to reach high watermark ${hw}`,
  );
}

export interface Ack {
  baseOffset: number;
  count: number;
  duplicate: boolean;
}

/**
 * A producer that keeps appending batches, each with its own idempotency key, to whoever leads,
 * and retries a batch with the same key until it is acknowledged. It follows leader hints and
 * asks every replica for status when it has none. Errors are counted by code; anything that is
 * not a retriable leadership/commit outcome is recorded in `unexpected`.
 */
export class LoadProducer {
  readonly acked = new Map<string, Ack>();
  readonly errors = new Map<string, number>();
  readonly unexpected: Array<{ key: string; error: string }> = [];
  /** Keys that saw COMMIT_UNKNOWN at least once before they were acknowledged. */
  readonly inDoubt = new Set<string>();
  /** Keys whose first answer with `duplicate: true` came after a retry. */
  readonly retriedDuplicates = new Set<string>();
  private leader: number | null = null;
  private stopping = false;
  private aborted = false;
  private seq = 0;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly cluster: ReplicaCluster,
    private readonly opts: {
      prefix: string;
      batch?: number;
      concurrency?: number;
      /** Errors tolerated as retriable (others land in `unexpected`). */
      retriable?: string[];
      /** Give up on one batch after this long (it is then reported unexpected). */
      perBatchDeadlineMs?: number;
      produceTimeoutMs?: number;
    },
  ) {}

  start(): this {
    for (let i = 0; i < (this.opts.concurrency ?? 4); i++) this.loops.push(this.loop());
    return this;
  }

  /** Stop issuing new batches; resolve when every started batch is acknowledged or given up. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  /** Records each acknowledged batch holds: key → values in order. */
  valuesOf(key: string): string[] {
    const n = this.opts.batch ?? 1;
    return Array.from({ length: n }, (_, i) => `${key}/${i}`);
  }

  /** Stop at once, abandoning batches in flight (cleanup after a failed test). */
  async abort(): Promise<void> {
    this.stopping = true;
    this.aborted = true;
    await Promise.all(this.loops);
  }

  private count(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const key = `${this.opts.prefix}-${this.seq++}`;
      await this.send(key);
    }
  }

  private async findLeader(): Promise<number | null> {
    const l = await this.cluster.leader();
    this.leader = l?.ordinal ?? null;
    return this.leader;
  }

  private async send(key: string): Promise<void> {
    const records = this.valuesOf(key).map((v) => record(v, key));
    const deadline = Date.now() + (this.opts.perBatchDeadlineMs ?? 30_000);
    let attempts = 0;
    const retriable = new Set(this.opts.retriable ?? ['NOT_LEADER', 'COMMIT_UNKNOWN', 'UNAVAILABLE', 'NO_QUORUM']);
    while (Date.now() < deadline && !this.aborted) {
      attempts++;
      const target = this.leader ?? (await this.findLeader());
      if (target === null || !this.cluster.slots[target].running) {
        this.leader = null;
        await sleep(50);
        continue;
      }
      try {
        const r = await this.cluster.client(target).produce({
          topic: this.cluster.topic,
          partition: this.cluster.partition,
          records,
          idempotencyKey: key,
          requestId: `${key}#${attempts}`,
          timeoutMs: this.opts.produceTimeoutMs ?? 2000,
        });
        if (r.duplicate && attempts > 1) this.retriedDuplicates.add(key);
        this.acked.set(key, r);
        return;
      } catch (e) {
        const err = isDaftkaError(e) ? e : new DaftkaError('INTERNAL', String(e));
        this.count(err.code);
        if (err.code === 'COMMIT_UNKNOWN') this.inDoubt.add(key);
        if (!retriable.has(err.code)) {
          this.unexpected.push({ key, error: `${err.code}: ${err.message}` });
          if (!['OVERLOADED'].includes(err.code)) return;
        }
        const hint = err.leaderHint;
        const hinted = hint ? this.cluster.slots.find((s) => s.clientEndpoint === hint) : undefined;
        if (hinted && hinted.ordinal !== target) this.leader = hinted.ordinal;
        else {
          this.leader = null;
          await sleep(err.retryAfterMs ?? 50);
        }
      }
    }
    if (!this.aborted)
      this.unexpected.push({ key, error: `not acknowledged within the deadline after ${attempts} attempts` });
  }
}

/**
 * Check a fetched log against what a producer was told: every acknowledged batch is at its
 * offsets with its values, and no key appears twice. Returns a list of problems (empty = fine).
 */
export function checkLog(records: RecordOut[], producer: LoadProducer, logStart = 0): string[] {
  const problems: string[] = [];
  const byOffset = new Map<number, RecordOut>();
  records.forEach((r, i) => {
    if (r.offset !== logStart + i) problems.push(`offset gap: record ${i} has offset ${r.offset}`);
    byOffset.set(r.offset, r);
  });
  const firstOffsetOfKey = new Map<string, number>();
  for (const r of records) {
    const key = text(r.key)!;
    const v = text(r.value)!;
    if (v.endsWith('/0')) {
      if (firstOffsetOfKey.has(key))
        problems.push(`duplicate: key ${key} at offsets ${firstOffsetOfKey.get(key)} and ${r.offset}`);
      else firstOffsetOfKey.set(key, r.offset);
    }
  }
  for (const [key, ack] of producer.acked) {
    if (ack.baseOffset < logStart) continue;
    const values = producer.valuesOf(key);
    if (ack.count !== values.length) problems.push(`key ${key}: acked count ${ack.count}, sent ${values.length}`);
    values.forEach((v, i) => {
      const r = byOffset.get(ack.baseOffset + i);
      if (!r) problems.push(`lost: key ${key} acked at ${ack.baseOffset + i} is not in the log`);
      else if (text(r.value) !== v)
        problems.push(`moved: offset ${ack.baseOffset + i} holds ${text(r.value)}, acked for ${v}`);
    });
  }
  return problems;
}

/** Leader announcements seen on NATS (`daftka.v1.leader.>`). */
export class AnnouncementWatcher {
  readonly seen: Array<LeaderAnnouncement & { receivedAt: number }> = [];
  private constructor(
    private readonly nc: NatsConnection,
    private readonly sub: Subscription,
  ) {}

  static async start(url: string): Promise<AnnouncementWatcher> {
    const nc = await connect({ servers: url });
    const sub = nc.subscribe(SUBJECTS.leaderAll);
    const w = new AnnouncementWatcher(nc, sub);
    void (async () => {
      for await (const m of sub)
        w.seen.push({
          ...(JSON.parse(new TextDecoder().decode(m.data)) as LeaderAnnouncement),
          receivedAt: Date.now(),
        });
    })();
    return w;
  }

  latest(): (LeaderAnnouncement & { receivedAt: number }) | undefined {
    return this.seen.reduce<(LeaderAnnouncement & { receivedAt: number }) | undefined>(
      (best, a) => (best === undefined || a.term >= best.term ? a : best),
      undefined,
    );
  }

  async close(): Promise<void> {
    this.sub.unsubscribe();
    await this.nc.close();
  }
}

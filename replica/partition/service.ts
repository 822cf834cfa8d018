import { DaftkaError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type {
  FetchRequest,
  FetchResult,
  GroupOffset,
  GroupOffsetCommit,
  GroupOffsetQuery,
  PartitionStatus,
  ProduceRequest,
  ProduceResult,
  RecordOut,
  StatusRequest,
} from '../../common/partition-api';
import type { PartitionClient } from '../../protocol/methods';
import type { ResolvedReplicaConfig } from '../config';
import type { RaftDriver } from '../driver/raft-driver';
import type { ReplicaMetrics } from '../metrics';
import type { Entry } from '../raft';
import { CommandKind, decodeCommand, encodeCommand, offsetOf, payloadHash, recordBytes } from '../state/commands';
import type { ApplyResult, PartitionState } from '../state/partition-state';
import { FetchWaiters } from './fetch-waiters';
import { DEFAULT_MAX_FRAME_BYTES } from '../../protocol/frame';

/**
 * The partition API of one replica (protocol/methods.ts: produce, fetch, offsets, status): checks
 * a request against the partition's limits and state, turns writes into state-machine commands
 * proposed through the Raft driver, and serves reads from the applied state and the log.
 * Time-based and size-based retention is proposed from here too (the leader's timer).
 */

/**
 * Largest fetch reply, whatever max_bytes asks: the default frame cap less 1 MiB of margin. The
 * first record is always served (it is at most maxRecordBytes ≤ maxBatchBytes ≤ 12 MiB).
 */
const FETCH_REPLY_MAX_BYTES = DEFAULT_MAX_FRAME_BYTES - 1024 * 1024;
/** Plans a fetch makes past stretches that key compaction emptied, before it answers empty. */
const FETCH_GAP_ROUNDS = 16;
/** A record's framing in a fetch reply beyond its key, value and headers (upper bound). */
const RECORD_WIRE_OVERHEAD_BYTES = 64;

export interface PartitionServiceOptions {
  rc: ResolvedReplicaConfig;
  driver: RaftDriver;
  state: PartitionState;
  metrics: ReplicaMetrics;
  logger: Logger;
  /** Refuses new records while the disk is full (STORAGE_FULL); storage/disk-guard.ts. */
  admitWrite?: () => void;
  /** Whether it does now (reported in `status`, so a leader can hand leadership to a replica with room). */
  diskFull?: () => boolean;
}

/** The request names this replica's partition, or PARTITION_NOT_FOUND. */
export function checkTarget(rc: ResolvedReplicaConfig, topic: string, partition: number): void {
  if (topic !== rc.cfg.topic || partition !== rc.cfg.partition)
    throw new DaftkaError('PARTITION_NOT_FOUND', `this replica serves ${rc.clusterId}, not ${topic}/${partition}`);
}

export class PartitionService implements PartitionClient {
  private readonly waiters: FetchWaiters;
  private readonly lbl: { topic: string; partition: string };
  private retentionTimer: NodeJS.Timeout | null = null;
  private retentionRunning = false;
  /** Groups with a daftka_group_lag_records series. */
  private readonly lagGroups = new Set<string>();
  private readonly rc: ResolvedReplicaConfig;
  private readonly driver: RaftDriver;
  private readonly state: PartitionState;
  private readonly metrics: ReplicaMetrics;

  constructor(private readonly o: PartitionServiceOptions) {
    this.rc = o.rc;
    this.driver = o.driver;
    this.state = o.state;
    this.metrics = o.metrics;
    this.waiters = new FetchWaiters(o.rc.cfg.maxFetchWaiters);
    this.lbl = { topic: o.rc.cfg.topic, partition: String(o.rc.cfg.partition) };
  }

  start(): void {
    this.retentionTimer = setInterval(() => this.checkRetention(), this.rc.cfg.retentionCheckMs);
  }

  stop(): void {
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.waiters.wakeAll();
  }

  /** Committed records were applied: long-polls at offsets now below the high watermark answer. */
  applied(): void {
    this.waiters.wakeBelow(this.state.nextOffset);
  }

  // ---- produce ----

  async produce(req: ProduceRequest): Promise<ProduceResult> {
    checkTarget(this.rc, req.topic, req.partition);
    const { cfg } = this.rc;
    try {
      this.driver.requireLeader();
      // Leader first (a follower answers NOT_LEADER, the router goes on), then the disk.
      this.o.admitWrite?.();
      if (req.records.length === 0)
        throw new DaftkaError('INVALID_REQUEST', 'a produce batch needs at least one record');
      if (req.records.length > cfg.maxBatchRecords)
        throw new DaftkaError(
          'PAYLOAD_TOO_LARGE',
          `${req.records.length} records in one batch; the limit is ${cfg.maxBatchRecords}`,
          { extra: { limit: cfg.maxBatchRecords } },
        );
      // A batch is bounded well below the frame cap: its Raft entry (a little larger) must fit a
      // follower's peer frame, or the leader holds an entry no follower accepts and never commits again.
      const batchBytes = recordBytes(req.records);
      if (batchBytes > cfg.maxBatchBytes)
        throw new DaftkaError(
          'PAYLOAD_TOO_LARGE',
          `a batch of ${batchBytes} bytes; the limit is ${cfg.maxBatchBytes}`,
          { extra: { limit: cfg.maxBatchBytes } },
        );
      // Far-future timestamps would hold time-based retention back for every record after them.
      const latestMs = Date.now() + cfg.maxTimestampSkewMs;
      for (let i = 0; i < req.records.length; i++) {
        if (req.records[i].timestampMs > latestMs)
          throw new DaftkaError(
            'INVALID_REQUEST',
            `record ${i} has timestamp ${req.records[i].timestampMs}, more than ${cfg.maxTimestampSkewMs} ms ahead of the leader's clock`,
            { extra: { reason: 'timestamp_in_future', limit: cfg.maxTimestampSkewMs, index: i } },
          );
        // A compacted topic keeps the latest record per key: a record without one could never be
        // superseded or deleted (Kafka refuses it too).
        if (cfg.cleanupPolicy !== 'delete' && req.records[i].key === null)
          throw new DaftkaError(
            'INVALID_REQUEST',
            `record ${i} has no key; topic ${cfg.topic} is compacted (cleanup ${cfg.cleanupPolicy}) and needs a key on every record`,
            { extra: { reason: 'key_required', index: i } },
          );
        const size = recordBytes([req.records[i]]);
        if (size > cfg.maxRecordBytes)
          throw new DaftkaError(
            'RECORD_TOO_LARGE',
            `record ${i} is ${size} bytes; the limit is ${cfg.maxRecordBytes}`,
            {
              extra: { limit: cfg.maxRecordBytes, index: i },
            },
          );
      }
      // A retry of a committed batch is answered from the replicated dedup state without a new
      // entry; the same checks run again when the entry applies (a retry may race its original).
      const hash = req.idempotencyKey !== undefined ? payloadHash(req.records) : undefined;
      if (req.idempotencyKey !== undefined) {
        const pre = this.state.precheckIdempotency(req.idempotencyKey, hash!);
        if (pre) return produceResult(pre);
      }
      if (req.producer) {
        const pre = this.state.checkProducer(
          req.producer.producerId,
          req.producer.epoch,
          req.producer.seq,
          req.records.length,
        );
        if (pre) return produceResult(pre);
      }
      const data = encodeCommand({
        kind: CommandKind.Produce,
        leaderTimeMs: Date.now(),
        idempotencyKey: req.idempotencyKey,
        payloadHash: hash,
        producer: req.producer,
        records: req.records,
      });
      const res = produceResult(
        await this.driver.propose(data, req.timeoutMs, req.records.length, recordBytes(req.records)),
      );
      this.metrics.produceRequests.inc({ ...this.lbl, code: 'OK' });
      return res;
    } catch (err) {
      this.metrics.produceRequests.inc({ ...this.lbl, code: err instanceof DaftkaError ? err.code : 'INTERNAL' });
      throw err;
    }
  }

  // ---- fetch ----

  async fetch(req: FetchRequest): Promise<FetchResult> {
    checkTarget(this.rc, req.topic, req.partition);
    if (this.driver.raft === null) throw new DaftkaError('UNAVAILABLE', 'replica is starting', { retryAfterMs: 200 });
    const s = this.state;
    if (req.offset < s.logStartOffset)
      throw new DaftkaError(
        'OFFSET_OUT_OF_RANGE',
        `offset ${req.offset} is below the log start offset ${s.logStartOffset} (deleted by retention)`,
        { extra: { log_start_offset: s.logStartOffset, high_watermark: s.nextOffset } },
      );
    if (req.offset > s.nextOffset)
      throw new DaftkaError(
        'OFFSET_OUT_OF_RANGE',
        `offset ${req.offset} is beyond the high watermark ${s.nextOffset}`,
        {
          extra: { log_start_offset: s.logStartOffset, high_watermark: s.nextOffset },
        },
      );
    if (req.offset === s.nextOffset && req.waitMs > 0) {
      const w = this.waiters.wait(req.offset, req.waitMs);
      if (!w.parked) this.metrics.shed.inc({ ...this.lbl, reason: 'fetch_waiters' });
      await w.done;
    }
    const records: RecordOut[] = [];
    let bytes = 0;
    // Every offset below this was looked at: records compaction removed are gaps the answer's
    // next offset steps over (offsets never move; a fetch just does not return what is gone).
    let scannedTo = req.offset;
    let wireBytes = 0;
    const want = Math.max(1, req.maxRecords);
    // The reply always fits the client's frame cap, whatever max_bytes asked for (a gateway may
    // be configured with a larger fetchMaxBytes): an oversized reply closes the connection that
    // every call to this replica shares.
    const maxBytes = Math.min(req.maxBytes, FETCH_REPLY_MAX_BYTES);
    // The index rows this answer can use (bounded by the records and bytes they hold), then their
    // entries in as few reads as possible: one storage round trip per entry made a fetch below
    // the entry cache (a restarted replica, a consumer far behind) take seconds for 1000s of rows.
    // A compacted stretch can hold no record at all: plan again from where the last plan ended
    // (a few rounds, each bounded like the first), so a consumer is not answered empty while
    // records follow the gap; past the rounds its next offset still moves on.
    for (let round = 0; round < FETCH_GAP_ROUNDS && records.length === 0 && scannedTo < s.nextOffset; round++) {
      const from = scannedTo;
      const rows: Array<{ base: number; count: number; logIndex: number; bytes: number }> = [];
      let planned = 0;
      let plannedBytes = 0;
      // The offset index: the tail in memory, older rows one seek and a page away on disk.
      plan: for (let cursor = from; ;) {
        const page = await s.rowsFrom(cursor, round === 0 ? Math.min(1024, want - planned + 1) : 1024);
        if (page.length === 0) break;
        for (const row of page) {
          rows.push(row);
          planned += row.base + row.count - Math.max(row.base, from);
          plannedBytes += row.bytes;
          cursor = row.base + row.count;
          // Past a gap (round > 0) the span says little about the records left: bytes and rows bound it.
          if ((round === 0 && planned >= want) || plannedBytes >= maxBytes || rows.length >= 1024) break plan;
        }
      }
      const byIndex = new Map<number, Entry>();
      if (rows.length > 0) {
        const hi = rows[rows.length - 1].logIndex + 1;
        for (let lo = rows[0].logIndex; lo < hi;) {
          const got = await this.driver.readEntries(lo, hi);
          if (got.length === 0 || got[0].index !== lo) break;
          for (const e of got) byIndex.set(e.index, e);
          lo = got[got.length - 1].index + 1;
        }
      }
      outer: for (const row of rows) {
        const e = byIndex.get(row.logIndex);
        if (e === undefined) break; // not replicated here yet (after a snapshot)
        const cmd = decodeCommand(e.data);
        if (cmd.kind !== CommandKind.Produce) break;
        for (let i = 0; i < cmd.records.length; i++) {
          const offset = offsetOf(cmd, row.base, i);
          if (offset < from) continue;
          const r = cmd.records[i];
          const size = recordBytes([r]);
          // The reply's size on the wire (with each record's framing) stays under the frame cap.
          const wire = size + RECORD_WIRE_OVERHEAD_BYTES + 8 * r.headers.length;
          if (
            records.length > 0 &&
            (records.length >= want || bytes + size > req.maxBytes || wireBytes + wire > FETCH_REPLY_MAX_BYTES)
          )
            break outer;
          wireBytes += wire;
          records.push({ ...r, offset });
          bytes += size;
          scannedTo = offset + 1;
        }
        scannedTo = Math.max(scannedTo, row.base + row.count);
        if (records.length >= want) break;
      }
      if (scannedTo === from) break;
    }
    this.metrics.fetchRecords.inc(this.lbl, records.length);
    this.metrics.fetchBytes.inc(this.lbl, bytes);
    const next = Math.min(s.nextOffset, Math.max(scannedTo, req.offset));
    return { records, nextOffset: next, highWatermark: s.nextOffset, logStartOffset: s.logStartOffset };
  }

  // ---- cumulative group offsets ----

  async commitOffset(req: GroupOffsetCommit): Promise<void> {
    checkTarget(this.rc, req.topic, req.partition);
    if (!Number.isSafeInteger(req.offset) || req.offset < 0)
      throw new DaftkaError('INVALID_REQUEST', `offset must be a non-negative integer, got ${req.offset}`);
    if (req.offset > this.state.nextOffset)
      throw new DaftkaError(
        'OFFSET_OUT_OF_RANGE',
        `offset ${req.offset} is beyond the high watermark ${this.state.nextOffset}`,
        {
          extra: { high_watermark: this.state.nextOffset },
        },
      );
    const data = encodeCommand({
      kind: CommandKind.GroupCommit,
      leaderTimeMs: Date.now(),
      group: req.group,
      offset: req.offset,
      metadata: req.metadata ?? '',
    });
    await this.driver.propose(data, 5000);
  }

  async getOffset(req: GroupOffsetQuery): Promise<GroupOffset> {
    checkTarget(this.rc, req.topic, req.partition);
    this.driver.requireLeader();
    const g = this.state.groups.get(req.group);
    const hw = this.state.nextOffset;
    const ls = this.state.logStartOffset;
    const lag = hw - Math.max(g?.offset ?? ls, ls);
    if (g) this.exportLag(req.group, lag);
    return {
      group: req.group,
      topic: req.topic,
      partition: req.partition,
      offset: g?.offset ?? null,
      ...(g && g.metadata !== '' ? { metadata: g.metadata } : {}),
      highWatermark: hw,
      logStartOffset: ls,
      lag,
    };
  }

  /**
   * daftka_group_lag_records has a series per group: at most groupLagMaxGroups of them (labels
   * bounded, DESIGN §9). A full set first forgets groups the state no longer has (expired);
   * past the bound a group is counted in daftka_group_lag_series_dropped_total instead.
   */
  private exportLag(group: string, lag: number): void {
    const max = this.rc.cfg.groupLagMaxGroups;
    if (!this.lagGroups.has(group) && this.lagGroups.size >= max)
      for (const g of this.lagGroups)
        if (!this.state.groups.has(g)) {
          this.lagGroups.delete(g);
          this.metrics.groupLag.remove({ ...this.lbl, group: g });
        }
    if (!this.lagGroups.has(group) && this.lagGroups.size >= max) {
      this.metrics.groupLagDropped.inc(this.lbl);
      return;
    }
    this.lagGroups.add(group);
    this.metrics.groupLag.set({ ...this.lbl, group }, lag);
  }

  // ---- status ----

  async status({ topic, partition }: StatusRequest): Promise<PartitionStatus> {
    checkTarget(this.rc, topic, partition);
    const n = this.driver.raft;
    const conf = this.driver.membership;
    const id = this.driver.id;
    const role =
      n === null
        ? 'follower'
        : n.role === 'leader'
          ? 'leader'
          : conf.learners.includes(id)
            ? 'learner'
            : n.role === 'follower'
              ? 'follower'
              : 'candidate';
    return {
      topic,
      partition,
      replicaId: id,
      role,
      term: n?.term ?? 0,
      leaderId: n?.leader ?? null,
      leaderEndpoint: this.driver.leaderEndpoint(),
      highWatermark: this.state.nextOffset,
      logStartOffset: this.state.logStartOffset,
      commitIndex: n?.commit ?? 0,
      appliedIndex: n?.applied ?? 0,
      lastIndex: this.driver.lastIndex,
      logBytes: this.driver.logBytes,
      voters: [...conf.voters],
      learners: [...conf.learners],
      ...(this.o.diskFull ? { diskFull: this.o.diskFull() } : {}),
    };
  }

  // ---- retention ----

  /** Leader: propose moving the log start when records fell out of the time or size retention. */
  checkRetention(): void {
    // cleanup: compact alone keeps every key's latest record however old (docs/compaction.md).
    if (!this.driver.isLeader || this.retentionRunning || this.rc.cfg.cleanupPolicy === 'compact') return;
    // The decision walks the index on disk: one walk at a time.
    this.retentionRunning = true;
    const log = this.o.logger;
    this.state
      .retentionCut(Date.now(), this.rc.cfg.retentionMs, this.rc.cfg.retentionBytes)
      .then((cut) => {
        if (cut === undefined || !this.driver.isLeader) return;
        log.info('retention_advance_proposed', { replica: this.driver.id, log_start_offset: cut });
        const data = encodeCommand({
          kind: CommandKind.AdvanceLogStart,
          leaderTimeMs: Date.now(),
          logStartOffset: cut,
        });
        // propose() throws synchronously (NOT_LEADER, NO_QUORUM): inside the promise chain, a timer never sees it.
        return this.driver.propose(data, 5000);
      })
      .catch((err) => log.warn('retention_advance_failed', { replica: this.driver.id, error: (err as Error).message }))
      .finally(() => {
        this.retentionRunning = false;
      });
  }
}

function produceResult(r: ApplyResult): ProduceResult {
  if (r.kind === 'written') return { baseOffset: r.baseOffset, count: r.count, duplicate: false };
  if (r.kind === 'duplicate') return { baseOffset: r.baseOffset, count: r.count, duplicate: true };
  if (r.kind === 'refused') throw r.error;
  throw new DaftkaError('INTERNAL', `unexpected apply result ${r.kind} for a produce`);
}

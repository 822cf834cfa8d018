import { performance } from 'node:perf_hooks';
import type { Logger } from '../../common/log';
import type { ReplicaConfig } from '../../common/replica-config';
import type { ReplicaMetrics } from '../metrics';
import type { Entry } from '../raft';
import { CommandKind, decodeCommand, encodeCommand, type ProduceCommand } from '../state/commands';
import { DEDUPE_SLOT_BYTES, DedupeMap, mapBatch, rewriteBatch } from '../state/compaction';
import { progressOp, type CompactionProgress, type IndexRow, type PartitionState } from '../state/partition-state';
import type { StateOp } from '../storage/storage';
import { LogCompactedError } from '../storage/storage';

/**
 * Key compaction, the moving part (docs/compaction.md). Two duties:
 *
 *  - **leader**: every compactionCheckMs, when the topic's cleanup policy includes compact,
 *    decide whether a pass is due (dirty ratio, min lag, a tombstone bound that matured) and
 *    propose a Compact command through Raft. The command is the only decision; it is applied on
 *    every replica like any entry.
 *  - **every replica**: when the applied request is ahead of what this replica's passes did,
 *    run a pass in the background: map the dirty stretch (bounded map), rewrite the log below its
 *    end through the storage worker (an unsynced barrier write per 1 MiB chunk; appends and
 *    applies flow between chunks), record the progress with the last chunk. One pass at a time.
 *
 * Produce is never blocked: a pass holds no lock, reads committed entries and rewrites only
 * applied ones, and its writes queue in the storage worker like any other.
 */

/** Entry bytes read per storage call of a pass. */
const CHUNK_BYTES = 4 * 1024 * 1024;
/**
 * Entry bytes rewritten per storage write: each is a barrier in the storage queue, so appends
 * queued behind one wait for it (a small unsynced batch: a few ms).
 */
const REWRITE_CHUNK_BYTES = 1024 * 1024;
/** Index rows per page when a pass walks the log. */
const PAGE_ROWS = 512;

export interface CompactorHost {
  state: PartitionState;
  readEntries(lo: number, hi: number): Promise<Entry[]>;
  rewriteEntries(entries: Entry[], ops: StateOp[]): Promise<void>;
  appliedWritten(): Promise<void>;
  isLeader(): boolean;
  /** Leader: the match index of every other member; undefined when not leader. */
  peerMatches(): number[] | undefined;
  propose(data: Uint8Array, timeoutMs: number): Promise<unknown>;
}

export type CompactorSettings = Pick<
  ReplicaConfig,
  | 'cleanupPolicy'
  | 'deleteRetentionMs'
  | 'minCompactionLagMs'
  | 'compactionMinDirtyPercent'
  | 'compactionCheckMs'
  | 'compactionDedupeBufferBytes'
>;

export interface CompactorOptions {
  host: CompactorHost;
  settings: CompactorSettings;
  metrics: ReplicaMetrics;
  lbl: { topic: string; partition: string };
  logger: Logger;
  replica: string;
  /** Leader wall clock (tests inject one). */
  now?: () => number;
}

export interface PassResult {
  result: 'done' | 'partial' | 'aborted' | 'idle';
  passEnd?: number;
  removedRecords?: number;
  reclaimedBytes?: number;
}

export class Compactor {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<PassResult> | null = null;
  private proposing = false;
  private stopped = false;
  /** The pass's map, reused while its size fits; never more than compactionDedupeBufferBytes. */
  private map: DedupeMap | null = null;
  private readonly now: () => number;

  constructor(private readonly o: CompactorOptions) {
    this.now = o.now ?? Date.now;
  }

  private get compactTopic(): boolean {
    return this.o.settings.cleanupPolicy !== 'delete';
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.o.settings.compactionCheckMs);
    // A request applied before a restart whose pass did not finish: finish it.
    this.onApplied();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /**
   * The applied request drops tombstones this replica's passes have not dropped yet. A leader in
   * that state (it inherited the request) adds no member: one catching up meanwhile could receive
   * an old value of a key before the pass and its tombstone after it (docs/compaction.md).
   */
  get dropPending(): boolean {
    const { compaction: req, cleaned } = this.o.host.state;
    return Math.min(req.tombstonesBefore, req.upToOffset) > Math.min(cleaned.tombstonesBefore, cleaned.cleanedTo);
  }

  /** After each applied batch: run a pass if the request is ahead of this replica's passes. */
  onApplied(): void {
    if (this.behind()) void this.runPass();
  }

  private behind(): boolean {
    const { compaction: req, cleaned, logStartOffset } = this.o.host.state;
    return (
      Math.max(cleaned.cleanedTo, logStartOffset) < req.upToOffset ||
      Math.min(cleaned.tombstonesBefore, cleaned.cleanedTo) < Math.min(req.tombstonesBefore, req.upToOffset)
    );
  }

  /** Run passes until this replica caught up with the request (or one aborts); one at a time. */
  runPass(): Promise<PassResult> {
    if (this.running) return this.running;
    const run = async (): Promise<PassResult> => {
      let last: PassResult = { result: 'idle' };
      for (;;) {
        if (!this.behind() || this.stopped) break;
        const before = this.o.host.state.cleaned;
        last = await this.pass();
        if (last.result === 'aborted') break;
        // No progress (the entries are not here yet, e.g. after a snapshot): wait for the next apply.
        const after = this.o.host.state.cleaned;
        if (after.cleanedTo === before.cleanedTo && after.tombstonesBefore === before.tombstonesBefore) break;
      }
      return last;
    };
    // Cleared when it settles (run may finish synchronously: clear after assigning, not inside).
    const p = run();
    this.running = p;
    void p.finally(() => {
      if (this.running === p) this.running = null;
    });
    return p;
  }

  /** Periodic: publish the lag, and as leader propose a request when one is due. */
  async check(): Promise<void> {
    // A request applied while a pass ran (and made it stop short) is picked up here at the latest.
    this.onApplied();
    const st = this.o.host.state;
    // A topic that never was compacted: nothing to measure or decide.
    if (!this.compactTopic && st.compaction.upToOffset === 0) return;
    const dirty = await this.dirtyBytes(st.nextOffset);
    const ratio = dirty + st.cleaned.cleanBytes > 0 ? dirty / (dirty + st.cleaned.cleanBytes) : 0;
    if (this.compactTopic) {
      this.o.metrics.compactionDirtyBytes.set(this.o.lbl, dirty);
      this.o.metrics.compactionDirtyRatio.set(this.o.lbl, ratio);
    }
    if (!this.compactTopic || this.proposing || !this.o.host.isLeader() || this.running || this.behind()) return;
    this.proposing = true;
    try {
      const cmd = await this.decide();
      if (cmd === undefined) return;
      this.o.logger.info('compaction_requested', {
        replica: this.o.replica,
        up_to_offset: cmd.upToOffset,
        tombstones_before: cmd.tombstonesBefore,
      });
      this.o.metrics.compactionRequests.inc(this.o.lbl);
      await this.o.host.propose(encodeCommand({ kind: CommandKind.Compact, leaderTimeMs: this.now(), ...cmd }), 5000);
    } catch (err) {
      this.o.logger.warn('compaction_request_failed', { replica: this.o.replica, error: (err as Error).message });
    } finally {
      this.proposing = false;
    }
  }

  /** Record bytes (as written) from this replica's clean point to `end`. */
  private async dirtyBytes(end: number): Promise<number> {
    const st = this.o.host.state;
    const from = Math.max(st.cleaned.cleanedTo, st.logStartOffset);
    if (from >= end) return 0;
    return (await st.bytesFrom(from)) - (await st.bytesFrom(end));
  }

  /**
   * Leader: the next request, or undefined when none is due. Offsets below X are requested
   * (X: the high watermark, or the first batch younger than minCompactionLagMs); tombstones
   * below Y may go, Y being the horizon — offsets covered by a request at least
   * deleteRetentionMs ago — once this leader's own passes are past it and every member holds the
   * entries below it (docs/compaction.md: why that keeps replicas identical).
   */
  async decide(): Promise<
    { upToOffset: number; tombstonesBefore: number; horizonOffset: number; horizonMs: number } | undefined
  > {
    const st = this.o.host.state;
    const s = this.o.settings;
    const now = this.now();
    const req = st.compaction;
    let x = s.minCompactionLagMs > 0 ? await st.offsetForTimestamp(now - s.minCompactionLagMs) : st.nextOffset;
    x = Math.max(x, req.upToOffset);
    let y = req.tombstonesBefore;
    if (req.horizonOffset > y && now - req.horizonMs >= s.deleteRetentionMs) {
      const cand = Math.min(req.horizonOffset, st.cleaned.cleanedTo);
      if (cand > y && (await this.membersHold(cand))) y = cand;
    }
    // A new horizon starts once the old one is used up: what this request covers.
    let horizonOffset = req.horizonOffset;
    let horizonMs = req.horizonMs;
    if (horizonOffset <= y && x > y) {
      horizonOffset = x;
      horizonMs = now;
    }
    const dirty = await this.dirtyBytes(x);
    const clean = st.cleaned.cleanBytes;
    const ratioDue = x > req.upToOffset && dirty > 0 && dirty * 100 >= s.compactionMinDirtyPercent * (dirty + clean);
    if (!ratioDue && y <= req.tombstonesBefore) return undefined;
    return { upToOffset: x, tombstonesBefore: y, horizonOffset, horizonMs };
  }

  /** Every other member holds the entries of every offset below `offset` (match index). */
  private async membersHold(offset: number): Promise<boolean> {
    const st = this.o.host.state;
    const matches = this.o.host.peerMatches();
    if (matches === undefined) return false;
    if (offset <= st.logStartOffset) return true;
    const row = await st.rowAt(offset - 1);
    if (row === undefined) return false;
    return matches.every((m) => m >= row.logIndex);
  }

  /** One pass (see compaction.ts): map the dirty stretch, rewrite the log below its end. */
  private async pass(): Promise<PassResult> {
    const host = this.o.host;
    const st = host.state;
    const epoch = st.epoch;
    const t0 = performance.now();
    const lbl = this.o.lbl;
    try {
      // Rows read here are then readable from storage, and entries rewritten are applied there.
      await host.appliedWritten();
      const req = { ...st.compaction };
      const start = st.logStartOffset;
      const from = Math.max(st.cleaned.cleanedTo, start);
      const target = req.upToOffset;
      // No more slots than the stretch has records (a few keys never cost the whole buffer); the
      // map is kept for the next pass when it is as large as that one needs.
      const slots = Math.min(
        Math.floor(this.o.settings.compactionDedupeBufferBytes / DEDUPE_SLOT_BYTES),
        Math.ceil(Math.max(0, target - from) / 0.75) + 16,
      );
      const bytes = Math.max(16, slots) * DEDUPE_SLOT_BYTES;
      if (this.map === null || this.map.bytes < bytes || this.map.bytes > 2 * bytes) {
        this.map = new DedupeMap(bytes);
        this.o.metrics.stateCache.set({ ...lbl, kind: 'compaction' }, this.map.bytes);
      }
      const map = this.map;
      map.clear();
      // 1. Map [from, target) until the map is full.
      let passEnd = from;
      await this.walk(from, target, epoch, (row, cmd) => {
        const stop = mapBatch(map, cmd, row.base, from, target);
        if (stop < target && stop < row.base + row.count) {
          // The map is full inside this batch: the pass ends there.
          passEnd = stop;
          return false;
        }
        passEnd = Math.min(row.base + row.count, target);
        return passEnd < target;
      });
      passEnd = Math.min(Math.max(passEnd, from), target);
      if (st.epoch !== epoch || this.stopped) return this.finish('aborted', t0);
      // 2. Rewrite [start, passEnd); tombstones go below min(Y, passEnd).
      const tomb = Math.min(req.tombstonesBefore, passEnd);
      let chunk: Entry[] = [];
      let chunkBytes = 0;
      let removedRecords = 0;
      let reclaimed = 0;
      let tombstones = 0;
      let kept = 0;
      let live = true;
      const flush = async (ops: StateOp[]) => {
        if (st.epoch !== epoch || this.stopped) return (live = false);
        const batch = chunk;
        chunk = [];
        chunkBytes = 0;
        if (batch.length > 0 || ops.length > 0) await host.rewriteEntries(batch, ops);
        return true;
      };
      const whole = await this.walk(start, passEnd, epoch, async (row, cmd, entry) => {
        const rw = rewriteBatch(cmd, row.base, map, tomb);
        // The clean part's size is what the next pass will read again: the entries as stored,
        // an emptied batch's header and bitmap included (so passes stay amortised when many small
        // batches are emptied, not only when records survive).
        if (rw.command === undefined) {
          kept += entry.data.byteLength;
          return true;
        }
        for (const r of cmd.records) if (r.tombstone === true && r.key !== null) tombstones++;
        for (const r of rw.command.records) if (r.tombstone === true && r.key !== null) tombstones--;
        removedRecords += rw.removedRecords;
        reclaimed += rw.removedBytes;
        const data = encodeCommand(rw.command);
        kept += data.byteLength;
        chunk.push({ ...entry, data });
        chunkBytes += data.byteLength;
        if (chunkBytes >= REWRITE_CHUNK_BYTES) return flush([]);
        return true;
      });
      // Every batch below passEnd must have been through the rewrite before the progress says so.
      if (!live || !whole) return this.finish('aborted', t0);
      const progress: CompactionProgress = { cleanedTo: passEnd, tombstonesBefore: tomb, cleanBytes: kept };
      if (!(await flush([progressOp(progress)]))) return this.finish('aborted', t0);
      st.cleaned = progress;
      const result = passEnd < target ? 'partial' : 'done';
      this.o.metrics.compactionReclaimed.inc(lbl, reclaimed);
      this.o.metrics.compactionRemoved.inc({ ...lbl, reason: 'superseded' }, removedRecords - tombstones);
      this.o.metrics.compactionRemoved.inc({ ...lbl, reason: 'tombstone' }, tombstones);
      this.o.logger.info('compaction_pass', {
        replica: this.o.replica,
        result,
        from_offset: from,
        pass_end: passEnd,
        up_to_offset: target,
        tombstones_before: tomb,
        keys: map.size,
        removed_records: removedRecords,
        reclaimed_bytes: reclaimed,
      });
      return { ...this.finish(result, t0), passEnd, removedRecords, reclaimedBytes: reclaimed };
    } catch (err) {
      // Retention moved the log start under the pass: the next pass starts from there.
      if (err instanceof LogCompactedError || st.epoch !== epoch || this.stopped) return this.finish('aborted', t0);
      this.o.logger.error('compaction_pass_failed', { replica: this.o.replica, error: (err as Error).message });
      return this.finish('aborted', t0);
    }
  }

  private finish(result: PassResult['result'], t0: number): PassResult {
    this.o.metrics.compactionPasses.inc({ ...this.o.lbl, result });
    this.o.metrics.compactionDuration.observe(this.o.lbl, (performance.now() - t0) / 1000);
    return { result };
  }

  /**
   * Visit the produce batches holding offsets in [from, end), in order, reading their entries a
   * chunk at a time; stops when `visit` returns false or the state was replaced. True when every
   * batch up to `end` was visited (or `visit` stopped the walk), false when it ended short.
   */
  private async walk(
    from: number,
    end: number,
    epoch: number,
    visit: (row: IndexRow, cmd: ProduceCommand, entry: Entry) => boolean | Promise<boolean>,
  ): Promise<boolean> {
    const st = this.o.host.state;
    let cursor = from;
    while (cursor < end) {
      if (st.epoch !== epoch || this.stopped) return false;
      const rows = await st.rowsFrom(cursor, PAGE_ROWS);
      const page: IndexRow[] = [];
      let bytes = 0;
      for (const r of rows) {
        if (r.base >= end) break;
        page.push(r);
        bytes += r.bytes;
        if (bytes >= CHUNK_BYTES) break;
      }
      if (page.length === 0) return false;
      const entries = await this.o.host.readEntries(page[0].logIndex, page[page.length - 1].logIndex + 1);
      const byIndex = new Map<number, Entry>();
      for (const e of entries) byIndex.set(e.index, e);
      for (const row of page) {
        const e = byIndex.get(row.logIndex);
        // Not here (a snapshot's follower still receiving its log): stop; the next pass goes on.
        if (e === undefined) return false;
        const cmd = decodeCommand(e.data);
        if (cmd.kind === CommandKind.Produce && !(await visit(row, cmd, e))) return true;
        cursor = row.base + row.count;
      }
    }
    return true;
  }
}

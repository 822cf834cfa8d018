/**
 * ReplicaStorage: the main-thread facade of the replica's storage engine.
 *
 * All RocksDB work happens in a worker thread (worker.ts → engine.ts); this class never touches
 * the disk, so the event loop never waits on it. Its job is ordering and grouping:
 *
 *  - Writes (append, applyBatch, compactLog, installSnapshot) go through one FIFO queue, and at
 *    most one write request is in flight to the worker at a time. Everything that arrives while
 *    a write runs is merged into the next request — that is the group commit: N concurrent
 *    appends cost one synced WriteBatch, not N.
 *  - Queue order is disk order: an append and a later applyBatch land in that order (or in the
 *    same atomic batch), and compactLog / installSnapshot are barriers nothing is merged across.
 *  - Reads go straight to the worker, which executes requests one at a time in arrival order; a
 *    read sees at least every write whose promise has resolved.
 *  - A full disk (ENOSPC) is not a failure of the store: the write that met it is held in flight,
 *    a small synced probe write is tried with capped backoff, and once one succeeds the held
 *    write is sent again — unchanged, so a write that partly landed is simply written twice
 *    (puts and deletes of the same keys). Its callers just wait, as for a slow disk; nothing
 *    behind it is sent before it, so disk order holds. `diskFull` says so meanwhile.
 */
import { DaftkaError } from '../../common/errors';
import type { Logger } from '../../common/log';
import { createLogger } from '../../common/log';
import { Backoff } from '../../common/backoff';
import { ClassifiedError } from '../../common/crash-policy';
import { WorkerChannel, type RequestBody } from './channel';
import { invariant, overloadedError, storageClosedError } from './errors';
import { LogView } from './log-view';
import { ENTRY_HEADER_BYTES } from './codec';
import {
  entryBytes,
  opBytes,
  packGroup,
  type BarrierSlot,
  type GroupSlot,
  type Slot,
  type Waiter,
} from './write-group';
import type { ExportChunk, LogPosition, OpenResult, RocksMemory, WireEntries, WriteResult } from './protocol';
import type {
  DiskFullState,
  FlushStats,
  Recovered,
  StateOp,
  StorageOptions,
  StoredConf,
  StoredEntry,
  StoredHardState,
  StoredSnapshotMeta,
} from './types';

export type {
  DiskFullState,
  FlushStats,
  Recovered,
  StateOp,
  StorageOptions,
  StoredConf,
  StoredEntry,
  StoredHardState,
  StoredSnapshotMeta,
} from './types';
export { LogCompactedError } from './errors';

export const DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MAX_PENDING_BYTES = 64 * 1024 * 1024;
export const DEFAULT_VERIFY_TAIL_ENTRIES = 4096;
export const DEFAULT_BLOCK_CACHE_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MEMTABLE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_DISK_FULL_PROBE_MAX_MS = 5000;

export class ReplicaStorage {
  readonly recovered: Recovered;

  private readonly fsyncAlways: boolean;
  private readonly maxBatchBytes: number;
  private readonly maxPendingBytes: number;
  private readonly onFlush?: (s: FlushStats) => void;
  private readonly log: Logger;

  /** Eager view (durable + accepted writes), for validating calls at the door. */
  private readonly view: LogView;
  /** What the worker reported after the last completed write. */
  private durable: LogPosition;

  private readonly queue: Slot[] = [];
  private inflight: Slot | null = null;
  private pendingBytes = 0;
  /** 'interval' mode: a write completed unsynced since the last synced one. */
  private unsynced = false;
  private timer: NodeJS.Timeout | null = null;
  private idleWaiters: Array<() => void> = [];

  /** Set when the worker died or a write failed: every later write rejects with it. */
  private failed: Error | null = null;
  /** Set while the in-flight write is held for lack of disk space (see the file comment). */
  private full: DiskFullState | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private readonly probeBackoff: Backoff;
  private readonly onDiskFull?: (state: DiskFullState | null) => void;
  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | null = null;

  private constructor(
    private readonly channel: WorkerChannel,
    opened: OpenResult,
    opts: StorageOptions,
    log: Logger,
  ) {
    this.recovered = opened.recovered;
    this.fsyncAlways = opts.fsync !== 'interval';
    this.maxBatchBytes = opts.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.maxPendingBytes = opts.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.onFlush = opts.onFlush;
    this.onDiskFull = opts.onDiskFull;
    this.probeBackoff = new Backoff({
      initialMs: 100,
      maxMs: Math.max(100, opts.diskFullProbeMaxMs ?? DEFAULT_DISK_FULL_PROBE_MAX_MS),
      multiplier: 2,
      jitter: 0.2,
    });
    this.log = log;
    this.view = new LogView(opened.recovered);
    const r = opened.recovered;
    this.durable = { firstIndex: r.firstIndex, lastIndex: r.lastIndex, logBytes: r.logBytes };
    if (!this.fsyncAlways) {
      this.timer = setInterval(() => this.requestSync(), opts.fsyncIntervalMs);
      this.timer.unref();
    }
  }

  /** Open (initialising on first use) and recover the replica's database. */
  static async open(opts: StorageOptions): Promise<ReplicaStorage> {
    invariant(typeof opts.dir === 'string' && opts.dir.length > 0, 'storage dir must be set');
    invariant(opts.fsync === 'always' || opts.fsync === 'interval', `fsync must be 'always' or 'interval'`);
    if (opts.fsync === 'interval')
      invariant(Number.isFinite(opts.fsyncIntervalMs) && opts.fsyncIntervalMs > 0, 'fsyncIntervalMs must be > 0');
    const log = opts.logger ?? createLogger('storage');
    const t0 = performance.now();
    let self: ReplicaStorage | null = null;
    const channel = WorkerChannel.start((err) => self?.onWorkerDeath(err));
    let opened: OpenResult;
    try {
      opened = await channel.call<OpenResult>({
        op: 'open',
        params: {
          path: `${opts.dir}/rocksdb`,
          verifyTailEntries: opts.verifyTailEntries ?? DEFAULT_VERIFY_TAIL_ENTRIES,
          blockCacheBytes: opts.blockCacheBytes ?? DEFAULT_BLOCK_CACHE_BYTES,
          memtableBytes: opts.memtableBytes ?? DEFAULT_MEMTABLE_BYTES,
        },
      });
    } catch (err) {
      await channel.stop();
      log.error('storage_open_failed', {
        dir: opts.dir,
        kind: (err as ClassifiedError).kind,
        error: (err as Error).message,
      });
      throw err;
    }
    self = new ReplicaStorage(channel, opened, opts, log);
    const r = opened.recovered;
    if (r.tailRepaired > 0)
      log.warn('storage_tail_repaired', { dir: opts.dir, entries: r.tailRepaired, last_index: r.lastIndex });
    log.info('storage_opened', {
      dir: opts.dir,
      incarnation: r.incarnation,
      fresh: r.freshlyInitialised,
      first_index: r.firstIndex,
      last_index: r.lastIndex,
      applied_index: r.appliedIndex,
      log_bytes: r.logBytes,
      tail_repaired: r.tailRepaired,
      fsync: opts.fsync,
      open_seconds: (performance.now() - t0) / 1000,
    });
    return self;
  }

  // ---------------------------------------------------------------- writes

  /**
   * Group commit: persists entries (replacing any existing entries at index ≥ entries[0].index —
   * Raft truncation) and/or the hard state/conf; resolves only after the batch is fsynced (fsync
   * 'always'). All appends/hard-state saves pending while one fsync runs are gathered into ONE
   * synced WriteBatch. The storage may read `data` until the promise settles: do not mutate it.
   */
  append(entries: StoredEntry[], hardState?: StoredHardState, conf?: StoredConf): Promise<void> {
    const refused = this.refuseWrite();
    if (refused) return Promise.reject(refused);
    try {
      this.view.checkAppend(entries, hardState);
    } catch (err) {
      return Promise.reject(err);
    }
    const bytes = entryBytes(entries);
    // Backpressure: bounded memory between the Raft loop and the disk. A single append larger
    // than the bound is still accepted when nothing is pending, so it can make progress.
    if (this.pendingBytes > 0 && this.pendingBytes + bytes > this.maxPendingBytes)
      return Promise.reject(overloadedError(this.pendingBytes, this.maxPendingBytes));
    this.view.applyAppend(entries, hardState);
    return this.enqueue(bytes, (g) => {
      if (entries.length > 0) {
        const s = entries[0].index;
        const base = g.entries.length > 0 ? g.entries[0].index : Infinity;
        // Merge as the disk would see the two appends in sequence: a later append replaces
        // the merged suffix from its first index on.
        if (s > base) g.entries.length = s - base;
        else g.entries = [];
        for (const e of entries) g.entries.push(e);
      }
      if (hardState) g.hardState = hardState;
      if (conf) g.conf = conf;
    });
  }

  /**
   * Apply: state-machine ops + applied index in ONE atomic batch (may ride on the next group
   * commit; not fsynced by itself — on a crash the applied index falls back consistently and the
   * entries are re-applied). Never refused for backpressure: apply must make progress.
   */
  applyBatch(appliedIndex: number, ops: StateOp[]): Promise<void> {
    const refused = this.refuseWrite();
    if (refused) return Promise.reject(refused);
    try {
      this.view.checkApply(appliedIndex);
    } catch (err) {
      return Promise.reject(err);
    }
    this.view.applied = appliedIndex;
    return this.enqueue(opBytes(ops), (g) => {
      for (const o of ops) g.ops.push(o);
      g.applied = appliedIndex;
    });
  }

  /**
   * `append` for a caller that must not fail on a full queue (the Raft loop): an append refused
   * as OVERLOADED (nothing written, nothing changed) is backpressure, so wait for the queue to
   * drain (1–50 ms, doubling) and send it again. `onWait` counts the waits. Any other error —
   * or a storage that failed or closed meanwhile — is thrown as `append` would throw it.
   */
  async appendWaiting(
    entries: StoredEntry[],
    hardState?: StoredHardState,
    onWait: () => void = () => {},
  ): Promise<void> {
    for (let waitMs = 1; ; waitMs = Math.min(waitMs * 2, 50)) {
      try {
        await this.append(entries, hardState);
        return;
      } catch (err) {
        if (!(err instanceof DaftkaError && err.code === 'OVERLOADED')) throw err;
        onWait();
        await new Promise((r) => setTimeout(r, waitMs));
      }
    }
  }

  /** Drop log entries below `firstIndex`; persists the new first index and the term of firstIndex-1. */
  compactLog(firstIndex: number): Promise<void> {
    const refused = this.refuseWrite();
    if (refused) return Promise.reject(refused);
    if (firstIndex <= this.view.firstIndex) return Promise.resolve();
    try {
      this.view.checkCompact(firstIndex);
    } catch (err) {
      return Promise.reject(err);
    }
    this.view.applyCompact(firstIndex);
    return this.barrier(0, () => ({ body: { op: 'compact', firstIndex }, transfer: [] }));
  }

  /**
   * Key compaction: replace the data of applied entries in place (same index, term, type), with `ops` (the pass's progress) in the same batch; a barrier, like
   * compactLog. An entry no longer stored with that term is skipped (docs/compaction.md).
   */
  rewriteEntries(entries: readonly StoredEntry[], ops: StateOp[]): Promise<void> {
    const refused = this.refuseWrite();
    if (refused) return Promise.reject(refused);
    let bytes = opBytes(ops);
    for (const e of entries) bytes += e.data.byteLength;
    return this.barrier(bytes, () => {
      const indexes = new Float64Array(entries.length);
      const meta = new Float64Array(3 * entries.length);
      let total = 0;
      for (const e of entries) total += ENTRY_HEADER_BYTES + e.data.byteLength;
      const arena = new Uint8Array(total);
      let off = 0;
      entries.forEach((e, i) => {
        indexes[i] = e.index;
        meta[3 * i] = e.term;
        meta[3 * i + 1] = e.type;
        meta[3 * i + 2] = e.data.byteLength;
        arena.set(e.data, off + ENTRY_HEADER_BYTES);
        off += ENTRY_HEADER_BYTES + e.data.byteLength;
      });
      return {
        body: { op: 'rewrite', entries: { indexes, meta, arena }, ops },
        transfer: [indexes.buffer, meta.buffer, arena.buffer],
      };
    });
  }

  /**
   * Replace the state keyspace, empty the log, firstIndex = meta.index+1, applied = meta.index,
   * conf = meta.conf (and a stored commit below meta.index is raised to it); one synced batch.
   */
  installSnapshot(meta: StoredSnapshotMeta, state: Array<[Uint8Array, Uint8Array]>): Promise<void> {
    const refused = this.acceptInstall(meta);
    if (refused) return Promise.reject(refused);
    let bytes = 0;
    for (const [k, v] of state) bytes += k.byteLength + v.byteLength;
    return this.barrier(bytes, () => {
      // Copy into one buffer and transfer it: cloning each view would copy whole backing buffers.
      const arena = new Uint8Array(bytes);
      let off = 0;
      const take = (src: Uint8Array): Uint8Array => {
        arena.set(src, off);
        off += src.byteLength;
        return arena.subarray(off - src.byteLength, off);
      };
      const packed = state.map(([k, v]): [Uint8Array, Uint8Array] => [take(k), take(v)]);
      return { body: { op: 'install', meta, state: packed }, transfer: [arena.buffer] };
    });
  }

  /**
   * installSnapshot for a state that was staged (stageBlock) instead of passed: the state
   * keyspace is replaced by the staged keys in bounded batches, crash-safe (engine.ts).
   */
  installStaged(meta: StoredSnapshotMeta): Promise<void> {
    const refused = this.acceptInstall(meta);
    if (refused) return Promise.reject(refused);
    return this.barrier(0, () => ({ body: { op: 'installStaged', meta }, transfer: [] }));
  }

  /** An install the store can take now, recorded in the eager view; else the error to reject with. */
  private acceptInstall(meta: StoredSnapshotMeta): Error | null {
    const refused = this.refuseWrite();
    if (refused) return refused;
    try {
      this.view.checkInstall(meta);
    } catch (err) {
      return err as Error;
    }
    this.view.applyInstall(meta);
    return null;
  }

  /** Drop anything staged and start staging a new snapshot's state (straight to the worker). */
  stageBegin(): Promise<void> {
    return this.read({ op: 'stageBegin' });
  }

  /**
   * Stage one chunk of a snapshot's state (a pairs block, codec.ts), apart from the live state.
   * Not a log write: it goes straight to the worker, ordered before a later installStaged by the
   * worker's arrival order. The block is copied (it may be a view into a pooled buffer).
   */
  stageBlock(block: Uint8Array): Promise<void> {
    if (this.closing) return Promise.reject(storageClosedError());
    const own = new Uint8Array(block);
    return this.channel.call({ op: 'stageBlock', block: own }, [own.buffer]);
  }

  // ---------------------------------------------------------------- reads

  /**
   * Entries [lo, hi) — clipped to the last index — up to maxBytes of data, but at least one
   * entry if lo < hi and lo is in range. lo below the first index rejects with LogCompactedError.
   */
  async readEntries(lo: number, hi: number, maxBytes: number): Promise<StoredEntry[]> {
    const w = await this.read<WireEntries>({ op: 'readEntries', lo, hi, maxBytes });
    const out: StoredEntry[] = new Array<StoredEntry>(w.count);
    let off = 0;
    for (let i = 0; i < w.count; i++) {
      const len = w.meta[3 * i + 2];
      out[i] = {
        index: w.firstIndex + i,
        term: w.meta[3 * i],
        type: w.meta[3 * i + 1],
        data: w.arena.subarray(off, off + len),
      };
      off += len;
    }
    return out;
  }

  /** A state-machine value (key relative to the state keyspace). */
  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.read<Uint8Array | undefined>({ op: 'get', key });
  }

  /** State-machine rows with gte ≤ key < lt (a zero-length `lt` means no upper bound). */
  scan(opts: {
    gte: Uint8Array;
    lt: Uint8Array;
    limit?: number;
    reverse?: boolean;
  }): Promise<Array<[Uint8Array, Uint8Array]>> {
    return this.read<Array<[Uint8Array, Uint8Array]>>({
      op: 'scan',
      gte: opts.gte,
      lt: opts.lt,
      limit: opts.limit ?? -1,
      reverse: opts.reverse ?? false,
    });
  }

  /** RocksDB's memory (memtables, block cache, table readers): for the storage memory gauge. */
  memory(): Promise<RocksMemory> {
    return this.read<RocksMemory>({ op: 'memory' });
  }

  /**
   * Open a fixed view of the state keyspace as of every write whose promise has resolved (the
   * applied index it is at comes back in `meta`); read it with exportChunk, release it with
   * exportClose. At most MAX_OPEN_EXPORTS stay open: opening another closes the oldest.
   */
  exportOpen(): Promise<{ exportId: number; meta: StoredSnapshotMeta }> {
    return this.read({ op: 'exportOpen' });
  }

  /** State pairs of an open export after key `after` (from the start when null), up to maxBytes, as one block. */
  exportChunk(exportId: number, after: Uint8Array | null, maxBytes: number): Promise<ExportChunk> {
    return this.read({ op: 'exportChunk', exportId, after, maxBytes });
  }

  exportClose(exportId: number): Promise<void> {
    return this.read({ op: 'exportClose', exportId });
  }

  stats(): { logBytes: number; firstIndex: number; lastIndex: number; pendingBytes: number } {
    return { ...this.durable, pendingBytes: this.pendingBytes };
  }

  /** Non-null while a write is held because the disk is full (ENOSPC); null once it went through. */
  get diskFull(): DiskFullState | null {
    return this.full === null ? null : { ...this.full };
  }

  /** Flush everything accepted (one last synced write in 'interval' mode), close the db, stop the worker. */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  private async doClose(): Promise<void> {
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    if (this.full !== null) {
      // A held write cannot be made durable now: its callers learn it never was (nothing
      // waiting on it was acknowledged), and the store closes with what is on disk.
      if (this.probeTimer) clearTimeout(this.probeTimer);
      this.probeTimer = null;
      const err = new ClassifiedError('disk_full', `storage closed while the disk was full: ${this.full.error}`);
      const held = this.inflight;
      this.inflight = null;
      if (held) {
        this.pendingBytes -= held.bytes;
        if (held.kind === 'group') for (const w of held.waiters) w.reject(err);
        else held.waiter.reject(err);
      }
      this.rejectQueued(err);
    }
    try {
      if (!this.failed && this.full === null) {
        if (!this.fsyncAlways && (this.unsynced || this.queue.length > 0 || this.inflight)) this.requestSync(true);
        await this.whenIdle();
      }
      if (this.full !== null && !this.channel.dead) {
        // RocksDB's close reports the background error (no space) it still holds; what was
        // synced before it is on disk, and the worker stops either way.
        await this.channel
          .call<null>({ op: 'close' })
          .catch((err: Error) => this.log.warn('storage_close_while_disk_full', { error: err.message }));
      } else if (!this.channel.dead) await this.channel.call<null>({ op: 'close' });
    } finally {
      this.closed = true;
      await this.channel.stop();
      this.log.info('storage_closed', { last_index: this.durable.lastIndex });
    }
  }

  // ---------------------------------------------------------------- machinery

  private refuseWrite(): Error | null {
    if (this.closing) return storageClosedError();
    return this.failed;
  }

  private read<T>(body: RequestBody): Promise<T> {
    if (this.closing) return Promise.reject(storageClosedError());
    return this.channel.call<T>(body);
  }

  /** Merge into the open group at the back of the queue, or start a new one. */
  private enqueue(bytes: number, merge: (g: GroupSlot) => void): Promise<void> {
    const back = this.queue[this.queue.length - 1];
    let g: GroupSlot;
    if (back && back.kind === 'group' && (back.bytes === 0 || back.bytes + bytes <= this.maxBatchBytes)) {
      g = back;
    } else {
      g = { kind: 'group', entries: [], ops: [], syncRequested: false, bytes: 0, waiters: [] };
      this.queue.push(g);
    }
    merge(g);
    g.bytes += bytes;
    this.pendingBytes += bytes;
    return new Promise<void>((resolve, reject) => {
      g.waiters.push({ resolve, reject });
      this.pump();
    });
  }

  private barrier(bytes: number, body: BarrierSlot['body']): Promise<void> {
    this.pendingBytes += bytes;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ kind: 'barrier', body, bytes, waiter: { resolve, reject } });
      this.pump();
    });
  }

  /** Send the next slot if nothing is in flight. The single in-flight write is what makes groups. */
  private pump(): void {
    if (this.inflight || this.failed) return;
    const slot = this.queue.shift();
    if (!slot) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const f of w) f();
      return;
    }
    this.inflight = slot;
    this.send(slot);
  }

  /** Send `slot` (the in-flight one) to the worker: first time, or again after a full disk. */
  private send(slot: Slot): void {
    if (slot.kind === 'barrier') {
      const { body, transfer } = slot.body();
      this.channel.call<LogPosition>(body, transfer).then(
        (pos) => this.completed(slot, pos, [slot.waiter]),
        (err: Error) => this.writeFailed(slot, err, [slot.waiter]),
      );
      return;
    }
    const { group, transfer } = packGroup(slot, this.fsyncAlways);
    this.channel.call<WriteResult>({ op: 'write', group }, transfer).then(
      (res) => {
        if (group.sync) this.unsynced = false;
        else if (group.log || group.hardState || group.conf || group.ops.length > 0) this.unsynced = true;
        this.completed(slot, res, slot.waiters);
        this.onFlush?.({
          entries: group.log?.count ?? 0,
          bytes: group.bytes,
          waiters: slot.waiters.length,
          fsyncSeconds: res.fsyncSeconds,
          writeSeconds: res.writeSeconds,
          synced: group.sync,
        });
      },
      (err: Error) => this.writeFailed(slot, err, slot.waiters),
    );
  }

  /**
   * Copy a group's payload into one fresh buffer and transfer it to the worker. Structured clone
   * of a view copies its whole backing ArrayBuffer (often a large network frame), so packing is
   * both one copy and the least copying. Each entry gets header space the worker fills in place.
   */
  private completed(slot: Slot, pos: LogPosition, waiters: Waiter[]): void {
    this.inflight = null;
    this.pendingBytes -= slot.bytes;
    this.durable = { firstIndex: pos.firstIndex, lastIndex: pos.lastIndex, logBytes: pos.logBytes };
    // While the disk is full only the held slot is in flight: it went through, space is back.
    if (this.full !== null) this.spaceBack();
    for (const w of waiters) w.resolve();
    this.pump();
  }

  /**
   * A failed write leaves the eager view ahead of the disk, and the Raft layer may already have
   * acted on it: every queued and later write is refused with the same error. Reads go on (the
   * worker still runs); the process is expected to restart (crash-only).
   */
  private writeFailed(slot: Slot, err: Error, waiters: Waiter[]): void {
    if (err instanceof ClassifiedError && err.kind === 'disk_full' && !this.closing && !this.failed) {
      this.holdForSpace(err);
      return;
    }
    // (A held slot whose resend died with the worker was already failed by onWorkerDeath.)
    if (this.inflight === slot) {
      this.inflight = null;
      this.pendingBytes -= slot.bytes;
    }
    if (!this.failed) {
      this.failed = err;
      if (!(err instanceof ClassifiedError && err.kind === 'worker_crash'))
        this.log.error('storage_write_failed', { kind: (err as ClassifiedError).kind, error: err.message });
    }
    for (const w of waiters) w.reject(err);
    this.rejectQueued(err);
  }

  /**
   * ENOSPC: keep the slot in flight (nothing behind it is sent), and probe. The engine adopted
   * nothing of the failed batch (it only moves its position after a successful write), and
   * RocksDB holds further writes until it has resumed by itself — its SstFileManager checks for
   * free space every few seconds — so the probe tells when writing works again.
   */
  private holdForSpace(err: Error): void {
    if (this.full === null) {
      this.full = { sinceMs: Date.now(), error: err.message, failedProbes: 0 };
      this.probeBackoff.reset();
      this.log.error('storage_disk_full', { error: err.message, pending_bytes: this.pendingBytes });
      this.onDiskFull?.(this.diskFull);
    }
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    const delay = this.probeBackoff.next();
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      this.probe();
    }, delay);
  }

  /** A small synced write (the sync mark); on success the held slot is sent again. */
  private probe(): void {
    if (this.closing || this.failed || this.full === null) return;
    const group = { sync: true, log: null, ops: [], bytes: 0 };
    this.channel.call<WriteResult>({ op: 'write', group }).then(
      () => {
        if (this.closing || this.failed || this.full === null) return;
        const held = this.inflight;
        this.log.info('storage_write_retry', { failed_probes: this.full.failedProbes });
        // Sent again unchanged: completed() ends the episode, another ENOSPC probes again.
        if (held) this.send(held);
        else this.spaceBack();
      },
      (err: Error) => {
        if (this.closing || this.failed || this.full === null) return;
        if (err instanceof ClassifiedError && err.kind === 'disk_full') {
          this.full.failedProbes++;
          this.scheduleProbe();
          return;
        }
        // Anything else (EIO, corruption, a dead worker) is what it always was: fatal.
        const held = this.inflight;
        if (held) this.writeFailed(held, err, held.kind === 'group' ? held.waiters : [held.waiter]);
      },
    );
  }

  private spaceBack(): void {
    const f = this.full;
    if (f === null) return;
    this.full = null;
    this.log.warn('storage_disk_space_back', {
      disk_full_seconds: (Date.now() - f.sinceMs) / 1000,
      failed_probes: f.failedProbes,
    });
    this.onDiskFull?.(null);
  }

  private rejectQueued(err: Error): void {
    for (const s of this.queue.splice(0)) {
      this.pendingBytes -= s.bytes;
      if (s.kind === 'group') for (const w of s.waiters) w.reject(err);
      else s.waiter.reject(err);
    }
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  private onWorkerDeath(err: ClassifiedError): void {
    if (this.closed) return;
    this.log.error('storage_worker_crash', { kind: err.kind, error: err.message });
    if (this.timer) clearInterval(this.timer);
    if (!this.failed) this.failed = err;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
    // A write held for disk space has no call outstanding: reject its waiters here.
    const held = this.full !== null ? this.inflight : null;
    if (held) {
      this.inflight = null;
      this.pendingBytes -= held.bytes;
      if (held.kind === 'group') for (const w of held.waiters) w.reject(err);
      else held.waiter.reject(err);
    }
    // The in-flight write's call was rejected by the channel (→ writeFailed); queued ones here.
    this.rejectQueued(err);
  }

  /** 'interval' mode: make the next (or a new, empty) group carry a synced write. */
  private requestSync(force = false): void {
    if (this.failed) return;
    const back = this.queue[this.queue.length - 1];
    if (back && back.kind === 'group') {
      back.syncRequested = true;
      return;
    }
    // Nothing written unsynced since the last sync: nothing to make durable. (An unsynced write
    // still in flight sets `unsynced` when it completes and is synced on the next tick.)
    if (!this.unsynced && !force) return;
    this.queue.push({ kind: 'group', entries: [], ops: [], syncRequested: true, bytes: 0, waiters: [] });
    this.pump();
  }

  private whenIdle(): Promise<void> {
    if (!this.inflight && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

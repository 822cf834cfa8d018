/**
 * Disk full as a degradable condition (docs/crash-matrix.md, `disk_full`). Two signals, one state:
 *
 *  - **below_reserve**: `statfs` of the data directory, every `diskCheckIntervalMs`, shows less
 *    free space than `storageMinFreeBytes`. Checked before the disk is really full, so Raft keeps
 *    running (heartbeats, acks, hard-state writes, retention's log-start moves all need a little
 *    space) while the leader refuses new records. Redpanda's `storage_min_free_bytes` is the anchor.
 *  - **enospc**: a RocksDB write failed with "No space left on device". The storage facade holds
 *    that write and probes until it goes through (storage.ts); until then nothing can be persisted.
 *
 * Either one: produce answers 503 `STORAGE_FULL` with Retry-After, `/readyz` is not ready with the
 * reason, `daftka_storage_disk_full` is 1. Reads are served throughout. Both end by themselves:
 * the next statfs above the reserve, the first write that goes through.
 *
 * One safety net: RocksDB resumes writing by itself once it sees free space (measured: within
 * 5 s). If statfs has shown room above the reserve for STUCK_AFTER_MS and a held write still does
 * not go through, the store did not resume: that is reported as fatal (`onStuck`), so the
 * crash-only restart reopens the database — a replica never stays degraded with space available.
 */
import { statfs } from 'node:fs/promises';
import { ClassifiedError } from '../../common/crash-policy';
import { DaftkaError } from '../../common/errors';
import type { Logger } from '../../common/log';
import type { ReplicaMetrics } from '../metrics';
import type { ReplicaStorage } from './storage';

export type DiskFullReason = 'enospc' | 'below_reserve';

export interface DiskFull {
  reason: DiskFullReason;
  detail: string;
}

/** Free and total bytes of the filesystem holding `dir` (free: what an unprivileged writer may use). */
export async function diskSpace(dir: string): Promise<{ freeBytes: number; capacityBytes: number }> {
  const s = await statfs(dir);
  return { freeBytes: s.bavail * s.bsize, capacityBytes: s.blocks * s.bsize };
}

/** Retry-After for STORAGE_FULL: space comes back by an operator's hand, not in milliseconds. */
const STORAGE_FULL_RETRY_AFTER_MS = 5000;
/** Room back this long and a held write still failing: RocksDB did not resume (see the file comment). */
export const STUCK_AFTER_MS = 60_000;
/** "Room" for that judgement when the reserve is 0. */
const MIN_ROOM_BYTES = 16 * 1024 * 1024;

export interface DiskGuardOptions {
  dir: string;
  minFreeBytes: number;
  intervalMs: number;
  storage: ReplicaStorage;
  metrics: ReplicaMetrics;
  lbl: { topic: string; partition: string };
  logger: Logger;
  /** A held write does not go through although space is back (fatal: restart and reopen). */
  onStuck?: (err: ClassifiedError) => void;
  nowMs?: () => number;
}

export class DiskGuard {
  /** From the last statfs; null before the first one (or while it fails). */
  freeBytes: number | null = null;
  capacityBytes: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastReported: DiskFullReason | null = null;
  /** Since when statfs has shown room while a write is held (null: not the case). */
  private roomWhileHeldSinceMs: number | null = null;
  private stuckReported = false;
  private readonly now: () => number;

  constructor(private readonly o: DiskGuardOptions) {
    this.now = o.nowMs ?? Date.now;
  }

  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One statfs; updates the gauges and logs a change of state. Never throws. */
  async check(): Promise<void> {
    try {
      const s = await diskSpace(this.o.dir);
      this.freeBytes = s.freeBytes;
      this.capacityBytes = s.capacityBytes;
      this.o.metrics.storageFreeBytes.set(this.o.lbl, s.freeBytes);
      this.o.metrics.storageCapacityBytes.set(this.o.lbl, s.capacityBytes);
    } catch (err) {
      // statfs failing is not disk full: keep the last value, say so once per state.
      this.o.logger.warn('disk_space_check_failed', { dir: this.o.dir, error: (err as Error).message });
    }
    this.changed();
    this.watchHeld();
  }

  /** The safety net: room back for STUCK_AFTER_MS, the held write still held → onStuck. */
  private watchHeld(): void {
    const held = this.o.storage.diskFull;
    const room = Math.max(this.o.minFreeBytes, MIN_ROOM_BYTES);
    if (held === null || this.freeBytes === null || this.freeBytes < room) {
      this.roomWhileHeldSinceMs = null;
      return;
    }
    const now = this.now();
    this.roomWhileHeldSinceMs ??= now;
    if (this.stuckReported || now - this.roomWhileHeldSinceMs < STUCK_AFTER_MS) return;
    this.stuckReported = true;
    this.o.onStuck?.(
      new ClassifiedError(
        'storage_io_error',
        `${this.freeBytes} bytes free for ${Math.round((now - this.roomWhileHeldSinceMs) / 1000)} s, yet the write held since ${new Date(held.sinceMs).toISOString()} still fails (${held.failedProbes} probes): the store did not resume; restarting reopens it (${held.error})`,
      ),
    );
  }

  /** Storage told us a write met ENOSPC, or went through again. */
  changed(): void {
    const f = this.full;
    this.o.metrics.storageDiskFull.set(this.o.lbl, f === null ? 0 : 1);
    const reason = f?.reason ?? null;
    if (reason === this.lastReported) return;
    this.lastReported = reason;
    if (f !== null)
      this.o.logger.error('disk_full', { reason: f.reason, detail: f.detail, free_bytes: this.freeBytes });
    else this.o.logger.info('disk_full_cleared', { free_bytes: this.freeBytes });
  }

  /** Non-null while writes of new records are refused, with why. */
  get full(): DiskFull | null {
    const held = this.o.storage.diskFull;
    if (held !== null)
      return {
        reason: 'enospc',
        detail: `a storage write failed for lack of space ${((Date.now() - held.sinceMs) / 1000).toFixed(1)} s ago and is held until space returns (${held.failedProbes} probes failed): ${held.error}`,
      };
    if (this.o.minFreeBytes > 0 && this.freeBytes !== null && this.freeBytes < this.o.minFreeBytes)
      return {
        reason: 'below_reserve',
        detail: `${this.freeBytes} bytes free on the data directory, below the reserve of ${this.o.minFreeBytes} (DAFTKA_STORAGE_MIN_FREE_BYTES)`,
      };
    return null;
  }

  /** Produce's door: STORAGE_FULL (503, retryable, Retry-After) while the disk is full. */
  admitWrite(): void {
    const f = this.full;
    if (f === null) return;
    throw new DaftkaError('STORAGE_FULL', `replica storage is full: ${f.detail}`, {
      retryAfterMs: STORAGE_FULL_RETRY_AFTER_MS,
      extra: { reason: f.reason, free_bytes: this.freeBytes, min_free_bytes: this.o.minFreeBytes },
    });
  }
}

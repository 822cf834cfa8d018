import { DaftkaError } from '../../common/errors';
import type { StateOp } from '../storage/storage';
import {
  CommandKind,
  decodeCommand,
  recordBytes,
  spanOf,
  type Command,
  type CompactCommand,
  type ProduceCommand,
} from './commands';
import { LeasedState, type LeasedApplyOutput } from '../leased/state';
import { BufReader, BufWriter } from '../../protocol/bytes';
import { DedupTable, P_DEDUP } from './dedup-table';
import {
  DEFAULT_INDEX_CACHE_BYTES,
  OffsetIndex,
  P_OFFSET_INDEX,
  P_TIME_INDEX,
  type IndexRow,
  type IndexStats,
  type StateReader,
} from './offset-index';

export type { IndexRow, StateReader } from './offset-index';

/**
 * The partition's replicated state machine: offsets, the offset and time indexes (on disk,
 * offset-index.ts), the idempotency dedup table (bounded, dedup-table.ts), the producer registry
 * and group offsets. Applying an entry is a pure function of the current state and the entry:
 * every replica computes the same offsets and the same outcomes. `apply` returns the storage ops
 * that persist the change; the driver writes them with the applied index in one batch (recovery
 * = open the database, read a bounded amount of state, nothing replayed).
 *
 * In memory: next offset, log start, the state clock, the index tail cache (bounded in bytes),
 * the dedup table (bounded in entries and bytes), the producer registry and group offsets
 * (bounded by their expiry). Nothing here grows with the log.
 *
 * Time inside the state machine is the **state clock**: the largest leaderTimeMs applied so far.
 * It never goes back, so expiry (dedup keys, producers, groups) is the same on every replica,
 * restarted or not, whatever the proposing leader's wall clock did.
 */

export type ApplyResult =
  | { kind: 'written'; baseOffset: number; count: number }
  | { kind: 'duplicate'; baseOffset: number; count: number }
  | { kind: 'refused'; error: DaftkaError }
  | { kind: 'ok' }
  | { kind: 'none' }
  | { kind: 'leased'; out: LeasedApplyOutput };

interface ProducerRow {
  epoch: number;
  lastSeq: number;
  lastCount: number;
  lastBase: number;
  /** State clock of its last batch (expiry). */
  lastMs: number;
}
export interface GroupRow {
  offset: number;
  metadata: string;
}

const enc = new TextEncoder();
const K_META_NEXT = enc.encode('m/next');
const K_META_START = enc.encode('m/start');
/** Cumulative record bytes since offset 0 (retained bytes = this − the first retained row's start). */
const K_META_CUM = enc.encode('m/cum');
/** The state clock (largest leaderTimeMs applied). */
const K_META_CLOCK = enc.encode('m/clock');
/** The time index's running max timestamp and the cumulative bytes at its last key. */
const K_META_TIME = enc.encode('m/time');
/** The replicated key-compaction request (docs/compaction.md). */
const K_META_COMPACT = enc.encode('m/compact');
/**
 * This replica's own compaction progress: what its passes have rewritten. Not changed by apply;
 * written by the compactor with the entries it rewrites, and carried by snapshots (a follower's
 * entries then come from a leader at least that far).
 */
const K_META_CLEANED = enc.encode('m/cleaned');
const P_PRODUCER = 0x70; // 'p'
const P_GROUP = 0x67; // 'g'
/**
 * The offset index of the format before issue 20 (keyed by base offset, read whole into memory).
 * No release wrote it; a data directory that holds it is refused at start (see
 * `checkStateFormat`), never silently served without its index.
 */
const P_OLD_INDEX = 0x6f; // 'o'

/** The key range of the old offset index: one row there means the directory is of the old format. */
export const OLD_FORMAT_RANGE = { gte: Uint8Array.of(P_OLD_INDEX), lt: Uint8Array.of(P_OLD_INDEX + 1), limit: 1 };

/**
 * The key ranges of the state keyspace recovery reads (everything but the offset and time
 * indexes, which stay on disk): each bounded by its own table's bound, none by the log.
 */
export const RECOVERY_RANGES: ReadonlyArray<{ gte: Uint8Array; lt: Uint8Array }> = [
  { gte: new Uint8Array(0), lt: Uint8Array.of(P_OLD_INDEX) },
  { gte: Uint8Array.of(P_OLD_INDEX + 1), lt: Uint8Array.of(P_TIME_INDEX) },
  { gte: Uint8Array.of(P_TIME_INDEX + 1), lt: Uint8Array.of(P_OFFSET_INDEX) },
  { gte: Uint8Array.of(P_OFFSET_INDEX + 1), lt: Uint8Array.of(0xff) },
];

function strKey(prefix: number, s: string): Uint8Array {
  return Buffer.concat([Buffer.of(prefix), Buffer.from(s, 'utf8')]);
}
function num(v: number): Uint8Array {
  return new BufWriter(8).i53(v, Number.MIN_SAFE_INTEGER).finish();
}
function readNum(v: Uint8Array): number {
  return new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength)).i53('num', Number.MIN_SAFE_INTEGER);
}
function sameKey(k: Uint8Array, name: Uint8Array): boolean {
  return k.byteLength === name.byteLength && Buffer.compare(k, name) === 0;
}

export interface StateSettings {
  /** How long an idempotency key is remembered (state clock). */
  dedupWindowMs: number;
  /** Dedup table bounds (oldest evicted past either). */
  dedupMaxEntries?: number;
  dedupMaxBytes?: number;
  /** A producer with no batch for this long is forgotten (Kafka producer.id.expiration.ms). */
  producerExpiryMs?: number;
  /** A group with no commit for this long is forgotten (Kafka offsets.retention.minutes). */
  groupExpiryMs?: number;
  /** Bytes of offset-index rows kept in memory (the tail). */
  indexCacheBytes?: number;
}

export const STATE_DEFAULTS = {
  dedupMaxEntries: 1_000_000,
  dedupMaxBytes: 64 * 1024 * 1024,
  producerExpiryMs: 24 * 3600 * 1000,
  groupExpiryMs: 7 * 24 * 3600 * 1000,
  indexCacheBytes: DEFAULT_INDEX_CACHE_BYTES,
};

/** Reads the persisted keyspace nowhere (a state built only by apply, never restarted). */
const NO_READER: StateReader = {
  get: async () => undefined,
  scan: async () => [],
};

export interface StateStats extends IndexStats {
  dedupEntries: number;
  dedupBytes: number;
  dedupExpired: number;
  dedupEvicted: number;
  producers: number;
  producersExpired: number;
  groups: number;
  groupsExpired: number;
}

/** The key-compaction request every replica compacts to (replicated; CompactCommand). */
export interface CompactionRequest {
  upToOffset: number;
  tombstonesBefore: number;
  horizonOffset: number;
  horizonMs: number;
}

/** What this replica's compaction passes have done (local; see K_META_CLEANED). */
export interface CompactionProgress {
  /** Every offset below this has been through a pass (the clean section ends here). */
  cleanedTo: number;
  /** Tombstones below this are gone from the clean section. */
  tombstonesBefore: number;
  /** Bytes of the clean section's entries as stored after the last pass (for the dirty ratio). */
  cleanBytes: number;
}

export function encodeProgress(p: CompactionProgress): Uint8Array {
  return new BufWriter(24).i53(p.cleanedTo).i53(p.tombstonesBefore).i53(p.cleanBytes).finish();
}

/** The state op that records a pass's progress (written with its last rewrite). */
export function progressOp(p: CompactionProgress): StateOp {
  return { op: 'put', key: K_META_CLEANED, value: encodeProgress(p) };
}

export class PartitionState {
  /** Offset the next record will get = high watermark of applied (committed) records. */
  nextOffset = 0;
  logStartOffset = 0;
  /** The state clock: the largest leaderTimeMs applied so far. */
  clockMs = 0;
  /** Record bytes of every batch since offset 0. */
  private cumBytes = 0;
  /** The key-compaction request (replicated, docs/compaction.md). */
  compaction: CompactionRequest = { upToOffset: 0, tombstonesBefore: 0, horizonOffset: 0, horizonMs: 0 };
  /** This replica's compaction progress (local; the compactor sets it after each pass). */
  cleaned: CompactionProgress = { cleanedTo: 0, tombstonesBefore: 0, cleanBytes: 0 };
  /**
   * Bumped when the state is about to be replaced (snapshot install) and when it is loaded: a
   * compaction pass that began in another epoch writes nothing more (its view is gone).
   */
  epoch = 0;
  private readonly index: OffsetIndex;
  private readonly dedup: DedupTable;
  /** In order of last use (= state clock order): expiry looks at the front only. */
  private readonly producers = new Map<string, ProducerRow>();
  readonly groups = new Map<string, GroupRow>();
  /** Group → state clock of its last commit, in that order (expiry looks at the front only). */
  private readonly groupLastMs = new Map<string, number>();
  private producersExpired = 0;
  private groupsExpired = 0;
  private readonly producerExpiryMs: number;
  private readonly groupExpiryMs: number;
  /** Leased groups, dead letters and replay jobs (replica/leased/state.ts). */
  readonly leased = new LeasedState({
    committed: (group) => this.groups.get(group)?.offset,
    setCommitted: (group, offset, ops) => this.setGroupOffset(group, offset, ops),
    bounds: () => ({ start: this.logStartOffset, end: this.nextOffset }),
  });

  constructor(settings: StateSettings, reader: StateReader = NO_READER) {
    this.dedup = new DedupTable({
      windowMs: settings.dedupWindowMs,
      maxEntries: settings.dedupMaxEntries ?? STATE_DEFAULTS.dedupMaxEntries,
      maxBytes: settings.dedupMaxBytes ?? STATE_DEFAULTS.dedupMaxBytes,
    });
    this.producerExpiryMs = settings.producerExpiryMs ?? STATE_DEFAULTS.producerExpiryMs;
    this.groupExpiryMs = settings.groupExpiryMs ?? STATE_DEFAULTS.groupExpiryMs;
    this.index = new OffsetIndex(reader, settings.indexCacheBytes ?? STATE_DEFAULTS.indexCacheBytes);
  }

  // ---- recovery and snapshots ----

  /**
   * Rebuild from the persisted state keyspace: `pairs` are the RECOVERY_RANGES (sorted; rows of
   * the offset and time indexes, if given, are skipped — they stay on disk). The same work
   * whatever the log's length. `appliedIndex`: every index row up to it is in storage.
   */
  load(pairs: Iterable<[Uint8Array, Uint8Array]>, appliedIndex = 0): void {
    this.epoch++;
    this.index.reset();
    this.dedup.clear();
    this.producers.clear();
    this.groups.clear();
    this.groupLastMs.clear();
    this.leased.clear();
    this.nextOffset = 0;
    this.logStartOffset = 0;
    this.clockMs = 0;
    this.cumBytes = 0;
    this.compaction = { upToOffset: 0, tombstonesBefore: 0, horizonOffset: 0, horizonMs: 0 };
    this.cleaned = { cleanedTo: 0, tombstonesBefore: 0, cleanBytes: 0 };
    const producers: Array<[string, ProducerRow]> = [];
    const groups: Array<[string, GroupRow, number]> = [];
    for (const [k, v] of pairs) {
      const p = k[0];
      if (p === P_OFFSET_INDEX || p === P_TIME_INDEX || p === P_OLD_INDEX) continue;
      if (this.leased.load(k, v)) continue;
      const rd = new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
      const name = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
      switch (p) {
        case P_DEDUP:
          this.dedup.load(k, v);
          break;
        case P_PRODUCER:
          producers.push([
            name.subarray(1).toString('utf8'),
            {
              epoch: rd.u32('e'),
              lastSeq: rd.i53('s', -1),
              lastCount: rd.u32('c'),
              lastBase: rd.i53('b'),
              lastMs: rd.remaining >= 8 ? rd.i53('t') : 0,
            },
          ]);
          break;
        case P_GROUP:
          groups.push([
            name.subarray(1).toString('utf8'),
            { offset: rd.i53('o'), metadata: rd.str16('m') },
            rd.remaining >= 8 ? rd.i53('t') : 0,
          ]);
          break;
        default:
          if (sameKey(name, K_META_NEXT)) this.nextOffset = readNum(v);
          else if (sameKey(name, K_META_START)) this.logStartOffset = readNum(v);
          else if (sameKey(name, K_META_CUM)) this.cumBytes = readNum(v);
          else if (sameKey(name, K_META_CLOCK)) this.clockMs = readNum(v);
          else if (sameKey(name, K_META_COMPACT))
            this.compaction = {
              upToOffset: rd.i53('upTo'),
              tombstonesBefore: rd.i53('tombstones'),
              horizonOffset: rd.i53('horizon'),
              horizonMs: rd.i53('horizonMs'),
            };
          else if (sameKey(name, K_META_CLEANED))
            this.cleaned = {
              cleanedTo: rd.i53('cleanedTo'),
              tombstonesBefore: rd.i53('tombstones'),
              cleanBytes: rd.i53('cleanBytes'),
            };
          else if (sameKey(name, K_META_TIME)) {
            this.index.runningMaxTs = rd.i53('max', Number.MIN_SAFE_INTEGER);
            this.index.lastTimeKeyCum = rd.i53('cum', Number.MIN_SAFE_INTEGER);
          }
      }
    }
    this.dedup.finishLoad();
    // Expiry looks at the front: restore last-use order (ties keep key order, as on every replica).
    producers.sort((a, b) => a[1].lastMs - b[1].lastMs);
    for (const [id, row] of producers) this.producers.set(id, row);
    groups.sort((a, b) => a[2] - b[2]);
    for (const [g, row, lastMs] of groups) {
      this.groups.set(g, row);
      this.groupLastMs.set(g, lastMs);
    }
    this.index.markAllWritten(appliedIndex);
  }

  /** The apply batches up to `logIndex` are written to storage (index rows may leave memory). */
  markWritten(logIndex: number): void {
    this.index.markWritten(logIndex);
  }

  // ---- apply ----

  /** Apply one committed Normal entry at `logIndex`. Deterministic. */
  apply(logIndex: number, data: Uint8Array): { ops: StateOp[]; result: ApplyResult; command: Command } {
    const command = decodeCommand(data);
    const ops: StateOp[] = [];
    // The state clock never goes back (a new leader's wall clock may be behind the old one's).
    if (command.leaderTimeMs > this.clockMs) {
      this.clockMs = command.leaderTimeMs;
      ops.push({ op: 'put', key: K_META_CLOCK, value: num(this.clockMs) });
    }
    let result: ApplyResult;
    switch (command.kind) {
      case CommandKind.Produce:
        result = this.applyProduce(logIndex, command, ops);
        break;
      case CommandKind.GroupCommit: {
        this.putGroup(command.group, { offset: command.offset, metadata: command.metadata }, ops);
        result = { kind: 'ok' };
        break;
      }
      case CommandKind.AdvanceLogStart:
        result = this.applyLogStart(command.logStartOffset, ops);
        break;
      case CommandKind.Compact:
        result = this.applyCompact(command, ops);
        break;
      default:
        result = { kind: 'leased', out: this.leased.apply(command, ops) };
    }
    this.expire(ops);
    return { ops, result, command };
  }

  private applyProduce(logIndex: number, c: ProduceCommand, ops: StateOp[]): ApplyResult {
    // A batch rewritten by compaction keeps its span: the same offsets on every replica.
    const n = spanOf(c);
    if (c.idempotencyKey !== undefined) {
      const seen = this.dedup.get(c.idempotencyKey);
      if (seen) {
        if (c.payloadHash && Buffer.compare(Buffer.from(seen.hash), Buffer.from(c.payloadHash)) === 0)
          return { kind: 'duplicate', baseOffset: seen.baseOffset, count: seen.count };
        return { kind: 'refused', error: idempotencyConflict(c.idempotencyKey) };
      }
    }
    if (c.producer) {
      const refusal = this.checkProducer(c.producer.producerId, c.producer.epoch, c.producer.seq, n);
      if (refusal) return refusal;
    }
    if (c.replay) {
      const refusal = this.leased.checkReplay(c.replay);
      if (refusal) return { kind: 'refused', error: refusal };
    }
    const base = this.nextOffset;
    this.nextOffset += n;
    // ... and the index row of the batch as written (bytes, newest timestamp).
    let maxTs = Number.MIN_SAFE_INTEGER;
    if (c.compacted) maxTs = c.compacted.maxTimestampMs;
    else for (const r of c.records) if (r.timestampMs > maxTs) maxTs = r.timestampMs;
    const bytes = c.compacted ? c.compacted.bytes : recordBytes(c.records);
    this.cumBytes += bytes;
    const timeBefore = this.index.lastTimeKeyCum;
    const maxBefore = this.index.runningMaxTs;
    this.index.add({ base, count: n, logIndex, maxTimestampMs: maxTs, bytes, cumBytes: this.cumBytes }, ops);
    if (this.index.runningMaxTs !== maxBefore || this.index.lastTimeKeyCum !== timeBefore)
      ops.push({
        op: 'put',
        key: K_META_TIME,
        value: new BufWriter(16)
          .i53(this.index.runningMaxTs, Number.MIN_SAFE_INTEGER)
          .i53(Math.max(Number.MIN_SAFE_INTEGER, this.index.lastTimeKeyCum), Number.MIN_SAFE_INTEGER)
          .finish(),
      });
    ops.push({ op: 'put', key: K_META_NEXT, value: num(this.nextOffset) });
    ops.push({ op: 'put', key: K_META_CUM, value: num(this.cumBytes) });
    if (c.idempotencyKey !== undefined && c.payloadHash)
      this.dedup.insert(c.idempotencyKey, base, n, c.payloadHash, this.clockMs, logIndex, ops);
    if (c.producer) {
      const p: ProducerRow = {
        epoch: c.producer.epoch,
        lastSeq: c.producer.seq,
        lastCount: n,
        lastBase: base,
        lastMs: this.clockMs,
      };
      // Re-inserted: the map stays in last-use order.
      this.producers.delete(c.producer.producerId);
      this.producers.set(c.producer.producerId, p);
      ops.push({
        op: 'put',
        key: strKey(P_PRODUCER, c.producer.producerId),
        value: new BufWriter(40)
          .u32(p.epoch)
          .i53(p.lastSeq, -1)
          .u32(p.lastCount)
          .i53(p.lastBase)
          .i53(p.lastMs)
          .finish(),
      });
    }
    if (c.replay) this.leased.markReplayed(c.replay, base, c.leaderTimeMs, ops);
    return { kind: 'written', baseOffset: base, count: n };
  }

  /**
   * Producer (id, epoch, seq) rules, Kafka-style: a stale epoch is fenced; within an epoch the
   * batch must start right after the last one, and a repeat of the last batch is a duplicate
   * answered with its original offsets; a new epoch (or producer) may start at any sequence.
   */
  checkProducer(id: string, epoch: number, seq: number, count: number): ApplyResult | undefined {
    const p = this.producers.get(id);
    if (!p || epoch > p.epoch) return undefined;
    if (epoch < p.epoch)
      return {
        kind: 'refused',
        error: new DaftkaError('PRODUCER_FENCED', `producer ${id} epoch ${epoch} is older than ${p.epoch}`),
      };
    if (seq === p.lastSeq && count === p.lastCount)
      return { kind: 'duplicate', baseOffset: p.lastBase, count: p.lastCount };
    if (seq !== p.lastSeq + p.lastCount)
      return {
        kind: 'refused',
        error: new DaftkaError(
          'OUT_OF_ORDER_SEQUENCE',
          `producer ${id} epoch ${epoch}: expected seq ${p.lastSeq + p.lastCount}, got ${seq}`,
          {
            extra: { expected_seq: p.lastSeq + p.lastCount },
          },
        ),
      };
    return undefined;
  }

  /** Leader pre-check before proposing: a retry of a committed batch is answered without a new entry. */
  precheckIdempotency(key: string, hash: Uint8Array): ApplyResult | undefined {
    const seen = this.dedup.get(key);
    if (!seen) return undefined;
    if (Buffer.compare(Buffer.from(seen.hash), Buffer.from(hash)) === 0)
      return { kind: 'duplicate', baseOffset: seen.baseOffset, count: seen.count };
    return { kind: 'refused', error: idempotencyConflict(key) };
  }

  private applyLogStart(newStart: number, ops: StateOp[]): ApplyResult {
    if (newStart <= this.logStartOffset) return { kind: 'none' };
    const start = Math.min(newStart, this.nextOffset);
    this.logStartOffset = start;
    ops.push({ op: 'put', key: K_META_START, value: num(start) });
    // Index rows wholly below the new start: one range delete, nothing read.
    this.index.dropBelow(start, ops);
    return { kind: 'ok' };
  }

  /**
   * A compaction request: both bounds only grow (a stale request, e.g. from an old leader, changes
   * nothing). Offsets past the high watermark are never requested (clamped).
   */
  private applyCompact(c: CompactCommand, ops: StateOp[]): ApplyResult {
    const cur = this.compaction;
    const upTo = Math.min(Math.max(cur.upToOffset, c.upToOffset), this.nextOffset);
    const tomb = Math.min(Math.max(cur.tombstonesBefore, c.tombstonesBefore), upTo);
    if (upTo === cur.upToOffset && tomb === cur.tombstonesBefore) return { kind: 'none' };
    this.compaction = {
      upToOffset: upTo,
      tombstonesBefore: tomb,
      horizonOffset: c.horizonOffset,
      horizonMs: c.horizonMs,
    };
    ops.push({
      op: 'put',
      key: K_META_COMPACT,
      value: new BufWriter(32).i53(upTo).i53(tomb).i53(c.horizonOffset).i53(c.horizonMs).finish(),
    });
    return { kind: 'ok' };
  }

  /** A snapshot is about to replace the state (before its storage write): see `epoch`. */
  invalidate(): void {
    this.epoch++;
  }

  /** Record bytes (as written) from the batch holding `offset` to the end of the log. */
  async bytesFrom(offset: number): Promise<number> {
    if (offset >= this.nextOffset) return 0;
    const row = await this.rowAt(Math.max(offset, this.logStartOffset));
    return row === undefined ? 0 : this.cumBytes - (row.cumBytes - row.bytes);
  }

  /** Dedup keys, producers and groups past their time on the state clock, oldest first. */
  private expire(ops: StateOp[]): void {
    this.dedup.expire(this.clockMs, ops);
    const pCut = this.clockMs - this.producerExpiryMs;
    for (const [id, p] of this.producers) {
      if (p.lastMs >= pCut) break;
      this.producers.delete(id);
      this.producersExpired++;
      ops.push({ op: 'del', key: strKey(P_PRODUCER, id) });
    }
    const gCut = this.clockMs - this.groupExpiryMs;
    for (const [g, lastMs] of this.groupLastMs) {
      if (lastMs >= gCut) break;
      this.groups.delete(g);
      this.groupLastMs.delete(g);
      this.groupsExpired++;
      ops.push({ op: 'del', key: strKey(P_GROUP, g) });
    }
  }

  /** Set a group's committed offset, keeping its metadata (leased mode advances it). */
  setGroupOffset(group: string, offset: number, ops: StateOp[]): void {
    this.putGroup(group, { offset, metadata: this.groups.get(group)?.metadata ?? '' }, ops);
  }

  private putGroup(group: string, row: GroupRow, ops: StateOp[]): void {
    this.groups.set(group, row);
    // Re-inserted: the map stays in last-commit order.
    this.groupLastMs.delete(group);
    this.groupLastMs.set(group, this.clockMs);
    ops.push({
      op: 'put',
      key: strKey(P_GROUP, group),
      value: new BufWriter(48).i53(row.offset).str16(row.metadata).i53(this.clockMs).finish(),
    });
  }

  // ---- queries ----

  /**
   * Index rows (log entries holding records) from the one containing `offset`, in order, at most
   * `limit` of them: the tail in memory, older rows from disk (one seek, then a page).
   */
  rowsFrom(offset: number, limit = 1024): Promise<IndexRow[]> {
    return this.index.rowsFrom(offset, limit, this.logStartOffset, this.nextOffset);
  }

  /** The row holding `offset`, or undefined. */
  rowAt(offset: number): Promise<IndexRow | undefined> {
    if (offset < this.logStartOffset || offset >= this.nextOffset) return Promise.resolve(undefined);
    return this.index.rowAt(offset, this.logStartOffset, this.nextOffset);
  }

  /** The first retained offset whose batch has a timestamp ≥ `ts` (the high watermark when none). */
  async offsetForTimestamp(ts: number): Promise<number> {
    const r = await this.index.firstRowAtOrAfter(ts, this.logStartOffset, this.nextOffset);
    return r === undefined ? this.nextOffset : Math.max(r.base, this.logStartOffset);
  }

  /** Log index of the first entry that still holds retained records (compaction bound), or undefined. */
  async firstRetainedLogIndex(): Promise<number | undefined> {
    if (this.logStartOffset >= this.nextOffset) return undefined;
    return (await this.index.rowAt(this.logStartOffset, this.logStartOffset, this.nextOffset))?.logIndex;
  }

  /**
   * Retention decision (leader): the new log start offset (a batch boundary), or undefined when
   * nothing is due. Walks the index on disk from the log start, at most `maxRows` rows per call
   * (a cut that needs more is finished by the next checks).
   */
  async retentionCut(
    nowMs: number,
    retentionMs: number,
    retentionBytes: number,
    maxRows = 100_000,
  ): Promise<number | undefined> {
    if (retentionMs < 0 && retentionBytes < 0) return undefined;
    const end = this.cumBytes;
    let cut: number | undefined;
    await this.index.walk(this.logStartOffset, this.logStartOffset, this.nextOffset, maxRows, (r) => {
      const byTime = retentionMs >= 0 && r.maxTimestampMs < nowMs - retentionMs;
      // Bytes from this batch to the end of the log.
      const byBytes = retentionBytes >= 0 && end - (r.cumBytes - r.bytes) > retentionBytes;
      if (!byTime && !byBytes) return false;
      cut = r.base + r.count;
      return true;
    });
    return cut !== undefined && cut > this.logStartOffset ? cut : undefined;
  }

  dedupSize(): number {
    return this.dedup.size;
  }

  stats(): StateStats {
    return {
      ...this.index.stats(),
      dedupEntries: this.dedup.size,
      dedupBytes: this.dedup.sizeBytes,
      dedupExpired: this.dedup.expired,
      dedupEvicted: this.dedup.evicted,
      producers: this.producers.size,
      producersExpired: this.producersExpired,
      groups: this.groups.size,
      groupsExpired: this.groupsExpired,
    };
  }
}

function idempotencyConflict(key: string): DaftkaError {
  return new DaftkaError(
    'IDEMPOTENCY_CONFLICT',
    `Idempotency-Key ${JSON.stringify(key)} was already used with a different payload; use a new key for new data`,
  );
}

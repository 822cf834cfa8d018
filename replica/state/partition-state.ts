import { DaftkaError } from '../../common/errors';
import type { StateOp } from '../storage/storage';
import { CommandKind, decodeCommand, recordBytes, type Command, type ProduceCommand } from './commands';
import { LeasedState, type LeasedApplyOutput } from '../leased/state';
import { BufReader, BufWriter } from '../../protocol/bytes';

/**
 * The partition's replicated state machine: offsets, the offset index (base offset → log index),
 * the idempotency dedup table, the producer registry and group offsets. Applying an entry is a
 * pure function of the current state and the entry: every replica computes the same offsets and
 * the same outcomes. `apply` returns the storage ops that persist the change; the driver writes
 * them with the applied index in one batch (recovery = open the database, nothing replayed).
 */

export type ApplyResult =
  | { kind: 'written'; baseOffset: number; count: number }
  | { kind: 'duplicate'; baseOffset: number; count: number }
  | { kind: 'refused'; error: DaftkaError }
  | { kind: 'ok' }
  | { kind: 'none' }
  | { kind: 'leased'; out: LeasedApplyOutput };

interface IndexRow {
  base: number;
  count: number;
  logIndex: number;
  maxTimestampMs: number;
  bytes: number;
}
interface DedupRow {
  baseOffset: number;
  count: number;
  timeMs: number;
  hash: Uint8Array;
}
interface ProducerRow {
  epoch: number;
  lastSeq: number;
  lastCount: number;
  lastBase: number;
}
export interface GroupRow {
  offset: number;
  metadata: string;
}

const enc = new TextEncoder();
const K_META_NEXT = enc.encode('m/next');
const K_META_START = enc.encode('m/start');
const P_INDEX = 0x6f; // 'o'
const P_DEDUP = 0x69; // 'i'
const P_PRODUCER = 0x70; // 'p'
const P_GROUP = 0x67; // 'g'

function offsetKey(prefix: number, offset: number): Uint8Array {
  const b = Buffer.alloc(9);
  b[0] = prefix;
  b.writeUInt32BE(Math.floor(offset / 2 ** 32), 1);
  b.writeUInt32BE(offset % 2 ** 32, 5);
  return b;
}
function strKey(prefix: number, s: string): Uint8Array {
  return Buffer.concat([Buffer.of(prefix), Buffer.from(s, 'utf8')]);
}
function num(v: number): Uint8Array {
  return new BufWriter(8).i53(v, Number.MIN_SAFE_INTEGER).finish();
}
function readNum(v: Uint8Array): number {
  return new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength)).i53('num', Number.MIN_SAFE_INTEGER);
}

export interface StateSettings {
  dedupWindowMs: number;
}

export class PartitionState {
  /** Offset the next record will get = high watermark of applied (committed) records. */
  nextOffset = 0;
  logStartOffset = 0;
  private index: IndexRow[] = [];
  /** First live row of `index` (rows before it were retained away; compacted lazily). */
  private indexStart = 0;
  private readonly dedup = new Map<string, DedupRow>();
  private readonly producers = new Map<string, ProducerRow>();
  readonly groups = new Map<string, GroupRow>();
  /** Leased groups, dead letters and replay jobs (replica/leased/state.ts). */
  readonly leased = new LeasedState({
    committed: (group) => this.groups.get(group)?.offset,
    setCommitted: (group, offset, ops) => this.setGroupOffset(group, offset, ops),
    bounds: () => ({ start: this.logStartOffset, end: this.nextOffset }),
  });

  constructor(private readonly settings: StateSettings) {}

  // ---- recovery and snapshots ----

  /** Rebuild from the persisted state keyspace (sorted [key, value] pairs). */
  load(pairs: Iterable<[Uint8Array, Uint8Array]>): void {
    this.index = [];
    this.indexStart = 0;
    this.dedup.clear();
    this.producers.clear();
    this.groups.clear();
    this.leased.clear();
    this.nextOffset = 0;
    this.logStartOffset = 0;
    const dedupRows: Array<[string, DedupRow]> = [];
    for (const [k, v] of pairs) {
      if (this.leased.load(k, v)) continue;
      const rd = new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
      const name = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
      switch (k[0]) {
        case P_INDEX:
          this.index.push({
            base: rd.i53('base'),
            count: rd.u32('count'),
            logIndex: rd.i53('logIndex'),
            maxTimestampMs: rd.i53('ts', Number.MIN_SAFE_INTEGER),
            bytes: rd.u32('bytes'),
          });
          break;
        case P_DEDUP:
          dedupRows.push([
            name.subarray(1).toString('utf8'),
            { baseOffset: rd.i53('b'), count: rd.u32('c'), timeMs: rd.i53('t'), hash: rd.view32('h') },
          ]);
          break;
        case P_PRODUCER:
          this.producers.set(name.subarray(1).toString('utf8'), {
            epoch: rd.u32('e'),
            lastSeq: rd.i53('s', -1),
            lastCount: rd.u32('c'),
            lastBase: rd.i53('b'),
          });
          break;
        case P_GROUP:
          this.groups.set(name.subarray(1).toString('utf8'), { offset: rd.i53('o'), metadata: rd.str16('m') });
          break;
        default:
          if (Buffer.compare(name, K_META_NEXT) === 0) this.nextOffset = readNum(v);
          else if (Buffer.compare(name, K_META_START) === 0) this.logStartOffset = readNum(v);
      }
    }
    // The dedup table expires oldest-first: keep it in time order.
    dedupRows.sort((a, b) => a[1].timeMs - b[1].timeMs);
    for (const [key, row] of dedupRows) this.dedup.set(key, row);
  }

  // ---- apply ----

  /** Apply one committed Normal entry at `logIndex`. Deterministic. */
  apply(logIndex: number, data: Uint8Array): { ops: StateOp[]; result: ApplyResult; command: Command } {
    const command = decodeCommand(data);
    const ops: StateOp[] = [];
    let result: ApplyResult;
    switch (command.kind) {
      case CommandKind.Produce:
        result = this.applyProduce(logIndex, command, ops);
        break;
      case CommandKind.GroupCommit: {
        const row = { offset: command.offset, metadata: command.metadata };
        this.groups.set(command.group, row);
        ops.push({
          op: 'put',
          key: strKey(P_GROUP, command.group),
          value: new BufWriter(32).i53(row.offset).str16(row.metadata).finish(),
        });
        result = { kind: 'ok' };
        break;
      }
      case CommandKind.AdvanceLogStart:
        result = this.applyLogStart(command.logStartOffset, ops);
        break;
      default:
        result = { kind: 'leased', out: this.leased.apply(command, ops) };
    }
    this.expireDedup(command.leaderTimeMs, ops);
    return { ops, result, command };
  }

  private applyProduce(logIndex: number, c: ProduceCommand, ops: StateOp[]): ApplyResult {
    const n = c.records.length;
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
    let maxTs = Number.MIN_SAFE_INTEGER;
    for (const r of c.records) if (r.timestampMs > maxTs) maxTs = r.timestampMs;
    const row: IndexRow = { base, count: n, logIndex, maxTimestampMs: maxTs, bytes: recordBytes(c.records) };
    this.index.push(row);
    ops.push({
      op: 'put',
      key: offsetKey(P_INDEX, base),
      value: new BufWriter(32)
        .i53(base)
        .u32(n)
        .i53(logIndex)
        .i53(maxTs, Number.MIN_SAFE_INTEGER)
        .u32(row.bytes)
        .finish(),
    });
    ops.push({ op: 'put', key: K_META_NEXT, value: num(this.nextOffset) });
    if (c.idempotencyKey !== undefined && c.payloadHash) {
      const d: DedupRow = { baseOffset: base, count: n, timeMs: c.leaderTimeMs, hash: c.payloadHash };
      this.dedup.set(c.idempotencyKey, d);
      ops.push({
        op: 'put',
        key: strKey(P_DEDUP, c.idempotencyKey),
        value: new BufWriter(64).i53(base).u32(n).i53(d.timeMs).bytes32(d.hash).finish(),
      });
    }
    if (c.producer) {
      const p: ProducerRow = { epoch: c.producer.epoch, lastSeq: c.producer.seq, lastCount: n, lastBase: base };
      this.producers.set(c.producer.producerId, p);
      ops.push({
        op: 'put',
        key: strKey(P_PRODUCER, c.producer.producerId),
        value: new BufWriter(32).u32(p.epoch).i53(p.lastSeq, -1).u32(p.lastCount).i53(p.lastBase).finish(),
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
    // Drop index rows wholly below the new start.
    while (this.indexStart < this.index.length) {
      const r = this.index[this.indexStart];
      if (r.base + r.count > start) break;
      ops.push({ op: 'del', key: offsetKey(P_INDEX, r.base) });
      this.indexStart++;
    }
    if (this.indexStart > 1024 && this.indexStart * 2 > this.index.length) {
      this.index = this.index.slice(this.indexStart);
      this.indexStart = 0;
    }
    return { kind: 'ok' };
  }

  private expireDedup(nowMs: number, ops: StateOp[]): void {
    const cutoff = nowMs - this.settings.dedupWindowMs;
    for (const [key, row] of this.dedup) {
      if (row.timeMs >= cutoff) break;
      this.dedup.delete(key);
      ops.push({ op: 'del', key: strKey(P_DEDUP, key) });
    }
  }

  /** Set a group's committed offset, keeping its metadata (leased mode advances it). */
  setGroupOffset(group: string, offset: number, ops: StateOp[]): void {
    const row = { offset, metadata: this.groups.get(group)?.metadata ?? '' };
    this.groups.set(group, row);
    ops.push({
      op: 'put',
      key: strKey(P_GROUP, group),
      value: new BufWriter(32).i53(row.offset).str16(row.metadata).finish(),
    });
  }

  // ---- queries ----

  /** Index rows (log entries holding records) from the one containing `offset`, in order. */
  *rowsFrom(offset: number): Generator<Readonly<IndexRow>> {
    let lo = this.indexStart;
    let hi = this.index.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.index[mid].base <= offset) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (at === -1) at = this.indexStart;
    for (let i = at; i < this.index.length; i++) yield this.index[i];
  }

  /** Log index of the first entry that still holds retained records (compaction bound), or undefined. */
  firstRetainedLogIndex(): number | undefined {
    return this.index[this.indexStart]?.logIndex;
  }

  /** Retention decision (leader): the new log start offset (a batch boundary), or undefined when nothing is due. */
  retentionCut(nowMs: number, retentionMs: number, retentionBytes: number): number | undefined {
    let total = 0;
    for (let i = this.indexStart; i < this.index.length; i++) total += this.index[i].bytes;
    let cut: number | undefined;
    for (let i = this.indexStart; i < this.index.length; i++) {
      const r = this.index[i];
      const byTime = retentionMs >= 0 && r.maxTimestampMs < nowMs - retentionMs;
      const byBytes = retentionBytes >= 0 && total > retentionBytes;
      if (!byTime && !byBytes) break;
      total -= r.bytes;
      cut = r.base + r.count;
    }
    return cut !== undefined && cut > this.logStartOffset ? cut : undefined;
  }

  dedupSize(): number {
    return this.dedup.size;
  }
}

function idempotencyConflict(key: string): DaftkaError {
  return new DaftkaError(
    'IDEMPOTENCY_CONFLICT',
    `Idempotency-Key ${JSON.stringify(key)} was already used with a different payload; use a new key for new data`,
  );
}

import { DaftkaError } from '../../common/errors';
import type { LeasePolicyOverride } from '../../common/leased-api';
import type { RecordIn } from '../../common/partition-api';
import { decodeDeadLetter, encodeDeadLetter } from '../../protocol/codecs/dead-letters';
import { normalizeOverride, parseOverride } from '../../protocol/codecs/policy';
import { DeadLetterStore, decodeJob, encodeJob, type DeadLetterSink, type ReplayJobRow } from './dead-letters';
import type { LeasedCommand, ReplaySection } from './commands';
import {
  LeaseBook,
  type AckOutcome,
  type Flight,
  type FlightOutcome,
  type FlightState,
  type GrantResult,
  type LeaseSink,
  type LogBounds,
} from './leases';
import type { StateOp } from '../storage/storage';
import { BufReader, BufWriter } from '../../protocol/bytes';

/**
 * The leased-groups and dead-letter part of the partition state machine (replica/state/partition-state.ts
 * delegates the command kinds 4–9 and the replay section of produce commands here): the lease
 * book, group policies, the dead-letter stream and replay jobs, with their keys in the state
 * keyspace. Deterministic: everything comes from the command (leader time, effective policy,
 * record bytes) and the replicated state.
 *
 * Keys:  'L' · u16 len · group · u64 offset  → flight
 *        'Q' · group                         → policy override (JSON)
 *        'D' · u64 seq                       → dead letter
 *        'J' · jobId                         → replay job
 *        'm/dlseq'                           → next dead-letter seq
 */

export type LeasedApplyOutput =
  | { op: 'grant'; grant: GrantResult }
  | { op: 'ack'; outcomes: AckOutcome[] }
  | { op: 'expire'; deadLettered: number; discarded: number }
  | { op: 'policy' }
  | { op: 'deadletters'; count: number }
  | { op: 'job'; job: ReplayJobRow | null; refused?: string };

export interface LeasedHost {
  /** The group's committed offset (the cumulative-mode table). */
  committed(group: string): number | undefined;
  setCommitted(group: string, offset: number, ops: StateOp[]): void;
  bounds(): LogBounds;
}

const P_FLIGHT = 0x4c; // 'L'
const P_POLICY = 0x51; // 'Q'
const P_DEADLETTER = 0x44; // 'D'
const P_JOB = 0x4a; // 'J'
const K_DLSEQ = Buffer.from('m/dlseq');

const FLIGHT_STATES: readonly FlightState[] = ['leased', 'waiting', 'done'];
const OUTCOMES: readonly FlightOutcome[] = ['', 'accepted', 'dead_lettered', 'discarded'];
const ACKS: readonly Flight['lastAck'][] = ['', 'accept', 'release', 'reject', 'extend'];

function u64(b: Buffer, at: number, v: number): void {
  b.writeUInt32BE(Math.floor(v / 2 ** 32), at);
  b.writeUInt32BE(v % 2 ** 32, at + 4);
}
function readU64(b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4);
}

export function flightKey(group: string, offset: number): Buffer {
  const g = Buffer.from(group, 'utf8');
  const k = Buffer.alloc(1 + 2 + g.length + 8);
  k[0] = P_FLIGHT;
  k.writeUInt16BE(g.length, 1);
  g.copy(k, 3);
  u64(k, 3 + g.length, offset);
  return k;
}

function seqKey(seq: number): Buffer {
  const k = Buffer.alloc(9);
  k[0] = P_DEADLETTER;
  u64(k, 1, seq);
  return k;
}

function strKey(prefix: number, s: string): Buffer {
  return Buffer.concat([Buffer.of(prefix), Buffer.from(s, 'utf8')]);
}

function encodeFlight(f: Flight): Buffer {
  const w = new BufWriter(80 + f.lastError.length * 3)
    .u32(f.attempt)
    .u8(FLIGHT_STATES.indexOf(f.state))
    .i53(f.untilMs)
    .i53(f.firstDeliveryMs)
    .i53(f.lastDeliveryMs)
    .str16(f.lastError)
    .str16(f.lastErrorClass)
    .u8(OUTCOMES.indexOf(f.outcome))
    .u8(ACKS.indexOf(f.lastAck));
  const flags = (f.keyHash !== undefined ? 1 : 0) | (f.expiresAtMs !== undefined ? 2 : 0) | (f.apart ? 4 : 0);
  // No flags: the layout before issue 19, byte for byte, which an older release loads (from a
  // snapshot an upgraded leader sends it during a roll). The flags byte only when needed.
  if (flags === 0) return w.finish();
  w.u8(flags);
  if (f.keyHash !== undefined) w.u32(f.keyHash);
  if (f.expiresAtMs !== undefined) w.i53(f.expiresAtMs);
  return w.finish();
}

function decodeFlight(v: Uint8Array): Flight {
  const rd = new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  const f: Flight = {
    attempt: rd.u32('attempt'),
    state: FLIGHT_STATES[rd.u8('state')] ?? 'waiting',
    untilMs: rd.i53('untilMs'),
    firstDeliveryMs: rd.i53('first'),
    lastDeliveryMs: rd.i53('last'),
    lastError: rd.str16('lastError'),
    lastErrorClass: rd.str16('lastErrorClass'),
    outcome: OUTCOMES[rd.u8('outcome')] ?? '',
    lastAck: ACKS[rd.u8('lastAck')] ?? '',
  };
  // Flights written before issue 19 end here.
  if (rd.remaining > 0) {
    const flags = rd.u8('flight.flags');
    if (flags & 1) f.keyHash = rd.u32('keyHash');
    if (flags & 2) f.expiresAtMs = rd.i53('expiresAtMs');
    if (flags & 4) f.apart = true;
  }
  rd.end('flight');
  return f;
}

/** Own copies of a record's bytes (a command's records are views into the Raft entry). */
function copyRecord(r: RecordIn): RecordIn {
  return {
    key: r.key === null ? null : Uint8Array.from(r.key),
    value: Uint8Array.from(r.value),
    headers: r.headers.map(([k, v]) => [k, Uint8Array.from(v)]),
    timestampMs: r.timestampMs,
    ...(r.tombstone ? { tombstone: true } : {}),
    ...(r.deliverAtMs !== undefined ? { deliverAtMs: r.deliverAtMs } : {}),
    ...(r.expiresAtMs !== undefined ? { expiresAtMs: r.expiresAtMs } : {}),
  };
}

export class LeasedState {
  readonly book: LeaseBook;
  readonly deadLetters = new DeadLetterStore();
  readonly policies = new Map<string, LeasePolicyOverride>();
  /** Ops of the command being applied (the sinks write here). */
  private ops: StateOp[] = [];
  private readonly leaseSink: LeaseSink;
  private readonly dlSink: DeadLetterSink;

  constructor(private readonly host: LeasedHost) {
    this.book = new LeaseBook({
      get: (g) => host.committed(g),
      set: () => {
        /* persisted through the sink below */
      },
    });
    this.leaseSink = {
      flight: (group, offset, f) => {
        const key = flightKey(group, offset);
        this.ops.push(f === null ? { op: 'del', key } : { op: 'put', key, value: encodeFlight(f) });
      },
      committed: (group, offset) => this.host.setCommitted(group, offset, this.ops),
    };
    this.dlSink = {
      entry: (seq, row) =>
        this.ops.push(
          row === null
            ? { op: 'del', key: seqKey(seq) }
            : { op: 'put', key: seqKey(seq), value: encodeDeadLetter(row) },
        ),
      job: (row) => this.ops.push({ op: 'put', key: strKey(P_JOB, row.jobId), value: encodeJob(row) }),
      jobGone: (jobId) => this.ops.push({ op: 'del', key: strKey(P_JOB, jobId) }),
      nextSeq: (next) => this.ops.push({ op: 'put', key: K_DLSEQ, value: new BufWriter(8).i53(next).finish() }),
    };
  }

  clear(): void {
    this.book.clear();
    this.deadLetters.clear();
    this.policies.clear();
  }

  /** Recovery: take one persisted pair if it is ours. */
  load(k: Uint8Array, v: Uint8Array): boolean {
    const key = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
    switch (key[0]) {
      case P_FLIGHT: {
        const n = key.readUInt16BE(1);
        this.book.restore(key.subarray(3, 3 + n).toString('utf8'), readU64(key, 3 + n), decodeFlight(v));
        return true;
      }
      case P_POLICY:
        this.policies.set(key.subarray(1).toString('utf8'), parseOverride(Buffer.from(v).toString('utf8')));
        return true;
      case P_DEADLETTER: {
        const seq = readU64(key, 1);
        this.deadLetters.entries.set(seq, decodeDeadLetter(seq, v));
        return true;
      }
      case P_JOB: {
        const id = key.subarray(1).toString('utf8');
        this.deadLetters.jobs.set(id, decodeJob(id, v));
        return true;
      }
    }
    if (Buffer.compare(key, K_DLSEQ) === 0) {
      this.deadLetters.nextSeq = new BufReader(Buffer.from(v)).i53('dlseq');
      return true;
    }
    return false;
  }

  apply(c: LeasedCommand, ops: StateOp[]): LeasedApplyOutput {
    this.ops = ops;
    try {
      return this.applyOne(c);
    } finally {
      this.ops = [];
    }
  }

  private applyOne(c: LeasedCommand): LeasedApplyOutput {
    const log = this.host.bounds();
    switch (c.kind) {
      case 4: {
        const plan = c.plan
          ? {
              offers: c.plan.offers,
              expire: c.plan.expire.map((e) => ({
                offset: e.offset,
                expiresAtMs: e.expiresAtMs,
                bytes: e.record !== undefined,
              })),
              ...(c.plan.defer ? { defer: c.plan.defer } : {}),
            }
          : undefined;
        const grant = this.book.grant(c.group, c.leaderTimeMs, c.policy, c.leaseMs, log, c.max, this.leaseSink, plan);
        for (const x of grant.ttlExpired) {
          const record = x.deadLetter ? c.plan?.expire.find((e) => e.offset === x.offset)?.record : undefined;
          if (x.deadLetter && record) this.addDeadLetter(c.group, x.deadLetter, record, c.leaderTimeMs);
        }
        return { op: 'grant', grant };
      }
      case 5: {
        const outcomes = c.items.map((it) => {
          const out = this.book.ack(
            c.group,
            c.leaderTimeMs,
            c.policy,
            it,
            log,
            it.record !== undefined,
            this.leaseSink,
          );
          if (out.status === 'ok' && out.deadLetter && it.record)
            this.addDeadLetter(c.group, out.deadLetter, it.record, c.leaderTimeMs);
          return out;
        });
        return { op: 'ack', outcomes };
      }
      case 6: {
        let deadLettered = 0;
        let discarded = 0;
        for (const it of c.items) {
          const r = this.book.expire(
            c.group,
            c.leaderTimeMs,
            c.policy,
            it.offset,
            it.attempt,
            log,
            it.record !== undefined,
            this.leaseSink,
          );
          if (r === 'discarded') discarded++;
          else if (r !== undefined && it.record) {
            this.addDeadLetter(c.group, r, it.record, c.leaderTimeMs);
            deadLettered++;
          }
        }
        return { op: 'expire', deadLettered, discarded };
      }
      case 7:
        if (c.override === null) {
          this.policies.delete(c.group);
          this.ops.push({ op: 'del', key: strKey(P_POLICY, c.group) });
        } else {
          const o = normalizeOverride(c.override);
          this.policies.set(c.group, o);
          this.ops.push({ op: 'put', key: strKey(P_POLICY, c.group), value: Buffer.from(JSON.stringify(o)) });
        }
        return { op: 'policy' };
      case 8:
        return {
          op: 'deadletters',
          count:
            c.action === 'archive'
              ? this.deadLetters.archive(c.filter, this.dlSink)
              : this.deadLetters.purge(c.filter, this.dlSink),
        };
      case 9: {
        const dl = this.deadLetters;
        switch (c.op) {
          case 'create':
            return {
              op: 'job',
              job: dl.createJob(
                c.jobId,
                c.filter,
                c.ratePerSec,
                c.dryRun,
                c.leaderTimeMs,
                this.dlSink,
                c.target ?? null,
              ),
            };
          case 'advance':
            dl.advanceJob(c.jobId, c.cursorTo, c.done, c.leaderTimeMs, this.dlSink);
            return { op: 'job', job: dl.jobs.get(c.jobId) ?? null };
          case 'prepare':
          case 'commit': {
            const why =
              c.op === 'prepare'
                ? dl.prepareReplay(c.jobId, c.seqs, c.cursorTo, this.dlSink)
                : dl.commitReplay(c.jobId, c.written, c.leaderTimeMs, this.dlSink);
            // Refused (another leader's plan, a state that moved on): nothing changed, the leader plans again.
            return { op: 'job', job: dl.jobs.get(c.jobId) ?? null, ...(why !== undefined ? { refused: why } : {}) };
          }
        }
        break;
      }
    }
  }

  private addDeadLetter(
    group: string,
    note: {
      offset: number;
      attempts: number;
      lastError: string;
      lastErrorClass: string;
      firstDeliveryMs: number;
      lastDeliveryMs: number;
    },
    record: RecordIn,
    nowMs: number,
  ): void {
    this.deadLetters.add(
      {
        group,
        originOffset: note.offset,
        record: copyRecord(record),
        attempts: note.attempts,
        lastError: note.lastError,
        errorClass: note.lastErrorClass,
        firstDeliveryMs: note.firstDeliveryMs,
        lastDeliveryMs: note.lastDeliveryMs,
        deadLetteredMs: nowMs,
      },
      this.dlSink,
    );
  }

  // ---- the replay section of a produce command ----

  /** Refusal when a replay batch is no longer valid (checked before its records get offsets). */
  checkReplay(r: ReplaySection): DaftkaError | undefined {
    const why = this.deadLetters.checkReplay(r.jobId, r.seqs, r.cursorTo);
    return why === undefined ? undefined : new DaftkaError('CONFLICT', why);
  }

  /** The batch's records were written at baseOffset…: mark their dead letters replayed. */
  markReplayed(r: ReplaySection, baseOffset: number, nowMs: number, ops: StateOp[]): void {
    this.ops = ops;
    try {
      this.deadLetters.markReplayed(r.jobId, r.seqs, r.cursorTo, baseOffset, nowMs, this.dlSink);
    } finally {
      this.ops = [];
    }
  }
}

import type { AckAction, DeadLetterFilter, LeasePolicy, LeasePolicyOverride } from '../../common/leased-api';
import type { RecordIn } from '../../common/partition-api';
import { readRecord, writeRecord } from '../../protocol/records';
import { normalizeFilter, parseFilter } from '../../protocol/codecs/dead-letters';
import { normalizeOverride, parseOverride } from '../../protocol/codecs/policy';
import type { ReplayTarget, ReplayWritten } from './dead-letters';
import type { Offer } from './leases';
import { BufReader, BufWriter, CodecError } from '../../protocol/bytes';

/**
 * State-machine commands of leased groups and dead letters (the kinds 4–9 of replica/state/commands.ts;
 * the common prefix `u8 kind · i53 leaderTimeMs` is written and read there). Every command that
 * depends on a group's policy carries the effective policy, resolved by the leader: replicas
 * never consult their own configuration while applying, so they cannot disagree.
 *
 *   policy       := u32 maxAttempts · i53 leaseMs · i53 backoffInitialMs · i53 backoffMaxMs
 *                   · u32 backoffMultiplier×1000 · u8 flags (1 deadLetter, 2 ordered, 4 orderingKey,
 *                   8 expired records dropped rather than dead-lettered)
 *   leaseGrant   := str16 group · policy · i53 leaseMs · u32 max · [plan]   (no plan: an older leader's,
 *                   or a grant the plan would not change — leases.ts plainGrantMax; the only
 *                   layout a release before issue 19 reads)
 *   plan         := u32 n · offer* · u32 n · expireItem* · [u32 n · offer*]   (the last: records to hold apart)
 *   offer        := i53 offset · u8 flags (1 keyHash, 2 deliverAt, 4 expiresAt) · [u32 keyHash]
 *                   · [i53 deliverAtMs] · [i53 expiresAtMs]
 *   expireItem   := i53 offset · i53 expiresAtMs · u8 hasRecord · [record]
 *   leaseAck     := str16 group · policy · u32 n · ackItem*
 *   ackItem      := i53 offset · u32 attempt · u8 action · u8 flags (1 delay, 2 leaseMs, 4 error,
 *                   8 errorClass, 16 record) · [i53 delayMs] · [i53 leaseMs] · [str16 error]
 *                   · [str16 errorClass] · [record]
 *   leaseExpire  := str16 group · policy · u32 n · (i53 offset · u32 attempt · u8 hasRecord · [record])*
 *   groupPolicy  := str16 group · u8 hasOverride · [str32 overrideJson]
 *   deadLetters  := u8 action (1 archive, 2 purge) · str32 filterJson
 *   replayJob    := u8 op (1 create, 2 advance, 3 create to a topic, 4 prepare, 5 commit) · str16 jobId
 *                   · create: str32 filterJson · i53 rate×1000 · u8 dryRun
 *                   · advance: i53 cursorTo · u8 done
 *                   · create to a topic: as create · str16 targetTopic · u32 targetPartitions
 *                   · prepare: u32 n · i53 seq* · i53 cursorTo
 *                   · commit: u32 n · (i53 seq · u32 partition · i53 offset)*
 *
 * Records carried by acks and expiries are the original records (read by the leader from its
 * log) for the dead-letter stream.
 */

export const LEASED_KINDS = {
  LeaseGrant: 4,
  LeaseAck: 5,
  LeaseExpire: 6,
  GroupPolicy: 7,
  DeadLetterAdmin: 8,
  ReplayJob: 9,
} as const;

export interface LeaseGrantCommand {
  kind: 4;
  leaderTimeMs: number;
  group: string;
  policy: LeasePolicy;
  leaseMs: number;
  max: number;
  /** The leader's plan (leases.ts GrantPlan) with the bytes of expired records to dead-letter. */
  plan?: LeaseGrantPlan;
}

export interface LeaseGrantPlan {
  offers: Offer[];
  expire: Array<{ offset: number; expiresAtMs: number; record?: RecordIn }>;
  /** Delayed records to hold apart from the committed offset (leases.ts Flight.apart). */
  defer?: Offer[];
}

const O_KEY = 1;
const O_DELIVER = 2;
const O_EXPIRES = 4;

export interface LeaseAckCommandItem {
  offset: number;
  attempt: number;
  action: AckAction;
  delayMs?: number;
  leaseMs?: number;
  error?: string;
  errorClass?: string;
  record?: RecordIn;
}

export interface LeaseAckCommand {
  kind: 5;
  leaderTimeMs: number;
  group: string;
  policy: LeasePolicy;
  items: LeaseAckCommandItem[];
}

export interface LeaseExpireCommand {
  kind: 6;
  leaderTimeMs: number;
  group: string;
  policy: LeasePolicy;
  items: Array<{ offset: number; attempt: number; record?: RecordIn }>;
}

export interface GroupPolicyCommand {
  kind: 7;
  leaderTimeMs: number;
  group: string;
  override: LeasePolicyOverride | null;
}

export interface DeadLetterAdminCommand {
  kind: 8;
  leaderTimeMs: number;
  action: 'archive' | 'purge';
  filter: DeadLetterFilter;
}

export type ReplayJobCommand =
  | {
      kind: 9;
      leaderTimeMs: number;
      op: 'create';
      jobId: string;
      filter: DeadLetterFilter;
      ratePerSec: number;
      dryRun: boolean;
      /** Absent: back to the origin. */
      target?: ReplayTarget;
    }
  | { kind: 9; leaderTimeMs: number; op: 'advance'; jobId: string; cursorTo: number; done: boolean }
  | { kind: 9; leaderTimeMs: number; op: 'prepare'; jobId: string; seqs: number[]; cursorTo: number }
  | { kind: 9; leaderTimeMs: number; op: 'commit'; jobId: string; written: ReplayWritten[] };

export type LeasedCommand =
  | LeaseGrantCommand
  | LeaseAckCommand
  | LeaseExpireCommand
  | GroupPolicyCommand
  | DeadLetterAdminCommand
  | ReplayJobCommand;

/** The replay section of a produce command (commands.ts flag 4): which dead letters the records are. */
export interface ReplaySection {
  jobId: string;
  seqs: number[];
  cursorTo: number;
}

const ACTIONS: readonly AckAction[] = ['accept', 'release', 'reject', 'extend'];
const A_DELAY = 1;
const A_LEASE = 2;
const A_ERROR = 4;
const A_CLASS = 8;
const A_RECORD = 16;

export function writePolicy(w: BufWriter, p: LeasePolicy): void {
  w.u32(p.maxAttempts)
    .i53(p.leaseMs)
    .i53(p.backoffInitialMs)
    .i53(p.backoffMaxMs)
    .u32(Math.round(p.backoffMultiplier * 1000))
    .u8((p.deadLetter ? 1 : 0) | (p.ordered ? 2 : 0) | (p.orderingKey ? 4 : 0) | (p.expired === 'drop' ? 8 : 0));
}

export function readPolicy(rd: BufReader): LeasePolicy {
  const p: LeasePolicy = {
    maxAttempts: rd.u32('policy.maxAttempts'),
    leaseMs: rd.i53('policy.leaseMs'),
    backoffInitialMs: rd.i53('policy.backoffInitialMs'),
    backoffMaxMs: rd.i53('policy.backoffMaxMs'),
    backoffMultiplier: rd.u32('policy.backoffMultiplier') / 1000,
    deadLetter: false,
    ordered: false,
    orderingKey: false,
    expired: 'dead_letter',
  };
  const flags = rd.u8('policy.flags');
  if ((flags & ~15) !== 0) throw new CodecError('bad_value', `policy.flags 0x${flags.toString(16)}`);
  p.deadLetter = (flags & 1) !== 0;
  p.ordered = (flags & 2) !== 0;
  p.orderingKey = (flags & 4) !== 0;
  p.expired = (flags & 8) !== 0 ? 'drop' : 'dead_letter';
  return p;
}

/** Write the body of a leased command (after kind and leaderTimeMs). */
export function writeLeasedCommand(w: BufWriter, c: LeasedCommand): void {
  switch (c.kind) {
    case 4:
      w.str16(c.group);
      writePolicy(w, c.policy);
      w.i53(c.leaseMs).u32(c.max);
      if (c.plan) {
        writeOffers(w, c.plan.offers);
        w.u32(c.plan.expire.length);
        for (const e of c.plan.expire) {
          w.i53(e.offset)
            .i53(e.expiresAtMs)
            .bool(e.record !== undefined);
          if (e.record !== undefined) writeRecord(w, e.record);
        }
        if (c.plan.defer?.length) writeOffers(w, c.plan.defer);
      }
      return;
    case 5:
      w.str16(c.group);
      writePolicy(w, c.policy);
      w.u32(c.items.length);
      for (const it of c.items) {
        const flags =
          (it.delayMs !== undefined ? A_DELAY : 0) |
          (it.leaseMs !== undefined ? A_LEASE : 0) |
          (it.error !== undefined ? A_ERROR : 0) |
          (it.errorClass !== undefined ? A_CLASS : 0) |
          (it.record !== undefined ? A_RECORD : 0);
        w.i53(it.offset).u32(it.attempt).u8(ACTIONS.indexOf(it.action)).u8(flags);
        if (it.delayMs !== undefined) w.i53(it.delayMs);
        if (it.leaseMs !== undefined) w.i53(it.leaseMs);
        if (it.error !== undefined) w.str16(it.error);
        if (it.errorClass !== undefined) w.str16(it.errorClass);
        if (it.record !== undefined) writeRecord(w, it.record);
      }
      return;
    case 6:
      w.str16(c.group);
      writePolicy(w, c.policy);
      w.u32(c.items.length);
      for (const it of c.items) {
        w.i53(it.offset)
          .u32(it.attempt)
          .bool(it.record !== undefined);
        if (it.record !== undefined) writeRecord(w, it.record);
      }
      return;
    case 7:
      w.str16(c.group).bool(c.override !== null);
      if (c.override !== null) w.str32(JSON.stringify(normalizeOverride(c.override)));
      return;
    case 8:
      w.u8(c.action === 'archive' ? 1 : 2).str32(JSON.stringify(normalizeFilter(c.filter)));
      return;
    case 9:
      switch (c.op) {
        case 'create':
          w.u8(c.target ? 3 : 1)
            .str16(c.jobId)
            .str32(JSON.stringify(normalizeFilter(c.filter)))
            .i53(Math.round(c.ratePerSec * 1000))
            .bool(c.dryRun);
          if (c.target) w.str16(c.target.topic).u32(c.target.partitions);
          return;
        case 'advance':
          w.u8(2).str16(c.jobId).i53(c.cursorTo).bool(c.done);
          return;
        case 'prepare':
          w.u8(4).str16(c.jobId).u32(c.seqs.length);
          for (const seq of c.seqs) w.i53(seq);
          w.i53(c.cursorTo);
          return;
        case 'commit':
          w.u8(5).str16(c.jobId).u32(c.written.length);
          for (const x of c.written) w.i53(x.seq).u32(x.partition).i53(x.offset);
          return;
      }
      return;
  }
}

/** Read the body of a leased command of `kind`; throws CodecError when malformed. */
export function readLeasedCommand(kind: number, leaderTimeMs: number, rd: BufReader): LeasedCommand {
  switch (kind) {
    case 4: {
      const c: LeaseGrantCommand = {
        kind,
        leaderTimeMs,
        group: rd.str16('group'),
        policy: readPolicy(rd),
        leaseMs: rd.i53('leaseMs'),
        max: rd.u32('max'),
      };
      if (rd.remaining > 0) c.plan = readGrantPlan(rd);
      rd.end('lease grant command');
      return c;
    }
    case 5: {
      const group = rd.str16('group');
      const policy = readPolicy(rd);
      const n = rd.u32('items');
      if (n * 14 > rd.remaining) throw new CodecError('bad_length', `ack items ${n} exceed ${rd.remaining} bytes`);
      const items: LeaseAckCommandItem[] = [];
      for (let i = 0; i < n; i++) {
        const offset = rd.i53('offset');
        const attempt = rd.u32('attempt');
        const action = ACTIONS[rd.u8('action')];
        if (action === undefined) throw new CodecError('bad_value', 'ack action');
        const flags = rd.u8('flags');
        const it: LeaseAckCommandItem = { offset, attempt, action };
        if (flags & A_DELAY) it.delayMs = rd.i53('delayMs');
        if (flags & A_LEASE) it.leaseMs = rd.i53('leaseMs');
        if (flags & A_ERROR) it.error = rd.str16('error');
        if (flags & A_CLASS) it.errorClass = rd.str16('errorClass');
        if (flags & A_RECORD) it.record = readRecord(rd);
        items.push(it);
      }
      rd.end('lease ack command');
      return { kind, leaderTimeMs, group, policy, items };
    }
    case 6: {
      const group = rd.str16('group');
      const policy = readPolicy(rd);
      const n = rd.u32('items');
      if (n * 13 > rd.remaining) throw new CodecError('bad_length', `expire items ${n} exceed ${rd.remaining} bytes`);
      const items: LeaseExpireCommand['items'] = [];
      for (let i = 0; i < n; i++) {
        const offset = rd.i53('offset');
        const attempt = rd.u32('attempt');
        items.push(rd.bool('hasRecord') ? { offset, attempt, record: readRecord(rd) } : { offset, attempt });
      }
      rd.end('lease expire command');
      return { kind, leaderTimeMs, group, policy, items };
    }
    case 7: {
      const group = rd.str16('group');
      const override = rd.bool('hasOverride') ? parseOverride(rd.str32('override')) : null;
      rd.end('group policy command');
      return { kind, leaderTimeMs, group, override };
    }
    case 8: {
      const a = rd.u8('action');
      if (a !== 1 && a !== 2) throw new CodecError('bad_value', `dead-letter action ${a}`);
      const filter = parseFilter(rd.str32('filter'));
      rd.end('dead-letter admin command');
      return { kind, leaderTimeMs, action: a === 1 ? 'archive' : 'purge', filter };
    }
    case 9: {
      const op = rd.u8('op');
      const jobId = rd.str16('jobId');
      if (op === 1 || op === 3) {
        const filter = parseFilter(rd.str32('filter'));
        const ratePerSec = rd.i53('rate') / 1000;
        const dryRun = rd.bool('dryRun');
        const target =
          op === 3 ? { topic: rd.str16('target.topic'), partitions: rd.u32('target.partitions') } : undefined;
        rd.end('replay job command');
        return { kind, leaderTimeMs, op: 'create', jobId, filter, ratePerSec, dryRun, ...(target ? { target } : {}) };
      }
      if (op === 4) {
        const n = rd.u32('seqs');
        if (n * 8 > rd.remaining) throw new CodecError('bad_length', `prepare seqs ${n} exceed ${rd.remaining} bytes`);
        const seqs: number[] = [];
        for (let i = 0; i < n; i++) seqs.push(rd.i53('seq'));
        const cursorTo = rd.i53('cursorTo');
        rd.end('replay job command');
        return { kind, leaderTimeMs, op: 'prepare', jobId, seqs, cursorTo };
      }
      if (op === 5) {
        const n = rd.u32('written');
        if (n * 20 > rd.remaining) throw new CodecError('bad_length', `commit items ${n} exceed ${rd.remaining} bytes`);
        const written: ReplayWritten[] = [];
        for (let i = 0; i < n; i++)
          written.push({ seq: rd.i53('seq'), partition: rd.u32('partition'), offset: rd.i53('offset') });
        rd.end('replay job command');
        return { kind, leaderTimeMs, op: 'commit', jobId, written };
      }
      if (op !== 2) throw new CodecError('bad_value', `replay job op ${op}`);
      const c: ReplayJobCommand = {
        kind,
        leaderTimeMs,
        op: 'advance',
        jobId,
        cursorTo: rd.i53('cursorTo'),
        done: rd.bool('done'),
      };
      rd.end('replay job command');
      return c;
    }
    default:
      throw new CodecError('bad_value', `unknown command kind ${kind}`);
  }
}

function writeOffers(w: BufWriter, offers: readonly Offer[]): void {
  w.u32(offers.length);
  for (const o of offers) {
    w.i53(o.offset).u8(
      (o.keyHash !== undefined ? O_KEY : 0) |
        (o.deliverAtMs !== undefined ? O_DELIVER : 0) |
        (o.expiresAtMs !== undefined ? O_EXPIRES : 0),
    );
    if (o.keyHash !== undefined) w.u32(o.keyHash);
    if (o.deliverAtMs !== undefined) w.i53(o.deliverAtMs);
    if (o.expiresAtMs !== undefined) w.i53(o.expiresAtMs);
  }
}

function readOffers(rd: BufReader): Offer[] {
  const n = rd.u32('offers');
  if (n * 9 > rd.remaining) throw new CodecError('bad_length', `offers ${n} exceed ${rd.remaining} bytes`);
  const offers: Offer[] = [];
  for (let i = 0; i < n; i++) {
    const o: Offer = { offset: rd.i53('offer.offset') };
    const flags = rd.u8('offer.flags');
    if ((flags & ~7) !== 0) throw new CodecError('bad_value', `offer.flags 0x${flags.toString(16)}`);
    if (flags & O_KEY) o.keyHash = rd.u32('offer.keyHash');
    if (flags & O_DELIVER) o.deliverAtMs = rd.i53('offer.deliverAtMs');
    if (flags & O_EXPIRES) o.expiresAtMs = rd.i53('offer.expiresAtMs');
    offers.push(o);
  }
  return offers;
}

function readGrantPlan(rd: BufReader): LeaseGrantPlan {
  const offers = readOffers(rd);
  const m = rd.u32('expire');
  if (m * 17 > rd.remaining) throw new CodecError('bad_length', `expire items ${m} exceed ${rd.remaining} bytes`);
  const expire: LeaseGrantPlan['expire'] = [];
  for (let i = 0; i < m; i++) {
    const offset = rd.i53('expire.offset');
    const expiresAtMs = rd.i53('expire.expiresAtMs');
    expire.push(
      rd.bool('expire.hasRecord') ? { offset, expiresAtMs, record: readRecord(rd) } : { offset, expiresAtMs },
    );
  }
  if (rd.remaining > 0) return { offers, expire, defer: readOffers(rd) };
  return { offers, expire };
}

export function writeReplaySection(w: BufWriter, r: ReplaySection): void {
  w.str16(r.jobId).u32(r.seqs.length);
  for (const s of r.seqs) w.i53(s);
  w.i53(r.cursorTo);
}

export function readReplaySection(rd: BufReader): ReplaySection {
  const jobId = rd.str16('replay.jobId');
  const n = rd.u32('replay.count');
  if (n * 8 > rd.remaining) throw new CodecError('bad_length', `replay.count ${n} exceeds ${rd.remaining} bytes`);
  const seqs: number[] = [];
  for (let i = 0; i < n; i++) seqs.push(rd.i53('replay.seq'));
  return { jobId, seqs, cursorTo: rd.i53('replay.cursorTo') };
}

/** Defaults ⊕ override. */
export function effectivePolicy(defaults: LeasePolicy, o: LeasePolicyOverride | null | undefined): LeasePolicy {
  return { ...defaults, ...(o ? normalizeOverride(o) : {}) };
}

import { isDaftkaError } from '../../common/errors';
import { deliveryOf } from '../../protocol/rpc-client';

/**
 * A history of what clients asked of a replica group and what they were told, and a checker over
 * it (DESIGN §12 tier 3). The recorder is fed by a test's workload; the checker is a pure
 * function of the recorded history, so hand-made histories test the checker itself.
 *
 * Time is a logical clock: every invoke and every completion takes the next tick of one counter.
 * The test process is single-threaded, so "a completed before b was invoked" in ticks means the
 * server answered a before it received b — real-time order, without millisecond ties.
 *
 * A process is one incarnation of one replica (e.g. `1@4242`: ordinal 1, pid 4242); a restart is
 * a new process. Values are unique per write (`<key>/<i>`), so a value names the write and its
 * position in the batch.
 */

/** ok: acknowledged; fail: definitely not written; info: outcome unknown. */
export type Outcome = 'ok' | 'fail' | 'info';

export interface Ack {
  baseOffset: number;
  count: number;
  duplicate: boolean;
}

export interface ProduceAttempt {
  process: string;
  invoke: number;
  complete: number | null;
  /** 'ok' or the error code (e.g. NOT_LEADER, COMMIT_UNKNOWN). */
  result: string;
  outcome: Outcome | null;
}

/** One logical write: one idempotency key, its batch of values, every attempt made for it. */
export interface ProduceOp {
  key: string;
  values: string[];
  invoke: number;
  attempts: ProduceAttempt[];
  /** The first acknowledgement (later ones, answered as duplicates, must agree: checked). */
  ack: (Ack & { process: string; complete: number }) | null;
  /** Every acknowledgement received (retries answered from the dedup table included). */
  acks: Array<Ack & { process: string }>;
}

export interface FetchObservation {
  process: string;
  invoke: number;
  complete: number;
  /** The offset asked for. */
  offset: number;
  records: Array<[offset: number, value: string]>;
  nextOffset: number;
  highWatermark: number;
  logStartOffset: number;
}

export interface GroupCommitOp {
  group: string;
  offset: number;
  process: string;
  invoke: number;
  complete: number | null;
  outcome: Outcome;
  result: string;
}

export interface GroupReadObservation {
  group: string;
  process: string;
  invoke: number;
  complete: number;
  offset: number | null;
  /** Read after the faults were healed and the group caught up (the durable answer). */
  final: boolean;
}

/** Status (role, high watermark) answers: high watermarks join the per-process monotonicity check. */
export interface StatusObservation {
  process: string;
  invoke: number;
  complete: number;
  highWatermark: number;
  logStartOffset: number;
  term: number;
  role: string;
  replicaId: string;
}

/** A replica's whole log, read after the faults were healed and every replica caught up. */
export interface FinalLog {
  process: string;
  logStartOffset: number;
  highWatermark: number;
  records: Array<[offset: number, value: string]>;
}

export interface History {
  produces: ProduceOp[];
  fetches: FetchObservation[];
  statuses: StatusObservation[];
  commits: GroupCommitOp[];
  groupReads: GroupReadObservation[];
  finalLogs: FinalLog[];
}

export function emptyHistory(): History {
  return { produces: [], fetches: [], statuses: [], commits: [], groupReads: [], finalLogs: [] };
}

/**
 * Whether a failed produce (or group commit) may have been written. Definite ('fail'): the
 * replica refused before proposing (NOT_LEADER, NO_QUORUM, OVERLOADED, STORAGE_FULL, input errors) or the
 * request never left (UNAVAILABLE not_sent). Everything else — COMMIT_UNKNOWN, TIMEOUT, a
 * connection lost with the request sent, an error this table does not know — is 'info'.
 */
export function classifyFailure(err: unknown): { outcome: Outcome; code: string } {
  if (!isDaftkaError(err)) return { outcome: 'info', code: 'NON_DAFTKA_ERROR' };
  switch (err.code) {
    case 'NOT_LEADER':
    case 'NO_QUORUM':
    case 'OVERLOADED':
    case 'STORAGE_FULL':
    case 'INVALID_REQUEST':
    case 'PAYLOAD_TOO_LARGE':
    case 'RECORD_TOO_LARGE':
    case 'OFFSET_OUT_OF_RANGE':
    case 'PARTITION_NOT_FOUND':
      return { outcome: 'fail', code: err.code };
    case 'UNAVAILABLE':
      return { outcome: deliveryOf(err) === 'not_sent' ? 'fail' : 'info', code: err.code };
    default:
      return { outcome: 'info', code: err.code };
  }
}

/** The outcome of a write from its attempts: ok if any was acknowledged, fail if every one definitely failed. */
export function outcomeOf(op: ProduceOp): Outcome {
  if (op.ack !== null) return 'ok';
  if (op.attempts.length > 0 && op.attempts.every((a) => a.outcome === 'fail')) return 'fail';
  return 'info';
}

export class HistoryRecorder {
  readonly history: History = emptyHistory();
  private clock = 0;
  private readonly byKey = new Map<string, ProduceOp>();

  tick(): number {
    return ++this.clock;
  }

  /** A new logical write. */
  produce(key: string, values: string[]): ProduceOp {
    if (this.byKey.has(key)) throw new Error(`write ${key} recorded twice`);
    const op: ProduceOp = { key, values, invoke: this.tick(), attempts: [], ack: null, acks: [] };
    this.byKey.set(key, op);
    this.history.produces.push(op);
    return op;
  }

  /** One attempt of a write, sent to `process`; call ok() or failed() with the answer. */
  attempt(op: ProduceOp, process: string): { ok: (ack: Ack) => void; failed: (err: unknown) => Outcome } {
    const a: ProduceAttempt = { process, invoke: this.tick(), complete: null, result: 'pending', outcome: null };
    op.attempts.push(a);
    return {
      ok: (ack) => {
        a.complete = this.tick();
        a.result = 'ok';
        a.outcome = 'ok';
        op.acks.push({ ...ack, process });
        if (op.ack === null) op.ack = { ...ack, process, complete: a.complete };
      },
      failed: (err) => {
        a.complete = this.tick();
        const c = classifyFailure(err);
        a.result = c.code;
        a.outcome = c.outcome;
        return c.outcome;
      },
    };
  }

  fetch(obs: Omit<FetchObservation, 'complete'>): void {
    this.history.fetches.push({ ...obs, complete: this.tick() });
  }

  status(obs: Omit<StatusObservation, 'complete'>): void {
    this.history.statuses.push({ ...obs, complete: this.tick() });
  }

  /** A group commit in flight; settle it with the returned function (null error: acknowledged). */
  commit(group: string, offset: number, process: string): (err: unknown) => void {
    const op: GroupCommitOp = {
      group,
      offset,
      process,
      invoke: this.tick(),
      complete: null,
      outcome: 'info',
      result: 'pending',
    };
    this.history.commits.push(op);
    return (err) => {
      op.complete = this.tick();
      if (err === null) {
        op.outcome = 'ok';
        op.result = 'ok';
      } else {
        const c = classifyFailure(err);
        op.outcome = c.outcome;
        op.result = c.code;
      }
    };
  }

  groupRead(obs: Omit<GroupReadObservation, 'complete'>): void {
    this.history.groupReads.push({ ...obs, complete: this.tick() });
  }

  finalLog(log: FinalLog): void {
    this.history.finalLogs.push(log);
  }
}

// ---- the checker ----

export interface CheckOptions {
  /** Violations listed per check before the rest are only counted. Default 20. */
  maxPerCheck?: number;
}

export interface CheckReport {
  /** Empty: the history is consistent. Each entry names the check, the values and where they were seen. */
  violations: string[];
  /**
   * Group-offset reads that returned less than a commit acknowledged (by any replica) before the
   * read was sent: a deposed leader not yet stepped down, or a new leader that has not applied
   * its predecessor's last commits. Not a
   * violation: reads are served from the replica's applied state, without ReadIndex
   * (docs/raft.md, "Limits and choices"). Reported so a test can print how often it happens.
   */
  staleGroupReads: string[];
  stats: {
    writes: number;
    acked: number;
    failed: number;
    unknown: number;
    unknownPresent: number;
    fetches: number;
    recordsObserved: number;
    commits: number;
    commitsAcked: number;
    groupReads: number;
    processes: number;
    finalHighWatermark: number;
  };
}

/** Where a value was seen, for violation messages. */
type Source = string;

/** Check a history (see the file comment for what each check means). */
export function checkHistory(h: History, opts: CheckOptions = {}): CheckReport {
  const max = opts.maxPerCheck ?? 20;
  const violations: string[] = [];
  const counts = new Map<string, number>();
  const violate = (check: string, text: string) => {
    const n = (counts.get(check) ?? 0) + 1;
    counts.set(check, n);
    if (n <= max) violations.push(`${check}: ${text}`);
  };

  // Values → the write and position they belong to.
  const owner = new Map<string, { op: ProduceOp; index: number }>();
  for (const op of h.produces) op.values.forEach((v, index) => owner.set(v, { op, index }));
  const outcomes = new Map(h.produces.map((op) => [op.key, outcomeOf(op)] as const));
  const byKey = new Map(h.produces.map((op) => [op.key, op] as const));

  // Every (offset, value) the history claims, with its source: fetches, final logs, acks.
  const claims: Array<{ offset: number; value: string; source: Source }> = [];
  for (const f of h.fetches)
    for (const [offset, value] of f.records)
      claims.push({ offset, value, source: `fetch from ${f.process}@t${f.complete}` });
  for (const l of h.finalLogs)
    for (const [offset, value] of l.records) claims.push({ offset, value, source: `final log of ${l.process}` });
  for (const op of h.produces)
    for (const ack of op.acks)
      op.values.forEach((value, i) =>
        claims.push({
          offset: ack.baseOffset + i,
          value,
          source: `ack of ${op.key}${ack.duplicate ? ' (duplicate)' : ''} from ${ack.process}`,
        }),
      );

  // 1. No offset holds two values; no value sits at two offsets; a batch is contiguous.
  const atOffset = new Map<number, { value: string; source: Source }>();
  const ofValue = new Map<string, { offset: number; source: Source }>();
  const baseOfKey = new Map<string, { base: number; source: Source }>();
  for (const c of claims) {
    const seen = atOffset.get(c.offset);
    if (seen === undefined) atOffset.set(c.offset, { value: c.value, source: c.source });
    else if (seen.value !== c.value)
      violate(
        'two values at one offset',
        `offset ${c.offset} holds ${seen.value} (${seen.source}) and ${c.value} (${c.source})`,
      );
    const where = ofValue.get(c.value);
    if (where === undefined) ofValue.set(c.value, { offset: c.offset, source: c.source });
    else if (where.offset !== c.offset)
      violate(
        'duplicate',
        `${c.value} is at offset ${where.offset} (${where.source}) and at offset ${c.offset} (${c.source})`,
      );
    const o = owner.get(c.value);
    if (o === undefined) {
      violate('phantom', `${c.value} at offset ${c.offset} (${c.source}) was never written by anyone`);
      continue;
    }
    const base = c.offset - o.index;
    const b = baseOfKey.get(o.op.key);
    if (b === undefined) baseOfKey.set(o.op.key, { base, source: c.source });
    else if (b.base !== base)
      violate(
        'batch not contiguous',
        `${o.op.key} starts at ${b.base} (${b.source}) but ${c.value} at ${c.offset} (${c.source}) puts it at ${base}`,
      );
    // 2. A write that definitely failed is never seen.
    if (outcomes.get(o.op.key) === 'fail')
      violate(
        'failed write visible',
        `${c.value} at offset ${c.offset} (${c.source}); every attempt of ${o.op.key} failed: ${o.op.attempts.map((a) => `${a.result}@${a.process}`).join(', ')}`,
      );
  }

  // 3. Acknowledgements agree with each other and with the batch.
  for (const op of h.produces)
    for (const ack of op.acks) {
      if (ack.count !== op.values.length)
        violate('ack count', `${op.key} sent ${op.values.length} records, acknowledged ${ack.count} (${ack.process})`);
      if (op.ack !== null && ack.baseOffset !== op.ack.baseOffset)
        violate(
          'acks disagree',
          `${op.key} acknowledged at ${op.ack.baseOffset} (${op.ack.process}) and at ${ack.baseOffset} (${ack.process})`,
        );
    }

  // 4. Final logs: contiguous, all equal in length, and holding every acknowledged write.
  let finalHighWatermark = 0;
  if (h.finalLogs.length > 0) {
    for (const l of h.finalLogs) {
      l.records.forEach(([offset], i) => {
        if (offset !== l.logStartOffset + i)
          violate('final log gap', `${l.process}: record #${i} has offset ${offset}, expected ${l.logStartOffset + i}`);
      });
      if (l.records.length !== l.highWatermark - l.logStartOffset)
        violate(
          'final log length',
          `${l.process}: ${l.records.length} records between log start ${l.logStartOffset} and high watermark ${l.highWatermark}`,
        );
    }
    const hws = h.finalLogs.map((l) => l.highWatermark);
    finalHighWatermark = Math.max(...hws);
    if (Math.min(...hws) !== finalHighWatermark)
      violate(
        'final logs differ',
        `high watermarks ${h.finalLogs.map((l) => `${l.process}=${l.highWatermark}`).join(', ')} after catch-up`,
      );
    const finalValues = h.finalLogs.map((l) => ({ l, at: new Map(l.records) }));
    for (const op of h.produces) {
      if (op.ack === null) continue;
      for (const { l, at } of finalValues)
        op.values.forEach((v, i) => {
          const offset = op.ack!.baseOffset + i;
          if (offset < l.logStartOffset) return;
          const got = at.get(offset);
          if (got !== v)
            violate(
              'lost acknowledged write',
              `${op.key} acknowledged at ${op.ack!.baseOffset} by ${op.ack!.process} (t${op.ack!.complete}); offset ${offset} in the final log of ${l.process} ${got === undefined ? `is missing (high watermark ${l.highWatermark})` : `holds ${got}`}`,
            );
        });
    }
    // A batch is all or nothing in every final log.
    for (const { l, at } of finalValues) {
      const present = new Map<string, number>();
      for (const [, v] of at) {
        const o = owner.get(v);
        if (o) present.set(o.op.key, (present.get(o.op.key) ?? 0) + 1);
      }
      for (const [key, n] of present) {
        const op = byKey.get(key)!;
        if (n !== op.values.length)
          violate('partial batch', `${key}: ${n} of ${op.values.length} records in the final log of ${l.process}`);
      }
    }
  }

  // 5. Fetches are well-formed, and per process the high watermark and log start never go back.
  type Mono = { process: string; invoke: number; complete: number; hw: number; ls: number; what: string };
  const mono: Mono[] = [];
  for (const f of h.fetches) {
    mono.push({
      process: f.process,
      invoke: f.invoke,
      complete: f.complete,
      hw: f.highWatermark,
      ls: f.logStartOffset,
      what: `fetch@${f.offset}`,
    });
    f.records.forEach(([offset], i) => {
      if (offset !== f.offset + i)
        violate(
          'fetch not contiguous',
          `fetch from ${f.process} at ${f.offset} (t${f.complete}): record #${i} has offset ${offset}`,
        );
      if (offset >= f.highWatermark)
        violate(
          'fetch beyond high watermark',
          `fetch from ${f.process} (t${f.complete}) returned offset ${offset} with high watermark ${f.highWatermark}`,
        );
    });
    const expectedNext = f.records.length > 0 ? f.records[f.records.length - 1][0] + 1 : f.offset;
    if (f.nextOffset !== expectedNext)
      violate(
        'fetch nextOffset',
        `fetch from ${f.process} at ${f.offset} (t${f.complete}): nextOffset ${f.nextOffset}, expected ${expectedNext}`,
      );
  }
  for (const s of h.statuses)
    mono.push({
      process: s.process,
      invoke: s.invoke,
      complete: s.complete,
      hw: s.highWatermark,
      ls: s.logStartOffset,
      what: 'status',
    });
  for (const [process, obs] of groupBy(mono, (m) => m.process)) {
    checkMonotonic(
      obs,
      (o) => o.hw,
      (before, after) =>
        violate(
          'high watermark went back',
          `${process}: ${before.what} answered ${before.hw} (t${before.complete}), a later ${after.what} (sent t${after.invoke}) answered ${after.hw}`,
        ),
    );
    checkMonotonic(
      obs,
      (o) => o.ls,
      (before, after) =>
        violate(
          'log start went back',
          `${process}: ${before.what} answered ${before.ls} (t${before.complete}), a later ${after.what} (sent t${after.invoke}) answered ${after.ls}`,
        ),
    );
  }

  // 6. Group offsets: commits are issued in increasing order (a precondition of these checks),
  // reads per process never go back, every value read was committed by someone and not refused,
  // and the final answer is at least the highest acknowledged commit.
  const staleGroupReads: string[] = [];
  for (const [group, commits] of groupBy(h.commits, (c) => c.group)) {
    const sorted = [...commits].sort((a, b) => a.invoke - b.invoke);
    for (let i = 1; i < sorted.length; i++)
      if (sorted[i].offset <= sorted[i - 1].offset)
        violate(
          'history precondition',
          `group ${group}: commit of ${sorted[i].offset} (t${sorted[i].invoke}) follows a commit of ${sorted[i - 1].offset}; the checker needs increasing commits`,
        );
    const byOffset = new Map(commits.map((c) => [c.offset, c] as const));
    const reads = h.groupReads.filter((r) => r.group === group);
    for (const r of reads) {
      if (r.offset === null) continue;
      const c = byOffset.get(r.offset);
      if (c === undefined)
        violate(
          'group offset phantom',
          `group ${group}: ${r.process} answered ${r.offset} (t${r.complete}), never committed`,
        );
      else if (c.outcome === 'fail')
        violate(
          'group offset of a failed commit',
          `group ${group}: ${r.process} answered ${r.offset} (t${r.complete}); that commit failed with ${c.result}`,
        );
    }
    for (const [process, obs] of groupBy(reads, (r) => r.process))
      checkMonotonic(
        obs,
        (r) => r.offset ?? -1,
        (before, after) =>
          violate(
            'group offset went back',
            `group ${group} on ${process}: ${before.offset} (t${before.complete}), then ${after.offset} (sent t${after.invoke})`,
          ),
      );
    const acked = commits.filter((c) => c.outcome === 'ok');
    const maxAcked = acked.reduce((m, c) => Math.max(m, c.offset), -1);
    for (const r of reads.filter((x) => x.final))
      if ((r.offset ?? -1) < maxAcked)
        violate(
          'acknowledged group commit lost',
          `group ${group}: final read from ${r.process} answered ${r.offset}, below the acknowledged commit of ${maxAcked}`,
        );
    // Real-time order across replicas: informational (see CheckReport.staleGroupReads).
    const ackedByComplete = [...acked].sort((a, b) => a.complete! - b.complete!);
    let i = 0;
    let best: GroupCommitOp | undefined;
    for (const r of [...reads].sort((a, b) => a.invoke - b.invoke)) {
      while (i < ackedByComplete.length && ackedByComplete[i].complete! < r.invoke) {
        if (best === undefined || ackedByComplete[i].offset > best.offset) best = ackedByComplete[i];
        i++;
      }
      if (best !== undefined && (r.offset ?? -1) < best.offset)
        staleGroupReads.push(
          `group ${group}: ${r.process} answered ${r.offset} (sent t${r.invoke}) after the commit of ${best.offset} was acknowledged by ${best.process} (t${best.complete})`,
        );
    }
  }

  for (const [check, n] of counts) if (n > max) violations.push(`${check}: … and ${n - max} more`);
  const unknown = h.produces.filter((op) => outcomes.get(op.key) === 'info');
  return {
    violations,
    staleGroupReads,
    stats: {
      writes: h.produces.length,
      acked: h.produces.filter((op) => op.ack !== null).length,
      failed: h.produces.filter((op) => outcomes.get(op.key) === 'fail').length,
      unknown: unknown.length,
      unknownPresent: unknown.filter((op) => baseOfKey.has(op.key)).length,
      fetches: h.fetches.length,
      recordsObserved: h.fetches.reduce((n, f) => n + f.records.length, 0),
      commits: h.commits.length,
      commitsAcked: h.commits.filter((c) => c.outcome === 'ok').length,
      groupReads: h.groupReads.length,
      processes: new Set([...h.fetches, ...h.statuses, ...h.groupReads].map((o) => o.process)).size,
      finalHighWatermark,
    },
  };
}

function groupBy<T>(xs: readonly T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    const list = m.get(k);
    if (list) list.push(x);
    else m.set(k, [x]);
  }
  return m;
}

/**
 * Real-time monotonicity: for every observation b, and every a that completed before b was
 * invoked, value(b) ≥ value(a). Overlapping observations are unordered. Reports the first
 * regression per observation against the highest earlier value; returns whether any was found.
 */
function checkMonotonic<T extends { invoke: number; complete: number }>(
  obs: readonly T[],
  value: (o: T) => number,
  report: (before: T, after: T) => void,
): boolean {
  const byComplete = [...obs].sort((a, b) => a.complete - b.complete);
  const byInvoke = [...obs].sort((a, b) => a.invoke - b.invoke);
  let i = 0;
  let best: T | undefined;
  let found = false;
  for (const b of byInvoke) {
    while (i < byComplete.length && byComplete[i].complete < b.invoke) {
      if (best === undefined || value(byComplete[i]) > value(best)) best = byComplete[i];
      i++;
    }
    if (best !== undefined && value(b) < value(best)) {
      report(best, b);
      found = true;
    }
  }
  return found;
}

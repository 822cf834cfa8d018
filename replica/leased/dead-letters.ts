import type { DeadLetterFilter, DeadLetterRow, DeadLetterState } from '../../common/leased-api';
import { normalizeFilter, parseFilter } from '../../protocol/codecs/dead-letters';
import { BufReader, BufWriter, CodecError } from '../../protocol/bytes';

/**
 * The dead-letter stream of one partition and its replay jobs: part of the partition's replicated
 * state (written through Raft like any record, snapshotted with the rest of the state keyspace).
 * Pure and deterministic: times come from the commands.
 *
 * Entries are numbered densely per partition (`seq`, never reused: the counter is persisted, not
 * derived). An entry is `active` until it is archived (kept, hidden from replay) or replayed
 * (written back to the origin by a job; kept with the job id and the new offset). A replay job is
 * a cursor over the entries: each batch writes the records and marks their entries replayed in
 * the same applied entry, so a record is replayed at most once whatever happens to the leader —
 * and re-running a job (or another job over the same entries) skips them.
 *
 * A job with a `target` topic writes to another Raft group, so the write and the marks cannot be
 * one entry. Such a job first records its next batch as `pending` (prepare), the leader writes
 * the batch to the target's partitions with idempotency keys derived from the job and the
 * batch's origin coordinates, and a commit entry then marks the entries replayed (with where they
 * went) and moves the cursor. A new leader finds the same pending batch and sends it again under
 * the same keys: the target partitions answer with the original offsets instead of writing twice.
 */

/** Another topic a replay job writes to, with its partition count when the job was created. */
export interface ReplayTarget {
  topic: string;
  partitions: number;
}

export interface ReplayJobRow {
  jobId: string;
  filter: DeadLetterFilter;
  ratePerSec: number;
  dryRun: boolean;
  createdMs: number;
  state: 'running' | 'done';
  /** Next seq to examine. */
  cursor: number;
  matched: number;
  written: number;
  skipped: number;
  finishedMs: number | null;
  /** null: back to the origin partition. */
  target: ReplayTarget | null;
  /** Target jobs: the batch being written (prepared, not yet committed). */
  pending: { seqs: number[]; cursorTo: number } | null;
}

/** One record of a committed target batch: where it was written. */
export interface ReplayWritten {
  seq: number;
  partition: number;
  offset: number;
}

export interface DeadLetterSink {
  entry(seq: number, row: DeadLetterRow | null): void;
  job(row: ReplayJobRow): void;
  /** A finished job was garbage-collected. */
  jobGone(jobId: string): void;
  nextSeq(next: number): void;
}

export interface ReplayPlan {
  seqs: number[];
  /** The batch covers seqs below this. */
  cursorTo: number;
  /** Nothing at or after cursorTo exists (yet). */
  done: boolean;
}

/**
 * Replay-job garbage collection (issue 15 item 8): finished jobs are kept this long after they
 * finished (so a client can read the outcome), and at most this many; the oldest finished go
 * first. Running jobs are never collected. A create re-sent after its job was collected starts a
 * new run, which writes nothing twice: entries the first run replayed are no longer active.
 */
export const FINISHED_JOB_RETENTION_MS = 7 * 24 * 3600 * 1000;
export const MAX_FINISHED_JOBS = 1000;

export function matchesFilter(row: DeadLetterRow, f: DeadLetterFilter): boolean {
  if (f.fromMs !== undefined && row.deadLetteredMs < f.fromMs) return false;
  if (f.toMs !== undefined && row.deadLetteredMs >= f.toMs) return false;
  if (f.group !== undefined && row.group !== f.group) return false;
  if (f.errorClass !== undefined && row.errorClass !== f.errorClass) return false;
  if (f.seqs !== undefined && !f.seqs.includes(row.seq)) return false;
  if (f.states !== undefined && !f.states.includes(row.state)) return false;
  return true;
}

export class DeadLetterStore {
  nextSeq = 0;
  /** By seq, ascending (entries are added in seq order and loaded sorted). */
  readonly entries = new Map<number, DeadLetterRow>();
  readonly jobs = new Map<string, ReplayJobRow>();

  clear(): void {
    this.nextSeq = 0;
    this.entries.clear();
    this.jobs.clear();
  }

  add(row: Omit<DeadLetterRow, 'seq' | 'state'>, sink: DeadLetterSink): DeadLetterRow {
    const full: DeadLetterRow = { ...row, seq: this.nextSeq++, state: 'active' };
    this.entries.set(full.seq, full);
    sink.entry(full.seq, full);
    sink.nextSeq(this.nextSeq);
    return full;
  }

  /** Entries matching `filter` with seq > afterSeq, at most `limit`, in seq order. */
  query(filter: DeadLetterFilter, afterSeq: number, limit: number): { rows: DeadLetterRow[]; more: boolean } {
    const rows: DeadLetterRow[] = [];
    for (const row of this.entries.values()) {
      if (row.seq <= afterSeq || !matchesFilter(row, filter)) continue;
      if (rows.length >= limit) return { rows, more: true };
      rows.push(row);
    }
    return { rows, more: false };
  }

  /**
   * Seqs in the batch a target job is writing: archive and purge leave them alone until the job
   * commits, so a batch sent again after a failover is the same batch under the same keys.
   */
  private inFlight(): Set<number> {
    const s = new Set<number>();
    for (const j of this.jobs.values()) if (j.pending) for (const q of j.pending.seqs) s.add(q);
    return s;
  }

  archive(filter: DeadLetterFilter, sink: DeadLetterSink): number {
    let n = 0;
    const busy = this.inFlight();
    for (const row of this.entries.values())
      if (row.state === 'active' && matchesFilter(row, filter) && !busy.has(row.seq)) {
        const next = { ...row, state: 'archived' as const };
        this.entries.set(row.seq, next);
        sink.entry(row.seq, next);
        n++;
      }
    return n;
  }

  purge(filter: DeadLetterFilter, sink: DeadLetterSink): number {
    let n = 0;
    const busy = this.inFlight();
    for (const row of [...this.entries.values()])
      if (matchesFilter(row, filter) && !busy.has(row.seq)) {
        this.entries.delete(row.seq);
        sink.entry(row.seq, null);
        n++;
      }
    return n;
  }

  /** The dead-letter time of the oldest entry (retention), or undefined when empty. */
  oldestMs(): number | undefined {
    let oldest: number | undefined;
    for (const row of this.entries.values())
      if (oldest === undefined || row.deadLetteredMs < oldest) oldest = row.deadLetteredMs;
    return oldest;
  }

  countByState(): Record<DeadLetterState, number> {
    const c = { active: 0, archived: 0, replayed: 0 };
    for (const row of this.entries.values()) c[row.state]++;
    return c;
  }

  // ---- replay jobs ----

  /** Create a job (a no-op when the id exists: re-sending a create never starts a second run). */
  createJob(
    jobId: string,
    filter: DeadLetterFilter,
    ratePerSec: number,
    dryRun: boolean,
    nowMs: number,
    sink: DeadLetterSink,
    target: ReplayTarget | null = null,
  ): ReplayJobRow {
    const existing = this.jobs.get(jobId);
    if (existing) return existing;
    this.collectJobs(nowMs, sink);
    let matched = 0;
    let skipped = 0;
    for (const row of this.entries.values()) {
      if (!matchesFilter(row, { ...filter, states: undefined })) continue;
      if (row.state === 'active') matched++;
      else if (row.state === 'replayed') skipped++;
    }
    const job: ReplayJobRow = {
      jobId,
      filter: normalizeFilter({ ...filter, states: undefined }),
      ratePerSec,
      dryRun,
      createdMs: nowMs,
      state: dryRun ? 'done' : 'running',
      cursor: dryRun ? this.nextSeq : 0,
      matched,
      written: 0,
      skipped: dryRun ? skipped : 0,
      finishedMs: dryRun ? nowMs : null,
      target: target ? { ...target } : null,
      pending: null,
    };
    this.jobs.set(jobId, job);
    sink.job(job);
    return job;
  }

  /**
   * Drop finished jobs past FINISHED_JOB_RETENTION_MS (by the creating command's time), then the
   * oldest finished ones beyond MAX_FINISHED_JOBS - 1 (room for the job being created). Ordered by
   * finish time then id, so every replica drops the same ones.
   */
  collectJobs(nowMs: number, sink: DeadLetterSink): number {
    const done = [...this.jobs.values()]
      .filter((j) => j.state === 'done')
      .sort(
        (a, b) => (a.finishedMs ?? 0) - (b.finishedMs ?? 0) || (a.jobId < b.jobId ? -1 : a.jobId > b.jobId ? 1 : 0),
      );
    let n = 0;
    for (const j of done) {
      const expired = (j.finishedMs ?? 0) < nowMs - FINISHED_JOB_RETENTION_MS;
      if (!expired && done.length - n < MAX_FINISHED_JOBS) break;
      this.jobs.delete(j.jobId);
      sink.jobGone(j.jobId);
      n++;
    }
    return n;
  }

  /** Leader: the next batch of a running job (active matching entries from its cursor). */
  planReplay(jobId: string, max: number, scanLimit: number): ReplayPlan | undefined {
    const job = this.jobs.get(jobId);
    if (!job || job.state !== 'running') return undefined;
    const seqs: number[] = [];
    let cursorTo = job.cursor;
    let scanned = 0;
    for (const row of this.entries.values()) {
      if (row.seq < job.cursor) continue;
      if (seqs.length >= max || scanned >= scanLimit) return { seqs, cursorTo, done: false };
      scanned++;
      if (row.state === 'active' && matchesFilter(row, job.filter)) seqs.push(row.seq);
      cursorTo = row.seq + 1;
    }
    return { seqs, cursorTo: Math.max(cursorTo, job.cursor), done: true };
  }

  /**
   * Apply-time check of a replay batch: every entry must still be active and match (else the
   * batch is refused whole and the leader plans again).
   */
  checkReplay(jobId: string, seqs: readonly number[], cursorTo: number): string | undefined {
    const job = this.jobs.get(jobId);
    if (!job || job.state !== 'running') return `replay job ${jobId} is not running`;
    if (job.pending) return `replay job ${jobId} has a batch in flight`;
    for (const s of seqs) {
      const row = this.entries.get(s);
      if (!row || row.state !== 'active' || !matchesFilter(row, job.filter) || s < job.cursor || s >= cursorTo)
        return `dead letter ${s} is no longer eligible for job ${jobId}`;
    }
    return undefined;
  }

  /** The batch's records were written at baseOffset…: mark their entries and move the cursor. */
  markReplayed(
    jobId: string,
    seqs: readonly number[],
    cursorTo: number,
    baseOffset: number,
    nowMs: number,
    sink: DeadLetterSink,
  ): void {
    const job = this.jobs.get(jobId)!;
    seqs.forEach((s, i) => {
      const row = this.entries.get(s)!;
      const next: DeadLetterRow = { ...row, state: 'replayed', replay: { jobId, offset: baseOffset + i, atMs: nowMs } };
      this.entries.set(s, next);
      sink.entry(s, next);
    });
    this.moveCursor(job, cursorTo, new Set(seqs), false, nowMs, sink);
    job.written += seqs.length;
    sink.job(job);
  }

  /** Move a job's cursor past entries with nothing to write; `done` ends the job. */
  advanceJob(jobId: string, cursorTo: number, done: boolean, nowMs: number, sink: DeadLetterSink): boolean {
    const job = this.jobs.get(jobId);
    if (!job || job.state !== 'running' || job.pending || cursorTo < job.cursor) return false;
    // An active matching entry in the range would be skipped silently: refuse, the leader plans again.
    for (const row of this.entries.values())
      if (row.seq >= job.cursor && row.seq < cursorTo && row.state === 'active' && matchesFilter(row, job.filter))
        return false;
    this.moveCursor(job, cursorTo, new Set(), done, nowMs, sink);
    sink.job(job);
    return true;
  }

  /** Target jobs: record the next batch before writing it to the other topic. */
  prepareReplay(jobId: string, seqs: readonly number[], cursorTo: number, sink: DeadLetterSink): string | undefined {
    const job = this.jobs.get(jobId);
    if (!job?.target) return `replay job ${jobId} has no target topic`;
    const why = seqs.length === 0 ? 'an empty batch' : this.checkReplay(jobId, seqs, cursorTo);
    if (why !== undefined) return why;
    job.pending = { seqs: [...seqs], cursorTo };
    sink.job(job);
    return undefined;
  }

  /**
   * Target jobs: the pending batch was written (`written` says where): mark its entries replayed
   * and move the cursor. Entries purged meanwhile need no mark; every other entry of the batch
   * must be in `written` (else the leader that sent this read another state: refused).
   */
  commitReplay(
    jobId: string,
    written: readonly ReplayWritten[],
    nowMs: number,
    sink: DeadLetterSink,
  ): string | undefined {
    const job = this.jobs.get(jobId);
    const pending = job?.pending;
    if (!job?.target || !pending) return `replay job ${jobId} has no batch in flight`;
    const at = new Map(written.map((w) => [w.seq, w]));
    if (written.some((w) => !pending.seqs.includes(w.seq)))
      return `replay job ${jobId}: the commit names entries outside the batch in flight`;
    for (const s of pending.seqs)
      if (this.entries.has(s) && !at.has(s)) return `replay job ${jobId}: dead letter ${s} was not written`;
    for (const w of written) {
      const row = this.entries.get(w.seq);
      if (!row) continue;
      const next: DeadLetterRow = {
        ...row,
        state: 'replayed',
        replay: { jobId, offset: w.offset, atMs: nowMs, topic: job.target.topic, partition: w.partition },
      };
      this.entries.set(w.seq, next);
      sink.entry(w.seq, next);
    }
    job.pending = null;
    this.moveCursor(job, pending.cursorTo, new Set(pending.seqs), false, nowMs, sink);
    job.written += written.length;
    sink.job(job);
    return undefined;
  }

  private moveCursor(
    job: ReplayJobRow,
    cursorTo: number,
    written: Set<number>,
    done: boolean,
    nowMs: number,
    sink: DeadLetterSink,
  ): void {
    for (const row of this.entries.values())
      if (
        row.seq >= job.cursor &&
        row.seq < cursorTo &&
        !written.has(row.seq) &&
        row.state === 'replayed' &&
        matchesFilter(row, job.filter)
      )
        job.skipped++;
    job.cursor = cursorTo;
    if (done) {
      job.state = 'done';
      job.finishedMs = nowMs;
    }
    void sink;
  }
}

// ---- persistence ----

export function encodeJob(j: ReplayJobRow): Buffer {
  // Version 2 adds the target topic and the batch in flight; origin jobs stay version 1.
  const w = new BufWriter(128 + 8 * (j.pending?.seqs.length ?? 0))
    .u8(j.target ? 2 : 1)
    .str32(JSON.stringify(j.filter))
    .i53(Math.round(j.ratePerSec * 1000))
    .bool(j.dryRun)
    .i53(j.createdMs)
    .bool(j.state === 'done')
    .i53(j.cursor)
    .i53(j.matched)
    .i53(j.written)
    .i53(j.skipped)
    .i53(j.finishedMs ?? -1, -1);
  if (j.target) {
    w.str16(j.target.topic)
      .u32(j.target.partitions)
      .bool(j.pending !== null);
    if (j.pending) {
      w.u32(j.pending.seqs.length);
      for (const s of j.pending.seqs) w.i53(s);
      w.i53(j.pending.cursorTo);
    }
  }
  return w.finish();
}

export function decodeJob(jobId: string, v: Uint8Array): ReplayJobRow {
  const rd = new BufReader(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
  const version = rd.u8('job.version');
  if (version !== 1 && version !== 2) throw new CodecError('bad_value', `replay job version ${version}`);
  const filter = parseFilter(rd.str32('filter'));
  const ratePerSec = rd.i53('rate') / 1000;
  const dryRun = rd.bool('dryRun');
  const createdMs = rd.i53('createdMs');
  const done = rd.bool('done');
  const job: ReplayJobRow = {
    jobId,
    filter,
    ratePerSec,
    dryRun,
    createdMs,
    state: done ? 'done' : 'running',
    cursor: rd.i53('cursor'),
    matched: rd.i53('matched'),
    written: rd.i53('written'),
    skipped: rd.i53('skipped'),
    finishedMs: null,
    target: null,
    pending: null,
  };
  const f = rd.i53('finishedMs', -1);
  job.finishedMs = f < 0 ? null : f;
  if (version === 2) {
    job.target = { topic: rd.str16('target.topic'), partitions: rd.u32('target.partitions') };
    if (rd.bool('hasPending')) {
      const n = rd.u32('pending.count');
      if (n * 8 > rd.remaining) throw new CodecError('bad_length', `pending.count ${n} exceeds ${rd.remaining} bytes`);
      const seqs: number[] = [];
      for (let i = 0; i < n; i++) seqs.push(rd.i53('pending.seq'));
      job.pending = { seqs, cursorTo: rd.i53('pending.cursorTo') };
    }
  }
  rd.end('replay job');
  return job;
}

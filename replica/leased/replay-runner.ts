import { createHash } from 'node:crypto';
import { DaftkaError, isDaftkaError } from '../../common/errors';
import type { DeadLetterRow } from '../../common/leased-api';
import type { promClient } from '../../common/metrics';
import type { RecordIn } from '../../common/partition-api';
import { partitionForKey } from '../../common/partitioner';
import { CommandKind, encodeCommand } from '../state/commands';
import type { ReplayJobRow, ReplayWritten } from './dead-letters';
import { leasedOut, PROPOSE_TIMEOUT_MS, type LeasedHost } from './host';

/**
 * The leader's replay loop: writes back the next batch of each running dead-letter replay job,
 * at the job's rate (a token bucket per job, leader-local). A job to the origin writes its batch
 * and marks the entries replayed in one entry; a job to another topic prepares the batch
 * (replicated), writes it through the topic writer under derived idempotency keys, then commits
 * where each record went — so whatever happens to the leader, nothing is written twice.
 */

const REPLAY_BATCH = 100;
const REPLAY_SCAN = 5000;

export class ReplayRunner {
  private running = false;
  private readonly buckets = new Map<string, { tokens: number; lastMs: number }>();
  /** Last failure writing a target job's batch (leader-local; shown in the job's status). */
  private readonly jobErrors = new Map<string, string>();

  constructor(
    private readonly h: LeasedHost,
    private readonly replays: promClient.Counter<'topic' | 'partition' | 'outcome'>,
  ) {}

  /** The leader's last failure writing this job's batch to its target (cleared by a success). */
  lastError(jobId: string): string | undefined {
    return this.jobErrors.get(jobId);
  }

  /** Write back the next batch of every running replay job, at its rate. */
  async run(): Promise<void> {
    if (this.running || !this.h.isLeader()) return;
    this.running = true;
    try {
      const store = this.h.state.leased.deadLetters;
      for (const job of [...store.jobs.values()]) {
        if (job.state !== 'running') {
          this.buckets.delete(job.jobId);
          this.jobErrors.delete(job.jobId);
          continue;
        }
        const now = Date.now();
        const b = this.buckets.get(job.jobId) ?? { tokens: 1, lastMs: now };
        b.tokens = Math.min(Math.max(1, job.ratePerSec), b.tokens + (job.ratePerSec * (now - b.lastMs)) / 1000);
        b.lastMs = now;
        this.buckets.set(job.jobId, b);
        if (job.target) {
          await this.runTargetBatch(job, b, now);
          continue;
        }
        const n = Math.max(0, Math.min(REPLAY_BATCH, Math.floor(b.tokens)));
        // Out of tokens, a job with nothing left still finishes: its last step writes nothing.
        const plan = store.planReplay(job.jobId, n, REPLAY_SCAN);
        if (!plan || (n < 1 && !plan.done)) continue;
        if (plan.seqs.length === 0) {
          leasedOut(
            await this.h.propose(
              encodeCommand({
                kind: CommandKind.ReplayJob,
                leaderTimeMs: now,
                op: 'advance',
                jobId: job.jobId,
                cursorTo: plan.cursorTo,
                done: plan.done,
              }),
              PROPOSE_TIMEOUT_MS,
            ),
            'job',
          );
          if (plan.done) this.h.logger.info('replay_job_done', { job_id: job.jobId });
          continue;
        }
        const rows = plan.seqs.map((s) => store.entries.get(s)!);
        const records = rows.map((row) => this.replayRecord(row, job.jobId, now));
        const lbl = { topic: this.h.topic, partition: String(this.h.partition) };
        this.replays.inc({ ...lbl, outcome: 'attempted' }, rows.length);
        const r = await this.h.propose(
          encodeCommand({
            kind: CommandKind.Produce,
            leaderTimeMs: now,
            idempotencyKey: this.replayKey(job.jobId, rows),
            records,
            replay: { jobId: job.jobId, seqs: plan.seqs, cursorTo: plan.cursorTo },
          }),
          PROPOSE_TIMEOUT_MS,
        );
        if (r.kind === 'written') {
          b.tokens -= r.count;
          this.replays.inc({ ...lbl, outcome: 'written' }, r.count);
        } else {
          // duplicate (same batch already written) or refused (no longer eligible): nothing written.
          this.replays.inc({ ...lbl, outcome: 'skipped' }, rows.length);
        }
      }
    } catch (err) {
      if (!(err instanceof DaftkaError && (err.code === 'NOT_LEADER' || err.code === 'COMMIT_UNKNOWN')))
        this.h.logger.warn('replay_batch_failed', { error: (err as Error).message });
    } finally {
      this.running = false;
    }
  }

  /**
   * One step of a job that writes to another topic: prepare the next batch (replicated), write it
   * to the target's partitions under idempotency keys derived from the job and the records'
   * origin coordinates, commit where each record went (replicated). A batch left pending by a
   * failure or a lost leadership is sent again as it is, under the same keys: never twice.
   */
  private async runTargetBatch(job: ReplayJobRow, b: { tokens: number }, now: number): Promise<void> {
    const store = this.h.state.leased.deadLetters;
    const lbl = { topic: this.h.topic, partition: String(this.h.partition) };
    const target = job.target!;
    if (!job.pending) {
      const n = Math.max(0, Math.min(REPLAY_BATCH, Math.floor(b.tokens)));
      // Out of tokens, a job with nothing left still finishes: its last step writes nothing.
      const plan = store.planReplay(job.jobId, n, REPLAY_SCAN);
      if (!plan || (n < 1 && !plan.done)) return;
      const cmd =
        plan.seqs.length === 0
          ? { op: 'advance' as const, cursorTo: plan.cursorTo, done: plan.done }
          : { op: 'prepare' as const, seqs: plan.seqs, cursorTo: plan.cursorTo };
      const out = leasedOut(
        await this.h.propose(
          encodeCommand({ kind: CommandKind.ReplayJob, leaderTimeMs: now, jobId: job.jobId, ...cmd }),
          PROPOSE_TIMEOUT_MS,
        ),
        'job',
      );
      if (plan.seqs.length === 0) {
        if (plan.done) this.h.logger.info('replay_job_done', { job_id: job.jobId, target: target.topic });
        return;
      }
      if (out.refused !== undefined || !out.job?.pending) return; // planned again on the next pass
      job = out.job;
    }
    const pending = job.pending!;
    const writer = this.h.topicWriter();
    if (writer === null) {
      this.jobErrors.set(job.jobId, "no NATS control channel: cannot find the target topic's leaders");
      return;
    }
    const rows = pending.seqs.flatMap((s) => store.entries.get(s) ?? []);
    // Keyed records go where Kafka's partitioner puts their key; keyless ones keep the origin's
    // partition (mod the target's count), so their relative order is kept.
    const byPartition = new Map<number, DeadLetterRow[]>();
    for (const row of rows) {
      const p =
        row.record.key !== null
          ? partitionForKey(row.record.key, target.partitions)
          : this.h.partition % target.partitions;
      byPartition.set(p, [...(byPartition.get(p) ?? []), row]);
    }
    const written: ReplayWritten[] = [];
    let duplicates = 0;
    this.replays.inc({ ...lbl, outcome: 'attempted' }, rows.length);
    try {
      for (const [partition, part] of [...byPartition].sort(([a], [b]) => a - b)) {
        const r = await writer.produce({
          topic: target.topic,
          partition,
          records: part.map((row) => this.replayRecord(row, job.jobId, now)),
          idempotencyKey: `${this.replayKey(job.jobId, part)}:${partition}`,
          requestId: `replay-${job.jobId}`,
          timeoutMs: PROPOSE_TIMEOUT_MS,
        });
        if (r.duplicate) duplicates += part.length;
        part.forEach((row, i) => written.push({ seq: row.seq, partition, offset: r.baseOffset + i }));
      }
    } catch (err) {
      const e = err as Error;
      const why = `writing to ${target.topic}: ${isDaftkaError(e) ? `${e.code} ` : ''}${e.message}`;
      if (this.jobErrors.get(job.jobId) !== why)
        this.h.logger.warn('replay_target_write_failed', { job_id: job.jobId, target: target.topic, error: why });
      this.jobErrors.set(job.jobId, why);
      return;
    }
    this.jobErrors.delete(job.jobId);
    const out = leasedOut(
      await this.h.propose(
        encodeCommand({ kind: CommandKind.ReplayJob, leaderTimeMs: now, op: 'commit', jobId: job.jobId, written }),
        PROPOSE_TIMEOUT_MS,
      ),
      'job',
    );
    if (out.refused !== undefined) {
      this.h.logger.warn('replay_commit_refused', { job_id: job.jobId, reason: out.refused });
      return;
    }
    b.tokens -= written.length;
    // Records the target already had (a batch sent again after a failover) were not written twice.
    this.replays.inc({ ...lbl, outcome: 'written' }, written.length - duplicates);
    if (duplicates) this.replays.inc({ ...lbl, outcome: 'skipped' }, duplicates);
  }

  /**
   * The write's idempotency key, derived from the job and the origin coordinates of its records:
   * a retried batch is answered as a duplicate by the dedup table, on top of the replayed marks.
   */
  private replayKey(jobId: string, rows: DeadLetterRow[]): string {
    const h = createHash('sha256');
    for (const r of rows) h.update(`${this.h.topic}/${this.h.partition}/${r.originOffset}/${r.group}/${r.seq};`);
    return `replay:${jobId}:${h.digest('base64url').slice(0, 32)}`;
  }

  /** The original record, stamped now, with headers naming where it came from. */
  private replayRecord(row: DeadLetterRow, jobId: string, nowMs: number): RecordIn {
    return {
      key: row.record.key,
      value: row.record.value,
      headers: [
        ...row.record.headers,
        ['daftka-replay-of', Buffer.from(`${this.h.topic}/${this.h.partition}/${row.originOffset}`)],
        ['daftka-replay-job', Buffer.from(jobId)],
        ['daftka-dead-letter-group', Buffer.from(row.group)],
        ['daftka-original-timestamp', Buffer.from(String(row.record.timestampMs))],
      ],
      timestampMs: nowMs,
    };
  }
}

import { DaftkaError } from '../../common/errors';
import type { Entry } from '../raft';
import type { ApplyResult } from '../state/partition-state';

/**
 * Proposals waiting for their entry to commit, by log index. Bounded by the core's
 * uncommitted-bytes limit (a proposal beyond it is refused before it gets here) and by each
 * proposal's own timeout. An entry that commits at its index in another term was not ours: a new
 * leader overwrote it, so that proposal was not written.
 */

interface Pending {
  term: number;
  startedAt: bigint;
  records: number;
  bytes: number;
  resolve: (r: ApplyResult) => void;
  reject: (e: DaftkaError) => void;
  timer: NodeJS.Timeout;
}

/** A produce that committed: what the commit metrics count. */
export interface CommittedProduce {
  records: number;
  bytes: number;
  seconds: number;
}

export class Proposals {
  private readonly pending = new Map<number, Pending>();

  get size(): number {
    return this.pending.size;
  }

  /** Wait for the entry proposed at `index` in `term`; COMMIT_UNKNOWN after `timeoutMs`. */
  wait(index: number, term: number, timeoutMs: number, records: number, bytes: number): Promise<ApplyResult> {
    return new Promise<ApplyResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(index))
          reject(
            new DaftkaError(
              'COMMIT_UNKNOWN',
              `not committed within ${timeoutMs} ms; retry with the same idempotency key`,
            ),
          );
      }, timeoutMs);
      this.pending.set(index, { term, startedAt: process.hrtime.bigint(), records, bytes, resolve, reject, timer });
    });
  }

  /**
   * The entry at `e.index` committed and applied with `result`. Returns the produce it settled,
   * for the metrics, when it was one of ours and written.
   */
  settle(e: Entry, result: ApplyResult, leaderHint: string | null): CommittedProduce | undefined {
    const p = this.pending.get(e.index);
    if (p === undefined) return undefined;
    this.pending.delete(e.index);
    clearTimeout(p.timer);
    if (p.term !== e.term) {
      p.reject(
        new DaftkaError(
          'NOT_LEADER',
          'the write was superseded by a new leader before it committed; it was not written',
          {
            leaderHint: leaderHint ?? undefined,
          },
        ),
      );
      return undefined;
    }
    p.resolve(result);
    if (result.kind !== 'written' || p.records === 0) return undefined;
    return { records: p.records, bytes: p.bytes, seconds: Number(process.hrtime.bigint() - p.startedAt) / 1e9 };
  }

  /** Leadership lost or the replica stopped: every waiting proposal fails with `err(index)`. */
  rejectAll(err: (index: number) => DaftkaError): void {
    for (const [index, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err(index));
    }
    this.pending.clear();
  }
}

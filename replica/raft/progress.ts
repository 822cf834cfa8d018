import type { ProgressStateName, ProgressStatus } from './types';

/**
 * Bounded window of App messages in flight to one follower: at most `maxMsgs` messages and
 * `maxBytes` payload bytes (the last message may cross the byte bound). A ring of
 * (last index, bytes), freed in order as acknowledgements arrive.
 */
export class Inflights {
  private readonly lastIndex: Float64Array;
  private readonly size: Float64Array;
  private start = 0;
  count = 0;
  bytes = 0;

  constructor(
    private readonly maxMsgs: number,
    private readonly maxBytes: number,
  ) {
    this.lastIndex = new Float64Array(maxMsgs);
    this.size = new Float64Array(maxMsgs);
  }

  /** Full at `window` messages (≤ maxMsgs) or maxBytes. */
  full(window = this.maxMsgs): boolean {
    return this.count >= window || this.bytes >= this.maxBytes;
  }

  add(lastIndex: number, bytes: number): void {
    const i = (this.start + this.count) % this.maxMsgs;
    this.lastIndex[i] = lastIndex;
    this.size[i] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Free every message whose entries are all at or below `index` (acknowledged). */
  freeLE(index: number): void {
    while (this.count > 0 && this.lastIndex[this.start] <= index) this.freeFirst();
  }

  /** Free the oldest message (a heartbeat response says the follower is alive but the window is stuck). */
  freeFirst(): void {
    if (this.count === 0) return;
    this.bytes -= this.size[this.start];
    this.start = (this.start + 1) % this.maxMsgs;
    this.count--;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}

export enum ProgressState {
  /** Unknown match: send one App at a time and wait for the answer (or a heartbeat response). */
  Probe = 0,
  /** Known match: stream Apps optimistically, bounded by the inflight window. */
  Replicate = 1,
  /** The follower needs entries we compacted: a snapshot is on its way; send nothing else. */
  Snapshot = 2,
}

const STATE_NAMES: Record<ProgressState, ProgressStateName> = {
  [ProgressState.Probe]: 'probe',
  [ProgressState.Replicate]: 'replicate',
  [ProgressState.Snapshot]: 'snapshot',
};

/** The leader's view of one member's log. */
export class Progress {
  /** Highest index known to be durably in the member's log and matching ours. */
  match = 0;
  /** Next index to send. Invariant: match < next. */
  next: number;
  state = ProgressState.Probe;
  /** Probe: an App is outstanding; wait for its answer or a heartbeat response. */
  probeSent = false;
  /** Snapshot: index of the snapshot sent. */
  pendingSnapshot = 0;
  /** Snapshot: ticks left before we assume the snapshot was lost and probe again. */
  snapshotTicksLeft = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = true;
  /** The storage could not provide entries (or a snapshot) for this member: retry on logAvailable(). */
  waitingForLog = false;
  readonly inflights: Inflights;
  /**
   * Replicate: how many Apps may be in flight, ≤ maxInflightMsgs. Halved on every detected loss
   * (a fresh rejection), grown by one per acknowledgement (AIMD). Each loss makes the leader
   * resend the window behind it; with a fixed window and lossy links every resent window would
   * itself lose messages and trigger more resends — a storm. Halving keeps resends bounded.
   */
  window: number;

  constructor(
    next: number,
    public isLearner: boolean,
    private readonly maxInflightMsgs: number,
    maxInflightBytes: number,
  ) {
    this.next = next;
    this.window = maxInflightMsgs;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotTicksLeft = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // Coming back from a snapshot: the follower has at least the snapshot, if it arrived.
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number, retryTicks: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
    this.snapshotTicksLeft = retryTicks;
  }

  /** An App carrying entries up to `last` was sent. */
  sentEntries(last: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (last >= this.next) {
        this.next = last + 1;
        this.inflights.add(last, bytes);
      }
    } else if (this.state === ProgressState.Probe) {
      this.probeSent = true;
    }
  }

  /** An acknowledgement up to `index` arrived. True if it told us something new. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
      if (this.window < this.maxInflightMsgs) this.window++;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * The follower rejected an App at `rejected`, hinting `followerHint` (the last index of its
   * log with a term ≤ the App's prevTerm), from which we derived `matchHint`, the highest index
   * where our logs may agree. Moves back to probing from there. Returns false if the rejection
   * is stale (answers an App we already moved past).
   */
  maybeDecrTo(rejected: number, matchHint: number, followerHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // Stale: it answers an App at or below what the follower has since acknowledged…
      if (rejected <= this.match) return false;
      // …or it was written before the follower held `match`: once it does, any rejection it
      // writes hints at an index ≥ match (its entries up to match have terms ≤ the App's
      // prevTerm). Without this, every rejection of a lost window would restart the pipeline
      // again, each restart resending the window: a message storm under loss.
      if (followerHint < this.match) return false;
      this.window = Math.max(1, this.window >> 1);
      this.becomeProbe();
    } else if (this.next - 1 !== rejected) {
      // Probe: only the answer to the outstanding probe counts.
      return false;
    }
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Nothing may be sent now: a probe is outstanding, the window is full, or a snapshot is in flight. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full(this.window);
      case ProgressState.Snapshot:
        return true;
    }
  }

  status(): ProgressStatus {
    return {
      match: this.match,
      next: this.next,
      state: STATE_NAMES[this.state],
      learner: this.isLearner,
      inflightMsgs: this.inflights.count,
      inflightBytes: this.inflights.bytes,
      window: this.window,
      recentActive: this.recentActive,
      pendingSnapshot: this.pendingSnapshot,
    };
  }
}

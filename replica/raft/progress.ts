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

  full(): boolean {
    return this.count >= this.maxMsgs || this.bytes >= this.maxBytes;
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
   * Generation of the App stream to this member, carried by every App and echoed by its
   * AppResp. It changes with every state change (backing off to probing in particular); a
   * rejection from an older generation answers an App sent before that and is ignored. Without it, with loss
   * or reordering, every rejection of an abandoned window would restart the stream again, each
   * restart resending a window: a message storm.
   */
  epoch = 0;

  constructor(
    next: number,
    public isLearner: boolean,
    maxInflightMsgs: number,
    maxInflightBytes: number,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotTicksLeft = 0;
    this.state = state;
    this.inflights.reset();
    this.epoch++;
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
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * The follower rejected an App of stream generation `epoch` at `rejected`; its hint lets us
   * guess `matchHint`, the highest index where our logs may agree. Moves back to probing from
   * there. Returns false if the rejection is stale (answers an App we already moved past).
   */
  maybeDecrTo(rejected: number, matchHint: number, epoch: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // Stale: it answers an App at or below what the follower has since acknowledged, or one
      // sent before our last back-off.
      if (rejected <= this.match || epoch !== this.epoch) return false;
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
        return this.inflights.full();
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
      recentActive: this.recentActive,
      pendingSnapshot: this.pendingSnapshot,
    };
  }
}

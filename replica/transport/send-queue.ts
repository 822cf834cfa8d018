/**
 * A bounded FIFO of outbound peer messages that drops the OLDEST when full.
 *
 * Raft tolerates message loss (a lost append is resent after the next heartbeat's reply, a lost
 * vote is re-requested at the next election), and the newest messages carry the freshest
 * state, so when a peer cannot keep up we keep the tail and shed the head. Bounded by count and
 * by bytes; both bounds hold after every push.
 */
export interface SendQueueLimits {
  maxQueueMsgs: number;
  maxQueueBytes: number;
}

export class SendQueue {
  private items: Array<Uint8Array | undefined> = [];
  private head = 0;
  private count = 0;
  private bytes = 0;

  constructor(private readonly limits: SendQueueLimits) {
    if (!(Number.isInteger(limits.maxQueueMsgs) && limits.maxQueueMsgs >= 1))
      throw new RangeError(`maxQueueMsgs must be an integer ≥ 1, got ${limits.maxQueueMsgs}`);
    if (!(limits.maxQueueBytes >= 1)) throw new RangeError(`maxQueueBytes must be ≥ 1, got ${limits.maxQueueBytes}`);
  }

  get length(): number {
    return this.count;
  }

  get byteLength(): number {
    return this.bytes;
  }

  /**
   * Append a message, shedding the oldest until both bounds hold. Returns how many messages were
   * dropped (the pushed one counts when it alone exceeds maxQueueBytes: it is refused).
   */
  push(msg: Uint8Array): number {
    if (msg.byteLength > this.limits.maxQueueBytes) return 1;
    let dropped = 0;
    while (this.count >= this.limits.maxQueueMsgs || this.bytes + msg.byteLength > this.limits.maxQueueBytes) {
      this.shift();
      dropped++;
    }
    this.items.push(msg);
    this.count++;
    this.bytes += msg.byteLength;
    return dropped;
  }

  peek(): Uint8Array | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  shift(): Uint8Array | undefined {
    if (this.count === 0) return undefined;
    const msg = this.items[this.head] as Uint8Array;
    this.items[this.head] = undefined;
    this.head++;
    this.count--;
    this.bytes -= msg.byteLength;
    // Compact once the dead prefix dominates, so the array stays O(live items) without O(n) shifts.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    } else if (this.count === 0) {
      this.items = [];
      this.head = 0;
    }
    return msg;
  }

  /** Empty the queue; returns how many messages were discarded. */
  clear(): number {
    const n = this.count;
    this.items = [];
    this.head = 0;
    this.count = 0;
    this.bytes = 0;
    return n;
  }
}

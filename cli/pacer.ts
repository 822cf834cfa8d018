/**
 * `--rate N` for produce: records go out no faster than N per second on average. A batch's first
 * record may leave at `start + sent / rate`; batches are kept to about a quarter second of the
 * rate so that a low rate is smooth rather than one burst and a long pause.
 */
export class Pacer {
  private sent = 0;
  private start: number | null = null;

  constructor(
    readonly ratePerSec: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Largest batch to send at once under this rate. */
  maxBatch(wanted: number): number {
    return Math.max(1, Math.min(wanted, Math.ceil(this.ratePerSec / 4)));
  }

  /** How long to wait before sending `n` more records; records them as sent. */
  delayFor(n: number): number {
    const now = this.now();
    if (this.start === null) this.start = now;
    const at = this.start + (this.sent / this.ratePerSec) * 1000;
    this.sent += n;
    return Math.max(0, at - now);
  }
}

/**
 * The progress bar of `daftka produce --file` on a terminal (stderr only, redrawn in place):
 *   [##########··········]  52%  12.3 MiB / 23.6 MiB  104,000 records  8,130 rec/s
 */

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

export function renderProgress(
  doneBytes: number,
  totalBytes: number,
  records: number,
  elapsedMs: number,
  width = 20,
): string {
  const frac = totalBytes > 0 ? Math.min(1, doneBytes / totalBytes) : 1;
  const filled = Math.round(frac * width);
  const bar = '#'.repeat(filled) + '·'.repeat(width - filled);
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  const rate = elapsedMs > 0 ? Math.round((records * 1000) / elapsedMs) : 0;
  return (
    `[${bar}] ${pct}  ${formatBytes(doneBytes)} / ${formatBytes(totalBytes)}  ` +
    `${records.toLocaleString('en-US')} records  ${rate.toLocaleString('en-US')} rec/s`
  );
}

/** Draws on a TTY stream at most every `everyMs`; does nothing when disabled. */
export class ProgressBar {
  private lastDraw = 0;
  private drawn = false;
  private readonly t0 = performance.now();

  constructor(
    private readonly write: (s: string) => void,
    private readonly totalBytes: number,
    private readonly enabled: boolean,
    private readonly everyMs = 100,
  ) {}

  update(doneBytes: number, records: number, force = false): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.lastDraw < this.everyMs) return;
    this.lastDraw = now;
    this.drawn = true;
    this.write(`\r${renderProgress(doneBytes, this.totalBytes, records, now - this.t0)}\x1b[K`);
  }

  /** Leave the final state on its own line. */
  finish(doneBytes: number, records: number): void {
    if (!this.enabled) return;
    this.update(doneBytes, records, true);
    if (this.drawn) this.write('\n');
  }
}

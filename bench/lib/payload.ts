/**
 * Record values of an exact size that carry who sent them and when: an ASCII header
 * `B<run>:<worker>:<seq>:<sentUs>|` padded with '.' to the record size. The same bytes go to
 * both systems; the header lets the verifier check every acknowledged record (identity and
 * per-producer order) and lets a consumer compute end-to-end latency (the consumer runs in the
 * producer's process, so `performance.now()` is one clock).
 */

export interface ValueHeader {
  run: number;
  worker: number;
  seq: number;
  sentUs: number;
}

const PAD = '.'.repeat(1 << 16);

export function makeValue(size: number, run: number, worker: number, seq: number, sentUs: number): string {
  const head = `B${run}:${worker}:${seq}:${sentUs}|`;
  if (head.length >= size) return head.slice(0, size);
  return head + PAD.slice(0, size - head.length);
}

export function parseValue(v: string): ValueHeader | null {
  if (v.charCodeAt(0) !== 66 /* B */) return null;
  const bar = v.indexOf('|');
  if (bar < 0) return null;
  const parts = v.slice(1, bar).split(':');
  if (parts.length !== 4) return null;
  return { run: Number(parts[0]), worker: Number(parts[1]), seq: Number(parts[2]), sentUs: Number(parts[3]) };
}

export function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

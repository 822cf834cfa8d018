import { InvalidArgumentError } from 'commander';

/**
 * Flag values, parsed once into typed values (commander calls these as argument parsers, so a
 * bad value is a usage error naming the flag before anything is sent).
 */

export function intArg(min: number, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v: string) => {
    if (!/^-?\d+$/.test(v.trim())) throw new InvalidArgumentError(`"${v}" is not an integer`);
    const n = Number(v);
    if (n < min || n > max) throw new InvalidArgumentError(`${n} is outside ${min}…${max}`);
    return n;
  };
}

export function numberArg(minExclusive: number, max: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`"${v}" is not a number`);
    if (n <= minExclusive || n > max)
      throw new InvalidArgumentError(`${n} must be above ${minExclusive} and at most ${max}`);
    return n;
  };
}

/** `--partition 0 --partition 2` or `--partition 0,2`. */
export function collectInts(min: number, max: number): (v: string, prev: number[] | undefined) => number[] {
  const one = intArg(min, max);
  return (v, prev) => [...(prev ?? []), ...v.split(',').map((x) => one(x))];
}

export function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

export interface Header {
  name: string;
  value: string;
}

/** `k=v` (the value may contain `=`; it may be empty). */
export function parseHeader(v: string): Header {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError(`"${v}" is not name=value`);
  return { name: v.slice(0, i), value: v.slice(i + 1) };
}

export function collectHeaders(v: string, prev: Header[] | undefined): Header[] {
  return [...(prev ?? []), parseHeader(v)];
}

export type OffsetSpec = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'offset'; offset: number };

/** `earliest`, `latest` (also `oldest`/`newest`, `start`/`end`) or an offset. */
export function parseOffsetSpec(v: string): OffsetSpec {
  const s = v.trim().toLowerCase();
  if (s === 'earliest' || s === 'oldest' || s === 'start' || s === 'beginning') return { kind: 'earliest' };
  if (s === 'latest' || s === 'newest' || s === 'end') return { kind: 'latest' };
  if (/^\d+$/.test(s) && Number.isSafeInteger(Number(s))) return { kind: 'offset', offset: Number(s) };
  throw new InvalidArgumentError(`"${v}" is not earliest, latest or an offset`);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `2s`, `5m`, `1h`, `7d`, or a bare number of milliseconds. */
export function parseDurationMs(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`"${v}" is not a duration (e.g. 500ms, 30s, 5m, 2h, 7d)`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']);
}

/**
 * A point in time as ms since the epoch: a number of ms, an ISO 8601 date (`2026-01-04`,
 * `2026-01-04T10:00:00Z`), or `now-<duration>` (`now-15m`), relative to `nowMs`.
 */
export function parseTimestamp(v: string, nowMs: number = Date.now()): number {
  const s = v.trim();
  if (/^\d+$/.test(s)) return Number(s);
  const rel = /^now(?:-(.+))?$/.exec(s);
  if (rel) {
    try {
      return nowMs - (rel[1] === undefined ? 0 : parseDurationMs(rel[1]));
    } catch {
      /* below */
    }
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(s)) {
    const t = Date.parse(s);
    if (Number.isFinite(t)) return t;
  }
  throw new InvalidArgumentError(`"${v}" is not a time (ms since the epoch, ISO 8601, or now-<duration> like now-15m)`);
}

export function timestampArg(v: string): number {
  return parseTimestamp(v);
}

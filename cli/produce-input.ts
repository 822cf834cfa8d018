import type { Header } from './args';
import type { ProduceRecord } from './api';
import { UsageError } from './errors';

/**
 * Turning input into records for `daftka produce`:
 *   lines   one record per line, the line is the value (text); with --key-separator the part
 *           before the first separator is the key
 *   ndjson  one JSON object per line, in the API's record form: {key?, key_b64?, value | value_b64,
 *           headers?, partition?, timestamp?, deliver_after_ms? | deliver_at?, ttl_ms? | expires_at?};
 *           `value` is sent as it is: any JSON value (stored as its JSON text), null a tombstone
 *   raw     the whole input is one record (value_b64: bytes are kept as they are)
 * Flags (--key, --header, --partition) apply to every record unless the NDJSON line sets its own.
 */

export type InputFormat = 'lines' | 'ndjson' | 'raw';
export const INPUT_FORMATS: readonly InputFormat[] = ['lines', 'ndjson', 'raw'];

export interface RecordDefaults {
  key?: string;
  keySeparator?: string;
  headers?: Header[];
  partition?: number;
}

/** Split a byte stream into lines (LF or CRLF) without holding more than one chunk and a partial line. */
export async function* readLines(
  input: AsyncIterable<Buffer | string>,
  onBytes?: (n: number) => void,
): AsyncGenerator<string> {
  let rest = '';
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of input) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    onBytes?.(buf.length);
    const text = rest + decoder.decode(buf, { stream: true });
    const parts = text.split('\n');
    rest = parts.pop()!;
    for (const p of parts) yield p.endsWith('\r') ? p.slice(0, -1) : p;
  }
  rest += decoder.decode();
  if (rest !== '') yield rest.endsWith('\r') ? rest.slice(0, -1) : rest;
}

function headersOf(d: RecordDefaults): ProduceRecord['headers'] | undefined {
  return d.headers && d.headers.length > 0 ? d.headers.map((h) => ({ name: h.name, value: h.value })) : undefined;
}

/** One line of `lines` input; null for an empty line (skipped). */
export function recordFromLine(line: string, d: RecordDefaults): ProduceRecord | null {
  if (line === '') return null;
  const r: ProduceRecord = {};
  let value = line;
  if (d.keySeparator !== undefined) {
    const i = line.indexOf(d.keySeparator);
    if (i >= 0) {
      r.key = line.slice(0, i);
      value = line.slice(i + d.keySeparator.length);
    }
  }
  if (r.key === undefined && d.key !== undefined) r.key = d.key;
  r.value = value;
  const h = headersOf(d);
  if (h) r.headers = h;
  if (d.partition !== undefined) r.partition = d.partition;
  return r;
}

const NDJSON_FIELDS = new Set([
  'key',
  'key_b64',
  'value',
  'value_b64',
  'headers',
  'partition',
  'timestamp',
  'deliver_after_ms',
  'deliver_at',
  'ttl_ms',
  'expires_at',
]);

/** One line of `ndjson` input (lineNo for the error message); null for an empty line. */
export function recordFromJsonLine(line: string, lineNo: number, d: RecordDefaults): ProduceRecord | null {
  if (line.trim() === '') return null;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw new UsageError(`input line ${lineNo}: not JSON (${(err as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new UsageError(`input line ${lineNo}: must be a JSON object like {"key":"k","value":"v"}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!NDJSON_FIELDS.has(k))
      throw new UsageError(`input line ${lineNo}: unknown field "${k}" (allowed: ${[...NDJSON_FIELDS].join(', ')})`);
  if (o.value === undefined && o.value_b64 === undefined)
    throw new UsageError(`input line ${lineNo}: needs "value" or "value_b64"`);
  const r = { ...o } as ProduceRecord;
  if (r.key === undefined && r.key_b64 === undefined && d.key !== undefined) r.key = d.key;
  if (r.headers === undefined) {
    const h = headersOf(d);
    if (h) r.headers = h;
  }
  if (r.partition === undefined && d.partition !== undefined) r.partition = d.partition;
  return r as ProduceRecord;
}

export function recordFromBytes(bytes: Buffer, d: RecordDefaults): ProduceRecord {
  const r: ProduceRecord = { value_b64: bytes.toString('base64') };
  if (d.key !== undefined) r.key = d.key;
  const h = headersOf(d);
  if (h) r.headers = h;
  if (d.partition !== undefined) r.partition = d.partition;
  return r;
}

/** Approximate bytes a record adds to a request body (for --batch-bytes). */
export function recordSize(r: ProduceRecord): number {
  return JSON.stringify(r).length + 1;
}

import yaml from 'js-yaml';
import { UsageError } from './errors';

/** Rendering: tables for people, JSON and YAML for programs (`--output`). */

export type OutputFormat = 'table' | 'json' | 'yaml';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'yaml'];

export type Cell = string | number | boolean | null | undefined;

/** Columns aligned with two spaces, headers upper-case (kubectl, rpk); empty cells as `-`. */
export function renderTable(headers: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map(cellText));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...text.map(line)].join('\n') + '\n';
}

function cellText(c: Cell): string {
  if (c === null || c === undefined || c === '') return '-';
  return String(c);
}

/** A value as JSON (two-space indent) or YAML, with a final newline. */
export function renderData(format: 'json' | 'yaml', data: unknown): string {
  if (format === 'json') return JSON.stringify(data, null, 2) + '\n';
  return yaml.dump(data, { noRefs: true, lineWidth: -1, sortKeys: false });
}

/** Key/value lines for one object (a describe view). */
export function renderFields(fields: Array<[string, Cell]>): string {
  const w = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${(k + ':').padEnd(w + 1)}  ${cellText(v)}`).join('\n') + '\n';
}

export function isoTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  return new Date(ms).toISOString();
}

export function truncate(s: string | undefined, n: number): string {
  if (s === undefined) return '';
  const one = s.replace(/\s+/g, ' ');
  return one.length <= n ? one : one.slice(0, n - 1) + '…';
}

// ---- records -------------------------------------------------------------------------------

/**
 * A record as the gateway returns it with encoding=utf8 (text when valid UTF-8, else *_b64) or
 * encoding=json (`value` any JSON value); `value: null` is a null value (tombstone).
 */
export interface ApiRecord {
  topic?: string;
  partition?: number;
  offset: number;
  timestamp: number;
  key?: string | null;
  key_b64?: string;
  value?: unknown;
  value_b64?: string;
  headers: Array<{ name: string; value?: string; value_b64?: string }>;
  deliver_at?: number;
  expires_at?: number;
  delivery_attempt?: number;
  lease_token?: string;
  lease_expires_at?: number;
}

/** How `consume` prints each record. */
export type RecordFormat = 'value' | 'json' | 'template';

/** The value as text: text as it is, a JSON value (encoding=json) as compact JSON, a null value as ''. */
export function recordValue(r: ApiRecord): string {
  if (r.value === null) return '';
  if (r.value === undefined) return r.value_b64 ?? '';
  return typeof r.value === 'string' ? r.value : JSON.stringify(r.value);
}

export function recordKey(r: ApiRecord): string {
  return r.key ?? r.key_b64 ?? '';
}

/** One NDJSON line per record: what the gateway returned, with topic and partition, without the lease token. */
export function recordJson(r: ApiRecord, topic: string, partition: number): string {
  const { lease_token: _t, ...rest } = r;
  return JSON.stringify({ topic: r.topic ?? topic, partition: r.partition ?? partition, ...rest });
}

const FIELDS = [
  'topic',
  'partition',
  'offset',
  'timestamp',
  'time',
  'key',
  'value',
  'key_b64',
  'value_b64',
  'headers',
  'delivery_attempt',
] as const;

export type RecordFormatter = (r: ApiRecord, topic: string, partition: number) => string;

/**
 * `{{field}}` placeholders: topic, partition, offset, timestamp (ms), time (ISO 8601), key, value,
 * key_b64, value_b64 (base64 of the text when the gateway sent text), headers (`a=1,b=2`),
 * header.NAME, delivery_attempt. `\n`, `\t` and `\\` are escapes. Each record ends with a newline.
 * Unknown placeholders are a usage error, found before anything is fetched.
 */
export function compileTemplate(tpl: string): RecordFormatter {
  const text = tpl.replace(/\\([nt\\])/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
  const parts: Array<string | ((r: ApiRecord, topic: string, partition: number) => string)> = [];
  let last = 0;
  for (const m of text.matchAll(/\{\{\s*([A-Za-z_][\w.-]*)\s*\}\}/g)) {
    parts.push(text.slice(last, m.index));
    parts.push(fieldGetter(m[1]));
    last = m.index! + m[0].length;
  }
  parts.push(text.slice(last));
  return (r, topic, partition) => {
    const s = parts.map((p) => (typeof p === 'string' ? p : p(r, topic, partition))).join('');
    return s.endsWith('\n') ? s : s + '\n';
  };
}

function headerText(h: { value?: string; value_b64?: string }): string {
  return h.value ?? h.value_b64 ?? '';
}

function b64(text: string | null | undefined, b: string | undefined): string {
  if (b !== undefined) return b;
  return text === null || text === undefined ? '' : Buffer.from(text, 'utf8').toString('base64');
}

function fieldGetter(name: string): (r: ApiRecord, topic: string, partition: number) => string {
  if (name.startsWith('header.')) {
    const h = name.slice('header.'.length);
    return (r) => {
      const found = r.headers.find((x) => x.name === h);
      return found ? headerText(found) : '';
    };
  }
  switch (name as (typeof FIELDS)[number]) {
    case 'topic':
      return (r, t) => r.topic ?? t;
    case 'partition':
      return (r, _t, p) => String(r.partition ?? p);
    case 'offset':
      return (r) => String(r.offset);
    case 'timestamp':
      return (r) => String(r.timestamp);
    case 'time':
      return (r) => isoTime(r.timestamp);
    case 'key':
      return recordKey;
    case 'value':
      return recordValue;
    case 'key_b64':
      return (r) => b64(r.key, r.key_b64);
    case 'value_b64':
      return (r) => b64(r.value === null || r.value === undefined ? null : recordValue(r), r.value_b64);
    case 'headers':
      return (r) => r.headers.map((h) => `${h.name}=${headerText(h)}`).join(',');
    case 'delivery_attempt':
      return (r) => String(r.delivery_attempt ?? '');
    default:
      throw new UsageError(`--template: unknown field {{${name}}} (known: ${FIELDS.join(', ')}, header.NAME)`);
  }
}

export function recordFormatter(format: RecordFormat, template?: string): RecordFormatter {
  if (format === 'template') {
    if (template === undefined) throw new UsageError('--format template needs --template "<text with {{fields}}>"');
    return compileTemplate(template);
  }
  if (format === 'json') return (r, t, p) => recordJson(r, t, p) + '\n';
  return (r) => recordValue(r) + '\n';
}

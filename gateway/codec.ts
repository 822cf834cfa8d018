import { isUtf8 } from 'node:buffer';
import type { RecordIn, RecordOut } from '../common/partition-api';
import { invalidField } from './validation';

/**
 * JSON ⇄ record bytes at the HTTP edge.
 *
 * In: `key` / `value` / header `value` are text, stored as their UTF-8 bytes; the `_b64` forms are
 * standard base64 (RFC 4648 §4, padding optional) decoded to exact bytes. Text must be
 * well-formed Unicode (a lone surrogate has no UTF-8 form and would be silently replaced).
 *
 * A `value` that is not a string (object, array, number, boolean) is a JSON value: it is stored
 * as its JSON text, so JSON clients never double-encode. `value: null` is a null value — Kafka's
 * tombstone, the delete marker of a key in a compacted topic — stored with no bytes and a flag.
 *
 * Delivery times for leased groups: `deliver_after_ms` / `ttl_ms` count from the gateway's
 * receive time (`nowMs`), `deliver_at` / `expires_at` are absolute; both are stored absolute.
 *
 * Out (fetch, leased fetch, dead letters), one rule for every byte field, lossless either way:
 *   encoding=base64 (default) → always `*_b64`;
 *   encoding=utf8             → text when the bytes are valid UTF-8, else `*_b64`;
 *   encoding=json             → the value as the JSON value its bytes hold, else (not JSON)
 *                               `value_b64`; keys and headers as with utf8.
 * A client reads `value` when present, else decodes `value_b64`. No key → `key: null`.
 * A null value (tombstone) is `value: null` in every encoding — and only it: with encoding=json a
 * stored JSON text `null` comes as `value_b64`, so `value: null` never means two things.
 */

export type OutputEncoding = 'base64' | 'utf8' | 'json';

/** The `encoding` query parameter's schema (fetch, leased fetch, dead letters). */
export const OUTPUT_ENCODING_SCHEMA = { enum: ['base64', 'utf8', 'json'], default: 'base64' };

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

export function decodeBase64(s: string, pointer: string): Buffer {
  if (!BASE64_RE.test(s)) throw invalidField(pointer, 'is not valid base64');
  return Buffer.from(s, 'base64');
}

const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

export function encodeText(s: string, pointer: string): Buffer {
  if (!isWellFormed(s)) throw invalidField(pointer, 'contains a lone UTF-16 surrogate (not valid Unicode text)');
  return Buffer.from(s, 'utf8');
}

/** A JSON value other than null as its JSON text. */
function encodeJson(v: unknown, pointer: string): Buffer {
  const text = JSON.stringify(v);
  if (!isWellFormed(text)) throw invalidField(pointer, 'contains a lone UTF-16 surrogate (not valid Unicode text)');
  return Buffer.from(text, 'utf8');
}

/** The JSON value `b` holds, or undefined when it is not UTF-8 JSON text. */
function parseJson(b: Buffer): { v: unknown } | undefined {
  if (!isUtf8(b)) return undefined;
  try {
    return { v: JSON.parse(b.toString('utf8')) as unknown };
  } catch {
    return undefined;
  }
}

export interface HeaderJson {
  name: string;
  value?: string;
  value_b64?: string;
}

export interface RecordJson {
  key?: string | null;
  key_b64?: string;
  /** Text (stored as its UTF-8 bytes) or any other JSON value (stored as its JSON text). */
  value?: unknown;
  value_b64?: string;
  headers?: Record<string, string> | HeaderJson[];
  partition?: number;
  timestamp?: number;
  deliver_after_ms?: number;
  deliver_at?: number;
  ttl_ms?: number;
  expires_at?: number;
}

export interface DecodedRecord {
  record: RecordIn;
  /** key + value + header names and values, in bytes (what maxRecordBytes and quotas count). */
  bytes: number;
}

/** A validated JSON record (schema already checked) into bytes; throws 400 naming the field. */
export function decodeRecord(r: RecordJson, pointer: string, nowMs: number): DecodedRecord {
  let key: Buffer | null = null;
  if (r.key_b64 !== undefined) key = decodeBase64(r.key_b64, `${pointer}/key_b64`);
  else if (typeof r.key === 'string') key = encodeText(r.key, `${pointer}/key`);
  const tombstone = r.value_b64 === undefined && r.value === null;
  const value =
    r.value_b64 !== undefined
      ? decodeBase64(r.value_b64, `${pointer}/value_b64`)
      : tombstone
        ? EMPTY
        : typeof r.value === 'string'
          ? encodeText(r.value, `${pointer}/value`)
          : encodeJson(r.value, `${pointer}/value`);
  let bytes = (key?.length ?? 0) + value.length;
  const headers: Array<[string, Uint8Array]> = [];
  if (Array.isArray(r.headers)) {
    r.headers.forEach((h, i) => {
      const hp = `${pointer}/headers/${i}`;
      const v =
        h.value_b64 !== undefined
          ? decodeBase64(h.value_b64, `${hp}/value_b64`)
          : encodeText(h.value ?? '', `${hp}/value`);
      const name = encodeText(h.name, `${hp}/name`);
      bytes += name.length + v.length;
      headers.push([h.name, v]);
    });
  } else if (r.headers !== undefined) {
    for (const [name, text] of Object.entries(r.headers)) {
      const hp = `${pointer}/headers/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`;
      const v = encodeText(text, hp);
      bytes += encodeText(name, hp).length + v.length;
      headers.push([name, v]);
    }
  }
  const record: RecordIn = { key, value, headers, timestampMs: r.timestamp ?? nowMs };
  if (tombstone) record.tombstone = true;
  const deliverAtMs = r.deliver_at ?? (r.deliver_after_ms === undefined ? undefined : nowMs + r.deliver_after_ms);
  const expiresAtMs = r.expires_at ?? (r.ttl_ms === undefined ? undefined : nowMs + r.ttl_ms);
  if (deliverAtMs !== undefined && expiresAtMs !== undefined && expiresAtMs <= deliverAtMs)
    throw invalidField(
      `${pointer}/${r.expires_at !== undefined ? 'expires_at' : 'ttl_ms'}`,
      `expires at ${expiresAtMs}, not after the record's delivery time ${deliverAtMs}: it could never be delivered`,
    );
  if (deliverAtMs !== undefined) record.deliverAtMs = deliverAtMs;
  if (expiresAtMs !== undefined) record.expiresAtMs = expiresAtMs;
  return { record, bytes };
}

const EMPTY = Buffer.alloc(0);

/** Size of a stored record as counted for fetch quotas and metrics. */
export function recordBytes(r: RecordIn): number {
  let n = (r.key?.length ?? 0) + r.value.length;
  for (const [name, v] of r.headers) n += Buffer.byteLength(name, 'utf8') + v.length;
  return n;
}

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export interface RecordOutJson {
  offset: number;
  timestamp: number;
  key?: string | null;
  key_b64?: string;
  value?: unknown;
  value_b64?: string;
  headers: HeaderJson[];
  deliver_at?: number;
  expires_at?: number;
}

export function encodeRecord(r: RecordOut, enc: OutputEncoding): RecordOutJson {
  const out: RecordOutJson = { offset: r.offset, timestamp: r.timestampMs, headers: [] };
  const text = enc !== 'base64';
  if (r.key === null) out.key = null;
  else {
    const k = asBuffer(r.key);
    if (text && isUtf8(k)) out.key = k.toString('utf8');
    else out.key_b64 = k.toString('base64');
  }
  const v = asBuffer(r.value);
  const json = enc === 'json' && r.tombstone !== true ? parseJson(v) : undefined;
  if (r.tombstone === true) out.value = null;
  else if (json !== undefined && json.v !== null) out.value = json.v;
  else if (enc === 'utf8' && isUtf8(v)) out.value = v.toString('utf8');
  else out.value_b64 = v.toString('base64');
  for (const [name, hv] of r.headers) {
    const b = asBuffer(hv);
    out.headers.push(
      text && isUtf8(b) ? { name, value: b.toString('utf8') } : { name, value_b64: b.toString('base64') },
    );
  }
  if (r.deliverAtMs !== undefined) out.deliver_at = r.deliverAtMs;
  if (r.expiresAtMs !== undefined) out.expires_at = r.expiresAtMs;
  return out;
}

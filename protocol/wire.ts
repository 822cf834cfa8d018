import { DaftkaError, ERROR_CODES, type ErrorCode } from '../common/errors';
import { BufReader, BufWriter, CodecError } from './bytes';

/**
 * Payload layouts of the client port's frames (docs/wire-protocol.md §RPC). The body of a
 * request or response is opaque here: it is written as separate frame parts after the small
 * header built below, so it is never copied.
 *
 *   RPC_REQUEST  u32 correlationId · u32 timeoutMs · u8 len + method · u8 len + requestId · body
 *   RPC_RESPONSE u32 correlationId · body
 *   RPC_ERROR    u32 correlationId · UTF-8 JSON {code, detail, leaderHint?, retryAfterMs?, extra?}
 *   RPC_CANCEL   u32 correlationId
 */

export interface RpcRequestHeader {
  /** Chosen by the client, unique among its calls in flight on this connection. */
  correlationId: number;
  /**
   * The caller's remaining budget in ms (≥ 1). Relative, not absolute: the two clocks need not
   * agree; the server's deadline is its receive time plus this.
   */
  timeoutMs: number;
  method: string;
  /** Printable ASCII (≤ 255), logged on both sides; may be empty. */
  requestId: string;
}

/** Longest timeout a request may carry (u32 ms would be 49 days; a day is already absurd). */
export const MAX_RPC_TIMEOUT_MS = 24 * 3600 * 1000;

export function encodeRequestHeader(h: RpcRequestHeader): Buffer {
  if (!(Number.isInteger(h.timeoutMs) && h.timeoutMs >= 1 && h.timeoutMs <= MAX_RPC_TIMEOUT_MS))
    throw new CodecError('bad_value', `timeoutMs must be an integer in [1, ${MAX_RPC_TIMEOUT_MS}], got ${h.timeoutMs}`);
  if (h.method.length === 0) throw new CodecError('bad_value', 'empty method');
  return new BufWriter(10 + h.method.length + h.requestId.length)
    .u32(h.correlationId)
    .u32(h.timeoutMs)
    .ascii8(h.method)
    .ascii8(h.requestId)
    .finish();
}

export function decodeRequest(payload: Buffer): { header: RpcRequestHeader; body: Buffer } {
  const r = new BufReader(payload);
  const correlationId = r.u32('correlationId');
  const timeoutMs = r.u32('timeoutMs');
  if (timeoutMs < 1 || timeoutMs > MAX_RPC_TIMEOUT_MS)
    throw new CodecError('bad_value', `timeoutMs ${timeoutMs} outside [1, ${MAX_RPC_TIMEOUT_MS}]`);
  const method = r.ascii8('method');
  if (method.length === 0) throw new CodecError('bad_value', 'empty method');
  const requestId = r.ascii8('requestId');
  return { header: { correlationId, timeoutMs, method, requestId }, body: r.rest() };
}

export function encodeCorrelationId(id: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(id, 0);
  return b;
}

/** RPC_RESPONSE and RPC_CANCEL: correlation id, then the rest (body, or nothing for a cancel). */
export function decodeCorrelated(payload: Buffer): { correlationId: number; body: Buffer } {
  const r = new BufReader(payload);
  const correlationId = r.u32('correlationId');
  return { correlationId, body: r.rest() };
}

interface WireError {
  code: string;
  detail: string;
  leaderHint?: string;
  retryAfterMs?: number;
  extra?: Record<string, unknown>;
}

export function encodeError(correlationId: number, err: DaftkaError): Buffer {
  const w: WireError = { code: err.code, detail: err.message };
  if (err.leaderHint !== undefined) w.leaderHint = err.leaderHint;
  if (err.retryAfterMs !== undefined) w.retryAfterMs = err.retryAfterMs;
  if (err.extra !== undefined) w.extra = err.extra;
  const json = Buffer.from(JSON.stringify(w), 'utf8');
  const out = Buffer.allocUnsafe(4 + json.byteLength);
  out.writeUInt32BE(correlationId, 0);
  json.copy(out, 4);
  return out;
}

/**
 * An RPC_ERROR payload as the DaftkaError the server raised. A code this build does not know
 * (a newer server) becomes INTERNAL carrying the original code in `extra.wireCode`.
 */
export function decodeError(payload: Buffer): { correlationId: number; error: DaftkaError } {
  const { correlationId, body } = decodeCorrelated(payload);
  let w: unknown;
  try {
    w = JSON.parse(body.toString('utf8'));
  } catch {
    throw new CodecError('bad_json', 'RPC error body is not JSON');
  }
  if (typeof w !== 'object' || w === null) throw new CodecError('bad_json', 'RPC error body is not an object');
  const o = w as Record<string, unknown>;
  if (typeof o.code !== 'string' || typeof o.detail !== 'string')
    throw new CodecError('bad_json', 'RPC error body lacks code/detail');
  const known = Object.prototype.hasOwnProperty.call(ERROR_CODES, o.code);
  const extra = typeof o.extra === 'object' && o.extra !== null ? (o.extra as Record<string, unknown>) : undefined;
  const error = new DaftkaError(known ? (o.code as ErrorCode) : 'INTERNAL', o.detail, {
    leaderHint: typeof o.leaderHint === 'string' ? o.leaderHint : undefined,
    retryAfterMs: typeof o.retryAfterMs === 'number' && o.retryAfterMs >= 0 ? o.retryAfterMs : undefined,
    extra: known ? extra : { ...(extra ?? {}), wireCode: o.code },
  });
  return { correlationId, error };
}

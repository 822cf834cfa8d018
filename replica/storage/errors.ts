/**
 * Storage errors and their passage across the worker boundary. Structured clone keeps only
 * `message` (and `name` for built-ins), so errors travel as plain records and are rebuilt as
 * the same typed classes on the main thread.
 */
import { ClassifiedError, FAILURE_KINDS, type FailureKind } from '../../common/crash-policy';
import { DaftkaError, ERROR_CODES, type ErrorCode } from '../../common/errors';

/** `readEntries(lo, …)` with lo below the first retained index: the caller needs a snapshot. */
export class LogCompactedError extends DaftkaError {
  constructor(
    readonly requestedIndex: number,
    readonly firstIndex: number,
  ) {
    super('OFFSET_OUT_OF_RANGE', `log compacted: index ${requestedIndex} is below first index ${firstIndex}`, {
      extra: { reason: 'compacted', first_index: firstIndex },
    });
    this.name = 'LogCompactedError';
  }
}

export function storageClosedError(): DaftkaError {
  return new DaftkaError('UNAVAILABLE', 'storage is closed');
}

export function overloadedError(pendingBytes: number, maxPendingBytes: number): DaftkaError {
  return new DaftkaError('OVERLOADED', 'storage write queue is full', {
    retryAfterMs: 10,
    extra: { reason: 'storage_queue_full', pending_bytes: pendingBytes, max_pending_bytes: maxPendingBytes },
  });
}

/** The two kinds an invariant check or a damaged store raises. */
export function invariant(cond: boolean, message: string): asserts cond {
  if (!cond) throw new ClassifiedError('invariant_violation', message);
}
export function corruption(message: string): ClassifiedError {
  return new ClassifiedError('storage_corruption', message);
}

/**
 * Classify an error thrown by RocksDB. RocksDB status strings start with the status name
 * ("IO error: …", "Corruption: …"); they name files, never payloads.
 */
export function classifyRocksError(err: unknown, during: string): ClassifiedError {
  if (err instanceof ClassifiedError) return err;
  const message = err instanceof Error ? err.message : String(err);
  let kind: FailureKind = 'storage_io_error';
  if (/corrupt/i.test(message)) kind = 'storage_corruption';
  else if (/no space left|ENOSPC|disk quota exceeded|EDQUOT/i.test(message)) kind = 'disk_full';
  return new ClassifiedError(kind, `${during}: ${message}`, { cause: err });
}

export interface MarshalledError {
  name: string;
  message: string;
  kind?: FailureKind;
  code?: string;
  retryAfterMs?: number;
  extra?: Record<string, unknown>;
  requestedIndex?: number;
  firstIndex?: number;
  stack?: string;
}

export function marshalError(err: unknown): MarshalledError {
  if (err instanceof LogCompactedError)
    return { name: err.name, message: err.message, requestedIndex: err.requestedIndex, firstIndex: err.firstIndex };
  if (err instanceof DaftkaError)
    return {
      name: 'DaftkaError',
      message: err.message,
      code: err.code,
      retryAfterMs: err.retryAfterMs,
      extra: err.extra,
    };
  if (err instanceof ClassifiedError)
    return { name: 'ClassifiedError', message: err.message, kind: err.kind, stack: err.stack };
  // Anything else escaping the worker is a bug or an unexpected RocksDB failure: crash-only.
  const c = classifyRocksError(err, 'storage worker');
  return {
    name: 'ClassifiedError',
    message: c.message,
    kind: c.kind,
    stack: err instanceof Error ? err.stack : undefined,
  };
}

export function unmarshalError(m: MarshalledError): Error {
  if (m.name === 'LogCompactedError' && m.requestedIndex !== undefined && m.firstIndex !== undefined)
    return new LogCompactedError(m.requestedIndex, m.firstIndex);
  if (m.name === 'DaftkaError' && m.code !== undefined && m.code in ERROR_CODES)
    return new DaftkaError(m.code as ErrorCode, m.message, { retryAfterMs: m.retryAfterMs, extra: m.extra });
  const kind: FailureKind = m.kind !== undefined && m.kind in FAILURE_KINDS ? m.kind : 'storage_io_error';
  const e = new ClassifiedError(kind, m.message);
  if (m.stack) e.stack = `${e.name}: ${m.message}\n    [storage worker]\n${m.stack.split('\n').slice(1).join('\n')}`;
  return e;
}

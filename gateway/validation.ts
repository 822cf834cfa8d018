import Ajv2020, { type ErrorObject } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { DaftkaError } from '../common/errors';

/**
 * The gateway's one JSON Schema engine (draft 2020-12, the dialect of OpenAPI 3.1), and the
 * mapping of its first error to a problem that names the bad field by JSON pointer (RFC 6901).
 */

export type JsonSchema = Record<string, unknown>;

export function createAjv(): Ajv2020 {
  // allErrors off: the first error is reported, and validation stops early on big batches.
  const ajv = new Ajv2020({
    allErrors: false,
    strict: true,
    strictRequired: false,
    coerceTypes: false,
    useDefaults: false,
    verbose: true,
  });
  addFormats(ajv);
  // `x-error`: the message to give when a composite rule (oneOf/anyOf/not) fails, whose own
  // message would say nothing useful. An OpenAPI extension, so it may stay in the document.
  ajv.addKeyword({ keyword: 'x-error', schemaType: 'string' });
  return ajv;
}

function escapePointerToken(t: string): string {
  return t.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The JSON pointer of the field an ajv error is about (the missing or unexpected one, if any). */
export function pointerOf(e: ErrorObject): string {
  const p = e.params as { missingProperty?: string; additionalProperty?: string };
  if (e.propertyName !== undefined) return `${e.instancePath}/${escapePointerToken(e.propertyName)}`;
  if (p.missingProperty !== undefined) return `${e.instancePath}/${escapePointerToken(p.missingProperty)}`;
  if (e.keyword === 'additionalProperties' && p.additionalProperty !== undefined)
    return `${e.instancePath}/${escapePointerToken(p.additionalProperty)}`;
  return e.instancePath;
}

const COMPOSITE = new Set(['oneOf', 'anyOf', 'not']);

function customMessage(e: ErrorObject): string | undefined {
  const m = (e.parentSchema as Record<string, unknown> | undefined)?.['x-error'];
  return typeof m === 'string' ? m : undefined;
}

function messageOf(e: ErrorObject): string {
  const p = e.params as { property?: string; allowedValues?: unknown[] };
  if (e.keyword === 'required') return 'is required';
  if (e.keyword === 'dependentRequired') return `is required with ${p.property}`;
  if (e.keyword === 'additionalProperties') return 'is not an allowed field';
  if (e.keyword === 'enum' && p.allowedValues) return `must be one of ${p.allowedValues.map(String).join(', ')}`;
  return customMessage(e) ?? e.message ?? 'is invalid';
}

/**
 * The error to report. Validation stops at the first failure, so the last error is what failed;
 * when that is a composite rule (oneOf/anyOf/not) the errors before it come from alternatives
 * tried, and the most specific composite with an `x-error` message says best what is wrong.
 */
function pick(errors: ErrorObject[]): ErrorObject {
  const last = errors[errors.length - 1];
  if (!COMPOSITE.has(last.keyword)) return last;
  let best: ErrorObject | undefined;
  for (const e of errors)
    if (COMPOSITE.has(e.keyword) && customMessage(e) !== undefined)
      if (best === undefined || e.instancePath.length > best.instancePath.length) best = e;
  return best ?? errors[0];
}

/** 400 INVALID_REQUEST for a body field, naming it by JSON pointer. */
export function invalidField(pointer: string, message: string): DaftkaError {
  return new DaftkaError('INVALID_REQUEST', `${pointer === '' ? 'body' : pointer} ${message}`, {
    extra: { pointer },
  });
}

/** 400 INVALID_REQUEST for a query or path parameter or a header, naming it. */
export function invalidParameter(name: string, message: string): DaftkaError {
  return new DaftkaError('INVALID_REQUEST', `parameter ${name} ${message}`, { extra: { parameter: name } });
}

export function bodyError(errors: ErrorObject[] | null | undefined): DaftkaError {
  if (!errors || errors.length === 0) return invalidField('', 'is invalid');
  const e = pick(errors);
  return invalidField(pointerOf(e), messageOf(e));
}

export function paramError(errors: ErrorObject[] | null | undefined): DaftkaError {
  if (!errors || errors.length === 0) return invalidParameter('?', 'is invalid');
  const e = pick(errors);
  const name = pointerOf(e).split('/')[1] ?? '?';
  return invalidParameter(name, messageOf(e));
}

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
  const ajv = new Ajv2020({ allErrors: false, strict: true, coerceTypes: false, useDefaults: false });
  addFormats(ajv);
  return ajv;
}

function escapePointerToken(t: string): string {
  return t.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The JSON pointer of the field an ajv error is about (the missing or unexpected one, if any). */
export function pointerOf(e: ErrorObject): string {
  const p = e.params as { missingProperty?: string; additionalProperty?: string };
  if (e.propertyName !== undefined) return `${e.instancePath}/${escapePointerToken(e.propertyName)}`;
  if (e.keyword === 'required' && p.missingProperty !== undefined)
    return `${e.instancePath}/${escapePointerToken(p.missingProperty)}`;
  if (e.keyword === 'additionalProperties' && p.additionalProperty !== undefined)
    return `${e.instancePath}/${escapePointerToken(p.additionalProperty)}`;
  return e.instancePath;
}

function messageOf(e: ErrorObject): string {
  const p = e.params as { additionalProperty?: string; allowedValues?: unknown[] };
  if (e.keyword === 'required') return 'is required';
  if (e.keyword === 'additionalProperties') return `is not an allowed field`;
  if (e.keyword === 'enum' && p.allowedValues) return `must be one of ${p.allowedValues.map(String).join(', ')}`;
  return e.message ?? 'is invalid';
}

/** 400 INVALID_REQUEST for a body field, naming it by JSON pointer. */
export function invalidField(pointer: string, message: string): DaftkaError {
  return new DaftkaError('INVALID_REQUEST', `${pointer === '' ? 'body' : pointer} ${message}`, {
    extra: { pointer },
  });
}

/** 400 INVALID_REQUEST for a query or path parameter, naming it. */
export function invalidParameter(name: string, message: string): DaftkaError {
  return new DaftkaError('INVALID_REQUEST', `parameter ${name} ${message}`, { extra: { parameter: name } });
}

export function bodyError(errors: ErrorObject[] | null | undefined): DaftkaError {
  const e = errors?.[0];
  if (!e) return invalidField('', 'is invalid');
  return invalidField(pointerOf(e), messageOf(e));
}

export function paramError(errors: ErrorObject[] | null | undefined): DaftkaError {
  const e = errors?.[0];
  if (!e) return invalidParameter('?', 'is invalid');
  const pointer = pointerOf(e);
  const name = pointer.split('/')[1] ?? '?';
  return invalidParameter(name, messageOf(e));
}

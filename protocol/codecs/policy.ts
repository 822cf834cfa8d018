import type { LeasePolicyOverride } from '../../common/leased-api';
import { CodecError } from '../bytes';

/** A leased group's policy override in JSON (group-policy commands and wire bodies), checked field by field. */

const POLICY_KEYS = [
  'maxAttempts',
  'leaseMs',
  'backoffInitialMs',
  'backoffMaxMs',
  'backoffMultiplier',
  'deadLetter',
  'ordered',
  'orderingKey',
  'expired',
] as const;

const BOOLEAN_KEYS: readonly string[] = ['deadLetter', 'ordered', 'orderingKey'];
const EXPIRED_ACTIONS: readonly string[] = ['dead_letter', 'drop'];

export function normalizeOverride(o: LeasePolicyOverride): LeasePolicyOverride {
  const out: Record<string, unknown> = {};
  for (const k of POLICY_KEYS) if (o[k] !== undefined) out[k] = o[k];
  return out as LeasePolicyOverride;
}

export function parseOverride(json: string): LeasePolicyOverride {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new CodecError('bad_json', 'policy override is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new CodecError('bad_json', 'policy override is not an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!(POLICY_KEYS as readonly string[]).includes(k)) throw new CodecError('bad_json', `policy.${k} is unknown`);
    if (k === 'expired') {
      if (!EXPIRED_ACTIONS.includes(o[k] as string))
        throw new CodecError('bad_json', `policy.expired is not one of ${EXPIRED_ACTIONS.join(', ')}`);
      continue;
    }
    const want = BOOLEAN_KEYS.includes(k) ? 'boolean' : 'number';
    if (typeof o[k] !== want || (want === 'number' && !(Number.isFinite(o[k]) && (o[k] as number) >= 0)))
      throw new CodecError('bad_json', `policy.${k} is not a ${want === 'number' ? 'non-negative number' : want}`);
  }
  return normalizeOverride(o as LeasePolicyOverride);
}

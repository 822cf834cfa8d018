import type { RecordIn } from '../../common/partition-api';

/** Records for tests against real replicas: keyed or not, one fixed header, stamped now. */
export function record(value: string, key: string | null = null): RecordIn {
  return {
    key: key === null ? null : Buffer.from(key),
    value: Buffer.from(value),
    headers: [['h', Buffer.from('x')]],
    timestampMs: Date.now(),
  };
}

/** A record's value (or key) as text; null stays null. */
export const text = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b).toString('utf8'));

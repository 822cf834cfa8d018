import { murmur2 } from '../../common/partitioner';
import type { RecordIn } from '../../common/partition-api';
import { CommandKind, decodeCommand, recordsBySpan } from '../state/commands';
import type { LeasedHost } from './host';
import type { RecordFacts } from './leases';

/**
 * The leader's cache of what a grant needs to know of records it has not delivered yet (key
 * hash, deliverAtMs, expiresAtMs — leases.ts RecordFacts), read from the log. A committed
 * record never changes, so an entry never goes stale; the cache only bounds how much is kept.
 * Leader-side and rebuilt on demand: a new leader starts empty and reads its own log, which
 * holds the same committed records. Nothing here is replicated — the grant command carries the
 * facts it used (commands.ts LeaseGrantPlan).
 *
 * Bound: `maxEntries` offsets (evicted oldest-loaded first); the `daftka_lease_record_facts`
 * gauge shows how many are held.
 */

/** Facts of a record with none of them (no key, no delivery times), shared. */
const NO_FACTS: RecordFacts = Object.freeze({});
/** An offset whose record key compaction removed (superseded by a later record of its key). */
const GONE: RecordFacts = Object.freeze({ gone: true as const });

export function factsOf(r: RecordIn): RecordFacts {
  if (r.key === null && r.deliverAtMs === undefined && r.expiresAtMs === undefined) return NO_FACTS;
  return {
    ...(r.key !== null ? { keyHash: murmur2(r.key) >>> 0 } : {}),
    ...(r.deliverAtMs !== undefined ? { deliverAtMs: r.deliverAtMs } : {}),
    ...(r.expiresAtMs !== undefined ? { expiresAtMs: r.expiresAtMs } : {}),
  };
}

export class RecordFactsCache {
  private readonly facts = new Map<number, RecordFacts>();

  constructor(
    private readonly h: Pick<LeasedHost, 'state' | 'readEntry'>,
    readonly maxEntries: number,
  ) {}

  get size(): number {
    return this.facts.size;
  }

  get(offset: number): RecordFacts | undefined {
    return this.facts.get(offset);
  }

  /**
   * Load the facts of the records in [from, to) (clipped to the log), whole entries at a time.
   * An offset inside a batch whose record compaction removed is `gone` (the grant skips it);
   * one the log cannot show at all (retention racing the read) gets no facts.
   */
  async load(from: number, to: number): Promise<void> {
    const s = this.h.state;
    let o = Math.max(from, s.logStartOffset);
    const end = Math.min(to, s.nextOffset);
    if (from < o) for (let x = from; x < Math.min(o, to); x++) this.put(x, NO_FACTS);
    while (o < end) {
      const row = await s.rowAt(o);
      if (!row || o < row.base || o >= row.base + row.count) {
        this.put(o, NO_FACTS);
        o++;
        continue;
      }
      let recs: Array<RecordIn | undefined> | null = null;
      const e = await this.h.readEntry(row.logIndex);
      if (e !== undefined && e.index === row.logIndex) {
        const cmd = decodeCommand(e.data);
        // By offset within the batch: key compaction may have removed some.
        if (cmd.kind === CommandKind.Produce) recs = recordsBySpan(cmd);
      }
      for (let i = 0; i < row.count; i++) {
        const r = recs?.[i];
        this.put(row.base + i, r ? factsOf(r) : recs ? GONE : NO_FACTS);
      }
      o = row.base + row.count;
    }
  }

  clear(): void {
    this.facts.clear();
  }

  private put(offset: number, f: RecordFacts): void {
    this.facts.delete(offset);
    this.facts.set(offset, f);
    if (this.facts.size > this.maxEntries) {
      const first = this.facts.keys().next();
      if (!first.done) this.facts.delete(first.value);
    }
  }
}

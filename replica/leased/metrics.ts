import { counter, gauge } from '../../common/metrics';
import type { LeasedHost } from './host';
import type { RecordFactsCache } from './facts';

/**
 * The leased stack's metrics (docs/metrics.md). `group` labels are capped by the service (the
 * first 100 groups, then `other`); the dead-letter gauge is read from the state at scrape time.
 */
export function leasedMetrics(
  h: Pick<LeasedHost, 'registry' | 'state' | 'topic' | 'partition'>,
  facts?: Pick<RecordFactsCache, 'size' | 'maxEntries'>,
) {
  const reg = h.registry;
  const tpg = ['topic', 'partition', 'group'] as const;
  const store = () => h.state.leased.deadLetters;
  const lbl = { topic: h.topic, partition: String(h.partition) };
  const m = {
    redeliveries: counter(reg, {
      name: 'daftka_lease_redeliveries_total',
      help: 'Records delivered again (attempt > 1) by this replica as leader',
      labelNames: tpg,
    }),
    expiries: counter(reg, {
      name: 'daftka_lease_expiries_total',
      help: 'Leases that ended without an ack (redelivered or dead-lettered)',
      labelNames: tpg,
    }),
    acks: counter(reg, {
      name: 'daftka_lease_acks_total',
      help: 'Acks by action and result (ok, lease_expired, stale_attempt)',
      labelNames: ['topic', 'partition', 'group', 'action', 'result'] as const,
    }),
    deadLetterWrites: counter(reg, {
      name: 'daftka_dead_letter_writes_total',
      help: 'Records written to the dead-letter stream, by reason (reject, max_attempts, expired)',
      labelNames: ['topic', 'partition', 'group', 'reason'] as const,
    }),
    discarded: counter(reg, {
      name: 'daftka_lease_discarded_total',
      help: 'Records that ended without a dead letter (dead-lettering off, or removed by retention)',
      labelNames: tpg,
    }),
    ttlExpired: counter(reg, {
      name: 'daftka_lease_ttl_expired_total',
      help: 'Records no longer offered because their expiry passed, by outcome (dead_lettered, dropped)',
      labelNames: ['topic', 'partition', 'group', 'outcome'] as const,
    }),
    grantCommands: counter(reg, {
      name: 'daftka_lease_grant_commands_total',
      help: 'Lease grant commands proposed by this replica as leader, by kind: plain (no plan, decoded by every release) or plan (needs a release with issue 19: ordering keys, delays, expiry)',
      labelNames: ['topic', 'partition', 'kind'] as const,
    }),
    unplannedGrants: counter(reg, {
      name: 'daftka_lease_unplanned_grants_total',
      help: 'First deliveries by a plain grant command of records its leader had not checked (its state moved between plan and apply: a leader change or retention); expected 0',
      labelNames: ['topic', 'partition'] as const,
    }),
    waitersFull: counter(reg, {
      name: 'daftka_lease_waiters_full_total',
      help: 'Leased long-polls refused OVERLOADED because maxFetchWaiters were already waiting',
      labelNames: ['topic', 'partition'] as const,
    }),
    replays: counter(reg, {
      name: 'daftka_dead_letter_replays_total',
      help: 'Dead letters in replay batches by outcome (attempted, written, skipped)',
      labelNames: ['topic', 'partition', 'outcome'] as const,
    }),
  };
  gauge(reg, {
    name: 'daftka_dead_letter_entries',
    help: 'Entries in the dead-letter stream by state',
    labelNames: ['topic', 'partition', 'state'] as const,
    collect() {
      for (const [state, n] of Object.entries(store().countByState())) this.set({ ...lbl, state }, n);
    },
  });
  gauge(reg, {
    name: 'daftka_lease_held_apart_records',
    help: "Delayed records held apart from their group's committed offset until their time (at most 10000 per group)",
    labelNames: ['topic', 'partition'] as const,
    collect() {
      let n = 0;
      for (const g of h.state.leased.book.groups.values())
        for (const f of g.values()) if (f.apart && f.state !== 'done') n++;
      this.set(lbl, n);
    },
  });
  if (facts)
    gauge(reg, {
      name: 'daftka_lease_record_facts',
      help: 'Records whose grant facts (key hash, delivery times) the leader holds in memory (bound: DAFTKA_LEASE_FACTS_CACHE_ENTRIES)',
      labelNames: ['topic', 'partition'] as const,
      collect() {
        this.set(lbl, facts.size);
      },
    });
  return m;
}

export type LeasedMetrics = ReturnType<typeof leasedMetrics>;

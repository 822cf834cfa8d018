/**
 * Storage metrics (DESIGN §9: fsync duration, append batch size, log bytes), fed from
 * `StorageOptions.onFlush` and sampled from `stats()` at scrape time.
 *
 *   const m = storageMetrics(registry);
 *   const storage = await ReplicaStorage.open({ ..., onFlush: m.onFlush });
 *   m.observe(storage);
 */
import type client from 'prom-client';
import { counter, gauge, histogram } from '../../common/metrics';
import type { FlushStats } from './types';

const BATCH_ENTRIES_BUCKETS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

export interface StorageStatsSource {
  stats(): { logBytes: number; firstIndex: number; lastIndex: number; pendingBytes: number };
}

export function storageMetrics(reg: client.Registry): {
  onFlush: (s: FlushStats) => void;
  observe: (source: StorageStatsSource) => void;
} {
  let source: StorageStatsSource | null = null;
  const fsync = histogram(reg, {
    name: 'daftka_storage_fsync_seconds',
    help: 'Duration of synced RocksDB writes (WAL append + fsync), one per group commit',
  });
  const write = histogram(reg, {
    name: 'daftka_storage_write_seconds',
    help: 'Worker time per group commit: encode, CRC, build and write the batch',
  });
  const batchEntries = histogram(reg, {
    name: 'daftka_storage_batch_entries',
    help: 'Log entries per group commit',
    buckets: BATCH_ENTRIES_BUCKETS,
  });
  const flushes = counter(reg, {
    name: 'daftka_storage_flushes_total',
    help: 'Group commits written, by whether they were synced',
    labelNames: ['mode'] as const,
  });
  const bytes = counter(reg, {
    name: 'daftka_storage_written_bytes_total',
    help: 'Payload bytes (entry data + state keys/values) written by group commits',
  });
  const sample = <K extends 'logBytes' | 'firstIndex' | 'lastIndex' | 'pendingBytes'>(k: K) =>
    function (this: client.Gauge) {
      if (source) this.set(source.stats()[k]);
    };
  gauge(reg, {
    name: 'daftka_storage_log_bytes',
    help: 'Bytes of the retained log as stored',
    collect: sample('logBytes'),
  });
  gauge(reg, {
    name: 'daftka_storage_pending_bytes',
    help: 'Payload bytes accepted but not yet written (bounded by maxPendingBytes)',
    collect: sample('pendingBytes'),
  });
  gauge(reg, { name: 'daftka_storage_first_index', help: 'First retained log index', collect: sample('firstIndex') });
  gauge(reg, { name: 'daftka_storage_last_index', help: 'Last written log index', collect: sample('lastIndex') });

  return {
    onFlush: (s) => {
      if (s.synced) fsync.observe(s.fsyncSeconds);
      write.observe(s.writeSeconds);
      batchEntries.observe(s.entries);
      flushes.inc({ mode: s.synced ? 'synced' : 'unsynced' });
      bytes.inc(s.bytes);
    },
    observe: (s) => {
      source = s;
    },
  };
}

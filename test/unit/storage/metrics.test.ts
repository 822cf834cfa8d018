import { createRegistry } from '../../../common/metrics';
import { storageMetrics } from '../../../replica/storage/metrics';

describe('storage metrics', () => {
  it('records group commits and samples the log position at scrape time', async () => {
    const reg = createRegistry('replica', { defaultMetrics: false });
    const m = storageMetrics(reg);
    m.observe({ stats: () => ({ logBytes: 4096, firstIndex: 3, lastIndex: 9, pendingBytes: 12 }) });
    m.onFlush({ entries: 7, bytes: 700, waiters: 3, fsyncSeconds: 0.002, writeSeconds: 0.003, synced: true });
    m.onFlush({ entries: 0, bytes: 10, waiters: 1, fsyncSeconds: 0, writeSeconds: 0.0001, synced: false });
    const text = await reg.metrics();
    expect(text).toContain('daftka_storage_fsync_seconds_count{component="replica"} 1');
    expect(text).toContain('daftka_storage_flushes_total{mode="synced",component="replica"} 1');
    expect(text).toContain('daftka_storage_flushes_total{mode="unsynced",component="replica"} 1');
    expect(text).toContain('daftka_storage_written_bytes_total{component="replica"} 710');
    expect(text).toContain('daftka_storage_log_bytes{component="replica"} 4096');
    expect(text).toContain('daftka_storage_last_index{component="replica"} 9');
  });
});

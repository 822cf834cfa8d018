/**
 * The event loop never waits on the disk: while 64 writers keep synced appends going (every
 * batch an fsync), the main thread's event-loop delay stays small — far below what running
 * the synced writes on it would cost.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FlushStats } from '../../../../replica/storage/storage';
import { openStorage, payload, removeDir, tempDir } from '../../../helpers/storage';

jest.setTimeout(60_000);

describe('storage and the event loop', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('eventloop');
  });
  afterEach(() => removeDir(dir));

  it('keeps p99 event-loop delay under 50 ms during heavy synced appends', async () => {
    const flushes: FlushStats[] = [];
    const s = await openStorage(dir, { onFlush: (f) => flushes.push(f) });
    try {
      let next = 1;
      const until = performance.now() + 2_000;
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      const writer = async (): Promise<void> => {
        while (performance.now() < until) {
          const index = next++;
          await s.append([{ index, term: 1, type: 0, data: payload(index, 1, 1024) }]);
        }
      };
      await Promise.all(Array.from({ length: 64 }, writer));
      h.disable();
      const synced = flushes.filter((f) => f.synced);
      const fsyncTotalMs = synced.reduce((n, f) => n + f.fsyncSeconds * 1000, 0);
      const p99Ms = h.percentile(99) / 1e6;
      // Context for a failure message: how much disk time the loop would otherwise have absorbed.
      const context = { p99Ms, maxMs: h.max / 1e6, fsyncs: synced.length, fsyncTotalMs, entries: next - 1 };
      expect(synced.length).toBeGreaterThan(10);
      expect({ ...context, ok: p99Ms < 50 }).toMatchObject({ ok: true });
      expect(fsyncTotalMs).toBeGreaterThan(p99Ms * 5);
    } finally {
      await s.close();
    }
  });
});

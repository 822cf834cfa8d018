import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DaftkaError } from '../../../../common/errors';
import { promClient } from '../../../../common/metrics';
import { replicaMetrics } from '../../../../replica/metrics';
import { ClassifiedError } from '../../../../common/crash-policy';
import { DiskGuard, diskSpace, STUCK_AFTER_MS } from '../../../../replica/storage/disk-guard';
import type { DiskFullState, ReplicaStorage } from '../../../../replica/storage/storage';
import { quietLogger } from '../../../helpers/storage';

/** The disk-full state: free space against the reserve, and a write held after ENOSPC. */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'daftka-disk-guard-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function guard(
  minFreeBytes: number,
  held: DiskFullState | null = null,
  extra: { onStuck?: (e: ClassifiedError) => void; nowMs?: () => number } = {},
) {
  const registry = new promClient.Registry();
  const metrics = replicaMetrics(registry);
  const storage = { diskFull: held } as unknown as ReplicaStorage;
  const g = new DiskGuard({
    dir,
    minFreeBytes,
    intervalMs: 1000,
    storage,
    metrics,
    lbl: { topic: 't', partition: '0' },
    logger: quietLogger(),
    ...extra,
  });
  return { g, registry, storage: storage as { diskFull: DiskFullState | null } };
}

async function gauge(registry: promClient.Registry, name: string): Promise<number | undefined> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values[0]?.value as number | undefined) ?? undefined;
}

function refusal(g: DiskGuard): DaftkaError | null {
  try {
    g.admitWrite();
    return null;
  } catch (err) {
    return err as DaftkaError;
  }
}

test('statfs of the data directory gives free and total bytes, exported as gauges', async () => {
  const s = await diskSpace(dir);
  expect(s.capacityBytes).toBeGreaterThan(0);
  expect(s.freeBytes).toBeGreaterThan(0);
  expect(s.freeBytes).toBeLessThanOrEqual(s.capacityBytes);
  const { g, registry } = guard(0);
  await g.check();
  expect(g.freeBytes).toBeGreaterThan(0);
  expect(await gauge(registry, 'daftka_storage_capacity_bytes')).toBe(g.capacityBytes);
  expect(await gauge(registry, 'daftka_storage_disk_full')).toBe(0);
});

test('with room above the reserve, writes are admitted', async () => {
  const { g } = guard(1);
  await g.check();
  expect(g.full).toBeNull();
  expect(refusal(g)).toBeNull();
});

test('below the reserve: STORAGE_FULL (503, retryable, Retry-After) naming the reserve, and the gauge is 1', async () => {
  const { g, registry } = guard(Number.MAX_SAFE_INTEGER);
  expect(g.full).toBeNull(); // nothing measured yet: no guess
  await g.check();
  expect(g.full?.reason).toBe('below_reserve');
  const e = refusal(g)!;
  expect(e).toBeInstanceOf(DaftkaError);
  expect(e).toMatchObject({ code: 'STORAGE_FULL', status: 503, retryable: true, retryAfterMs: 5000 });
  expect(e.extra).toMatchObject({ reason: 'below_reserve', min_free_bytes: Number.MAX_SAFE_INTEGER });
  expect(e.message).toContain('DAFTKA_STORAGE_MIN_FREE_BYTES');
  expect(await gauge(registry, 'daftka_storage_disk_full')).toBe(1);
});

test('a write held after ENOSPC is disk full whatever statfs says, and a reserve of 0 alone never is', async () => {
  const { g, registry, storage } = guard(0);
  await g.check();
  expect(g.full).toBeNull();
  storage.diskFull = { sinceMs: Date.now(), error: 'IO error: No space left on device', failedProbes: 2 };
  g.changed();
  expect(g.full?.reason).toBe('enospc');
  expect(refusal(g)?.extra).toMatchObject({ reason: 'enospc' });
  expect(await gauge(registry, 'daftka_storage_disk_full')).toBe(1);
  storage.diskFull = null;
  g.changed();
  expect(g.full).toBeNull();
  expect(await gauge(registry, 'daftka_storage_disk_full')).toBe(0);
});

test('space back for a minute while a write is still held: reported once as fatal, so a restart reopens the store', async () => {
  let now = 1_000_000;
  const stuck: ClassifiedError[] = [];
  const held = { sinceMs: now, error: 'IO error: No space left on device', failedProbes: 12 };
  const { g } = guard(1, held, { onStuck: (e) => stuck.push(e), nowMs: () => now });
  expect((await diskSpace(dir)).freeBytes).toBeGreaterThan(16 * 1024 * 1024); // the temp dir has room
  await g.check();
  now += STUCK_AFTER_MS - 1;
  await g.check();
  expect(stuck).toHaveLength(0);
  now += 2;
  await g.check();
  expect(stuck).toHaveLength(1);
  expect(stuck[0]).toMatchObject({ kind: 'storage_io_error', failureClass: 'fatal' });
  expect(stuck[0].message).toMatch(/did not resume/);
  now += STUCK_AFTER_MS;
  await g.check();
  expect(stuck).toHaveLength(1);
});

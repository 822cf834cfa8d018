/**
 * A full disk is degradable, not a crash loop (docs/crash-matrix.md, `disk_full`; issue 15 item
 * 15): a real replica process, its data directory on a size-limited tmpfs, behind the gateway of
 * local mode. Filled up, it refuses produce with 503 STORAGE_FULL and Retry-After, serves every
 * acknowledged record, reports not ready (/readyz, the gateway's readiness report); given space
 * back it takes writes again — the same process, never restarted.
 *
 * Two stacks, one per way of meeting a full disk:
 *  - the reserve (`storageMinFreeBytes`): free space falls below it before any write fails;
 *  - a real ENOSPC (reserve 0): a write fails inside RocksDB, is held and probed, and the
 *    produce it carried is answered "unknown" (never acknowledged) and lands once space returns.
 */
import { LocalStack, metricValue } from '../../helpers/local-stack';
import { fillDisk, freeBytes, mountTmpfs, removeFile, unmountTmpfs } from '../../helpers/tmpfs';
import { httpGet } from '../../helpers/replica-cluster';

jest.setTimeout(90_000);

const TOPIC = 'full';
const MiB = 1024 * 1024;

interface Problem {
  code: string;
  status: number;
  retryable: boolean;
  retry_after_ms?: number;
  reason?: string;
}
interface ProduceOk {
  results: Array<{ partition: number; offset: number; status: string }>;
}
interface FetchOk {
  records: Array<{ offset: number; value: string }>;
  next_offset: number;
  high_watermark: number;
}

async function until<T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await f();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function startStack(mnt: string, minFreeBytes: number): Promise<LocalStack> {
  return LocalStack.start({
    topics: [{ name: TOPIC, partitions: 1, replicationFactor: 1 }],
    replicaEnv: {
      // The only replica keeps its RocksDB on the tmpfs (logs stay on the real disk).
      DAFTKA_DATA_DIR: `${mnt}/data`,
      // Small memtables: RocksDB preallocates its WAL at 1.1 × a memtable.
      DAFTKA_ROCKSDB_MEMTABLE_BYTES: String(4 * MiB),
      DAFTKA_STORAGE_MIN_FREE_BYTES: String(minFreeBytes),
      DAFTKA_DISK_CHECK_INTERVAL_MS: '100',
      DAFTKA_DISK_FULL_PROBE_MAX_MS: '300',
      DAFTKA_ANNOUNCE_INTERVAL_MS: '200',
    },
    gatewayEnv: { DAFTKA_GATEWAY_REQUEST_TIMEOUT_MS: '3000' },
    readyTimeoutMs: 60_000,
  });
}

function produce(stack: LocalStack, values: string[], timeoutMs = 15_000) {
  return stack.http<ProduceOk | Problem>('POST', `/v1/topics/${TOPIC}/records`, {
    body: { records: values.map((value) => ({ value })) },
    timeoutMs,
  });
}

/** Every committed record from offset 0 (string values are stored as their text). */
async function fetchAll(stack: LocalStack): Promise<FetchOk> {
  const out: FetchOk = { records: [], next_offset: 0, high_watermark: 0 };
  for (;;) {
    const r = await stack.http<FetchOk>(
      'GET',
      `/v1/topics/${TOPIC}/partitions/0/records?offset=${out.next_offset}&max_records=1000&encoding=utf8`,
    );
    expect(r.status).toBe(200);
    for (const x of r.body.records) out.records.push({ offset: x.offset, value: x.value });
    out.next_offset = r.body.next_offset;
    out.high_watermark = r.body.high_watermark;
    if (r.body.records.length === 0 || out.next_offset >= out.high_watermark) return out;
  }
}

/** Acknowledged writes: value → offset. */
async function produceAcked(stack: LocalStack, acked: Map<string, number>, values: string[]): Promise<void> {
  const r = await produce(stack, values);
  expect(r.status).toBe(200);
  (r.body as ProduceOk).results.forEach((x, i) => acked.set(values[i], x.offset));
}

function expectAckedPresent(f: FetchOk, acked: Map<string, number>): void {
  const byOffset = new Map(f.records.map((x) => [x.offset, x.value]));
  for (const [value, offset] of acked) expect(byOffset.get(offset)).toBe(value);
}

async function readyz(stack: LocalStack): Promise<{ status: number; body: { ready: boolean; reason: string } }> {
  const r = stack.replicas(TOPIC, 0)[0];
  const a = await httpGet(r.httpPort, '/readyz');
  return { status: a.status, body: JSON.parse(a.body) as { ready: boolean; reason: string } };
}

async function replicaMetrics(stack: LocalStack): Promise<string> {
  return (await httpGet(stack.replicas(TOPIC, 0)[0].httpPort, '/metrics')).body;
}

interface ReadinessCheck {
  id: string;
  status: string;
  reason: string;
}
async function freeDiskCheck(stack: LocalStack): Promise<ReadinessCheck> {
  const r = await stack.http<{ status: string; checks: ReadinessCheck[] }>('GET', '/v1/readiness');
  expect(r.status).toBe(200);
  return r.body.checks.find((c) => c.id === 'free_disk')!;
}

const payload = (tag: string, n: number, bytes = 200) =>
  Array.from({ length: n }, (_, i) => `${tag}-${i}-${'x'.repeat(bytes)}`);

describe('disk full below the reserve (storageMinFreeBytes)', () => {
  let mnt: string;
  let stack: LocalStack | undefined;

  beforeAll(async () => {
    mnt = mountTmpfs('replica-reserve', 40);
    stack = await startStack(mnt, 8 * MiB);
  });
  afterAll(async () => {
    await stack?.stop();
    unmountTmpfs(mnt);
  });

  it('refuses produce 503 STORAGE_FULL, serves reads, is not ready, and recovers by itself in the same process', async () => {
    const s = stack!;
    const name = s.replicas(TOPIC, 0)[0].name;
    const pid = s.pid(name);
    const acked = new Map<string, number>();
    await produceAcked(s, acked, payload('before', 50));
    expect((await readyz(s)).status).toBe(200);

    const filler = fillDisk(mnt, 2 * MiB);
    expect(freeBytes(mnt)).toBeLessThan(8 * MiB);

    const nr = await until(
      '/readyz not ready',
      async () => {
        const r = await readyz(s);
        return r.status === 503 ? r : null;
      },
      10_000,
    );
    expect(nr.body.ready).toBe(false);
    expect(nr.body.reason).toMatch(/^disk full \(below_reserve\)/);

    const refused = await produce(s, payload('refused', 5));
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: 'STORAGE_FULL', retryable: true, reason: 'below_reserve' });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    // Reads: every acknowledged record, nothing of the refused batch.
    const during = await fetchAll(s);
    expectAckedPresent(during, acked);
    expect(during.high_watermark).toBe(50);

    const m = await replicaMetrics(s);
    expect(metricValue(m, 'daftka_storage_disk_full', { topic: TOPIC })).toBe(1);
    expect(metricValue(m, 'daftka_storage_free_bytes', { topic: TOPIC })).toBeLessThan(8 * MiB);
    expect(metricValue(m, 'daftka_storage_capacity_bytes', { topic: TOPIC })).toBe(40 * MiB);

    const check = await until(
      'free_disk not_ready in /v1/readiness',
      async () => {
        const c = await freeDiskCheck(s);
        return c.status === 'not_ready' ? c : null;
      },
      10_000,
    );
    expect(check.reason).toContain('STORAGE_FULL');

    // Space back: ready again and writable, without a restart.
    removeFile(filler);
    await until('/readyz ready', async () => ((await readyz(s)).status === 200 ? true : null), 10_000);
    await produceAcked(s, acked, payload('after', 5));
    const after = await fetchAll(s);
    expectAckedPresent(after, acked);
    expect(after.high_watermark).toBe(55);
    expect(s.pid(name)).toBe(pid);
    expect(s.restarts(name)).toBe(0);
    await until('free_disk ok in /v1/readiness', async () => (await freeDiskCheck(s)).status === 'ok', 10_000);
  });
});

describe('disk full at a real ENOSPC (no reserve)', () => {
  let mnt: string;
  let stack: LocalStack | undefined;

  beforeAll(async () => {
    mnt = mountTmpfs('replica-enospc', 40);
    stack = await startStack(mnt, 0);
  });
  afterAll(async () => {
    await stack?.stop();
    unmountTmpfs(mnt);
  });

  it('never acknowledges the write that met ENOSPC, refuses the next ones, and lands it when space returns', async () => {
    const s = stack!;
    const name = s.replicas(TOPIC, 0)[0].name;
    const pid = s.pid(name);
    const acked = new Map<string, number>();
    await produceAcked(s, acked, payload('before', 20));

    const filler = fillDisk(mnt);
    // RocksDB's preallocated WAL may still take a few batches: produce until one is not acknowledged.
    const unknown: string[] = [];
    let firstRefusal: Problem | null = null;
    for (let round = 0; firstRefusal === null; round++) {
      if (round > 200) throw new Error('the disk never filled up');
      const values = payload(`fill${round}`, 100, 2000);
      const r = await produce(s, values);
      if (r.status === 200) (r.body as ProduceOk).results.forEach((x, i) => acked.set(values[i], x.offset));
      else if (r.status === 504) {
        // The batch that met ENOSPC: held in storage, its outcome unknown to the client.
        expect((r.body as Problem).code).toBe('COMMIT_UNKNOWN');
        unknown.push(...values);
      } else {
        expect(r.status).toBe(503);
        firstRefusal = r.body as Problem;
      }
    }
    expect(firstRefusal).toMatchObject({ code: 'STORAGE_FULL', retryable: true, reason: 'enospc' });

    const nr = await readyz(s);
    expect(nr.status).toBe(503);
    expect(nr.body.reason).toMatch(/^disk full \(enospc\)/);
    // Reads go on: every acknowledged record is served.
    expectAckedPresent(await fetchAll(s), acked);

    removeFile(filler);
    // RocksDB resumes by itself (its free-space check runs every 5 s); the probe notices, the held
    // write goes through, and the replica takes writes again.
    await until('/readyz ready', async () => ((await readyz(s)).status === 200 ? true : null), 20_000);
    await produceAcked(s, acked, payload('after', 5));
    const after = await fetchAll(s);
    expectAckedPresent(after, acked);
    // Offsets are dense and every value appears once: the held batch landed exactly once (or,
    // had it never reached the log, not at all) — never twice, never partly.
    const values = after.records.map((x) => x.value);
    expect(new Set(values).size).toBe(values.length);
    expect(after.records.map((x) => x.offset)).toEqual(values.map((_, i) => i));
    const landed = unknown.filter((v) => values.includes(v));
    expect([0, unknown.length]).toContain(landed.length);
    expect(s.pid(name)).toBe(pid);
    expect(s.restarts(name)).toBe(0);
  });
});

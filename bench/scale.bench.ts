/**
 * Scale benchmark (issue 20): does a replica's memory, start-up and speed stay flat as its log
 * grows? One real `replica/main.ts` process (RF 1, fsync always, started by
 * test/helpers/replica-cluster), produce straight to its client port over the protocol client —
 * one 100-byte record per produce, `BENCH_INFLIGHT` (128) produces pipelined.
 *
 * At each checkpoint (every million records; `--quick`: every 50,000) it prints the replica's
 * RSS (/proc/<pid>/status VmRSS), the produce rate since the previous checkpoint, and the latency
 * of fetches of 10 records at random offsets over the whole log (cold reads: the offset index on
 * disk) and at the tail. At the end: kill -9, restart, time from spawn to /readyz 200 and to the
 * first acknowledged produce, RSS after restart (ready, then after 1,000 random fetches).
 *
 * Run: npm run bench -- scale [--quick] [--records=N] [--step=N] [--profile]
 *   default 10,000,000 records (checkpoint every 1,000,000); --quick: 200,000 (every 50,000).
 *   --profile: the replica runs with --cpu-prof; the self time of each checkpoint's window is
 *   printed after a clean stop (SIGTERM), to find what gets slower.
 * Env: BENCH_INFLIGHT (128), BENCH_VALUE_BYTES (100), BENCH_JSON=1 (rows as JSON too);
 *   BENCH_NODE_ARGS (node flags for the replica, space-separated, e.g. `--max-semi-space-size=4`);
 *   every DAFTKA_* variable of the bench's own environment is passed to the replica (e.g.
 *   DAFTKA_ENTRY_CACHE_BYTES), so settings can be compared back to back.
 *
 * The memory columns say where the RSS is: file-backed pages (the node binary and RocksDB's
 * library, shared and mostly code), the main thread's V8 heap (committed, and in use), external
 * buffers (Buffer and ArrayBuffer bytes outside the heap), the storage worker's V8 heap, RocksDB's
 * own accounting (memtables + block cache + table readers), and the entry cache's bytes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'hdr-histogram-js';
import { loadavg } from 'node:os';
import { isDaftkaError } from '../common/errors';
import type { RecordIn } from '../common/partition-api';
import { RemotePartitionClient } from '../protocol/partition-client';
import { RpcClient } from '../protocol/rpc-client';
import { httpGet, metricFromText, ReplicaCluster, sleep } from '../test/helpers/replica-cluster';
import { monotonicUs, summarizeProfile } from './lib/cpu-profile';
import { cpuMs } from './lib/procs';

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined =>
  argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? (argv.includes(`--${name}`) ? '' : undefined);
const QUICK = flag('quick') !== undefined;
const PROFILE = flag('profile') !== undefined;
const RECORDS = Number(flag('records') || (QUICK ? 200_000 : 10_000_000));
const STEP = Number(flag('step') || (QUICK ? 50_000 : 1_000_000));
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 128);
const VALUE_BYTES = Number(process.env.BENCH_VALUE_BYTES ?? 100);
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
const PASSED_ENV = Object.fromEntries(
  Object.entries(process.env).filter(
    (kv): kv is [string, string] => kv[0].startsWith('DAFTKA_') && kv[1] !== undefined,
  ),
);
const TOPIC = 'scale';
const FETCHES = 200;

interface Row {
  records: number;
  rssMb: number;
  mem: MemoryRow;
  producePerSec: number;
  /** The replica's CPU (user + system, all threads) per record written in the step: steadier than the rate on a shared machine. */
  cpuUsPerRecord: number;
  randomFetchP50Ms: number;
  randomFetchP99Ms: number;
  tailFetchP50Ms: number;
  windowUs: [number, number];
}

function statusMb(pid: number | undefined, field: string): number {
  if (pid === undefined) return NaN;
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
const rssMb = (pid: number | undefined): number => statusMb(pid, 'VmRSS');

/** Where the replica's memory is, in MB (see the header). */
interface MemoryRow {
  fileMb: number;
  heapTotalMb: number;
  heapUsedMb: number;
  externalMb: number;
  workerHeapMb: number;
  rocksMb: number;
  entryCacheMb: number;
}

function memoryRow(pid: number | undefined, metrics: string): MemoryRow {
  const mb = (name: string, labels?: Record<string, string>) => metricFromText(metrics, name, labels) / 2 ** 20;
  return {
    fileMb: statusMb(pid, 'RssFile'),
    heapTotalMb: mb('daftka_nodejs_heap_size_total_bytes'),
    heapUsedMb: mb('daftka_nodejs_heap_size_used_bytes'),
    externalMb: mb('daftka_nodejs_external_memory_bytes'),
    workerHeapMb: mb('daftka_storage_worker_heap_bytes'),
    rocksMb: mb('daftka_storage_rocksdb_memory_bytes'),
    entryCacheMb: mb('daftka_raft_entry_cache_bytes'),
  };
}

const MEMORY_HEADER = 'file | heap total / used | external | worker heap | RocksDB | entry cache';
const memoryCells = (m: MemoryRow): string =>
  `${fmt(m.fileMb)} | ${fmt(m.heapTotalMb)} / ${fmt(m.heapUsedMb)} | ${fmt(m.externalMb)} | ${fmt(m.workerHeapMb)} | ${fmt(m.rocksMb)} | ${fmt(m.entryCacheMb)}`;

function hist() {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

async function fetchLatency(
  client: RemotePartitionClient,
  count: number,
  offsetOf: () => number,
): Promise<{ p50: number; p99: number }> {
  const h = hist();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    const r = await client.fetch({
      requestId: 'f',
      topic: TOPIC,
      partition: 0,
      offset: offsetOf(),
      maxRecords: 10,
      maxBytes: 1 << 20,
      waitMs: 0,
    });
    if (r.records.length === 0) throw new Error(`empty fetch at ${offsetOf()}`);
    h.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
  }
  const out = { p50: h.getValueAtPercentile(50) / 1000, p99: h.getValueAtPercentile(99) / 1000 };
  h.destroy();
  return out;
}

async function waitReady(httpPort: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      if ((await httpGet(httpPort, '/readyz', 1000)).status === 200) return;
    } catch {
      /* not listening yet */
    }
    await sleep(10);
  }
  throw new Error('replica not ready');
}

const fmt = (n: number, d = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—';

async function main(): Promise<void> {
  const profDir = PROFILE ? join(process.cwd(), 'node_modules', '.cache', `scale-prof-${process.pid}`) : '';
  const cluster = await ReplicaCluster.start({
    size: 1,
    topic: TOPIC,
    env: {
      DAFTKA_LOG_LEVEL: 'warn',
      DAFTKA_RETENTION_MS: '-1',
      DAFTKA_RETENTION_BYTES: '-1',
      ...PASSED_ENV,
    },
    nodeArgsFor: () => [...NODE_ARGS, ...(PROFILE ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [])],
  });
  const slot = cluster.slots[0];
  const rows: Row[] = [];
  const load0 = loadavg();
  try {
    await cluster.waitFormed(120_000);
    const rpc = new RpcClient({
      host: '127.0.0.1',
      port: slot.clientPort,
      maxInflight: 1024,
      auth: cluster.clientAuth,
    });
    const client = new RemotePartitionClient(rpc);
    const value = Buffer.alloc(VALUE_BYTES, 0x61);
    const rec = (seq: number): RecordIn[] => {
      const key = Buffer.alloc(8);
      key.writeUInt32BE(seq >>> 0, 4);
      return [{ key, value, headers: [], timestampMs: Date.now() }];
    };
    console.log(
      `scale bench: 1 replica (RF 1, fsync always), ${fmt(RECORDS)} records of ${VALUE_BYTES} B, one per produce, ` +
        `${INFLIGHT} in flight; checkpoint every ${fmt(STEP)}; load average ${load0.map((l) => l.toFixed(2)).join(' ')}` +
        (NODE_ARGS.length > 0 ? `; node ${NODE_ARGS.join(' ')}` : '') +
        (Object.keys(PASSED_ENV).length > 0
          ? `; ${Object.entries(PASSED_ENV)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')}`
          : ''),
    );
    console.log(
      `| records | RSS MB | produce/s (last step) | replica CPU µs/record | random fetch p50/p99 ms | tail fetch p50 ms | ${MEMORY_HEADER} (MB) |`,
    );
    console.log(`| --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |`);
    const idle = rssMb(slot.pid);
    console.log(
      `| 0 (idle) | ${fmt(idle)} | — | — | — | — | ${memoryCells(memoryRow(slot.pid, await cluster.metricsText(0)))} |`,
    );
    let sent = 0;
    let acked = 0;
    let retries = 0;
    const produceUntil = async (target: number): Promise<void> => {
      const worker = async (): Promise<void> => {
        while (sent < target) {
          const seq = sent++;
          try {
            await client.produce({ requestId: 'p', topic: TOPIC, partition: 0, records: rec(seq), timeoutMs: 30_000 });
            acked++;
          } catch (e) {
            if (!isDaftkaError(e) || !e.retryable) throw e;
            retries++;
            sent--; // not written: try this one again
            await sleep(e.retryAfterMs ?? 20);
          }
        }
      };
      await Promise.all(Array.from({ length: INFLIGHT }, worker));
    };
    for (let at = STEP; at <= RECORDS; at += STEP) {
      const t0 = performance.now();
      const w0 = monotonicUs();
      const cpu0 = cpuMs(slot.pid ?? -1);
      await produceUntil(at);
      const cpuUsPerRecord = ((cpuMs(slot.pid ?? -1) - cpu0) * 1000) / STEP;
      const secs = (performance.now() - t0) / 1000;
      const w1 = monotonicUs();
      const random = await fetchLatency(client, FETCHES, () => Math.floor(Math.random() * acked));
      const tail = await fetchLatency(client, FETCHES, () => Math.max(0, acked - 1 - Math.floor(Math.random() * 100)));
      const text = await cluster.metricsText(0);
      const row: Row = {
        records: acked,
        rssMb: rssMb(slot.pid),
        mem: memoryRow(slot.pid, text),
        producePerSec: STEP / secs,
        cpuUsPerRecord,
        randomFetchP50Ms: random.p50,
        randomFetchP99Ms: random.p99,
        tailFetchP50Ms: tail.p50,
        windowUs: [w0, w1],
      };
      rows.push(row);
      console.log(
        `| ${fmt(row.records)} | ${fmt(row.rssMb)} | ${fmt(row.producePerSec)} | ${fmt(row.cpuUsPerRecord)} | ${fmt(row.randomFetchP50Ms, 2)} / ${fmt(row.randomFetchP99Ms, 2)} | ${fmt(row.tailFetchP50Ms, 2)} | ${memoryCells(row.mem)} |`,
      );
    }
    rpc.close();
    if (PROFILE) {
      // A clean stop writes the profile; then read each checkpoint's window.
      await cluster.sigterm(0, 30_000);
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (file)
        for (const r of rows) {
          const s = summarizeProfile(join(profDir, file), r.windowUs[0], r.windowUs[1]);
          console.log(`\nprofile up to ${fmt(r.records)} records: busy ${fmt(s.busyMs)} of ${fmt(s.wallMs)} ms`);
          for (const [k, v] of s.byCategory.slice(0, 6)) console.log(`  ${fmt(v)} ms  ${k}`);
          for (const [k, v] of s.topFunctions.slice(0, 8)) console.log(`  ${fmt(v)} ms  ${k}`);
        }
    } else await cluster.kill(0, 'SIGKILL');
    // Restart: time from spawn to ready, and to the first acknowledged produce.
    const t0 = performance.now();
    await cluster.restart(0);
    await waitReady(slot.httpPort, 120_000);
    const readyMs = performance.now() - t0;
    const rpc2 = new RpcClient({
      host: '127.0.0.1',
      port: slot.clientPort,
      maxInflight: 1024,
      auth: cluster.clientAuth,
    });
    const client2 = new RemotePartitionClient(rpc2);
    let firstProduceMs = NaN;
    for (;;) {
      try {
        await client2.produce({ requestId: 'p', topic: TOPIC, partition: 0, records: rec(acked), timeoutMs: 5000 });
        firstProduceMs = performance.now() - t0;
        acked++;
        break;
      } catch (e) {
        if (!isDaftkaError(e) || !e.retryable || performance.now() - t0 > 120_000) throw e;
        await sleep(5);
      }
    }
    const rssReady = rssMb(slot.pid);
    const random = await fetchLatency(client2, 1000, () => Math.floor(Math.random() * acked));
    const rssAfter = rssMb(slot.pid);
    const memAfter = memoryRow(slot.pid, await cluster.metricsText(0));
    rpc2.close();
    const load1 = loadavg();
    console.log(
      `\nrestart at ${fmt(acked)} records (kill -9): ready after ${fmt(readyMs)} ms, first produce acked after ${fmt(firstProduceMs)} ms; ` +
        `RSS ${fmt(rssReady)} MB when ready, ${fmt(rssAfter)} MB after 1,000 random fetches (p50/p99 ${fmt(random.p50, 2)} / ${fmt(random.p99, 2)} ms); ` +
        `retries ${retries}; load average ${load1.map((l) => l.toFixed(2)).join(' ')}`,
    );
    console.log(`after restart (MB): ${MEMORY_HEADER}: ${memoryCells(memAfter)}`);
    if (process.env.BENCH_JSON === '1')
      console.log(
        JSON.stringify({ rows, restart: { readyMs, firstProduceMs, rssReady, rssAfter }, load: [load0, load1] }),
      );
  } finally {
    await cluster.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * Wire-protocol micro-benchmark: produce-shaped RPC round-trips over loopback TCP.
 *   client: RemotePartitionClient → RpcClient (one connection), in the main thread;
 *   server: RpcServer + servePartition over a no-op PartitionClient (decodes every record,
 *           answers at once), in a worker thread so each side has its own event loop.
 *   matrix: batch (records per produce) 1 | 100 × in-flight (calls pipelined) 1 | 16 | 64;
 *           records are a 16-byte key + 1 KB value + timestamp, no headers.
 *   reports: calls/s, records/s, MB/s of record values, p50/p99 call latency, and process CPU
 *            per call (both threads), which is the steadier number on a shared machine.
 *
 * Run: npx tsx bench/rpc.bench.ts [--quick]
 * Env: BENCH_SECONDS (per cell, default 3; 1 with --quick), BENCH_FILTER (substring of "b<batch>/c<inflight>"),
 *      BENCH_JSON=1 (also print the rows as JSON).
 */
import type { PartitionClient } from '../protocol/methods';
import { PassThrough } from 'node:stream';
import { isMainThread, parentPort, type Worker } from 'node:worker_threads';
import { createLogger } from '../common/log';
import { createRegistry } from '../common/metrics';
import type { RecordIn } from '../common/partition-api';
import { startWorker } from '../common/worker';
import { RemotePartitionClient } from '../protocol/partition-client';
import { RpcClient } from '../protocol/rpc-client';
import { RpcServer } from '../protocol/rpc-server';
import { servePartition } from '../protocol/serve';

const SECONDS = Number(process.env.BENCH_SECONDS ?? (process.argv.includes('--quick') ? 1 : 3));
const FILTER = process.env.BENCH_FILTER ?? '';
const VALUE_BYTES = 1024;
const KEY_BYTES = 16;

interface Cell {
  batch: number;
  inflight: number;
}

interface Result extends Cell {
  callsPerSec: number;
  recordsPerSec: number;
  mbPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Process CPU time (both threads, user + system) per call: steadier than rates on a busy machine. */
  cpuUsPerCall: number;
}

function quietLogger() {
  const sink = new PassThrough();
  sink.resume();
  return createLogger('bench', { stream: sink, level: 'error' });
}

/** The worker side: a client port whose partition does nothing but decode and answer. */
async function serve(): Promise<void> {
  let next = 0;
  const noop: PartitionClient = {
    async produce(req) {
      const baseOffset = next;
      next += req.records.length;
      return { baseOffset, count: req.records.length, duplicate: false };
    },
    async fetch() {
      throw new Error('not benchmarked');
    },
    async commitOffset() {},
    async getOffset() {
      throw new Error('not benchmarked');
    },
    async status() {
      throw new Error('not benchmarked');
    },
  };
  const server = new RpcServer({
    host: '127.0.0.1',
    port: 0,
    maxInflightPerConn: 1024,
    logger: quietLogger(),
    registry: createRegistry('bench', { defaultMetrics: false }),
  });
  servePartition(server, noop);
  const { port } = await server.start();
  parentPort?.postMessage({ port });
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function records(n: number): RecordIn[] {
  return Array.from({ length: n }, (_, i) => ({
    key: Buffer.alloc(KEY_BYTES, i & 0xff),
    value: Buffer.alloc(VALUE_BYTES, 0x5a),
    headers: [],
    timestampMs: 1_700_000_000_000 + i,
  }));
}

async function runCell(remote: RemotePartitionClient, cell: Cell): Promise<Result> {
  const recs = records(cell.batch);
  const req = { topic: 'bench', partition: 0, records: recs, requestId: 'bench', timeoutMs: 5000 };
  // Warm-up: JIT the encode/decode paths for this shape.
  for (let i = 0; i < 200; i++) await remote.produce(req);
  const latencies: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + SECONDS * 1000;
  const caller = async (): Promise<void> => {
    while (performance.now() < until) {
      const start = performance.now();
      await remote.produce(req);
      latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: cell.inflight }, caller));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  const calls = latencies.length;
  return {
    ...cell,
    callsPerSec: calls / elapsed,
    recordsPerSec: (calls * cell.batch) / elapsed,
    mbPerSec: (calls * cell.batch * VALUE_BYTES) / elapsed / 1e6,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    cpuUsPerCall: (cpu.user + cpu.system) / calls,
  };
}

function fmt(n: number, digits = 1): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits);
}

async function main(): Promise<void> {
  const worker: Worker = startWorker(__filename.replace(/\.ts$|\.js$/, ''));
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', (m: { port: number }) => resolve(m.port));
    worker.once('error', reject);
  });
  const rpc = new RpcClient({ host: '127.0.0.1', port, maxInflight: 1024 });
  const remote = new RemotePartitionClient(rpc);
  console.log(
    `rpc bench: produce over loopback, ${KEY_BYTES} B key + ${VALUE_BYTES} B value per record, ${SECONDS}s per cell, server in a worker thread`,
  );
  console.log('');
  console.log('| batch | in-flight | calls/s | records/s | MB/s | p50 ms | p99 ms | CPU µs/call |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const rows: Result[] = [];
  for (const batch of [1, 100])
    for (const inflight of [1, 16, 64]) {
      if (FILTER && !`b${batch}/c${inflight}`.includes(FILTER)) continue;
      const r = await runCell(remote, { batch, inflight });
      rows.push(r);
      console.log(
        `| ${r.batch} | ${r.inflight} | ${fmt(r.callsPerSec)} | ${fmt(r.recordsPerSec)} | ${fmt(r.mbPerSec)} | ${fmt(r.p50Ms, 3)} | ${fmt(r.p99Ms, 3)} | ${fmt(r.cpuUsPerCall)} |`,
      );
    }
  if (process.env.BENCH_JSON) console.log(JSON.stringify(rows));
  rpc.close();
  await worker.terminate();
}

if (isMainThread)
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
else
  serve().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });

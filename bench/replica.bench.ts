/**
 * Replica benchmark: produce straight to the leader of a real 3-replica group (three
 * `replica/main.ts` processes on loopback, fsync always, started by test/helpers/replica-cluster),
 * over RemotePartitionClient on one connection — no gateway. An ack means committed: a quorum
 * fsynced the batch and the leader applied it.
 *   matrix: batch (records per produce) 1 | 100 × in-flight (produces pipelined) 1 | 16 | 64;
 *           records are a 16-byte key + 1 KB value + timestamp, no headers, no idempotency key.
 *   reports: records/s, MB/s of record values, p50/p99/p99.9 ack latency (hdr histogram), the
 *            leader's event-loop lag p99/max during the cell (its own /metrics:
 *            daftka_nodejs_eventloop_lag_{p99,max}_seconds, a monitorEventLoopDelay histogram
 *            reset at each scrape, 10 ms resolution), leader fsyncs/s and fsync p50 (from its
 *            daftka_storage_fsync_duration_seconds), and CPU µs per record summed over the
 *            three replica processes (daftka_process_cpu_seconds_total) — the steadier figure
 *            on a shared machine. The bench process itself (the client) is not counted.
 *
 * Run: npx tsx bench/replica.bench.ts [--quick]   (--quick: 1 s per cell)
 * Env: BENCH_SECONDS (per cell, default 5), BENCH_FILTER (substring of "b<batch>/c<inflight>"),
 *      BENCH_JSON=1 (also print the rows as JSON), BENCH_FSYNC (always | interval; default always).
 */
import { build } from 'hdr-histogram-js';
import { isDaftkaError } from '../common/errors';
import type { RecordIn } from '../common/partition-api';
import { RemotePartitionClient } from '../protocol/partition-client';
import { RpcClient } from '../protocol/rpc-client';
import { metricFromText, ReplicaCluster, sleep } from '../test/helpers/replica-cluster';

const QUICK = process.argv.includes('--quick');
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 1 : 5));
const FILTER = process.env.BENCH_FILTER ?? '';
const FSYNC = process.env.BENCH_FSYNC ?? 'always';
const VALUE_BYTES = 1024;
const KEY_BYTES = 16;
const TOPIC = 'bench';

interface Cell {
  batch: number;
  inflight: number;
}

interface Result extends Cell {
  recordsPerSec: number;
  mbPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  fsyncsPerSec: number;
  fsyncP50Ms: number;
  cpuUsPerRecord: number;
  retries: number;
}

function records(batch: number, seq: number): RecordIn[] {
  const value = Buffer.alloc(VALUE_BYTES, 0x61 + (seq % 26));
  return Array.from({ length: batch }, (_, i) => {
    const key = Buffer.alloc(KEY_BYTES);
    key.writeUInt32BE(seq, 0);
    key.writeUInt32BE(i, 4);
    return { key, value, headers: [], timestampMs: Date.now() };
  });
}

interface Scrape {
  cpuSeconds: number;
  fsyncCount: number;
  fsyncBuckets: Array<[number, number]>;
  lagP99: number;
  lagMax: number;
}

async function scrape(cluster: ReplicaCluster, ordinal: number): Promise<Scrape> {
  const text = await cluster.metricsText(ordinal);
  const buckets: Array<[number, number]> = [];
  for (const line of text.split('\n')) {
    const m = /^daftka_storage_fsync_duration_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\}\s+(\S+)/.exec(line);
    if (m) buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  }
  return {
    cpuSeconds: metricFromText(text, 'daftka_process_cpu_seconds_total'),
    fsyncCount: metricFromText(text, 'daftka_storage_fsync_duration_seconds_count'),
    fsyncBuckets: buckets,
    lagP99: metricFromText(text, 'daftka_nodejs_eventloop_lag_p99_seconds'),
    lagMax: metricFromText(text, 'daftka_nodejs_eventloop_lag_max_seconds'),
  };
}

/** Median of the fsyncs between two scrapes, from histogram buckets (upper bound of the bucket). */
function bucketP50(a: Scrape, b: Scrape): number {
  const total = b.fsyncCount - a.fsyncCount;
  if (total <= 0) return NaN;
  for (let i = 0; i < b.fsyncBuckets.length; i++) {
    const n = b.fsyncBuckets[i][1] - (a.fsyncBuckets[i]?.[1] ?? 0);
    if (n >= total / 2) return b.fsyncBuckets[i][0] * 1000;
  }
  return NaN;
}

async function runCell(cluster: ReplicaCluster, cell: Cell): Promise<Result> {
  const { ordinal: leader } = await cluster.waitForLeader(30_000);
  const ep = cluster.slots[leader];
  const rpc = new RpcClient({ host: '127.0.0.1', port: ep.clientPort, maxInflight: 1024, auth: cluster.clientAuth });
  const client = new RemotePartitionClient(rpc);
  const hist = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  let seq = 0;
  let retries = 0;
  let acked = 0;
  let measuring = false;
  const produceOne = async (until: number): Promise<void> => {
    while (performance.now() < until) {
      const recs = records(cell.batch, seq++);
      const t = performance.now();
      try {
        await client.produce({
          topic: TOPIC,
          partition: 0,
          records: recs,
          requestId: `b${seq}`,
          timeoutMs: 10_000,
        });
      } catch (e) {
        // A leader change or overload mid-run: count it and carry on (the cell's numbers say so).
        retries++;
        if (!isDaftkaError(e) || !e.retryable) throw e;
        await sleep(e.retryAfterMs ?? 20);
        continue;
      }
      if (measuring) {
        hist.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
        acked += cell.batch;
      }
    }
  };
  // Warm-up (connections, JIT, caches), then the measured run.
  await Promise.all(Array.from({ length: cell.inflight }, () => produceOne(performance.now() + 500)));
  const before = await Promise.all(cluster.slots.map((s) => scrape(cluster, s.ordinal)));
  measuring = true;
  retries = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: cell.inflight }, () => produceOne(t0 + SECONDS * 1000)));
  const elapsed = (performance.now() - t0) / 1000;
  measuring = false;
  const after = await Promise.all(cluster.slots.map((s) => scrape(cluster, s.ordinal)));
  rpc.close();
  const cpu = after.reduce((s, a, i) => s + a.cpuSeconds - before[i].cpuSeconds, 0);
  const res: Result = {
    ...cell,
    recordsPerSec: acked / elapsed,
    mbPerSec: (acked * VALUE_BYTES) / elapsed / 1e6,
    p50Ms: hist.getValueAtPercentile(50) / 1000,
    p99Ms: hist.getValueAtPercentile(99) / 1000,
    p999Ms: hist.getValueAtPercentile(99.9) / 1000,
    lagP99Ms: after[leader].lagP99 * 1000,
    lagMaxMs: after[leader].lagMax * 1000,
    fsyncsPerSec: (after[leader].fsyncCount - before[leader].fsyncCount) / elapsed,
    fsyncP50Ms: bucketP50(before[leader], after[leader]),
    cpuUsPerRecord: acked > 0 ? (cpu * 1e6) / acked : NaN,
    retries,
  };
  hist.destroy();
  return res;
}

const fmt = (n: number, d = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—';
const ms = (n: number) => (!Number.isFinite(n) ? '—' : n < 10 ? fmt(n, 2) : n < 100 ? fmt(n, 1) : fmt(n));

async function main(): Promise<void> {
  const cells: Cell[] = [];
  for (const batch of [1, 100])
    for (const inflight of [1, 16, 64]) if (`b${batch}/c${inflight}`.includes(FILTER)) cells.push({ batch, inflight });
  const cluster = await ReplicaCluster.start({
    size: 3,
    topic: TOPIC,
    env: {
      DAFTKA_FSYNC: FSYNC,
      // The machine is shared: a long election timeout keeps a busy second from costing a leader.
      DAFTKA_ELECTION_TIMEOUT_MS: '1000',
      DAFTKA_HEARTBEAT_MS: '100',
      DAFTKA_MEMBERSHIP_CHECK_MS: '200',
      DAFTKA_LOG_LEVEL: 'warn',
    },
  });
  const results: Result[] = [];
  try {
    await cluster.waitFormed(120_000);
    console.log(
      `replica bench: 3 replicas, fsync ${FSYNC}, ${SECONDS} s per cell, ${KEY_BYTES} B key + ${VALUE_BYTES} B value per record`,
    );
    for (const cell of cells) {
      const r = await runCell(cluster, cell);
      results.push(r);
      console.log(
        `b${r.batch}/c${r.inflight}: ${fmt(r.recordsPerSec)} rec/s, ${fmt(r.mbPerSec, 1)} MB/s, ` +
          `p50 ${ms(r.p50Ms)} p99 ${ms(r.p99Ms)} p99.9 ${ms(r.p999Ms)} ms, lag p99/max ${ms(r.lagP99Ms)}/${ms(r.lagMaxMs)} ms, ` +
          `${fmt(r.fsyncsPerSec)} fsyncs/s (p50 ≤ ${ms(r.fsyncP50Ms)} ms), ${fmt(r.cpuUsPerRecord, 1)} CPU µs/record, retries ${r.retries}`,
      );
    }
  } finally {
    await cluster.stop();
  }
  console.log('');
  console.log(
    '| batch | in-flight | records/s | MB/s | p50 ms | p99 ms | p99.9 ms | leader loop lag p99 / max ms | leader fsyncs/s | fsync p50 ms | CPU µs/record |',
  );
  console.log(
    '| ----: | --------: | --------: | ---: | -----: | -----: | -------: | ---------------------------: | --------------: | -----------: | ------------: |',
  );
  for (const r of results)
    console.log(
      `| ${r.batch} | ${r.inflight} | ${fmt(r.recordsPerSec)} | ${fmt(r.mbPerSec, 1)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.p999Ms)} | ` +
        `${ms(r.lagP99Ms)} / ${ms(r.lagMaxMs)} | ${fmt(r.fsyncsPerSec)} | ≤ ${ms(r.fsyncP50Ms)} | ${fmt(r.cpuUsPerRecord, 1)} |`,
    );
  if (process.env.BENCH_JSON === '1') console.log(JSON.stringify(results, null, 2));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);

/**
 * Key compaction under produce load (issue 19, docs/compaction.md), on the real local stack:
 * two topics of 1 partition × RF 3 side by side — `plain` (cleanup delete) and `keyed` (cleanup
 * compact, a pass as soon as anything is dirty: compactionCheckMs 500, minDirtyPercent 0) — each
 * loaded in turn with the same closed loop of keyed produce (`batch` records of 100 B values over
 * `keys` keys, round-robin) for the same time.
 *   reports per topic: records/s, p50/p99 request latency, replicas' CPU µs per record (user +
 *            system from /proc: the steadier figure on a shared machine); for the compacted one:
 *            passes, record bytes written, bytes removed by compaction (each replica), and what a
 *            full read of the partition serves afterwards.
 *
 * Run: npx tsx bench/compaction.bench.ts [--quick]   (or `npm run bench -- compaction`)
 * Env: BENCH_SECONDS (per topic, default 10; 3 with --quick), BENCH_KEYS (default 1000),
 *      BENCH_BATCH (default 100), BENCH_INFLIGHT (default 16), BENCH_JSON=1.
 */
import { readFileSync } from 'node:fs';
import { LocalStack } from '../test/helpers/local-stack';
import { closedLoop } from './lib/http-load';

const QUICK = process.argv.includes('--quick');
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 3 : 10));
const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
const BATCH = Number(process.env.BENCH_BATCH ?? 100);
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 16);
const VALUE = 'v'.repeat(100);

function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** A metric summed over the series of one name (and labels) in a Prometheus text page. */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? ([-0-9.eE+]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

interface Row {
  topic: string;
  recPerSec: number;
  p50Ms: number;
  p99Ms: number;
  replicasCpuUsPerRec: number;
  written: number;
  writtenBytes: number;
  passes?: number;
  reclaimedBytesPerReplica?: number;
  servedRecords?: number;
  servedBytes?: number;
}

const fmt = (n: number, d = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–';

async function main(): Promise<void> {
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(
    `compaction bench: 1 partition × RF 3 per topic, ${KEYS} keys, batches of ${BATCH} × 100 B, ${INFLIGHT} in flight, ${SECONDS} s per topic; load average before start: ${load}`,
  );
  const stack = await LocalStack.start({
    topics: [
      { name: 'plain', partitions: 1, replicationFactor: 3 },
      { name: 'keyed', partitions: 1, replicationFactor: 3, cleanup: 'compact', compaction: { minDirtyPercent: 0 } },
    ],
    replicaEnv: { DAFTKA_COMPACTION_CHECK_MS: '500' },
    fsync: 'always',
    exitOnSignal: true,
  });
  const rows: Row[] = [];
  try {
    for (const topic of ['plain', 'keyed']) {
      const reps = stack.replicas(topic);
      const pids = reps.map((r) => stack.pid(r.name));
      const cpu0 = pids.reduce<number>((s, p) => s + cpuSeconds(p), 0);
      let written = 0;
      let next = 0;
      const r = await closedLoop({
        url: `${stack.url}/v1/topics/${topic}/records`,
        body: () =>
          JSON.stringify({
            records: Array.from({ length: BATCH }, () => ({ partition: 0, key: `key-${next++ % KEYS}`, value: VALUE })),
          }),
        inflight: INFLIGHT,
        durationMs: SECONDS * 1000,
        onAnswer: (status, text) => {
          if (status === 200) written += (JSON.parse(text) as { results: unknown[] }).results.length;
        },
      });
      // Let the passes catch up, then measure what they cost and what they left.
      if (topic === 'keyed') await new Promise((res) => setTimeout(res, 3000));
      const cpu1 = pids.reduce<number>((s, p) => s + cpuSeconds(p), 0);
      const row: Row = {
        topic,
        recPerSec: r.okPerSecond * BATCH,
        p50Ms: r.histogram.getValueAtPercentile(50) / 1000,
        p99Ms: r.histogram.getValueAtPercentile(99) / 1000,
        replicasCpuUsPerRec: ((cpu1 - cpu0) * 1e6) / Math.max(1, written),
        written,
        writtenBytes: written * (VALUE.length + 'key-'.length + String(KEYS - 1).length),
      };
      if (topic === 'keyed') {
        let passes = 0;
        let reclaimed = 0;
        for (const rep of reps) {
          const text = await (await fetch(`http://127.0.0.1:${rep.httpPort}/metrics`)).text();
          passes += metricSum(text, 'daftka_compaction_passes_total');
          reclaimed += metricSum(text, 'daftka_compaction_reclaimed_bytes_total');
        }
        let served = 0;
        let servedBytes = 0;
        for (let offset = 0; ;) {
          const page = await stack.http<{
            records: Array<{ key: string; value: string }>;
            next_offset: number;
            high_watermark: number;
          }>('GET', `/v1/topics/keyed/partitions/0/records?offset=${offset}&encoding=utf8&max_records=1000`);
          served += page.body.records.length;
          for (const x of page.body.records) servedBytes += x.key.length + x.value.length;
          if (page.body.next_offset >= page.body.high_watermark || page.body.next_offset <= offset) break;
          offset = page.body.next_offset;
        }
        Object.assign(row, {
          passes,
          reclaimedBytesPerReplica: reclaimed / reps.length,
          servedRecords: served,
          servedBytes,
        });
      }
      rows.push(row);
      console.log(
        `  ${topic}: ${fmt(row.recPerSec)} rec/s, p50 ${fmt(row.p50Ms, 1)} ms, p99 ${fmt(row.p99Ms, 1)} ms, replicas ${fmt(row.replicasCpuUsPerRec)} µs CPU/rec`,
      );
    }
  } finally {
    await stack.stop();
  }
  console.log(
    '\n| topic | records/s | p50 ms | p99 ms | replicas CPU µs/rec | records written | bytes written | passes | bytes removed (each replica) | a full read serves |',
  );
  console.log(
    '| ----- | --------: | -----: | -----: | ------------------: | --------------: | ------------: | -----: | ---------------------------: | ------------------ |',
  );
  for (const r of rows)
    console.log(
      `| ${r.topic} | ${fmt(r.recPerSec)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${fmt(r.replicasCpuUsPerRec)} | ${fmt(r.written)} | ${fmt(r.writtenBytes)} | ${r.passes === undefined ? '–' : fmt(r.passes)} | ${r.reclaimedBytesPerReplica === undefined ? '–' : fmt(r.reclaimedBytesPerReplica)} | ${r.servedRecords === undefined ? 'everything' : `${fmt(r.servedRecords)} records, ${fmt(r.servedBytes ?? 0)} B`} |`,
    );
  if (process.env.BENCH_JSON) console.log(JSON.stringify(rows));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/**
 * End-to-end produce through the HTTP gateway on the real local stack (nats-server + one
 * partition × RF 3 replica processes + the gateway, started as `npm run local` starts them, on a
 * temp data dir, fsync always): closed loop, `inflight` requests in flight, each a POST of
 * `batch` records of 1 KB values (no key, no headers) to partition 0, acks=all.
 *   matrix: batch 1 | 100 × in-flight 1 | 16 | 64 | 256
 *   reports: requests/s, records/s, MB/s of record values, p50/p99/p99.9 request latency, errors,
 *            and CPU per record of the gateway and of the three replicas together (user + system,
 *            from /proc): the steadier figure on a shared machine.
 *   checks: the partition's high watermark grew by exactly the acknowledged records (no
 *           unknown-outcome answers are expected; any error is printed in the table).
 *
 * Run: npx tsx bench/gateway.bench.ts [--quick]   (or `npm run bench -- gateway`)
 * Env: BENCH_SECONDS (measured seconds per cell, default 8; 2 with --quick), BENCH_WARMUP_SECONDS
 *      (default 2; 0.5 with --quick), BENCH_FILTER (substring of "b<batch>/c<inflight>"), BENCH_JSON=1.
 * The load generator is bench/lib/http-load.ts (closed loop, HDR histogram), usable by other benches.
 */
import { readFileSync } from 'node:fs';
import { LocalStack } from '../test/helpers/local-stack';
import { closedLoop } from './lib/http-load';

const QUICK = process.argv.includes('--quick');
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 2 : 8));
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? (QUICK ? 0.5 : 2));
const FILTER = process.env.BENCH_FILTER ?? '';
const VALUE_BYTES = 1024;
const TOPIC = 'bench';

interface Row {
  batch: number;
  inflight: number;
  reqPerSec: number;
  recPerSec: number;
  mbPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  errors: Record<string, number>;
  gatewayCpuUsPerRec: number;
  replicasCpuUsPerRec: number;
  hwDelta: number;
  acked: number;
  /** Raft term increase during the cell: elections (leader changes or failed elections). */
  elections: number;
}

/** user + system CPU seconds of a process (from /proc/<pid>/stat; 0 if it is gone). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14, 15) in clock ticks
  } catch {
    return 0;
  }
}

async function partitionState(stack: LocalStack): Promise<{ hw: number; term: number }> {
  for (let i = 0; ; i++) {
    const r = await stack.http<{ partitions: Array<{ high_watermark?: number; term?: number }> }>(
      'GET',
      `/v1/topics/${TOPIC}`,
    );
    const p = r.body.partitions?.[0];
    if (p?.high_watermark !== undefined && p.term !== undefined) return { hw: p.high_watermark, term: p.term };
    if (i > 50) throw new Error(`no partition state: ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

const fmt = (n: number, d = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '–';

async function main(): Promise<void> {
  const cells = [1, 100]
    .flatMap((batch) => [1, 16, 64, 256].map((inflight) => ({ batch, inflight })))
    .filter((c) => `b${c.batch}/c${c.inflight}`.includes(FILTER));
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(
    `gateway bench: 1 partition × RF 3, fsync always, ${VALUE_BYTES} B values, ${SECONDS} s per cell after ${WARMUP} s warm-up; load average before start: ${load}`,
  );
  const stack = await LocalStack.start({
    topics: [{ name: TOPIC, partitions: 1, replicationFactor: 3 }],
    fsync: 'always',
    exitOnSignal: true,
  });
  const rows: Row[] = [];
  let idlePercent = NaN;
  try {
    const value = 'v'.repeat(VALUE_BYTES);
    const replicaNames = stack.replicas(TOPIC).map((r) => r.name);
    // What the stack costs doing nothing (Raft ticks and heartbeats, NATS announcements): the
    // CPU-per-record columns include it, which dominates at low rates.
    const idleCpu = () =>
      cpuSeconds(stack.gatewayPid) + replicaNames.reduce((sum, n) => sum + cpuSeconds(stack.pid(n)), 0);
    const i0 = idleCpu();
    await new Promise((r) => setTimeout(r, 3000));
    idlePercent = ((idleCpu() - i0) / 3) * 100;
    console.log(`  idle: gateway + 3 replicas use ${idlePercent.toFixed(0)}% of one core doing nothing`);
    for (const { batch, inflight } of cells) {
      const body = JSON.stringify({ records: Array.from({ length: batch }, () => ({ partition: 0, value })) });
      const before = await partitionState(stack);
      const pids = { gw: stack.gatewayPid, reps: replicaNames.map((n) => stack.pid(n)) };
      const cpu0 = { gw: cpuSeconds(pids.gw), reps: pids.reps.reduce<number>((sum, p) => sum + cpuSeconds(p), 0) };
      let ackedAll = 0; // every success, warm-up included, for the high-watermark check
      const unknownAll: Record<string, number> = {}; // every failure, warm-up included
      const r = await closedLoop({
        url: `${stack.url}/v1/topics/${TOPIC}/records`,
        body,
        inflight,
        durationMs: SECONDS * 1000,
        warmupMs: WARMUP * 1000,
        onAnswer: (status, text) => {
          if (status === 200) ackedAll += (JSON.parse(text) as { results: unknown[] }).results.length;
          else unknownAll[String(status)] = (unknownAll[String(status)] ?? 0) + 1;
        },
      });
      const cpu1 = { gw: cpuSeconds(pids.gw), reps: pids.reps.reduce<number>((sum, p) => sum + cpuSeconds(p), 0) };
      // CPU is measured over warm-up + window, so divide by every record acknowledged in both.
      const recs = Math.max(1, ackedAll);
      const after = await partitionState(stack);
      const hwDelta = after.hw - before.hw;
      const h = r.histogram;
      const row: Row = {
        batch,
        inflight,
        reqPerSec: r.okPerSecond,
        recPerSec: r.okPerSecond * batch,
        mbPerSec: (r.okPerSecond * batch * VALUE_BYTES) / 1e6,
        p50Ms: h.getValueAtPercentile(50) / 1000,
        p99Ms: h.getValueAtPercentile(99) / 1000,
        p999Ms: h.getValueAtPercentile(99.9) / 1000,
        errors: r.errors,
        gatewayCpuUsPerRec: ((cpu1.gw - cpu0.gw) * 1e6) / recs,
        replicasCpuUsPerRec: ((cpu1.reps - cpu0.reps) * 1e6) / recs,
        hwDelta,
        acked: ackedAll,
        elections: after.term - before.term,
      };
      rows.push(row);
      console.log(
        `  b${batch}/c${inflight}: ${fmt(row.recPerSec)} rec/s, p50 ${fmt(row.p50Ms, 1)} ms, p99 ${fmt(row.p99Ms, 1)} ms` +
          (Object.keys(r.errors).length ? `, errors ${JSON.stringify(r.errors)}` : '') +
          (hwDelta !== ackedAll
            ? `, HW grew ${hwDelta} for ${ackedAll} acked (answers outside 200, warm-up included: ${JSON.stringify(unknownAll)})`
            : '') +
          (row.elections > 0 ? `, term +${row.elections}` : ''),
      );
    }
  } finally {
    await stack.stop();
  }

  console.log(
    `\n(idle: gateway + replicas ${idlePercent.toFixed(0)}% of a core)\n` +
      '| batch | in-flight |  req/s | records/s |  MB/s | p50 ms | p99 ms | p99.9 ms | gateway CPU µs/rec | replicas CPU µs/rec | errors | elections |',
  );
  console.log(
    '| ----: | --------: | -----: | --------: | ----: | -----: | -----: | -------: | -----------------: | ------------------: | -----: | --------: |',
  );
  for (const r of rows) {
    const errs = Object.entries(r.errors)
      .map(([k, v]) => `${v}× ${k}`)
      .join(', ');
    console.log(
      `| ${r.batch} | ${r.inflight} | ${fmt(r.reqPerSec)} | ${fmt(r.recPerSec)} | ${fmt(r.mbPerSec, 1)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${fmt(r.p999Ms, 1)} | ${fmt(r.gatewayCpuUsPerRec)} | ${fmt(r.replicasCpuUsPerRec)} | ${errs || '0'} | ${r.elections} |`,
    );
  }
  const lost = rows.filter((r) => r.hwDelta < r.acked);
  if (lost.length > 0) {
    console.error(
      `high watermark grew less than the acknowledged records in ${lost.map((r) => `b${r.batch}/c${r.inflight}`).join(', ')}`,
    );
    process.exitCode = 1;
  }
  if (process.env.BENCH_JSON) console.log(JSON.stringify(rows));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

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
 * Then (unless --no-catchup) a new replica catches up the whole log: the cluster has a second
 * configured ordinal (RF 1 — the spare slot of docs/operator.md, not started until now), whose
 * process starts on a fresh data directory (a new incarnation) and is added as a learner by the
 * admin call `addLearner` (the leader's own membership check would add it too), then promoted by
 * `promote` once its applied index reached the leader's commit. How it catches up — by a snapshot
 * then appends, or by appends from index 1 — is read from the snapshot counters: measured Dec 2026,
 * always a snapshot, even with retention off (the leader drops the Raft log below the first entry
 * that holds records, the founding entries, so a new member cannot start at index 1). Meanwhile
 * one produce at a time goes to the leader (it serves a writer and the learner), and the RSS of
 * both processes is sampled every 250 ms: time to catch up, records/s, peak and final RSS of each,
 * and the memory columns of each at its peak. The phase fails after --catchup-timeout-s
 * (default 120 s + 1 s per 1,000 records), and at once when the leader drops a message over the
 * peer frame limit (peer_message_too_large: before issue 20's chunked transfer the snapshot of a
 * retention-compacted log carried the whole offset index, ~57 B a batch, in one message).
 * Pass DAFTKA_RETENTION_BYTES (and DAFTKA_RETENTION_CHECK_MS) to make the log compacted, so the
 * new member's snapshot carries the state in chunks. With the spare ordinal configured, the
 * leader asks its (closed) client port for status every DAFTKA_MEMBERSHIP_CHECK_MS while it does
 * not run.
 *
 * Run: npm run bench -- scale [--quick] [--records=N] [--step=N] [--profile] [--no-catchup]
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
const CATCHUP = flag('no-catchup') === undefined;
const CATCHUP_TIMEOUT_MS = Number(flag('catchup-timeout-s') || 120 + RECORDS / 1000) * 1000;
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

/** The log start last seen (moves only with retention on). */
let logStart = 0;

async function fetchLatency(
  client: RemotePartitionClient,
  count: number,
  offsetOf: () => number,
): Promise<{ p50: number; p99: number }> {
  const h = hist();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    // With retention on (a DAFTKA_RETENTION_* setting passed through), offsets below the log start
    // are gone: a random offset is drawn over what is retained.
    const offset = Math.max(logStart, offsetOf());
    let r;
    try {
      r = await client.fetch({
        requestId: 'f',
        topic: TOPIC,
        partition: 0,
        offset,
        maxRecords: 10,
        maxBytes: 1 << 20,
        waitMs: 0,
      });
    } catch (err) {
      const start = (err as { extra?: { log_start_offset?: number } }).extra?.log_start_offset;
      if (!(isDaftkaError(err) && err.code === 'OFFSET_OUT_OF_RANGE' && typeof start === 'number')) throw err;
      logStart = start;
      i--;
      continue;
    }
    logStart = Math.max(logStart, r.logStartOffset);
    if (r.records.length === 0) throw new Error(`empty fetch at ${offset}`);
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

/** One 250 ms sample of the catch-up phase. */
interface CatchUpSample {
  atMs: number;
  leaderRssMb: number;
  learnerRssMb: number;
  learnerAppliedIndex: number;
  leaderCommitIndex: number;
}

/** A process's RSS over the phase: the highest seen (with its memory columns), and the last. */
interface RssTrack {
  peakRssMb: number;
  peakMem: MemoryRow | null;
  finalRssMb: number;
  finalMem: MemoryRow | null;
}

interface CatchUpResult {
  learnerId: string;
  recordsAtJoin: number;
  indexAtJoin: number;
  /** 'appends' (from index 1) or 'snapshot' (the learner installed one). */
  how: 'appends' | 'snapshot';
  snapshots: { built: number; sent: number; installed: number };
  addedBy: 'admin call' | 'leader membership check';
  answeredMs: number;
  caughtUpMs: number;
  recordsPerSec: number;
  promotedMs: number;
  producedDuring: number;
  leader: RssTrack;
  learner: RssTrack;
  samples: CatchUpSample[];
}

/** The RSS of the process in `ordinal`'s slot; its memory columns too when it is a new peak. */
async function track(cluster: ReplicaCluster, ordinal: number, t: RssTrack): Promise<number> {
  const slot = cluster.slots[ordinal];
  if (!slot.running)
    throw new Error(
      `replica ${ordinal} exited (${JSON.stringify(slot.lastExit)}) during catch-up\n${cluster.describe()}`,
    );
  const rss = rssMb(slot.pid);
  t.finalRssMb = rss;
  if (rss > t.peakRssMb) {
    t.peakRssMb = rss;
    try {
      t.peakMem = memoryRow(slot.pid, await cluster.metricsText(ordinal));
    } catch {
      /* /metrics not served yet: the RSS alone */
    }
  }
  return rss;
}

/**
 * A new replica (ordinal 1, fresh data dir) joins the group as a learner and catches up the whole
 * log while one produce at a time goes to the leader; then it is promoted. See the header.
 */
async function catchUpPhase(cluster: ReplicaCluster, rec: (seq: number) => RecordIn[]): Promise<CatchUpResult> {
  const target = { topic: TOPIC, partition: 0 };
  const deadline = performance.now() + CATCHUP_TIMEOUT_MS;
  const overdue = (what: string) => {
    if (performance.now() > deadline)
      throw new Error(
        `catch-up phase: ${what} not done within ${fmt(CATCHUP_TIMEOUT_MS / 1000)} s (--catchup-timeout-s)\n${cluster.describe()}`,
      );
  };
  const leaderAtJoin = await cluster.status(0, 5000);
  if (leaderAtJoin?.role !== 'leader')
    throw new Error(`catch-up phase: replica 0 does not lead (${leaderAtJoin?.role})`);
  const leaderTrack: RssTrack = { peakRssMb: 0, peakMem: null, finalRssMb: NaN, finalMem: null };
  const learnerTrack: RssTrack = { peakRssMb: 0, peakMem: null, finalRssMb: NaN, finalMem: null };
  const samples: CatchUpSample[] = [];

  // One produce in flight to the leader for the whole phase.
  const rpc = new RpcClient({ host: '127.0.0.1', port: cluster.slots[0].clientPort, auth: cluster.clientAuth });
  const client = new RemotePartitionClient(rpc);
  let writing = true;
  let produced = 0;
  const writer = (async () => {
    for (let seq = 2 ** 31; writing; seq++) {
      try {
        await client.produce({ requestId: 'c', topic: TOPIC, partition: 0, records: rec(seq), timeoutMs: 30_000 });
        produced++;
      } catch (e) {
        if (!isDaftkaError(e) || !e.retryable) throw e;
        await sleep(e.retryAfterMs ?? 20);
      }
    }
  })();

  const t0 = performance.now();
  let caughtUpAt = NaN;
  let promotedAt = NaN;
  let addedAt = NaN;
  let addedBy: CatchUpResult['addedBy'] = 'admin call';
  let learnerId = '';
  try {
    await cluster.restart(1); // never started before: a fresh data dir, a new incarnation
    // The learner answers status once it has opened its storage: its id.
    for (;;) {
      overdue('the new replica answering status');
      await track(cluster, 0, leaderTrack);
      await track(cluster, 1, learnerTrack);
      const st = await cluster.status(1);
      if (st !== null) {
        learnerId = st.replicaId;
        break;
      }
      await sleep(100);
    }
    const answeredMs = performance.now() - t0;
    const admin = cluster.client(0);
    for (;;) {
      overdue('the addLearner call');
      try {
        await admin.addLearner({
          ...target,
          id: learnerId,
          endpoint: `127.0.0.1:${cluster.slots[1].peerPort}`,
          requestId: 'catchup-add',
        });
        break;
      } catch (e) {
        // The leader's own membership check may have added it first (same change).
        const l = await cluster.status(0);
        if (l?.learners.includes(learnerId) || l?.voters.includes(learnerId)) {
          addedBy = 'leader membership check';
          break;
        }
        // Refused for now (e.g. UNAVAILABLE while a compaction's tombstone drop is pending): again.
        if (!isDaftkaError(e) || !(e.retryable || e.code === 'CONFLICT')) throw e;
        await sleep(e.retryAfterMs ?? 100);
      }
    }
    addedAt = performance.now();
    // Every ~250 ms: both RSS, then the leader's commit, then the learner's applied index.
    for (let tick = 0; ; tick++) {
      overdue('the learner catching up');
      if (tick % 8 === 7) failOnDroppedSnapshot(cluster);
      const t = performance.now();
      const leaderRssMb = await track(cluster, 0, leaderTrack);
      const learnerRssMb = await track(cluster, 1, learnerTrack);
      const l = await cluster.status(0);
      const f = await cluster.status(1);
      if (l !== null && f !== null) {
        samples.push({
          atMs: t - addedAt,
          leaderRssMb,
          learnerRssMb,
          learnerAppliedIndex: f.appliedIndex,
          leaderCommitIndex: l.commitIndex,
        });
        if (f.appliedIndex >= l.commitIndex) break;
      }
      await sleep(Math.max(0, 250 - (performance.now() - t)));
    }
    caughtUpAt = performance.now();
    // Promote: the leader refuses (CONFLICT) while the learner is behind its commit; ask again.
    for (;;) {
      overdue('the promotion');
      const l = await cluster.status(0);
      if (l?.voters.includes(learnerId)) break;
      if (l?.learners.includes(learnerId))
        try {
          await cluster.client(0).promote({ ...target, id: learnerId, requestId: 'catchup-promote' });
        } catch (e) {
          if (!isDaftkaError(e) || e.code !== 'CONFLICT') throw e;
        }
      await track(cluster, 0, leaderTrack);
      await track(cluster, 1, learnerTrack);
      await sleep(100);
    }
    promotedAt = performance.now();
    writing = false;
    await writer;
    const leaderText = await cluster.metricsText(0);
    const learnerText = await cluster.metricsText(1);
    await track(cluster, 0, leaderTrack);
    await track(cluster, 1, learnerTrack);
    leaderTrack.finalMem = memoryRow(cluster.slots[0].pid, leaderText);
    learnerTrack.finalMem = memoryRow(cluster.slots[1].pid, learnerText);
    const snap = (text: string, action: string) => metricFromText(text, 'daftka_raft_snapshots_total', { action });
    const snapshots = {
      built: snap(leaderText, 'built'),
      sent: snap(leaderText, 'sent'),
      installed: snap(learnerText, 'installed'),
    };
    const caughtUpMs = caughtUpAt - addedAt;
    const result: CatchUpResult = {
      learnerId,
      recordsAtJoin: leaderAtJoin.highWatermark,
      indexAtJoin: leaderAtJoin.commitIndex,
      how: snapshots.installed > 0 ? 'snapshot' : 'appends',
      snapshots,
      addedBy,
      answeredMs,
      caughtUpMs,
      recordsPerSec: (leaderAtJoin.highWatermark - leaderAtJoin.logStartOffset) / (caughtUpMs / 1000),
      promotedMs: promotedAt - caughtUpAt,
      producedDuring: produced,
      leader: leaderTrack,
      learner: learnerTrack,
      samples,
    };
    printCatchUp(result);
    return result;
  } catch (e) {
    // What was measured before the failure (a stuck catch-up is a memory finding too).
    const last = samples[samples.length - 1];
    console.log(
      `\ncatch-up failed ${fmt((performance.now() - t0) / 1000)} s after the spawn (learner ${learnerId || 'not answering'}` +
        `${last ? `, applied ${fmt(last.learnerAppliedIndex)} of ${fmt(last.leaderCommitIndex)}` : ''}): ` +
        `leader RSS peak ${fmt(leaderTrack.peakRssMb)} MB, last ${fmt(leaderTrack.finalRssMb)} MB; ` +
        `learner RSS peak ${fmt(learnerTrack.peakRssMb)} MB, last ${fmt(learnerTrack.finalRssMb)} MB`,
    );
    if (leaderTrack.peakMem)
      console.log(`leader at its peak (MB): ${MEMORY_HEADER}: ${memoryCells(leaderTrack.peakMem)}`);
    throw e;
  } finally {
    writing = false;
    await writer.catch(() => undefined);
    rpc.close();
  }
}

/**
 * A message over the peer transport's frame limit is dropped, with a warning, and sent again
 * later: a snapshot that big never reaches the learner. Fail now rather than at the timeout.
 */
function failOnDroppedSnapshot(cluster: ReplicaCluster): void {
  const dropped = cluster.slots[0].logEvents().find((e) => e.message === 'peer_message_too_large');
  if (dropped !== undefined)
    throw new Error(
      `catch-up phase: the leader cannot send the learner a message of ${fmt(Number(dropped.bytes))} B, over the ` +
        `peer frame limit of ${fmt(Number(dropped.limit))} B (peer_message_too_large in its log, ` +
        `sent again and dropped again) — the learner would never catch up\n${cluster.describe()}`,
    );
}

function printCatchUp(r: CatchUpResult): void {
  const how =
    r.how === 'snapshot'
      ? `by a snapshot (leader built ${r.snapshots.built}, sent ${r.snapshots.sent}; learner installed ${r.snapshots.installed}) then appends`
      : `by appends from index 1 (no snapshot: leader built ${r.snapshots.built}, sent ${r.snapshots.sent}; learner installed ${r.snapshots.installed})`;
  console.log(
    `\ncatch-up: a new replica (${r.learnerId}) joined at ${fmt(r.recordsAtJoin)} records (Raft index ${fmt(r.indexAtJoin)}), ${how}; ` +
      `it answered status ${fmt(r.answeredMs)} ms after spawn, added as a learner by the ${r.addedBy}; ` +
      `caught up (applied = leader's commit) ${fmt(r.caughtUpMs)} ms after the add: ${fmt(r.recordsPerSec)} records/s; ` +
      `promoted ${fmt(r.promotedMs)} ms later; ${fmt(r.producedDuring)} produces acked meanwhile (1 in flight); ` +
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  console.log(
    `| replica | peak RSS MB | final RSS MB | at the peak (MB): ${MEMORY_HEADER} | final (MB): ${MEMORY_HEADER} |`,
  );
  console.log(`| -- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |`);
  const row = (name: string, t: RssTrack) => {
    const cells = (m: MemoryRow | null) => (m ? memoryCells(m) : '— | — | — | — | — | —');
    console.log(
      `| ${name} | ${fmt(t.peakRssMb)} | ${fmt(t.finalRssMb)} | ${cells(t.peakMem)} | ${cells(t.finalMem)} |`,
    );
  };
  row('leader', r.leader);
  row('learner', r.learner);
  // RSS over the catch-up: about ten samples, evenly spaced.
  console.log(`| s after the add | learner applied index | leader commit index | leader RSS MB | learner RSS MB |`);
  console.log(`| --: | --: | --: | --: | --: |`);
  const every = Math.max(1, Math.ceil(r.samples.length / 10));
  r.samples.forEach((s, i) => {
    if (i % every === 0 || i === r.samples.length - 1)
      console.log(
        `| ${fmt(s.atMs / 1000, 1)} | ${fmt(s.learnerAppliedIndex)} | ${fmt(s.leaderCommitIndex)} | ${fmt(s.leaderRssMb)} | ${fmt(s.learnerRssMb)} |`,
      );
  });
}

async function main(): Promise<void> {
  const profDir = PROFILE ? join(process.cwd(), 'node_modules', '.cache', `scale-prof-${process.pid}`) : '';
  const cluster = await ReplicaCluster.start({
    // The second ordinal is the replica that catches up at the end (not started before).
    size: CATCHUP ? 2 : 1,
    replicationFactor: 1,
    startOrdinals: [0],
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
    await cluster.waitFormed(120_000, [0]);
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
    const catchUp = CATCHUP ? await catchUpPhase(cluster, rec) : null;
    if (process.env.BENCH_JSON === '1')
      console.log(
        JSON.stringify({
          rows,
          restart: { readyMs, firstProduceMs, rssReady, rssAfter },
          catchUp,
          load: [load0, load1, loadavg()],
        }),
      );
  } finally {
    await cluster.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

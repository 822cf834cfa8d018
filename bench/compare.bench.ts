/**
 * Daftka vs NATS JetStream R3, side by side on this machine, in one run (DESIGN §12.5, issue 10).
 *
 *   npx tsx bench/compare.bench.ts [--quick]      (npm run bench -- compare [--quick])
 *
 * Starts a 3-node JetStream cluster (routes, file storage, an R3 stream) and Daftka local mode
 * (control nats-server, 3 replicas per partition, gateway; fsync=always), then:
 *   closed    closed loop, record sizes × in-flight windows × {Daftka 1 rec/req, Daftka 100
 *             rec/req, JetStream publish}, repeated and interleaved; ack latency (HDR), msg/s,
 *             MB/s, CPU per process from /proc; every acknowledged record verified afterwards.
 *   stream    Daftka's streaming produce: one connection, one 1 KB record per NDJSON line, as fast
 *             as the socket drains; every written record read back at its offset.
 *   open      open loop at fixed rates (latency from the intended send time) with a consumer:
 *             ack and end-to-end latency (Daftka long-poll fetch, JetStream ordered consumer).
 *   interval  Daftka again with DAFTKA_FSYNC=interval (like-for-like with JetStream's background
 *             sync) against JetStream.
 *   failover  kill -9 of the partition leader / the stream leader under load: write
 *             unavailability window and lost acknowledged records.
 *   scaling   Daftka with 1, 2, 4, 8 partitions (100 rec/req, in-flight 64).
 *   profile   node --cpu-prof on the gateway and the replicas during a load run.
 *
 * --quick: 1 KB, in-flight 1 and 64, one repeat, short windows, no scaling/profile (< 2 min).
 * Env: BENCH_PHASES=closed,open,... (subset), BENCH_SIZES / BENCH_WINDOWS (comma-separated lists),
 *      BENCH_REPS, BENCH_MEASURE_MS, BENCH_DIR (where data
 *      goes), BENCH_KEEP=1 (keep data and logs), BENCH_OUT=file.json (all results as JSON).
 * Exit status 1 when any acknowledged record is missing, changed or out of order.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from 'nats';
import { monotonicUs, summarizeProfile, type ProfileSummary } from './lib/cpu-profile';
import {
  DaftkaConsumer,
  DaftkaTarget,
  daftkaReader,
  verifyAgainst,
  verifyOk,
  type VerifyResult,
} from './lib/daftka-client';
import { DaftkaStack } from './lib/daftka-stack';
import { closedLoop, openLoop, type LoadOptions, type LoadResult, type Target } from './lib/load';
import { streamLoad } from './lib/stream-load';
import { cpuMs, loadAverage, sleep, tempDirRemovedAtExit, threadCpuMs } from './lib/procs';
import {
  fmt,
  fmtRatio,
  median,
  merge,
  spreadPct,
  summarize,
  table,
  type Histogram,
  type LatencySummary,
} from './lib/stats';
import { JetStreamConsumer, JetStreamTarget, jetStreamReader } from './jetstream/client';
import { JetStreamCluster } from './jetstream/cluster';

// ---------------------------------------------------------------- settings

const QUICK = process.argv.includes('--quick');
const PHASES = (process.env.BENCH_PHASES ?? 'closed,stream,open,interval,failover,scaling,profile').split(',');
const phase = (p: string) => PHASES.includes(p) && !(QUICK && (p === 'scaling' || p === 'profile'));
const REPS = Number(process.env.BENCH_REPS ?? (QUICK ? 1 : 3));
const WARMUP_MS = QUICK ? 300 : 500;
const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? (QUICK ? 1000 : 2000));
const OPEN_MS = QUICK ? 2000 : 3000;
const list = (v: string | undefined) => (v ? v.split(',').map(Number) : undefined);
const SIZES = list(process.env.BENCH_SIZES) ?? (QUICK ? [1024] : [128, 1024, 16384]);
const WINDOWS = list(process.env.BENCH_WINDOWS) ?? (QUICK ? [1, 64] : [1, 16, 64, 256]);
const FAILOVER_REPS = QUICK ? 1 : 3;
const SCALING = [1, 2, 4, 8];
/** Cells whose bytes in flight (window × records/request × size) exceed this are cut: they only measure OVERLOADED. */
const MAX_INFLIGHT_BYTES = 32 * 1024 * 1024;
const TOPIC = 'bench';
const STREAM = 'bench';
const SUBJECT = 'bench.x';

type System = 'daftka-1' | 'daftka-100' | 'jetstream';
const RPR: Record<System, number> = { 'daftka-1': 1, 'daftka-100': 100, jetstream: 1 };
const LABEL: Record<System, string> = {
  'daftka-1': 'Daftka 1 rec/req',
  'daftka-100': 'Daftka 100 rec/req',
  jetstream: 'JetStream R3',
};

// ---------------------------------------------------------------- results

interface Rep {
  msgPerS: number;
  mbPerS: number;
  ack: LatencySummary;
  e2e?: LatencySummary;
  serverCpuUsPerMsg: number;
  clientCpuUsPerMsg: number;
  /** % of one core per role during the window. */
  cpuPct: Record<string, number>;
  errors: number;
  /** Daftka: Raft term increase during the run; JetStream: stream leader changed (0/1). */
  leaderChanges: number;
  verify: VerifyResult;
}

interface CellResult {
  phase: string;
  system: System;
  fsync: 'always' | 'interval' | 'background';
  size: number;
  window: number;
  ratePerS?: number;
  partitions: number;
  reps: Rep[];
  ackHist: Histogram;
  e2eHist?: Histogram;
}

const results: CellResult[] = [];
const verifyFailures: string[] = [];
const phaseErrors: string[] = [];
let totalVerified = 0;
let runCounter = 0;

function agg(c: CellResult) {
  const ack = summarize(c.ackHist);
  return {
    msgPerS: median(c.reps.map((r) => r.msgPerS)),
    spread: spreadPct(c.reps.map((r) => r.msgPerS)),
    mbPerS: median(c.reps.map((r) => r.mbPerS)),
    p50: median(c.reps.map((r) => r.ack.p50Ms)),
    p99: median(c.reps.map((r) => r.ack.p99Ms)),
    p999: ack.p999Ms,
    max: ack.maxMs,
    e2e: c.e2eHist ? summarize(c.e2eHist) : undefined,
    e2eP50: median(c.reps.map((r) => r.e2e?.p50Ms ?? NaN)),
    e2eP99: median(c.reps.map((r) => r.e2e?.p99Ms ?? NaN)),
    srvCpu: median(c.reps.map((r) => r.serverCpuUsPerMsg)),
    cliCpu: median(c.reps.map((r) => r.clientCpuUsPerMsg)),
    errors: c.reps.reduce((a, r) => a + r.errors, 0),
    leaderChanges: c.reps.reduce((a, r) => a + (Number.isFinite(r.leaderChanges) ? r.leaderChanges : 0), 0),
    verified: c.reps.every((r) => verifyOk(r.verify)),
    cpuPct: (role: string) => median(c.reps.map((r) => r.cpuPct[role] ?? NaN)),
  };
}

function findCell(p: Partial<CellResult>): CellResult | undefined {
  return results.find((c) =>
    (Object.keys(p) as Array<keyof CellResult>).every((k) => p[k] === undefined || c[k] === p[k]),
  );
}

function cellFor(key: Omit<CellResult, 'reps' | 'ackHist' | 'e2eHist'>): CellResult {
  const found = results.find(
    (c) =>
      c.phase === key.phase &&
      c.system === key.system &&
      c.size === key.size &&
      c.window === key.window &&
      c.ratePerS === key.ratePerS &&
      c.partitions === key.partitions &&
      c.fsync === key.fsync,
  );
  if (found) return found;
  const c: CellResult = { ...key, reps: [], ackHist: merge([]) };
  results.push(c);
  return c;
}

function log(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

// ---------------------------------------------------------------- one measured run

interface Role {
  role: string;
  pid: number;
}

interface SystemUnderTest {
  target(system: System, window: number): Target;
  roles(): Promise<Role[]>;
  verify(acks: LoadResult['acks'], run: number): Promise<VerifyResult>;
  /** A value that changes with every leader change (Daftka: sum of terms; JetStream: leader name). */
  leadership(): Promise<number | string>;
  consumer?(
    run: number,
  ): Promise<{ e2e: Histogram; fromUs: number; toUs: number; stop(expected: number): Promise<void> }>;
  /** After verification (JetStream: purge the stream so it stays small). */
  afterRun?(): Promise<void>;
}

async function measure(
  sut: SystemUnderTest,
  cell: CellResult,
  run: (target: Target, o: LoadOptions) => Promise<LoadResult>,
  withConsumer = false,
): Promise<Rep> {
  const runId = ++runCounter;
  const roles = await sut.roles();
  const lead0 = await sut.leadership().catch(() => NaN);
  const target = sut.target(cell.system, cell.window);
  let c0: number[] = [];
  let c1: number[] = [];
  let cl0 = process.cpuUsage();
  let cl1 = process.cpuUsage();
  const consumer = withConsumer && sut.consumer ? await sut.consumer(runId) : undefined;
  const res = await run(target, {
    size: cell.size,
    warmupMs: WARMUP_MS,
    measureMs: cell.phase === 'open' ? OPEN_MS : MEASURE_MS,
    run: runId,
    onWindowStart: () => {
      c0 = roles.map((r) => cpuMs(r.pid));
      cl0 = process.cpuUsage();
      if (consumer) consumer.fromUs = Math.round(performance.now() * 1000);
    },
    onWindowEnd: () => {
      c1 = roles.map((r) => cpuMs(r.pid));
      cl1 = process.cpuUsage(cl0);
      if (consumer) consumer.toUs = Math.round(performance.now() * 1000);
    },
  });
  (target as { close?: () => void }).close?.();
  if (consumer) await consumer.stop(res.acks.length);
  const lead1 = await sut.leadership().catch(() => NaN);
  const leaderChanges =
    typeof lead0 === 'number' && typeof lead1 === 'number' ? lead1 - lead0 : lead0 === lead1 ? 0 : 1;
  const verify = await sut.verify(res.acks, runId);
  totalVerified += verify.acked;
  if (!verifyOk(verify))
    verifyFailures.push(
      `${cell.phase} ${LABEL[cell.system]} ${cell.size} B window ${cell.window}: ${JSON.stringify(verify)}`,
    );
  await sut.afterRun?.();
  const windowS = res.windowMs / 1000;
  const cpuPct: Record<string, number> = {};
  let server = 0;
  roles.forEach((r, i) => {
    const d = c1[i] - c0[i];
    if (!Number.isFinite(d)) return;
    server += d;
    cpuPct[r.role] = (cpuPct[r.role] ?? 0) + (d / res.windowMs) * 100;
  });
  const msgs = Math.max(1, res.records);
  const rep: Rep = {
    msgPerS: res.records / windowS,
    mbPerS: res.bytes / windowS / 1e6,
    ack: summarize(res.ack),
    e2e: consumer ? summarize(consumer.e2e) : undefined,
    serverCpuUsPerMsg: (server * 1000) / msgs,
    clientCpuUsPerMsg: (cl1.user + cl1.system) / msgs,
    cpuPct,
    errors: res.errors,
    leaderChanges,
    verify,
  };
  cell.reps.push(rep);
  cell.ackHist.add(res.ack);
  if (consumer) {
    cell.e2eHist ??= merge([]);
    cell.e2eHist.add(consumer.e2e);
  }
  log(
    `${cell.phase} ${LABEL[cell.system]}${cell.fsync === 'interval' ? ' (fsync interval)' : ''} ${cell.size} B ` +
      `${cell.ratePerS ? `rate ${fmt(cell.ratePerS)}/s` : `window ${cell.window}`} p=${cell.partitions}: ` +
      `${fmt(rep.msgPerS)} msg/s, ack p50 ${fmt(rep.ack.p50Ms)} p99 ${fmt(rep.ack.p99Ms)} ms` +
      (rep.e2e ? `, e2e p99 ${fmt(rep.e2e.p99Ms)} ms` : '') +
      `, errors ${res.errors}${res.errors ? ` (${res.errorSamples[0]})` : ''}` +
      `${leaderChanges ? `, LEADER CHANGES ${leaderChanges}` : ''}, verify ${verifyOk(verify) ? 'ok' : 'FAILED'} (${verify.acked})`,
  );
  return rep;
}

// ---------------------------------------------------------------- the two systems

function daftkaSut(stack: DaftkaStack): SystemUnderTest {
  const reader = daftkaReader(stack.baseUrl, TOPIC);
  return {
    target: (system, window) => new DaftkaTarget(stack.baseUrl, TOPIC, RPR[system], window),
    roles: async () => {
      const leaders = new Set<string>();
      for (const p of await stack.partitions()) {
        const m = p.leader ? /^(\d+)\./.exec(p.leader) : null;
        if (m) leaders.add(`${TOPIC}-${p.partition}-${m[1]}`);
      }
      return stack.procs().map((p) => ({
        pid: p.pid,
        role:
          p.name === 'gateway'
            ? 'gateway'
            : p.name === 'nats-server'
              ? 'control nats'
              : leaders.has(p.name)
                ? 'leader replica'
                : 'follower replicas',
      }));
    },
    verify: (acks, run) => verifyAgainst(acks, run, reader),
    leadership: async () => (await stack.partitions()).reduce((a, p) => a + (p.term ?? 0), 0),
    consumer: async (run) => {
      const c = new DaftkaConsumer(stack.baseUrl, TOPIC, run);
      await c.start(stack.opts.partitions);
      return c;
    },
  };
}

async function jetStreamSut(js: JetStreamCluster, nc: NatsConnection): Promise<SystemUnderTest> {
  const jsm = await nc.jetstreamManager();
  const reader = jetStreamReader(nc, STREAM);
  return {
    target: () => new JetStreamTarget(nc, SUBJECT),
    roles: async () => {
      const leader = await js.streamLeader(jsm, STREAM);
      return js.servers.map((s) => ({
        pid: s.proc.pid,
        role: s.name === leader?.name ? 'stream leader' : 'followers',
      }));
    },
    verify: (acks, run) => verifyAgainst(acks, run, reader),
    leadership: async () => (await jsm.streams.info(STREAM)).cluster?.leader ?? '',
    consumer: async (run) => {
      const c = new JetStreamConsumer(nc, STREAM, run);
      await c.start();
      return c;
    },
    afterRun: async () => {
      await jsm.streams.purge(STREAM);
    },
  };
}

function cut(system: System, size: number, window: number): boolean {
  return window * RPR[system] * size > MAX_INFLIGHT_BYTES;
}

// ---------------------------------------------------------------- phases

async function closedPhase(
  phaseName: 'closed' | 'interval',
  suts: Partial<Record<System, SystemUnderTest>>,
  sizes: number[],
  windows: number[],
  fsyncOf: (s: System) => CellResult['fsync'],
): Promise<void> {
  for (const size of sizes)
    for (const window of windows)
      for (let rep = 0; rep < REPS; rep++)
        for (const system of Object.keys(suts) as System[]) {
          if (cut(system, size, window)) continue;
          const cell = cellFor({ phase: phaseName, system, fsync: fsyncOf(system), size, window, partitions: 1 });
          await measure(suts[system]!, cell, (t, o) => closedLoop(t, window, o));
        }
}

async function openPhase(suts: Record<System, SystemUnderTest>): Promise<void> {
  // Rates (records/s): a light load for everyone, then half of each system's own closed-loop
  // peak at 1 KB, and JetStream also at Daftka's (1 rec/req) half-peak rate — the same offered load.
  const peak = (s: System) =>
    Math.max(
      ...results.filter((c) => c.phase === 'closed' && c.system === s && c.size === 1024).map((c) => agg(c).msgPerS),
    );
  const plan: Array<[System, number]> = [
    ['daftka-1', 100],
    ['jetstream', 100],
    ['daftka-100', 1000],
  ];
  if (!QUICK) {
    const d1 = Math.round(peak('daftka-1') / 2);
    const d100 = Math.round(peak('daftka-100') / 2);
    const j = Math.round(peak('jetstream') / 2);
    if (Number.isFinite(d1) && d1 > 0) plan.push(['daftka-1', d1], ['jetstream', d1]);
    if (Number.isFinite(j) && j > 0) plan.push(['jetstream', j]);
    if (Number.isFinite(d100) && d100 > 0) plan.push(['daftka-100', Math.round(d100 / 100) * 100]);
  }
  const reps = QUICK ? 1 : Math.min(REPS, 2);
  for (let rep = 0; rep < reps; rep++)
    for (const [system, rate] of plan) {
      const reqRate = rate / RPR[system];
      const cell = cellFor({
        phase: 'open',
        system,
        fsync: system === 'jetstream' ? 'background' : 'always',
        size: 1024,
        window: 256,
        ratePerS: rate,
        partitions: 1,
      });
      await measure(suts[system], cell, (t, o) => openLoop(t, reqRate, 256, o), true);
    }
}

interface FailoverResult {
  system: string;
  killed: string;
  windowMs: number;
  baselineGapMs: number;
  acked: number;
  lost: number;
  duplicates: number;
  errors: number;
  errorSample: string;
}
const failovers: FailoverResult[] = [];

function outage(acks: Array<{ tMs: number }>, killAtMs: number): { windowMs: number; baselineGapMs: number } {
  const t = acks.map((a) => a.tMs).sort((a, b) => a - b);
  let lastBefore = -1;
  for (let i = 0; i < t.length; i++) if (t[i] <= killAtMs) lastBefore = i;
  let baseline = 0;
  for (let i = 1; i <= lastBefore; i++) baseline = Math.max(baseline, t[i] - t[i - 1]);
  if (lastBefore < 0 || lastBefore === t.length - 1) return { windowMs: Infinity, baselineGapMs: baseline };
  // The longest gap between consecutive acks from the last one before the kill on: answers in
  // flight at the kill may land just after it, the outage is the hole that follows.
  let gap = 0;
  for (let i = lastBefore + 1; i < t.length; i++) gap = Math.max(gap, t[i] - t[i - 1]);
  return { windowMs: gap, baselineGapMs: baseline };
}

const FAILOVER_WINDOW = 8;
const FAILOVER_PRE_MS = QUICK ? 2000 : 3000;
const FAILOVER_POST_MS = QUICK ? 6000 : 8000;

/** Copy a stack's logs somewhere that survives the clean-up, for a failover that went wrong. */
function keepEvidence(dir: string, why: string): string {
  const dest = join(process.env.BENCH_DIR ?? os.tmpdir(), `daftka-bench-evidence-${Date.now()}`);
  cpSync(join(dir, 'logs'), dest, { recursive: true });
  log(`${why}: logs kept in ${dest}`);
  return dest;
}

async function daftkaFailover(stack: DaftkaStack): Promise<void> {
  const reader = daftkaReader(stack.baseUrl, TOPIC);
  for (let rep = 0; rep < FAILOVER_REPS; rep++) {
    const run = ++runCounter;
    const target = new DaftkaTarget(stack.baseUrl, TOPIC, 1, FAILOVER_WINDOW, 15_000);
    const load = closedLoop(target, FAILOVER_WINDOW, {
      size: 1024,
      warmupMs: 0,
      measureMs: FAILOVER_PRE_MS + FAILOVER_POST_MS,
      run,
      retry: true,
      retryEveryMs: 10,
      recordAckTimes: true,
    });
    await sleep(FAILOVER_PRE_MS);
    // Asked right before the kill: under load a spurious election may have moved the leader.
    const leader = await stack.leaderOf(0);
    if (!leader) throw new Error('no Daftka leader to kill');
    const killAt = performance.now();
    await stack.killReplica(leader);
    const res = await load;
    target.close();
    const v = await verifyAgainst(res.acks, run, reader);
    totalVerified += v.acked;
    const o = outage(res.ackTimes, killAt);
    const evidence =
      !Number.isFinite(o.windowMs) || !verifyOk(v) ? keepEvidence(stack.dir, 'Daftka failover went wrong') : '';
    failovers.push({
      system: 'Daftka (fsync always)',
      killed: `replica ${leader} (partition leader)`,
      ...o,
      acked: v.acked,
      lost: v.missing + v.mismatched,
      duplicates: v.duplicates,
      errors: res.errors,
      errorSample: res.errorSamples.slice(0, 2).join('; ') + (evidence ? ` (logs: ${evidence})` : ''),
    });
    if (!verifyOk(v)) verifyFailures.push(`Daftka failover: ${JSON.stringify(v)}`);
    log(`failover Daftka: killed ${leader}, write outage ${fmt(o.windowMs)} ms, lost ${v.missing + v.mismatched}`);
    await stack.restartReplica(leader);
    await stack.waitReplicaReady(leader);
  }
}

async function jetStreamFailover(js: JetStreamCluster): Promise<void> {
  for (let rep = 0; rep < FAILOVER_REPS; rep++) {
    const admin = await js.connect();
    const jsm = await admin.jetstreamManager();
    const leader = await js.streamLeader(jsm, STREAM);
    if (!leader) throw new Error('no JetStream stream leader');
    // The publisher talks to a surviving server (as Daftka's gateway survives a replica kill).
    const nc = await js.connect(js.urls(leader.name), 'bench-failover');
    const run = ++runCounter;
    const target = new JetStreamTarget(nc, SUBJECT, 500);
    const load = closedLoop(target, FAILOVER_WINDOW, {
      size: 1024,
      warmupMs: 0,
      measureMs: FAILOVER_PRE_MS + FAILOVER_POST_MS,
      run,
      retry: true,
      retryEveryMs: 10,
      recordAckTimes: true,
    });
    await sleep(FAILOVER_PRE_MS);
    // Asked again right before the kill, like for Daftka.
    const victim = (await js.streamLeader(jsm, STREAM).catch(() => leader)) ?? leader;
    if (victim.name !== leader.name) log(`JetStream stream leader moved to ${victim.name} before the kill`);
    const killAt = performance.now();
    await js.kill(victim);
    const res = await load;
    const v = await verifyAgainst(res.acks, run, jetStreamReader(nc, STREAM));
    totalVerified += v.acked;
    const o = outage(res.ackTimes, killAt);
    failovers.push({
      system: 'JetStream R3',
      killed: `nats-server ${victim.name} (stream leader)`,
      ...o,
      acked: v.acked,
      lost: v.missing + v.mismatched,
      duplicates: v.duplicates,
      errors: res.errors,
      errorSample: res.errorSamples.slice(0, 2).join('; '),
    });
    if (!verifyOk(v)) verifyFailures.push(`JetStream failover: ${JSON.stringify(v)}`);
    log(
      `failover JetStream: killed ${victim.name}, write outage ${fmt(o.windowMs)} ms, lost ${v.missing + v.mismatched}`,
    );
    await nc.close();
    await admin.close();
    js.restart(victim);
    await js.waitStreamHealthy(STREAM, 120_000);
    const purger = await js.connect();
    await (await purger.jetstreamManager()).streams.purge(STREAM);
    await purger.close();
  }
}

async function scalingPhase(): Promise<void> {
  for (const partitions of SCALING) {
    log(`scaling: starting Daftka with ${partitions} partitions (${partitions * 3} replicas)`);
    const stack = await DaftkaStack.start({ topic: TOPIC, partitions, fsync: 'always' });
    try {
      const sut = daftkaSut(stack);
      for (let rep = 0; rep < REPS; rep++) {
        const cell = cellFor({
          phase: 'scaling',
          system: 'daftka-100',
          fsync: 'always',
          size: 1024,
          window: 64,
          partitions,
        });
        await measure(sut, cell, (t, o) => closedLoop(t, 64, o));
      }
    } finally {
      await stack.stop();
    }
  }
}

interface ProfileLoad {
  load: string;
  msgPerS: number;
  /** Per process, from /proc/<pid>/task: % of one core. */
  threads: Array<{ role: string; mainPct: number; busiestOtherPct: number; restPct: number }>;
  /** Per profiled thread: the V8 profile restricted to the measured window. */
  profiles: Array<{ role: string; thread: string; summary: ProfileSummary }>;
}
let profileReport: ProfileLoad[] | null = null;

async function profilePhase(): Promise<void> {
  const profDir = tempDirRemovedAtExit(join(process.env.BENCH_DIR ?? os.tmpdir(), `daftka-bench-prof-${process.pid}`));
  mkdirSync(profDir, { recursive: true });
  const flags = ['--cpu-prof', '--cpu-prof-dir', profDir];
  log('profile: Daftka with --cpu-prof on the gateway and the replicas');
  const stack = await DaftkaStack.start({
    topic: TOPIC,
    partitions: 1,
    fsync: 'always',
    gatewayNodeArgs: flags,
    replicaNodeArgs: flags,
  });
  const loads: ProfileLoad[] = [];
  const windows: Array<{ fromUs: number; toUs: number }> = [];
  const pidRole = new Map<number, string>();
  try {
    const leader = await stack.leaderOf(0);
    for (const p of stack.procs())
      pidRole.set(
        p.pid,
        p.name === 'gateway' ? 'gateway' : p.name === leader ? 'leader replica' : `follower ${p.name}`,
      );
    for (const [system, window] of [
      ['daftka-1', 64],
      ['daftka-100', 64],
    ] as Array<[System, number]>) {
      const procs = stack.procs().filter((p) => p.name !== 'nats-server');
      let t0: Array<Map<number, number>> = [];
      let t1: Array<Map<number, number>> = [];
      const w = { fromUs: 0, toUs: 0 };
      const target = new DaftkaTarget(stack.baseUrl, TOPIC, RPR[system], window);
      const res = await closedLoop(target, window, {
        size: 1024,
        warmupMs: WARMUP_MS,
        measureMs: MEASURE_MS * 2,
        run: ++runCounter,
        onWindowStart: () => {
          t0 = procs.map((p) => threadCpuMs(p.pid));
          w.fromUs = monotonicUs();
        },
        onWindowEnd: () => {
          t1 = procs.map((p) => threadCpuMs(p.pid));
          w.toUs = monotonicUs();
        },
      });
      target.close();
      windows.push(w);
      const load: ProfileLoad = {
        load: `${LABEL[system]}, in-flight ${window}, 1 KB`,
        msgPerS: res.records / (res.windowMs / 1000),
        threads: [],
        profiles: [],
      };
      procs.forEach((p, i) => {
        const deltas = [...t1[i]].map(([tid, v]) => [tid, v - (t0[i].get(tid) ?? v)] as [number, number]);
        const main = deltas.find(([tid]) => tid === p.pid)?.[1] ?? 0;
        const others = deltas.filter(([tid]) => tid !== p.pid).sort((a, b) => b[1] - a[1]);
        load.threads.push({
          role: pidRole.get(p.pid) ?? p.name,
          mainPct: (main / res.windowMs) * 100,
          busiestOtherPct: ((others[0]?.[1] ?? 0) / res.windowMs) * 100,
          restPct: (others.slice(1).reduce((a, [, v]) => a + v, 0) / res.windowMs) * 100,
        });
      });
      loads.push(load);
      log(`profile load ${load.load}: ${fmt(load.msgPerS)} msg/s`);
    }
  } finally {
    await stack.stop({ graceful: true, keep: true }); // SIGTERM: the processes write their profiles on exit
  }
  for (const f of readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile'))) {
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile — thread 0 is the main thread.
    const parts = f.split('.');
    const role = pidRole.get(Number(parts[3]));
    if (!role) continue;
    const thread = Number(parts[4]);
    const summaries = windows.map((w) => summarizeProfile(join(profDir, f), w.fromUs, w.toUs));
    const cats = new Set(summaries.flatMap((x) => x.byCategory.map(([k]) => k)));
    const label =
      thread === 0
        ? 'main'
        : cats.has('rocksdb binding') || cats.has('replica: storage')
          ? 'storage worker'
          : `worker ${thread} (module loader)`;
    summaries.forEach((summary, i) => loads[i].profiles.push({ role, thread: label, summary }));
  }
  if (process.env.BENCH_KEEP !== '1') {
    rmSync(profDir, { recursive: true, force: true });
    rmSync(stack.dir, { recursive: true, force: true });
  } else log(`profiles kept in ${profDir}`);
  profileReport = loads;
}

// ---------------------------------------------------------------- report

function printReport(facts: Record<string, string>): void {
  const out: string[] = [];
  const p = (s = '') => out.push(s);
  p(`\n## Daftka vs JetStream — ${QUICK ? 'quick' : 'full'} run`);
  p();
  p(table(['fact', 'value'], Object.entries(facts), ['l', 'l']));

  const closedCells = results.filter((c) => c.phase === 'closed');
  for (const size of SIZES) {
    const cells = closedCells.filter((c) => c.size === size);
    if (cells.length === 0) continue;
    p(`\n### Closed loop, ${size} B records (ack latency; median of ${REPS} repeats, spread = ±half range)`);
    p();
    p(
      table(
        [
          'system',
          'in-flight',
          'msg/s',
          '±%',
          'MB/s',
          'p50 ms',
          'p99 ms',
          'p99.9 ms',
          'max ms',
          'srv CPU µs/msg',
          'client CPU µs/msg',
          'errors',
          'leader changes',
          'verified',
        ],
        cells
          .sort((a, b) => a.window - b.window || a.system.localeCompare(b.system))
          .map((c) => {
            const a = agg(c);
            return [
              LABEL[c.system],
              String(c.window),
              fmt(a.msgPerS, 0),
              fmt(a.spread, 0),
              fmt(a.mbPerS),
              fmt(a.p50),
              fmt(a.p99),
              fmt(a.p999),
              fmt(a.max),
              fmt(a.srvCpu, 0),
              fmt(a.cliCpu, 0),
              String(a.errors),
              String(a.leaderChanges),
              a.verified ? 'yes' : 'NO',
            ];
          }),
      ),
    );
  }

  const ratioRows: string[][] = [];
  for (const size of SIZES)
    for (const window of WINDOWS) {
      const j = findCell({ phase: 'closed', system: 'jetstream', size, window });
      if (!j) continue;
      const ja = agg(j);
      const d1 = findCell({ phase: 'closed', system: 'daftka-1', size, window });
      const d100 = findCell({ phase: 'closed', system: 'daftka-100', size, window });
      const di1 = findCell({ phase: 'interval', system: 'daftka-1', size, window });
      const di100 = findCell({ phase: 'interval', system: 'daftka-100', size, window });
      const ji = findCell({ phase: 'interval', system: 'jetstream', size, window });
      const jia = ji ? agg(ji) : ja;
      ratioRows.push([
        `${size} B`,
        String(window),
        fmt(ja.msgPerS, 0),
        d1 ? fmtRatio(agg(d1).msgPerS / ja.msgPerS) : '–',
        d100 ? fmtRatio(agg(d100).msgPerS / ja.msgPerS) : 'cut',
        d1 ? fmtRatio(agg(d1).p99 / ja.p99) : '–',
        di1 ? fmtRatio(agg(di1).msgPerS / jia.msgPerS) : '–',
        di100 ? fmtRatio(agg(di100).msgPerS / jia.msgPerS) : '–',
        d1 ? fmtRatio(agg(d1).srvCpu / ja.srvCpu) : '–',
      ]);
    }
  if (ratioRows.length > 0) {
    p('\n### Ratios Daftka / JetStream (same size, same in-flight window; msg/s: higher is better for Daftka)');
    p();
    p(
      table(
        [
          'size',
          'in-flight',
          'JetStream msg/s',
          '1 rec/req msg/s',
          '100 rec/req msg/s',
          '1 rec/req p99 (lower better)',
          'interval 1 rec/req',
          'interval 100 rec/req',
          '1 rec/req srv CPU/msg',
        ],
        ratioRows,
      ),
    );
    p(
      '\nDurability: Daftka acks after a quorum has fsynced (fsync=always); "interval" rows run Daftka with ' +
        'DAFTKA_FSYNC=interval (100 ms background sync) — like JetStream, whose nats-server 2.9 file store acks ' +
        'after the quorum has the write in the page cache and syncs in the background (no sync-always option in 2.9).',
    );
  }

  const intervalCells = results.filter((c) => c.phase === 'interval');
  if (intervalCells.length > 0) {
    p('\n### Daftka with fsync=interval (like-for-like durability with JetStream), 1 KB, closed loop');
    p();
    p(
      table(
        [
          'system',
          'in-flight',
          'msg/s',
          '±%',
          'p50 ms',
          'p99 ms',
          'p99.9 ms',
          'srv CPU µs/msg',
          'errors',
          'leader changes',
          'vs fsync=always',
        ],
        intervalCells
          .sort((a, b) => a.window - b.window || a.system.localeCompare(b.system))
          .map((c) => {
            const a = agg(c);
            const always = findCell({ phase: 'closed', system: c.system, size: c.size, window: c.window });
            return [
              `${LABEL[c.system]}${c.system === 'jetstream' ? '' : ' (interval)'}`,
              String(c.window),
              fmt(a.msgPerS, 0),
              fmt(a.spread, 0),
              fmt(a.p50),
              fmt(a.p99),
              fmt(a.p999),
              fmt(a.srvCpu, 0),
              String(a.errors),
              String(a.leaderChanges),
              always && c.system !== 'jetstream' ? fmtRatio(a.msgPerS / agg(always).msgPerS) : '',
            ];
          }),
      ),
    );
  }

  const cpuCells = closedCells.filter((c) => c.size === 1024);
  if (cpuCells.length > 0) {
    p('\n### CPU per process, 1 KB closed loop (% of one core during the window; median of repeats)');
    p();
    p(
      table(
        [
          'system',
          'in-flight',
          'msg/s',
          'gateway',
          'leader replica',
          'follower replicas (2)',
          'control nats',
          'JS stream leader',
          'JS followers (2)',
          'client (bench)',
        ],
        cpuCells.map((c) => {
          const a = agg(c);
          const cli = median(c.reps.map((r) => (r.clientCpuUsPerMsg * r.msgPerS) / 1e4));
          return [
            LABEL[c.system],
            String(c.window),
            fmt(a.msgPerS, 0),
            fmt(a.cpuPct('gateway'), 0),
            fmt(a.cpuPct('leader replica'), 0),
            fmt(a.cpuPct('follower replicas'), 0),
            fmt(a.cpuPct('control nats'), 1),
            fmt(a.cpuPct('stream leader'), 0),
            fmt(a.cpuPct('followers'), 0),
            fmt(cli, 0),
          ];
        }),
      ),
    );
  }

  const openCells = results.filter((c) => c.phase === 'open');
  if (openCells.length > 0) {
    p(
      '\n### Open loop, 1 KB, fixed rate (latency from the intended send time; e2e = consumer receive − intended send)',
    );
    p();
    p(
      table(
        [
          'system',
          'rate rec/s',
          'achieved',
          'ack p50',
          'ack p99',
          'ack p99.9',
          'ack max',
          'e2e p50',
          'e2e p99',
          'e2e p99.9',
          'e2e max',
          'verified',
        ],
        openCells.map((c) => {
          const a = agg(c);
          return [
            LABEL[c.system],
            fmt(c.ratePerS ?? NaN, 0),
            fmt(a.msgPerS, 0),
            fmt(a.p50),
            fmt(a.p99),
            fmt(a.p999),
            fmt(a.max),
            fmt(a.e2e?.p50Ms ?? NaN),
            fmt(a.e2e?.p99Ms ?? NaN),
            fmt(a.e2e?.p999Ms ?? NaN),
            fmt(a.e2e?.maxMs ?? NaN),
            a.verified ? 'yes' : 'NO',
          ];
        }),
      ),
    );
    p('(latencies in ms)');
  }

  if (failovers.length > 0) {
    p(
      `\n### Failover: kill -9 of the leader under load (1 KB, 1 rec/req, ${FAILOVER_WINDOW} in flight, retries every 10 ms with an idempotency key / Nats-Msg-Id)`,
    );
    p();
    p(
      table(
        [
          'system',
          'killed',
          'write outage ms',
          'largest gap before kill ms',
          'acked',
          'lost acked',
          'duplicates',
          'failed attempts',
        ],
        failovers.map((f) => [
          f.system,
          f.killed,
          Number.isFinite(f.windowMs) ? fmt(f.windowMs, 0) : 'no recovery',
          fmt(f.baselineGapMs, 0),
          String(f.acked),
          String(f.lost),
          String(f.duplicates),
          String(f.errors),
        ]),
        ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    for (const s of new Set(failovers.map((f) => f.system)))
      p(
        `${s}: median outage ${fmt(median(failovers.filter((f) => f.system === s).map((f) => f.windowMs)), 0)} ms; errors seen: ${failovers.find((f) => f.system === s)?.errorSample || 'none'}`,
      );
  }

  const scaling = results.filter((c) => c.phase === 'scaling');
  if (scaling.length > 0) {
    p('\n### Scaling: Daftka partitions on this machine (100 rec/req, in-flight 64, 1 KB, fsync always)');
    p();
    const base = agg(scaling[0]).msgPerS;
    p(
      table(
        [
          'partitions',
          'replica processes',
          'msg/s',
          '±%',
          'per partition',
          'vs 1 partition',
          'MB/s',
          'p99 ms',
          'srv CPU µs/msg',
          'errors',
          'leader changes',
        ],
        scaling.map((c) => {
          const a = agg(c);
          return [
            String(c.partitions),
            String(c.partitions * 3),
            fmt(a.msgPerS, 0),
            fmt(a.spread, 0),
            fmt(a.msgPerS / c.partitions, 0),
            fmtRatio(a.msgPerS / base),
            fmt(a.mbPerS),
            fmt(a.p99),
            fmt(a.srvCpu, 1),
            String(a.errors),
            String(a.leaderChanges),
          ];
        }),
      ),
    );
  }

  if (profileReport) {
    p('\n### Profile: where the CPU goes (node --cpu-prof on the gateway and the replicas, 1 partition, fsync always)');
    for (const load of profileReport) {
      p(`\n#### ${load.load}: ${fmt(load.msgPerS, 0)} msg/s under the profiler`);
      p(
        "\nCPU received per process and thread (% of one core, /proc/<pid>/task; a replica's busiest other thread is its storage worker):",
      );
      p();
      p(
        table(
          ['process', 'main thread', 'busiest other thread', 'other threads (GC, libuv, RocksDB)'],
          load.threads.map((t) => [t.role, fmt(t.mainPct, 0), fmt(t.busiestOtherPct, 0), fmt(t.restPct, 0)]),
        ),
      );
      const shown = load.profiles
        .filter((x) => x.summary.busyMs >= 20 && !x.thread.includes('module loader'))
        .filter(
          (x) =>
            !x.role.startsWith('follower') || x.role === load.profiles.find((y) => y.role.startsWith('follower'))?.role,
        )
        .sort((a, b) => b.summary.busyMs - a.summary.busyMs);
      p(
        '\nProfiled threads: "not idle" is the share of wall time a thread was running *or waiting for a CPU* ' +
          '(V8 samples by wall clock) — compare it with the CPU it received above.',
      );
      p();
      p(
        table(
          ['thread', 'not idle, % of wall', "top categories (self time, % of the thread's non-idle time)"],
          shown.map((x) => [
            `${x.role} — ${x.thread}`,
            fmt((x.summary.busyMs / Math.max(1, x.summary.wallMs)) * 100, 0),
            x.summary.byCategory
              .slice(0, 5)
              .map(([k, v]) => `${k} ${fmt((v / x.summary.busyMs) * 100, 0)}%`)
              .join('; '),
          ]),
          ['l', 'r', 'l'],
        ),
      );
      for (const x of shown.filter((y) => y.thread === 'main' && !y.role.startsWith('follower'))) {
        p(`\nHottest functions, ${x.role} main thread (self ms in the window):`);
        p();
        p(
          table(
            ['function', 'ms'],
            x.summary.topFunctions.slice(0, 10).map(([k, v]) => [k, fmt(v, 0)]),
            ['l', 'r'],
          ),
        );
      }
    }
  }

  if (streamReport) {
    const sr = streamReport;
    const js = WINDOWS.map((w) => findCell({ phase: 'closed', system: 'jetstream', size: 1024, window: w }))
      .filter((c): c is CellResult => c !== undefined)
      .map((c) => agg(c).msgPerS);
    const best = js.length > 0 ? Math.max(...js) : NaN;
    p(`\n### Streaming produce: one connection, one 1 KB record per NDJSON line`);
    p('');
    p(
      table(
        ['msg/s', 'MB/s', 'vs best JetStream window', 'srv CPU µs/msg', 'errors', 'verified'],
        [
          [
            fmt(sr.msgPerS, 0),
            fmt(sr.mbPerS),
            Number.isFinite(best) ? fmtRatio(sr.msgPerS / best) : '–',
            fmt(sr.serverCpuUsPerMsg, 0),
            JSON.stringify(sr.errors),
            String(sr.verified),
          ],
        ],
      ),
    );
    p(
      `\nCPU % of one core by role: ${Object.entries(sr.cpuPct)
        .map(([k, v]) => `${k} ${fmt(v, 0)}`)
        .join(', ')}`,
    );
  }

  p(`\n### Verification`);
  p(
    verifyFailures.length === 0
      ? `every acknowledged record (${totalVerified.toLocaleString('en-US')} in all runs) was read back at its acknowledged position, with its content, in per-producer order`
      : `FAILED:\n${verifyFailures.join('\n')}`,
  );
  console.log(out.join('\n'));
}

function goals(): string {
  const lines: string[] = ['\n### Goals'];
  const r1: string[] = [];
  for (const w of WINDOWS) {
    const d = findCell({ phase: 'closed', system: 'daftka-1', size: 1024, window: w });
    const d100 = findCell({ phase: 'closed', system: 'daftka-100', size: 1024, window: w });
    const j = findCell({ phase: 'closed', system: 'jetstream', size: 1024, window: w });
    if (d && j) r1.push(`${w}: ${fmtRatio(agg(d).msgPerS / agg(j).msgPerS)}`);
    if (d100 && j) r1.push(`(100 rec/req ${fmtRatio(agg(d100).msgPerS / agg(j).msgPerS)})`);
  }
  lines.push(`- 1 rec/req ≥ 1.0× and 100 rec/req ≥ 5× JetStream msg/s (1 KB, by in-flight): ${r1.join(' ') || 'n/a'}`);
  if (streamReport) {
    const js = WINDOWS.map((w) => findCell({ phase: 'closed', system: 'jetstream', size: 1024, window: w }))
      .filter((c): c is CellResult => c !== undefined)
      .map((c) => agg(c).msgPerS);
    if (js.length > 0)
      lines.push(
        `- streaming produce ≥ 5× JetStream from one connection: ${fmtRatio(streamReport.msgPerS / Math.max(...js))} of JetStream's best window`,
      );
  }
  const d1 = findCell({ phase: 'closed', system: 'daftka-1', size: 1024, window: 1 });
  if (d1) lines.push(`- p99 ≤ 3 ms at 1 in flight (1 KB): ${fmt(agg(d1).p99)} ms`);
  const df = failovers.filter((f) => f.system.startsWith('Daftka'));
  if (df.length) lines.push(`- failover window ≤ 1 s: Daftka median ${fmt(median(df.map((f) => f.windowMs)), 0)} ms`);
  return lines.join('\n');
}

// ---------------------------------------------------------------- streaming produce

interface StreamReport {
  msgPerS: number;
  mbPerS: number;
  serverCpuUsPerMsg: number;
  cpuPct: Record<string, number>;
  errors: Record<string, number>;
  verified: number;
}
let streamReport: StreamReport | null = null;

/** One connection streaming one 1 KB record per line; the written records read back. */
async function streamPhase(stack: DaftkaStack, sut: SystemUnderTest): Promise<void> {
  const roles = await sut.roles();
  let c0: number[] = [];
  let c1: number[] = [];
  const run = ++runCounter;
  const r = await streamLoad({
    baseUrl: stack.baseUrl,
    topic: TOPIC,
    valueBytes: 1024,
    run,
    warmupMs: WARMUP_MS,
    durationMs: MEASURE_MS * 2,
    onWindowStart: () => (c0 = roles.map((x) => cpuMs(x.pid))),
    onWindowEnd: () => (c1 = roles.map((x) => cpuMs(x.pid))),
  });
  const msgPerS = r.okInWindow / (r.windowMs / 1000);
  const cpuPct: Record<string, number> = {};
  let serverMs = 0;
  roles.forEach((x, i) => {
    const d = c1[i] - c0[i];
    serverMs += d;
    cpuPct[x.role] = (cpuPct[x.role] ?? 0) + (d / r.windowMs) * 100;
  });
  // Read back: every record answered `written` is at its partition and offset, with its value.
  const reader = daftkaReader(stack.baseUrl, TOPIC);
  let verified = 0;
  for (const p of new Set(r.written.map((w) => w.partition))) {
    const mine = r.written.filter((w) => w.partition === p);
    const got = new Map<number, string | null>();
    await reader(p, Math.min(...mine.map((w) => w.offset)), Math.max(...mine.map((w) => w.offset)), (offset, value) =>
      got.set(offset, value),
    );
    for (const w of mine) {
      if (got.get(w.offset) !== w.value) {
        verifyFailures.push(`stream: partition ${p} offset ${w.offset} does not hold the record answered there`);
        break;
      }
      verified++;
    }
  }
  totalVerified += verified;
  streamReport = {
    msgPerS,
    mbPerS: (msgPerS * 1024) / 1e6,
    serverCpuUsPerMsg: (serverMs * 1000) / Math.max(1, r.okInWindow),
    cpuPct,
    errors: r.errors,
    verified,
  };
  log(`stream: ${fmt(msgPerS)} msg/s on one connection, errors ${JSON.stringify(r.errors)}, verified ${verified}`);
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const t0 = Date.now();
  const natsVersion = spawnSync('nats-server', ['--version'], { encoding: 'utf8' }).stdout.trim();
  const facts: Record<string, string> = {
    command: `npx tsx bench/compare.bench.ts${QUICK ? ' --quick' : ''}`,
    date: new Date().toISOString(),
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    kernel: os.release(),
    node: process.version,
    'nats-server': natsVersion,
    'load average at start': loadAverage(),
  };
  log(
    `compare: ${QUICK ? 'quick' : 'full'} mode, phases ${PHASES.join(',')}, load average ${facts['load average at start']}`,
  );

  let js: JetStreamCluster | null = null;
  let stack: DaftkaStack | null = null;
  let nc: NatsConnection | null = null;
  const writeJson = () => {
    if (!process.env.BENCH_OUT) return;
    writeFileSync(
      process.env.BENCH_OUT,
      JSON.stringify(
        {
          facts,
          cells: results.map((c) => ({
            ...c,
            ackHist: summarize(c.ackHist),
            e2eHist: c.e2eHist ? summarize(c.e2eHist) : undefined,
            agg: { ...agg(c), cpuPct: undefined },
          })),
          failovers,
          profile: profileReport,
          verifyFailures,
          phaseErrors,
        },
        null,
        1,
      ),
    );
  };
  // A phase that fails or hangs is reported and skipped; the others still run and print.
  const guarded = async (name: string, minutes: number, fn: () => Promise<void>): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        fn(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${name}: no result within ${minutes} min`)), minutes * 60_000);
        }),
      ]);
      return true;
    } catch (err) {
      phaseErrors.push(`${name}: ${(err as Error)?.stack ?? String(err)}`);
      log(`PHASE FAILED ${name}: ${(err as Error)?.message ?? String(err)}`);
      return false;
    } finally {
      clearTimeout(timer);
      writeJson();
    }
  };
  try {
    if (['closed', 'stream', 'open', 'interval', 'failover'].some(phase))
      await guarded('start JetStream', 3, async () => {
        js = await JetStreamCluster.start();
        await js.createStream(STREAM, 'bench.>');
        nc = await js.connect();
        log('JetStream cluster up (3 servers, R3 file stream)');
      });
    if (['closed', 'stream', 'open', 'failover'].some(phase) && js && nc) {
      const jsNow: JetStreamCluster = js;
      const ncNow: NatsConnection = nc;
      if (
        await guarded('start Daftka', 3, async () => {
          stack = await DaftkaStack.start({ topic: TOPIC, partitions: 1, fsync: 'always' });
          log('Daftka up (1 partition × 3 replicas, fsync always)');
        })
      ) {
        const s: DaftkaStack = stack!;
        const suts = {
          'daftka-1': daftkaSut(s),
          'daftka-100': daftkaSut(s),
          jetstream: await jetStreamSut(jsNow, ncNow),
        };
        if (phase('closed'))
          await guarded('closed', 20, () =>
            closedPhase('closed', suts, SIZES, WINDOWS, (x) => (x === 'jetstream' ? 'background' : 'always')),
          );
        if (phase('stream')) await guarded('stream', 5, () => streamPhase(s, suts['daftka-1']));
        if (phase('open')) await guarded('open', 6, () => openPhase(suts));
        if (phase('failover')) await guarded('Daftka failover', 6, () => daftkaFailover(s));
        await s.stop();
        stack = null;
      }
    }
    if (phase('interval') && js && nc) {
      const jsNow: JetStreamCluster = js;
      const ncNow: NatsConnection = nc;
      await guarded('interval', 10, async () => {
        const s = await DaftkaStack.start({ topic: TOPIC, partitions: 1, fsync: 'interval' });
        stack = s;
        log('Daftka up with fsync=interval');
        const d = daftkaSut(s);
        const suts: Partial<Record<System, SystemUnderTest>> = { 'daftka-1': d, 'daftka-100': d };
        // Full mode re-measures JetStream next to these rows so the ratios compare adjacent runs.
        if (!QUICK) suts.jetstream = await jetStreamSut(jsNow, ncNow);
        await closedPhase('interval', suts, [1024], WINDOWS, (x) => (x === 'jetstream' ? 'background' : 'interval'));
        await s.stop();
        stack = null;
      });
      if (stack) {
        await (stack as DaftkaStack).stop();
        stack = null;
      }
    }
    if (js) {
      const jsNow: JetStreamCluster = js;
      await (nc as NatsConnection | null)?.close().catch(() => undefined);
      nc = null;
      if (phase('failover')) await guarded('JetStream failover', 6, () => jetStreamFailover(jsNow));
      await jsNow.stop();
      js = null;
    }
    if (phase('scaling')) await guarded('scaling', 12, () => scalingPhase());
    if (phase('profile')) await guarded('profile', 5, () => profilePhase());
  } finally {
    await (nc as NatsConnection | null)?.close().catch(() => undefined);
    if (stack) await (stack as DaftkaStack).stop();
    if (js) await (js as JetStreamCluster).stop();
  }
  facts['load average at end'] = loadAverage();
  facts['wall time'] = `${Math.round((Date.now() - t0) / 1000)} s`;
  printReport(facts);
  console.log(goals());
  if (phaseErrors.length > 0) console.log(`\n### Phases that failed\n${phaseErrors.join('\n')}`);
  writeJson();
  process.exit(verifyFailures.length > 0 || phaseErrors.length > 0 ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/**
 * Leader-loss drill (scripts/drill-leader-loss): local mode in a temp dir under produce load through
 * the gateway; SIGKILL the leader of partition 0; measure how long until produces to it succeed
 * again; scrape every replica and the gateway each second throughout, and replay those samples
 * through the real alert rules with promtool to see which alert expressions turned true and which
 * alerts would have fired. Writes a markdown report (docs/operations/drills/<date>-leader-loss.md).
 *
 *   scripts/drill-leader-loss [--out FILE] [--before-s 15] [--after-s 45]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dump } from 'js-yaml';
import { ALERTS } from '../sre/alerts';
import { JOBS } from '../sre/config';
import { ruleGroups, type AlertingRule } from '../sre/rules';
import { LocalStack, metricValue } from '../test/helpers/local-stack';

const TOPIC = 'drill';
const PARTITIONS = 3;
const NAMESPACE = 'drill';

interface Args {
  out: string;
  beforeS: number;
  afterS: number;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string, dflt: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : dflt;
  };
  const date = new Date().toISOString().slice(0, 10);
  return {
    out: path.resolve(get('--out', path.join('docs', 'operations', 'drills', `${date}-leader-loss.md`))),
    beforeS: Number(get('--before-s', '15')),
    afterS: Number(get('--after-s', '45')),
  };
}

interface ProduceResult {
  /** ms since the drill's t0 when the request was sent, and answered. */
  sentMs: number;
  doneMs: number;
  partition: number;
  status: number;
  code?: string;
}

/** One scrape round: per target, the exposition text or null when the target did not answer. */
interface Scrape {
  tMs: number;
  targets: Record<string, { job: string; text: string | null }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** Sample lines of an exposition: series selector (with target labels added) → value. */
function samples(text: string, target: Record<string, string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const p of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
    Object.assign(labels, target);
    const sel = `${m[1]}{${Object.entries(labels)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}="${v}"`)
      .join(', ')}}`;
    out.set(sel, Number(m[3]));
  }
  return out;
}

function promtool(): string {
  const p = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).stdout.trim();
  if (!p) throw new Error('promtool is not installed: scripts/ensure-deps.sh --k8s installs it (Debian prometheus)');
  return p;
}

/**
 * Replays the scrapes through the alert rules with promtool: each alert with `for: 0s`, evaluated
 * every second, expecting nothing; promtool's "got" lists what was true. Returns alert → seconds
 * (since t0) at which its expression held, with the labels of the first hit.
 */
function replayAlerts(
  scrapes: Scrape[],
  t0Ms: number,
  dir: string,
): Map<string, { seconds: number[]; labels: string }> {
  // Series: every sample seen, with `_` where the target was down or the series absent.
  const series = new Map<string, Array<number | null>>();
  scrapes.forEach((s, i) => {
    for (const [instance, t] of Object.entries(s.targets)) {
      const target = { job: t.job, instance, namespace: NAMESPACE, pod: instance.replace(/^replica:/, '') };
      const upSel = `up{instance="${instance}", job="${t.job}", namespace="${NAMESPACE}", pod="${target.pod}"}`;
      if (!series.has(upSel)) series.set(upSel, Array(scrapes.length).fill(null));
      series.get(upSel)![i] = t.text === null ? 0 : 1;
      if (t.text === null) continue;
      for (const [sel, v] of samples(t.text, target)) {
        if (!series.has(sel)) series.set(sel, Array(scrapes.length).fill(null));
        series.get(sel)![i] = v;
      }
    }
  });
  const rules = ruleGroups().map((g) => ({
    ...g,
    interval: '1s',
    rules: g.rules.map((r) => ('alert' in r ? { ...r, for: '0s' } : r)),
  }));
  fs.writeFileSync(path.join(dir, 'rules.yaml'), dump({ groups: rules }, { lineWidth: -1 }));
  const firstS = Math.round((scrapes[0].tMs - t0Ms) / 1000);
  const evalTimes = scrapes.map((_, i) => i);
  const test = {
    rule_files: ['rules.yaml'],
    evaluation_interval: '1s',
    tests: [
      {
        interval: '1s',
        input_series: [...series].map(([sel, vs]) => ({
          series: sel,
          values: vs
            .map((v) => (v === null ? '_' : Number.isFinite(v) ? String(v) : v > 0 ? 'Inf' : v < 0 ? '-Inf' : 'NaN'))
            .join(' '),
        })),
        alert_rule_test: ALERTS.flatMap((a) =>
          evalTimes.map((i) => ({ eval_time: `${i}s`, alertname: a.alert, exp_alerts: [] })),
        ),
      },
    ],
  };
  fs.writeFileSync(path.join(dir, 'replay.test.yaml'), dump(test, { lineWidth: -1 }));
  const res = spawnSync(promtool(), ['test', 'rules', 'replay.test.yaml'], {
    cwd: dir,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const out = res.stdout + res.stderr;
  fs.writeFileSync(path.join(dir, 'promtool.out'), out);
  const hits = new Map<string, { seconds: number[]; labels: string }>();
  // promtool prints one block per failed expectation: "alertname: X, time: Ns," … "Labels:{…}".
  for (const block of out.split(/\n\s*alertname: /).slice(1)) {
    const m = /^(\w+), time: (\d+)s/.exec(block);
    if (!m) continue;
    const labels = /Labels:(\{[^}]*\})/.exec(block)?.[1] ?? '';
    const h = hits.get(m[1]) ?? { seconds: [], labels };
    h.seconds.push(firstS + Number(m[2]));
    hits.set(m[1], h);
  }
  if (res.status !== 0 && hits.size === 0) throw new Error(`promtool failed:\n${out.slice(0, 3000)}`);
  return hits;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'daftka-drill-'));
  const log = (msg: string) => process.stdout.write(`[drill ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
  log(`starting local mode: topic ${TOPIC}, ${PARTITIONS} partitions × RF 3 (temp data dir)`);
  const stack = await LocalStack.start({ topics: [{ name: TOPIC, partitions: PARTITIONS, replicationFactor: 3 }] });
  const t0 = Date.now();
  const now = () => Date.now() - t0;
  const results: ProduceResult[] = [];
  const scrapes: Scrape[] = [];
  let stopping = false;
  let seq = 0;

  // Produce load: one closed-loop producer per partition, explicit partition, idempotency keys.
  const producer = async (partition: number) => {
    while (!stopping) {
      const sentMs = now();
      const key = `drill-${partition}-${seq++}`;
      let status = 0;
      let code: string | undefined;
      try {
        const res = await stack.http<{ code?: string }>('POST', `/v1/topics/${TOPIC}/records`, {
          body: { records: [{ partition, value: `v-${key}` }] },
          headers: { 'idempotency-key': key },
          timeoutMs: 10_000,
        });
        status = res.status;
        code = res.status >= 400 ? res.body?.code : undefined;
      } catch (err) {
        code = (err as Error).name;
      }
      results.push({ sentMs, doneMs: now(), partition, status, code });
      if (status !== 200) await sleep(50);
    }
  };
  // Scrapes: every replica's http port and the gateway, each second.
  const scraper = async () => {
    while (!stopping) {
      const tMs = Date.now();
      const targets: Scrape['targets'] = {};
      const fetchText = async (url: string) => {
        try {
          const r = await fetch(url, { signal: AbortSignal.timeout(800) });
          return r.ok ? await r.text() : null;
        } catch {
          return null;
        }
      };
      await Promise.all([
        ...stack.replicas().map(async (r) => {
          targets[`replica:${r.name}`] = {
            job: JOBS.replica,
            text: await fetchText(`http://127.0.0.1:${r.httpPort}/metrics`),
          };
        }),
        (async () => {
          targets['gateway:0'] = { job: JOBS.gateway, text: await fetchText(`${stack.url}/metrics`) };
        })(),
      ]);
      scrapes.push({ tMs, targets });
      await sleep(Math.max(0, 1000 - (Date.now() - tMs)));
    }
  };

  const loops = [...Array.from({ length: PARTITIONS }, (_, p) => producer(p)), scraper()];
  try {
    log(`steady load for ${args.beforeS} s`);
    await sleep(args.beforeS * 1000);
    const victim = await stack.waitForLeader(TOPIC, 0);
    const before = scrapes[scrapes.length - 1];
    const killMs = now();
    stack.kill(victim.name, 'SIGKILL');
    log(
      `SIGKILL ${victim.name} (leader of ${TOPIC}/0, term ${victim.term}, pid ${victim.pid}) at t=${(killMs / 1000).toFixed(3)} s`,
    );
    const successor = await stack.waitForLeader(TOPIC, 0, { not: victim.name, timeoutMs: 60_000 });
    const electedMs = now();
    log(`new leader ${successor.name} (term ${successor.term}) seen at t=${(electedMs / 1000).toFixed(3)} s`);
    await sleep(args.afterS * 1000);
    stopping = true;
    await Promise.all(loops);
    const after = scrapes[scrapes.length - 1];
    const victimBack = stack.pid(victim.name) !== undefined;
    log('load stopped; replaying the scrapes through the alert rules with promtool');
    const hits = replayAlerts(scrapes, t0, work);

    // ---- measurements ----
    const p0 = results.filter((r) => r.partition === 0);
    const firstOkAfter = p0.find((r) => r.sentMs >= killMs && r.status === 200);
    const lastOkBefore = [...p0].reverse().find((r) => r.doneMs <= killMs && r.status === 200);
    const failedAround = p0.filter((r) => r.status !== 200 && r.doneMs >= killMs);
    const okAfterKill = p0.filter((r) => r.status === 200 && r.doneMs >= killMs);
    const firstOkDoneAfterKill = okAfterKill.length > 0 ? Math.min(...okAfterKill.map((r) => r.doneMs)) : NaN;
    // Recovery: from the kill to the answer of the first produce *sent after the kill* that succeeded.
    // (Requests in flight at the kill may still be answered 200 a moment later: they were committed
    // before the kill, or their answer was already on its way.)
    const recoveryMs = firstOkAfter ? firstOkAfter.doneMs - killMs : NaN;
    const byCode = new Map<string, number>();
    for (const r of failedAround)
      byCode.set(`${r.status} ${r.code ?? ''}`.trim(), (byCode.get(`${r.status} ${r.code ?? ''}`.trim()) ?? 0) + 1);
    const lat = (rs: ProduceResult[]) => rs.filter((r) => r.status === 200).map((r) => r.doneMs - r.sentMs);
    const steady = p0.filter((r) => r.doneMs < killMs - 1000);
    const settled = p0.filter((r) => r.sentMs > electedMs + 5000);
    const others = results.filter(
      (r) => r.partition !== 0 && r.doneMs >= killMs && r.sentMs <= killMs + recoveryMs + 1000,
    );
    const othersFailed = others.filter((r) => r.status !== 200).length;

    const gw = (s: Scrape) => s.targets['gateway:0']?.text ?? '';
    const rep = (s: Scrape, name: string) => s.targets[`replica:${name}`]?.text ?? '';
    const names = stack.replicas(TOPIC, 0).map((r) => r.name);
    const tp = { topic: TOPIC, partition: '0' };
    const row = (name: string, s: Scrape) => {
      const t = rep(s, name);
      if (!t) return `| ${name} | (down) | | | |`;
      return `| ${name} | ${metricValue(t, 'daftka_raft_leader', tp)} | ${metricValue(t, 'daftka_raft_term', tp)} | ${metricValue(t, 'daftka_raft_leader_changes_total', tp)} | ${metricValue(t, 'daftka_partition_high_watermark', tp)} |`;
    };
    const gwCount = (s: Scrape, name: string, labels: Record<string, string>) => metricValue(gw(s), name, labels) ?? 0;
    const delta = (name: string, labels: Record<string, string>) =>
      gwCount(after, name, labels) - gwCount(before, name, labels);
    const produceCodes = new Set<string>();
    for (const s of [before, after])
      for (const m of gw(s).matchAll(/daftka_gateway_requests_total\{route="produce",code="(\d+)"/g))
        produceCodes.add(m[1]);
    const errorCodes = new Set<string>();
    for (const m of gw(after).matchAll(/daftka_gateway_errors_total\{route="produce",code="([A-Z_]+)"/g))
      errorCodes.add(m[1]);

    const secondsFmt = (xs: number[]) => {
      const sorted = [...new Set(xs)].sort((a, b) => a - b);
      const runs: string[] = [];
      let start = sorted[0];
      let prev = sorted[0];
      for (const x of [...sorted.slice(1), Infinity]) {
        if (x !== prev + 1) {
          runs.push(start === prev ? `${start}` : `${start}–${prev}`);
          start = x;
        }
        prev = x;
      }
      return runs.join(', ');
    };
    const killS = killMs / 1000;
    const alertRows = ALERTS.map((a) => {
      const h = hits.get(a.alert);
      const rule = ruleGroups()
        .flatMap((g) => g.rules)
        .find((r) => 'alert' in r && r.alert === a.alert) as AlertingRule;
      if (!h) return `| ${a.alert} | ${rule.for} | no | — |`;
      const seconds = [...new Set(h.seconds)].sort((x, y) => x - y);
      let longest = 1;
      let run = 1;
      for (let i = 1; i < seconds.length; i++) {
        run = seconds[i] === seconds[i - 1] + 1 ? run + 1 : 1;
        longest = Math.max(longest, run);
      }
      return `| ${a.alert} | ${rule.for} | yes, at t = ${secondsFmt(seconds)} s (longest ${longest} s) | ${h.labels.replace(/\|/g, '\\|')} |`;
    });

    // Leadership of partition 0 as the scrapes saw it: who reported leader = 1, at which term.
    const timeline: string[] = [];
    let lastState = '';
    for (const sc of scrapes) {
      const leaders = names.filter((n) => metricValue(rep(sc, n), 'daftka_raft_leader', tp) === 1);
      const term = Math.max(...names.map((n) => metricValue(rep(sc, n), 'daftka_raft_term', tp) ?? -1));
      const down = names.filter((n) => !rep(sc, n));
      const state = `${leaders.join(', ') || '(none)'} | ${term} | ${down.join(', ') || '—'}`;
      if (state !== lastState) timeline.push(`| ${((sc.tMs - t0) / 1000).toFixed(1)} | ${state} |`);
      lastState = state;
    }
    const failures = p0
      .filter((r) => r.status !== 200)
      .map(
        (r) =>
          `${((r.sentMs - killMs) / 1000).toFixed(3)} → ${((r.doneMs - killMs) / 1000).toFixed(3)} s: ${r.status} ${r.code ?? ''}`,
      );

    const date = new Date(t0).toISOString().slice(0, 10);
    const report = `# Drill: leader loss (${date})

Run by \`scripts/drill-leader-loss\` (\`scripts/drill-leader-loss.ts\`) on the development machine
(${os.cpus().length} cores, shared and loaded; local mode, fsync \`always\`). Times are from the drill's
start (t = 0 when local mode reported every partition led).

## What was done

- Local mode in a temp dir: nats-server, topic \`${TOPIC}\` with ${PARTITIONS} partitions × RF 3 (9 replica
  processes), the gateway; the local process driver restarts a killed replica with backoff, as
  Kubernetes would.
- Load through the gateway: one closed-loop producer per partition (one record per request, explicit
  partition, an \`Idempotency-Key\` each), for ${args.beforeS} s before and ${args.afterS} s after the kill.
- Every second: a scrape of every replica's \`/metrics\` and the gateway's (\`up\` = 0 when a target did
  not answer).
- At t = ${killS.toFixed(3)} s: \`SIGKILL\` of **${victim.name}**, the leader of ${TOPIC}/0 (term ${victim.term}).

## Results

| measurement | value |
| --- | --- |
| **recovery time** (kill → answer of the first produce to ${TOPIC}/0 sent after the kill that succeeded) | **${(recoveryMs / 1000).toFixed(3)} s** (sent at ${firstOkAfter ? ((firstOkAfter.sentMs - killMs) / 1000).toFixed(3) : '—'} s) |
| kill → first 200 answer of any produce to ${TOPIC}/0 (requests in flight at the kill included) | ${Number.isFinite(firstOkDoneAfterKill) ? `${((firstOkDoneAfterKill - killMs) / 1000).toFixed(3)} s` : '—'} |
| kill → new leader seen (polled every 100 ms over the client port) | ${((electedMs - killMs) / 1000).toFixed(3)} s: ${successor.name}, term ${successor.term} |
| last success before the kill answered at | ${lastOkBefore ? `${((lastOkBefore.doneMs - killMs) / 1000).toFixed(3)} s` : '—'} |
| produces to ${TOPIC}/0 that failed after the kill | ${failedAround.length}${byCode.size ? ` (${[...byCode].map(([c, n]) => `${n} × ${c}`).join(', ')})` : ''} |
| produces to the other partitions that failed during the recovery | ${othersFailed} of ${others.length} |
| ${TOPIC}/0 produce latency before the kill (p50 / p99, ms) | ${quantile(lat(steady), 0.5).toFixed(1)} / ${quantile(lat(steady), 0.99).toFixed(1)} (${lat(steady).length} requests) |
| ${TOPIC}/0 produce latency from 5 s after the election (p50 / p99, ms) | ${quantile(lat(settled), 0.5).toFixed(1)} / ${quantile(lat(settled), 0.99).toFixed(1)} (${lat(settled).length} requests) |
| killed replica running again at the end | ${victimBack ? `yes (restarts: ${stack.restarts(victim.name)})` : 'no'} |

The SLO "recovery after leader loss: a new leader within 1 s (p99)" ([slos.md](../../slos.md)) is
measured here once; one run is an observation, not a percentile.

Failed produces to ${TOPIC}/0 (sent → answered, relative to the kill): ${failures.length ? failures.join('; ') : 'none'}.

## Leadership of ${TOPIC}/0 as scraped

| t (s) | leader (reporting \`daftka_raft_leader\` = 1) | highest term | replicas not answering the scrape |
| --- | --- | --- | --- |
${timeline.join('\n')}

## What the metrics showed

Replicas of ${TOPIC}/0, last scrape before the kill (t = ${((before.tMs - t0) / 1000).toFixed(1)} s) and at the end (t = ${((after.tMs - t0) / 1000).toFixed(1)} s):

| replica | leader | term | leader changes | high watermark |
| --- | --- | --- | --- | --- |
${names.map((n) => row(n, before)).join('\n')}

| replica (end) | leader | term | leader changes | high watermark |
| --- | --- | --- | --- | --- |
${names.map((n) => row(n, after)).join('\n')}

Gateway, change between those two scrapes:

| metric | change |
| --- | --- |
${[...produceCodes]
  .sort()
  .map(
    (c) =>
      `| \`daftka_gateway_requests_total{route="produce",code="${c}"}\` | ${delta('daftka_gateway_requests_total', { route: 'produce', code: c })} |`,
  )
  .join('\n')}
${[...errorCodes]
  .sort()
  .map(
    (c) =>
      `| \`daftka_gateway_errors_total{route="produce",code="${c}"}\` | ${delta('daftka_gateway_errors_total', { route: 'produce', code: c })} |`,
  )
  .join('\n')}
| \`daftka_gateway_redirects_total{reason="not_leader"}\` | ${delta('daftka_gateway_redirects_total', { reason: 'not_leader' })} |
| \`daftka_gateway_redirects_total{reason="unreachable"}\` | ${delta('daftka_gateway_redirects_total', { reason: 'unreachable' })} |
| \`daftka_gateway_leader_updates_total{kind="nats"}\` | ${delta('daftka_gateway_leader_updates_total', { kind: 'nats' })} |
| \`daftka_gateway_leader_updates_total{kind="hint"}\` | ${delta('daftka_gateway_leader_updates_total', { kind: 'hint' })} |

## Which alerts the samples would trigger

The ${scrapes.length} scrapes (one per second) were replayed through the shipped alert rules with
\`promtool test rules\`, each alert's \`for:\` set to 0 and evaluated every second, to see when each
expression was true. A real Prometheus scrapes every 30 s (the chart's default) and waits the
\`for:\` duration before firing.

| alert | for | expression true? | labels of the first hit |
| --- | --- | --- | --- |
${alertRows.join('\n')}

Reading: an expression that held for less than its \`for:\` would have stayed pending, not fired.
With 30-second scrapes, a sub-second leaderless window is usually not even sampled:
\`DaftkaPartitionLeaderless\` (for: 1m) is built for a partition that stays leaderless, not for a
clean failover. The killed replica's scrape target was down until the driver restarted it, which is
what \`DaftkaReplicaDown\` (for: 5m) watches; a pod that comes back within minutes does not page.

## Follow-ups

- The leaderless window of a failover is shorter than a scrape interval, so the recovery SLO cannot
  be measured from scrapes: an election-duration histogram in the replica
  (\`daftka_raft_election_duration_seconds\`, not yet exported) would make it an SLI.
- Re-run after changes to the election timeout, the gateway's redirect/retry policy or NATS
  announcements: \`scripts/drill-leader-loss\` (about ${Math.round((args.beforeS + args.afterS) / 60 + 1)} minutes).
`;
    fs.mkdirSync(path.dirname(args.out), { recursive: true });
    // Formatted as the repository formats markdown (`npm run lint` checks docs/ with prettier).
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(args.out)) ?? {};
    fs.writeFileSync(args.out, await prettier.format(report, { ...config, filepath: args.out }));
    log(
      `recovery time ${(recoveryMs / 1000).toFixed(3)} s; report written to ${path.relative(process.cwd(), args.out)}`,
    );
    log(`promtool replay files kept in ${work}`);
  } finally {
    stopping = true;
    await Promise.allSettled(loops);
    await stack.stop(true);
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

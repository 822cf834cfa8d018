/**
 * What the chart's dashboards and alert rules read exists: every metric name in every panel query,
 * dashboard variable and rule expression is exported by a running Daftka (a live /metrics scrape of
 * local mode: three replicas and the gateway; the operator's registry in-process) — histogram
 * series by their _bucket/_sum/_count, our recording rules, and the few metrics Prometheus and the
 * kubelet provide. docs/metrics.md lists exactly what the programs export, with type and program.
 */
import * as fs from 'node:fs';
import { EXTERNAL_METRICS } from '../../sre/config';
import { dashboardQueries, dashboards } from '../../sre/dashboards';
import { ALERTS } from '../../sre/alerts';
import { parseTable, PROGRAMS, type Catalog } from '../../sre/metrics-catalog';
import { collectLiveCatalog, METRICS_DOC, startMetricsStack } from '../../sre/metrics-doc';
import { metricNames } from '../../sre/promql';
import { recordingRuleNames, ruleGroups, type RecordingRule } from '../../sre/rules';
import type { LocalStack } from '../helpers/local-stack';

describe('metrics read by dashboards and alerts exist in the running programs', () => {
  let stack: LocalStack;
  let catalog: Catalog;

  beforeAll(async () => {
    stack = await startMetricsStack();
    ({ catalog } = await collectLiveCatalog(stack));
  }, 150_000);
  afterAll(() => stack?.stop());

  /** Why `name` is not something Prometheus would have, or null when it is. */
  function unknown(name: string): string | null {
    if (EXTERNAL_METRICS.has(name) || recordingRuleNames().has(name)) return null;
    const m = catalog.get(name);
    if (m) return m.type === 'histogram' ? `${name} is a histogram: read its _bucket, _sum or _count` : null;
    const suffix = /_(bucket|sum|count)$/.exec(name);
    if (suffix) {
      const base = catalog.get(name.slice(0, -suffix[0].length));
      if (base?.type === 'histogram') return null;
    }
    return `${name} is not exported by any program`;
  }

  it('the scrape found the replica, gateway and operator metrics', () => {
    for (const name of [
      'daftka_raft_leader',
      'daftka_storage_fsync_duration_seconds',
      'daftka_gateway_requests_total',
      'daftka_operator_workqueue_depth',
      'daftka_nodejs_eventloop_lag_p99_seconds',
    ])
      expect(catalog.has(name)).toBe(true);
  });

  it('every dashboard query', () => {
    const problems: string[] = [];
    for (const d of dashboards())
      for (const { where, expr } of dashboardQueries(d))
        for (const name of metricNames(expr)) {
          const why = unknown(name);
          if (why) problems.push(`${where}: ${why}`);
        }
    expect(problems).toEqual([]);
  });

  it('every alert and recording rule expression', () => {
    const problems: string[] = [];
    for (const a of ALERTS)
      for (const name of metricNames(a.expr)) {
        const why = unknown(name);
        if (why) problems.push(`${a.alert}: ${why}`);
      }
    for (const g of ruleGroups())
      for (const r of g.rules.filter((r): r is RecordingRule => 'record' in r))
        for (const name of metricNames(r.expr)) {
          const why = unknown(name);
          if (why) problems.push(`${r.record}: ${why}`);
        }
    expect(problems).toEqual([]);
  });

  it('labels the rules aggregate by exist on the metrics they read', () => {
    // A typo in a `by (…)` label silently merges series; check the partition alerts' labels.
    for (const name of [
      'daftka_raft_leader',
      'daftka_raft_voters',
      'daftka_raft_follower_lag_entries',
      'daftka_raft_leader_changes_total',
    ])
      expect([...catalog.get(name)!.labels].sort()).toEqual(['partition', 'topic']);
    expect([...catalog.get('daftka_gateway_requests_total')!.labels].sort()).toEqual(['code', 'route']);
    expect([...catalog.get('daftka_group_lag_records')!.labels].sort()).toEqual(['group', 'partition', 'topic']);
  });

  it('docs/metrics.md lists every exported metric with its type and program, and nothing else', () => {
    const doc = parseTable(fs.readFileSync(METRICS_DOC, 'utf8'));
    const problems: string[] = [];
    for (const m of catalog.values()) {
      const d = doc.get(m.name);
      if (!d) {
        problems.push(
          `${m.name} (${m.type}, ${[...m.programs].join(', ')}) is exported but not in docs/metrics.md (npx tsx sre/metrics-doc.ts)`,
        );
        continue;
      }
      if (d.type !== m.type) problems.push(`${m.name}: docs say ${d.type}, the program exports a ${m.type}`);
      for (const p of PROGRAMS)
        if (d.programs.has(p) !== m.programs.has(p))
          problems.push(`${m.name}: docs and ${p} disagree on whether ${p} exports it`);
      for (const l of m.labels) if (!d.labels.has(l)) problems.push(`${m.name}: label ${l} is not in docs/metrics.md`);
    }
    for (const name of doc.keys())
      if (!catalog.has(name)) problems.push(`${name} is in docs/metrics.md but no program exports it`);
    // Regenerate the table with `npx tsx sre/metrics-doc.ts` after adding or changing a metric.
    expect(problems).toEqual([]);
  });
});

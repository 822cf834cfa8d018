/**
 * Dashboards as code (sre/dashboards.ts): valid Grafana JSON with unique ids, a layout that fits
 * the 24-column grid, every query on the data-source variable, and PromQL that reads only metric
 * names that follow the naming rules. That the names exist in the programs is checked against a
 * live scrape of local mode in test/e2e/helm-metrics.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkMetricName } from '../../../common/metrics';
import { EXTERNAL_METRICS } from '../../../sre/config';
import { dashboardQueries, dashboards } from '../../../sre/dashboards';
import { DASHBOARDS_DIR } from '../../../sre/gen';
import { histogramBase, metricNames } from '../../../sre/promql';
import { recordingRuleNames } from '../../../sre/rules';

describe('Grafana dashboards', () => {
  const all = dashboards();

  it('are Overview, Partitions, Gateway, Storage and Operator, each shipped as a JSON file', () => {
    expect(all.map((d) => d.title)).toEqual([
      'Daftka / Overview',
      'Daftka / Partitions',
      'Daftka / Gateway',
      'Daftka / Storage',
      'Daftka / Operator',
    ]);
    for (const d of all) {
      const file = path.join(DASHBOARDS_DIR, `${d.uid}.json`);
      expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual(JSON.parse(JSON.stringify(d)));
    }
  });

  it.each(all.map((d) => [d.uid, d] as const))('%s: unique panel ids, fits the grid, no overlaps', (_uid, d) => {
    expect(d.uid.length).toBeLessThanOrEqual(40);
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of d.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++)
        for (let j = y; j < y + h; j++) {
          const cell = `${i},${j}`;
          if (cells.has(cell)) throw new Error(`${d.uid}: panel "${p.title}" overlaps another at ${cell}`);
          cells.add(cell);
        }
    }
  });

  it.each(all.map((d) => [d.uid, d] as const))(
    '%s: every panel has a description and queries on ${datasource}',
    (_uid, d) => {
      for (const p of d.panels.filter((p) => p.type !== 'row')) {
        expect(p.description?.length ?? 0).toBeGreaterThan(10);
        expect(p.targets?.length ?? 0).toBeGreaterThan(0);
        for (const t of p.targets ?? []) {
          expect(t.datasource.uid).toBe('${datasource}');
          expect(t.expr.trim()).not.toBe('');
        }
      }
      expect((d.templating.list as Array<{ name: string }>).map((v) => v.name)).toContain('datasource');
    },
  );

  it('every query reads Daftka metrics that follow the naming rules, recording rules, or known external metrics', () => {
    const records = recordingRuleNames();
    const problems: string[] = [];
    for (const d of all)
      for (const { where, expr } of dashboardQueries(d))
        for (const name of metricNames(expr)) {
          if (records.has(name) || EXTERNAL_METRICS.has(name)) continue;
          const base = histogramBase(name);
          try {
            checkMetricName(base, base.endsWith('_total') ? 'counter' : 'gauge');
          } catch (err) {
            problems.push(`${where}: ${(err as Error).message}`);
          }
        }
    expect(problems).toEqual([]);
  });
});

describe('PromQL metric-name extraction', () => {
  it.each([
    [
      'sum by (route) (rate(daftka_gateway_requests_total{job="x", code=~"5.."}[$__rate_interval]))',
      ['daftka_gateway_requests_total'],
    ],
    [
      'histogram_quantile(0.99, sum by (le) (rate(daftka_storage_fsync_duration_seconds_bucket[5m]))) > 0.1',
      ['daftka_storage_fsync_duration_seconds_bucket'],
    ],
    ['a:b:rate5m > (14.4 * 0.001) and on (namespace) c_total offset 5m', ['a:b:rate5m', 'c_total']],
    ['count(ALERTS{alertstate="firing"}) or vector(0)', ['ALERTS']],
    ['max by (pod) (x{y="1e3"}) == 1e3 and 5m', ['x']],
  ])('%s', (expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });
});

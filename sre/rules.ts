/**
 * Renders sre/slos.ts and sre/alerts.ts into a Prometheus rule file (the `groups:` document that a
 * PrometheusRule's spec and `promtool check rules` both take) and into a `promtool test rules` file.
 */
import { ALERTS, type AlertRule, type SeriesInput } from './alerts';
import { RUNBOOK_BASE_URL } from './config';
import { recordName, SLOS, sloWindows } from './slos';

export interface RecordingRule {
  record: string;
  expr: string;
}
export interface AlertingRule {
  alert: string;
  expr: string;
  for: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  interval?: string;
  rules: Array<RecordingRule | AlertingRule>;
}

export const runbookUrl = (alert: string): string => `${RUNBOOK_BASE_URL}${alert}.md`;

/** Windows of a day or more are evaluated every 5 minutes: a 30-day rate is not cheap. */
const LONG_WINDOW = /^\d+d$/;

function recordingGroups(): RuleGroup[] {
  const short: RecordingRule[] = [];
  const long: RecordingRule[] = [];
  for (const slo of SLOS)
    for (const w of sloWindows(slo))
      (LONG_WINDOW.test(w) ? long : short).push({ record: recordName(slo, w), expr: slo.badRatio(w) });
  return [
    { name: 'daftka-slo-recording', rules: short },
    { name: 'daftka-slo-recording-long', interval: '5m', rules: long },
  ];
}

function alertingRule(a: AlertRule): AlertingRule {
  return {
    alert: a.alert,
    expr: a.expr,
    for: a.for,
    labels: { severity: a.severity, ...(a.labels ?? {}) },
    annotations: { summary: a.summary, description: a.description, runbook_url: runbookUrl(a.alert) },
  };
}

export function ruleGroups(): RuleGroup[] {
  const byGroup = new Map<string, AlertingRule[]>();
  for (const a of ALERTS) byGroup.set(a.group, [...(byGroup.get(a.group) ?? []), alertingRule(a)]);
  return [...recordingGroups(), ...[...byGroup].map(([name, rules]) => ({ name, rules }))];
}

/** Every recording rule name (dashboards and the metric-name check may use them). */
export function recordingRuleNames(): Set<string> {
  return new Set(
    recordingGroups()
      .flatMap((g) => g.rules)
      .map((r) => (r as RecordingRule).record),
  );
}

/**
 * Expands the annotation templates the way Prometheus would for one alert: `{{ $labels.x }}` and
 * `{{ $value | fn }}` (the test case gives the formatted value, as Prometheus prints it).
 */
export function renderTemplate(template: string, labels: Record<string, string>, value?: string): string {
  return template.replace(/\{\{\s*\$(labels\.(\w+)|value)(\s*\|\s*\w+)?\s*\}\}/g, (m, _whole, label?: string) => {
    if (label !== undefined) {
      if (!(label in labels)) throw new Error(`template ${JSON.stringify(template)}: no label ${label}`);
      return labels[label];
    }
    if (value === undefined) throw new Error(`template ${JSON.stringify(template)} uses $value: give the case a value`);
    return value;
  });
}

interface PromtoolAlertTest {
  eval_time: string;
  alertname: string;
  exp_alerts: Array<{ exp_labels: Record<string, string>; exp_annotations: Record<string, string> }>;
}
interface PromtoolTestGroup {
  name: string;
  interval: string;
  input_series: SeriesInput[];
  alert_rule_test?: PromtoolAlertTest[];
  promql_expr_test?: Array<{ expr: string; eval_time: string; exp_samples: Array<{ labels: string; value: number }> }>;
}

/**
 * Which tests: the SLO alerts and recording rules, the other alerts, or all. Split so that each
 * promtool run evaluates only the rule groups its tests need (the SLO recording rules are half of
 * all rules and dominate the evaluation time).
 */
export type RulePart = 'all' | 'slo' | 'other';
export const isSloGroup = (groupName: string): boolean => groupName.startsWith('daftka-slo');

/** The `promtool test rules` document for a rule file at `ruleFile` (relative to the test file). */
export function promtoolTests(
  ruleFile: string,
  part: RulePart = 'all',
): {
  rule_files: string[];
  evaluation_interval: string;
  tests: PromtoolTestGroup[];
} {
  const tests: PromtoolTestGroup[] = [];
  const wanted = (group: string) => part === 'all' || (part === 'slo') === isSloGroup(group);
  for (const a of ALERTS.filter((x) => wanted(x.group))) {
    const rule = alertingRule(a);
    tests.push({
      name: `${a.alert} fires after ${a.for}`,
      interval: '1m',
      input_series: a.fires.series,
      alert_rule_test: [
        { eval_time: a.fires.pendingAt, alertname: a.alert, exp_alerts: [] },
        {
          eval_time: a.fires.at,
          alertname: a.alert,
          exp_alerts: a.fires.alerts.map((x) => {
            const labels = { ...x.labels, ...rule.labels };
            return {
              exp_labels: labels,
              exp_annotations: Object.fromEntries(
                Object.entries(rule.annotations).map(([k, t]) => [k, renderTemplate(t, labels, x.value)]),
              ),
            };
          }),
        },
      ],
    });
    for (const s of a.silent)
      tests.push({
        name: `${a.alert} stays silent: ${s.why}`,
        interval: '1m',
        input_series: s.series,
        alert_rule_test: [{ eval_time: s.at, alertname: a.alert, exp_alerts: [] }],
      });
  }
  if (part === 'other') return { rule_files: [ruleFile], evaluation_interval: '1m', tests };
  // The recording rules themselves, on traffic with an exact ratio: 25 bad events in 100.
  const gw = 'namespace="daftka", job="daftka-gateway", pod="daftka-gateway-0", instance="10.1.0.1:8080"';
  tests.push({
    name: 'SLO recording rules compute the bad-event ratio',
    interval: '1m',
    input_series: [
      { series: `daftka_gateway_requests_total{${gw}, route="produce", code="200"}`, values: '0+75x30' },
      { series: `daftka_gateway_requests_total{${gw}, route="produce", code="503"}`, values: '0+25x30' },
      { series: `daftka_gateway_requests_total{${gw}, route="fetch", code="200"}`, values: '0+100x30' },
      {
        series: `daftka_gateway_request_duration_seconds_bucket{${gw}, route="produce", le="0.05"}`,
        values: '0+75x30',
      },
      { series: `daftka_gateway_request_duration_seconds_count{${gw}, route="produce"}`, values: '0+100x30' },
    ],
    promql_expr_test: SLOS.flatMap((slo) =>
      ['5m', '1h'].map((w) => ({
        expr: recordName(slo, w),
        eval_time: '20m',
        exp_samples: [
          { labels: `${recordName(slo, w)}{namespace="daftka"}`, value: slo.id === 'fetch_availability' ? 0 : 0.25 },
        ],
      })),
    ),
  });
  return { rule_files: [ruleFile], evaluation_interval: '1m', tests };
}

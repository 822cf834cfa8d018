/**
 * Just enough PromQL reading to list the metric names an expression selects: strings, label
 * matchers, ranges, grouping clauses and Grafana variables are removed, then every identifier that
 * is not a function call, keyword or aggregation is a metric name. Used to check that dashboards
 * and rules only read metrics the programs export (or recording rules we define).
 */

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'and',
  'or',
  'unless',
  'atan2',
  // Aggregations may put their grouping clause before the parenthesis: sum by (a) (…).
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'inf',
  'nan',
  'Inf',
  'NaN',
]);

export function metricNames(expr: string): string[] {
  let s = expr
    // Grafana variables: $__rate_interval, ${datasource}, $topic.
    .replace(/\$\{[^}]*\}|\$\w+/g, '1m')
    // String literals (label values, label_replace arguments).
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    // Label matchers, range and subquery selectors.
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '');
  // Grouping and matching label lists: by (a, b), on(a), group_left (c) …
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1');
  const names = new Set<string>();
  const re = /[A-Za-z_:][A-Za-z0-9_:]*/g;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const id = m[0];
    const rest = s.slice(m.index + id.length);
    if (/^\s*\(/.test(rest)) continue; // a function or aggregation call
    if (KEYWORDS.has(id)) continue;
    // Numbers like 1e3 or durations like 5m are caught by the leading-digit check in the regex;
    // a unit letter right after a digit (the "m" of 5m) is part of a number, not a name.
    if (m.index > 0 && /[0-9.]/.test(s[m.index - 1])) continue;
    names.add(id);
  }
  return [...names].sort();
}

/** The base metric of a histogram series name, or the name itself. */
export function histogramBase(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, '');
}

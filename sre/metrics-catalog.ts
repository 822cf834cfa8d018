/**
 * The catalogue of exported metrics, read from the programs themselves: a Prometheus text scrape
 * (replica and gateway, from local mode) or a prom-client registry (the operator). Renders the
 * table in docs/metrics.md and reads it back, so a test can hold the doc to what the code exports.
 */
import type { promClient } from '../common/metrics';

export type Program = 'replica' | 'gateway' | 'operator';
export const PROGRAMS: readonly Program[] = ['replica', 'gateway', 'operator'];

export interface MetricInfo {
  name: string;
  type: string;
  help: string;
  /** Label names (the registry's default `component` label left out). */
  labels: Set<string>;
  programs: Set<Program>;
}

export type Catalog = Map<string, MetricInfo>;

/** Names, types, help and the label names seen on samples of one /metrics answer. */
export function parseExposition(text: string, program: Program, into: Catalog = new Map()): Catalog {
  const get = (name: string): MetricInfo => {
    let m = into.get(name);
    if (!m) {
      m = { name, type: 'untyped', help: '', labels: new Set(), programs: new Set() };
      into.set(name, m);
    }
    m.programs.add(program);
    return m;
  };
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    let m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (m) {
      types.set(m[1], m[2]);
      get(m[1]).type = m[2];
      continue;
    }
    m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      get(m[1]).help = m[2].replace(/\\n/g, ' ').replace(/\\\\/g, '\\');
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/.exec(line);
    if (!m) continue;
    let name = m[1];
    if (!types.has(name)) name = name.replace(/_(bucket|sum|count)$/, '');
    const info = into.get(name);
    if (!info) continue;
    for (const pair of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g))
      if (pair[1] !== 'component' && pair[1] !== 'le') info.labels.add(pair[1]);
  }
  return into;
}

/** The same, from a registry in this process (label names as declared). */
export async function catalogFromRegistry(
  reg: promClient.Registry,
  program: Program,
  into: Catalog = new Map(),
): Promise<Catalog> {
  for (const m of await reg.getMetricsAsJSON()) {
    const declared =
      (reg.getSingleMetric(m.name) as unknown as { labelNames?: string[] } | undefined)?.labelNames ?? [];
    const seen = m.values.flatMap((v) => Object.keys(v.labels ?? {}));
    const info = into.get(m.name) ?? {
      name: m.name,
      type: String(m.type),
      help: m.help,
      labels: new Set<string>(),
      programs: new Set<Program>(),
    };
    for (const l of [...declared, ...seen]) if (l !== 'component' && l !== 'le') info.labels.add(l);
    info.programs.add(program);
    into.set(m.name, info);
  }
  return into;
}

const BEGIN = '<!-- metrics-table:begin -->';
const END = '<!-- metrics-table:end -->';

/** The markdown table (between markers) of a catalogue, sorted by name. */
export function renderTable(catalog: Catalog): string {
  const rows = [...catalog.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map(
      (m) =>
        `| \`${m.name}\` | ${m.type} | ${[...m.labels].sort().join(', ') || '—'} | ${PROGRAMS.filter((p) => m.programs.has(p)).join(', ')} | ${m.help.replace(/\|/g, '\\|')} |`,
    );
  return [
    BEGIN,
    '| metric | type | labels | exported by | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    END,
  ].join('\n');
}

/** Replaces the table between the markers of a document. */
export function replaceTable(doc: string, catalog: Catalog): string {
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < 0) throw new Error(`the document has no ${BEGIN} … ${END} markers`);
  return doc.slice(0, a) + renderTable(catalog) + doc.slice(b + END.length);
}

/** Reads the table back (names, types, labels, programs). */
export function parseTable(doc: string): Catalog {
  const out: Catalog = new Map();
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < 0) throw new Error(`the document has no ${BEGIN} … ${END} markers`);
  for (const line of doc.slice(a, b).split('\n')) {
    // Prettier pads the cells; a `|` inside a cell is escaped.
    const cells = line
      .trim()
      .replace(/^\||\|$/g, '')
      .split(/(?<!\\)\|/)
      .map((c) => c.trim());
    const name = /^`([^`]+)`$/.exec(cells[0] ?? '')?.[1];
    if (name === undefined || cells.length < 5) continue;
    out.set(name, {
      name,
      type: cells[1],
      labels: new Set(cells[2] === '—' ? [] : cells[2].split(',').map((s) => s.trim())),
      programs: new Set(cells[3].split(',').map((s) => s.trim() as Program)),
      help: cells[4].replace(/\\\|/g, '|'),
    });
  }
  return out;
}

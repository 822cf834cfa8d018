import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import ts from 'typescript';

/**
 * The house's import rules (STYLE.md, issue 14), checked over every file of tsconfig.json:
 *
 * - no import cycle among the project's own modules, type-only imports included (a type cycle
 *   is still two files that cannot be read, moved or tested apart);
 * - dependencies point inward: no program reaches into another program's folder (RULES below).
 *
 * Imports are read with the compiler's own scanner (`ts.preProcessFile`: static imports,
 * `import type`, `export … from`, `import x = require()`, `import()` and `require()`). Our own
 * modules are reached by relative specifiers only (tsconfig has no path aliases), resolved here
 * against the set of project files the way tsc resolves them (`./x` → x.ts, x.tsx, x/index.ts;
 * `./x.js` → x.ts); a relative import that resolves to no project file is tsc's error, not ours.
 * No type checking and no file probing: about half a second of CPU for the whole tree.
 * Run: `npx tsx scripts/check-imports.ts` (part of `npm run lint`).
 */

export interface ImportRule {
  /** Files under this folder (repository-relative, ending in '/')… */
  from: string;
  /** …may not import files under these folders. */
  forbid?: string[];
  /** …may import only files under these folders, and no package (not even node: built-ins). */
  only?: string[];
  why: string;
}

export const RULES: readonly ImportRule[] = [
  ...['gateway/', 'operator/', 'scripts/', 'bench/', 'cli/'].map((from) => ({
    from,
    forbid: ['replica/'],
    why: 'what programs share with the replica lives in common/ or protocol/',
  })),
  {
    from: 'protocol/',
    forbid: ['replica/', 'gateway/', 'operator/', 'cli/', 'scripts/', 'bench/'],
    why: 'the client protocol is shared by every program and depends on none',
  },
  {
    from: 'common/',
    forbid: ['replica/', 'gateway/', 'operator/', 'cli/', 'protocol/', 'scripts/', 'bench/', 'sre/', 'test/'],
    why: 'common/ is the innermost layer: programs import it, never the other way',
  },
  {
    from: 'replica/raft/',
    only: ['replica/raft/'],
    why: 'the Raft core is pure: drivers plug into it from outside',
  },
];

/**
 * Import edges allowed to close a cycle, each `importer -> imported` (repository-relative).
 * Every entry is a debt with an owner: when the edge disappears the check fails until the entry
 * is removed too, so the list can only shrink. Empty is the goal.
 */
export const ALLOWED_CYCLE_EDGES: readonly string[] = [];

/**
 * Imports that break a rule above, each `importer -> imported`, kept only until they are moved;
 * like ALLOWED_CYCLE_EDGES, an entry whose import is gone fails the check until it is removed.
 */
export const ALLOWED_IMPORTS: readonly string[] = [];

export interface ImportGraph {
  /** Repository-relative path → the repository-relative paths it imports (own files only). */
  edges: Map<string, Set<string>>;
  /** Repository-relative path → package specifiers it imports (node:*, npm packages). */
  packages: Map<string, Set<string>>;
}

export interface CheckResult {
  cycles: string[][];
  violations: string[];
  staleAllowances: string[];
}

const toPosix = (p: string): string => p.split(sep).join('/');

/** The project file a relative specifier names, as tsc resolves it; undefined when none does. */
function resolveOwn(own: ReadonlySet<string>, root: string, fromFile: string, spec: string): string | undefined {
  const base = toPosix(relative(root, join(dirname(fromFile), spec)));
  const stem = base.replace(/\.(c|m)?jsx?$/, '');
  const candidates = [
    base,
    `${base}.ts`,
    `${base}.tsx`,
    `${stem}.ts`,
    `${stem}.tsx`,
    `${base}/index.ts`,
    `${base}/index.tsx`,
  ];
  return candidates.find((c) => own.has(c));
}

/** The import graph of `files` (absolute paths) under `root`. */
export function buildGraph(root: string, files: readonly string[]): ImportGraph {
  const edges = new Map<string, Set<string>>();
  const packages = new Map<string, Set<string>>();
  const own = new Set(files.map((f) => toPosix(relative(root, f))));
  for (const file of files) {
    const from = toPosix(relative(root, file));
    const out = new Set<string>();
    const pkgs = new Set<string>();
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      const spec = ref.fileName;
      if (!spec.startsWith('.') && !isAbsolute(spec)) {
        pkgs.add(spec);
        continue;
      }
      const target = resolveOwn(own, root, file, spec);
      if (target !== undefined) out.add(target);
    }
    edges.set(from, out);
    packages.set(from, pkgs);
  }
  return { edges, packages };
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function findCycles(edges: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  // Iterative, so a long import chain cannot overflow the call stack.
  for (const start of [...edges.keys()].sort()) {
    if (idx.has(start)) continue;
    const work: { v: string; it: Iterator<string> }[] = [];
    const visit = (v: string) => {
      idx.set(v, index);
      low.set(v, index);
      index++;
      stack.push(v);
      onStack.add(v);
      work.push({ v, it: [...(edges.get(v) ?? [])].sort()[Symbol.iterator]() });
    };
    visit(start);
    while (work.length > 0) {
      const top = work[work.length - 1];
      const next = top.it.next();
      if (!next.done) {
        const w = next.value;
        if (!idx.has(w)) visit(w);
        else if (onStack.has(w)) low.set(top.v, Math.min(low.get(top.v)!, idx.get(w)!));
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].v;
        low.set(parent, Math.min(low.get(parent)!, low.get(top.v)!));
      }
      if (low.get(top.v) === idx.get(top.v)) {
        const scc: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          scc.push(w);
        } while (w !== top.v);
        if (scc.length > 1 || edges.get(top.v)?.has(top.v)) out.push(scc.sort());
      }
    }
  }
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

/** One concrete loop through a component, for the message: a → b → … → a (shortest from its first file). */
export function cyclePath(edges: Map<string, Set<string>>, scc: string[]): string[] {
  const members = new Set(scc);
  const start = scc[0];
  const prev = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i];
    for (const w of [...(edges.get(v) ?? [])].sort()) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u: string | undefined = v; u !== undefined && u !== start; u = prev.get(u)) path.splice(1, 0, u);
        return [...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

export interface CheckOptions {
  rules?: readonly ImportRule[];
  allowedCycleEdges?: readonly string[];
  allowedImports?: readonly string[];
}

export function checkGraph(graph: ImportGraph, opts: CheckOptions = {}): CheckResult {
  const rules = opts.rules ?? RULES;
  const allowedImports = new Set(opts.allowedImports ?? ALLOWED_IMPORTS);
  const allowed = new Set(opts.allowedCycleEdges ?? ALLOWED_CYCLE_EDGES);
  const has = (e: string) => {
    const [from, to] = e.split(' -> ');
    return graph.edges.get(from)?.has(to) ?? false;
  };
  const staleAllowances = [...allowed, ...allowedImports].filter((e) => !has(e));

  const violations: string[] = [];
  for (const [from, targets] of [...graph.edges].sort(([a], [b]) => a.localeCompare(b))) {
    for (const rule of rules) {
      if (!from.startsWith(rule.from)) continue;
      for (const to of [...targets].sort()) {
        const forbidden = rule.forbid?.some((f) => to.startsWith(f)) ?? false;
        const outside = rule.only !== undefined && !rule.only.some((f) => to.startsWith(f));
        if ((forbidden || outside) && !allowedImports.has(`${from} -> ${to}`))
          violations.push(`${from} imports ${to}: ${rule.why}`);
      }
      if (rule.only !== undefined)
        for (const pkg of [...(graph.packages.get(from) ?? [])].sort())
          violations.push(`${from} imports package ${pkg}: ${rule.why}`);
    }
  }

  const pruned = new Map<string, Set<string>>();
  for (const [from, targets] of graph.edges)
    pruned.set(from, new Set([...targets].filter((to) => !allowed.has(`${from} -> ${to}`))));
  const cycles = findCycles(pruned).map((scc) => cyclePath(pruned, scc));
  return { cycles, violations, staleAllowances };
}

/** The files tsconfig.json compiles (absolute). */
export function projectFiles(root: string): string[] {
  const configPath = join(root, 'tsconfig.json');
  const parsed = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!parsed) throw new Error(`cannot read ${configPath}`);
  if (Object.keys(parsed.options.paths ?? {}).length > 0)
    throw new Error('tsconfig paths aliases: teach scripts/check-imports.ts to resolve them');
  return parsed.fileNames.filter((f) => !f.endsWith('.d.ts'));
}

export function formatResult(r: CheckResult): string[] {
  return [
    ...r.cycles.map((c) => `import cycle: ${c.join(' -> ')}`),
    ...r.violations.map((v) => `forbidden import: ${v}`),
    ...r.staleAllowances.map(
      (e) =>
        `stale allowance: ${e} is no longer imported; remove it from ALLOWED_CYCLE_EDGES (scripts/check-imports.ts)`,
    ),
  ];
}

function main(): void {
  const started = performance.now();
  const root = join(__dirname, '..');
  const files = projectFiles(root);
  const problems = formatResult(checkGraph(buildGraph(root, files)));
  const ms = Math.round(performance.now() - started);
  if (problems.length > 0) {
    process.stderr.write(`${problems.join('\n')}\n${problems.length} import problem(s) in ${files.length} files\n`);
    process.exit(1);
  }
  process.stdout.write(`imports: ${files.length} files, no cycles, no forbidden imports (${ms} ms)\n`);
}

if (require.main === module) main();

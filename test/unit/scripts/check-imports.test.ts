import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildGraph, checkGraph, formatResult, type ImportGraph } from '../../../scripts/check-imports';

/** A small tree on disk: repository-relative path → source. */
function graphOf(files: Record<string, string>): ImportGraph {
  const root = mkdtempSync(join(tmpdir(), 'check-imports-'));
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return buildGraph(
      root,
      Object.keys(files).map((p) => join(root, p)),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const check = (g: ImportGraph, allowedCycleEdges: string[] = [], allowedImports: string[] = []) =>
  checkGraph(g, { allowedCycleEdges, allowedImports });

describe('scripts/check-imports', () => {
  test('a tree whose imports point inward passes', () => {
    const g = graphOf({
      'common/names.ts': `export const A = 1;\n`,
      'protocol/wire.ts': `import { A } from '../common/names';\nexport const B = A;\n`,
      'gateway/app.ts': `import { B } from '../protocol/wire';\nimport express from 'express';\nexport const C = [B, express];\n`,
      'replica/raft/node.ts': `import type { T } from './types';\nexport const n: T = 1;\n`,
      'replica/raft/types.ts': `export type T = number;\n`,
    });
    expect(formatResult(check(g))).toEqual([]);
  });

  test('a cycle made of type-only imports and re-exports is found, with its path', () => {
    const g = graphOf({
      'gateway/a.ts': `import type {\n  B,\n} from './b';\nexport type A = { b?: B };\n`,
      'gateway/b.ts': `export type { C as B } from './c';\n`,
      'gateway/c.ts': `export type C = typeof import('./a');\n`,
      'gateway/d.ts': `import './a';\n`,
    });
    const r = check(g);
    expect(r.cycles).toEqual([['gateway/a.ts', 'gateway/b.ts', 'gateway/c.ts', 'gateway/a.ts']]);
    expect(formatResult(r)).toEqual(['import cycle: gateway/a.ts -> gateway/b.ts -> gateway/c.ts -> gateway/a.ts']);
  });

  test('an allowed edge breaks the cycle; an allowance whose edge is gone is reported as stale', () => {
    const g = graphOf({
      'replica/x.ts': `import { y } from './y';\nexport const x = () => y;\n`,
      'replica/y.ts': `import type { x } from './x';\nexport const y = 1 as unknown as typeof x;\n`,
    });
    expect(check(g).cycles).toHaveLength(1);
    const r = check(g, ['replica/y.ts -> replica/x.ts', 'replica/gone.ts -> replica/x.ts']);
    expect(r.cycles).toEqual([]);
    expect(r.staleAllowances).toEqual(['replica/gone.ts -> replica/x.ts']);
  });

  test('forbidden imports are found: a program reaching into replica/, protocol/ or common/ importing outward, an impure Raft core', () => {
    const g = graphOf({
      'replica/state.ts': `export const s = 1;\n`,
      'replica/raft/node.ts': `import { s } from '../state';\nimport { readFileSync } from 'node:fs';\nexport const n = [s, readFileSync];\n`,
      'gateway/app.ts': `import type { s } from '../replica/state';\nexport type G = typeof s;\n`,
      'scripts/local.ts': `export * from '../replica/state';\n`,
      'protocol/wire.ts': `import '../gateway/app';\n`,
      'common/log.ts': `import { w } from '../protocol/wire';\nexport const l = w;\n`,
    });
    const r = check(g);
    expect(r.cycles).toEqual([]);
    expect(r.violations.map((v) => v.split(': ')[0])).toEqual([
      'common/log.ts imports protocol/wire.ts',
      'gateway/app.ts imports replica/state.ts',
      'protocol/wire.ts imports gateway/app.ts',
      'replica/raft/node.ts imports replica/state.ts',
      'replica/raft/node.ts imports package node:fs',
      'scripts/local.ts imports replica/state.ts',
    ]);
    expect(check(g, [], ['gateway/app.ts -> replica/state.ts']).violations).toHaveLength(5);
  });
});

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configDocs } from '../../../common/config';
import { replicaSchema } from '../../../replica/config';

/**
 * docs/replica.md carries the replica's configuration table, rendered from `replicaSchema`
 * between `<!-- config:begin -->` and `<!-- config:end -->`. This keeps it current;
 * `DAFTKA_UPDATE_DOCS=1 npx jest test/integration/replica/docs.test.ts` rewrites it.
 */

const DOC = join(__dirname, '..', '..', '..', 'docs', 'replica.md');
const BEGIN = '<!-- config:begin -->';
const END = '<!-- config:end -->';

function render(doc: string): string {
  const a = doc.indexOf(BEGIN);
  const b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${DOC} lacks the ${BEGIN} … ${END} markers`);
  return `${doc.slice(0, a + BEGIN.length)}\n\n${configDocs(replicaSchema)}\n\n${doc.slice(b)}`;
}

/** As prettier lays it out (the repository formats docs with prettier; its API needs ESM, so the CLI). */
function prettier(text: string): string {
  const r = spawnSync(process.execPath, [require.resolve('prettier/bin/prettier.cjs'), '--stdin-filepath', DOC], {
    input: text,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`prettier failed: ${r.stderr}`);
  return r.stdout;
}

test('docs/replica.md has the configuration table of the current replica schema', () => {
  const doc = readFileSync(DOC, 'utf8');
  const want = prettier(render(doc));
  if (process.env.DAFTKA_UPDATE_DOCS === '1' && want !== doc) writeFileSync(DOC, want);
  else expect(doc).toBe(want);
});

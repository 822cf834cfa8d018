import { readFileSync } from 'node:fs';
import { CONFIG_DOC_PATH, renderConfigDocs } from '../../../scripts/gen-config-docs';

describe('docs/configuration.md', () => {
  it('is generated from the current config schemas (run `npx tsx scripts/gen-config-docs.ts`)', () => {
    expect(readFileSync(CONFIG_DOC_PATH, 'utf8')).toBe(renderConfigDocs());
  });
});

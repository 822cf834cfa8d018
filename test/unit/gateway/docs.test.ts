import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configDocs } from '../../../common/config';
import { gatewaySchema } from '../../../gateway/config';

const rows = (md: string) =>
  md
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim())
        .join(' | '),
    );

test('docs/gateway.md lists every gateway setting exactly as the config schema defines it', () => {
  const doc = rows(readFileSync(join(__dirname, '..', '..', '..', 'docs', 'gateway.md'), 'utf8'));
  for (const row of rows(configDocs(gatewaySchema))) expect(doc).toContain(row);
});

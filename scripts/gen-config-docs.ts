/**
 * Renders docs/configuration.md from the config schemas of every program (one source: the code).
 * `tsx scripts/gen-config-docs.ts` writes it; test/unit/common/config-docs.test.ts checks it is current.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configDocs, type Schema } from '../common/config';
import { gatewaySchema } from '../gateway/config';
import { replicaSchema } from '../common/replica-config';
import { localSchema } from './local-config';

export const CONFIG_DOC_PATH = join(__dirname, '..', 'docs', 'configuration.md');

const sections: Array<[string, string, Schema]> = [
  [
    'Replica',
    'The partition replica (`replica/main.ts`). The operator and local mode set these from the Topic spec (`common/topic-spec.ts`).',
    replicaSchema,
  ],
  ['Gateway', 'The HTTP gateway (`gateway/main.ts`).', gatewaySchema],
  ['Local mode', '`npm run local` (`scripts/local.ts`).', localSchema],
];

export function renderConfigDocs(): string {
  const parts = [
    '# Configuration',
    '',
    'Generated from the config schemas in code by `tsx scripts/gen-config-docs.ts`; a unit test keeps it current.',
    'Every program reads environment variables and flags (flags win), validates them at start and exits',
    'with a message naming the key, the value and what is allowed. Numbers carry their unit.',
  ];
  for (const [title, intro, schema] of sections) parts.push('', `## ${title}`, '', intro, '', configDocs(schema));
  return parts.join('\n') + '\n';
}

if (require.main === module) {
  writeFileSync(CONFIG_DOC_PATH, renderConfigDocs());
  console.log(`wrote ${CONFIG_DOC_PATH}`);
}

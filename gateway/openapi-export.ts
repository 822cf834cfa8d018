import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildOpenApiDocument } from './openapi';

/**
 * Writes the OpenAPI document generated from the route table (gateway/routes.ts) to docs/api/openapi.json,
 * formatted by the repository's prettier settings (so `prettier --check .` stays clean).
 * Usage: `npx tsx gateway/openapi-export.ts [--check]`; --check exits 1 when the committed
 * file differs from the code (the unit test asserts the same).
 */

export const OPENAPI_PATH = join(__dirname, '..', 'docs', 'api', 'openapi.json');

export async function renderOpenApi(): Promise<string> {
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(OPENAPI_PATH)) ?? {};
  return prettier.format(JSON.stringify(buildOpenApiDocument()), { ...options, parser: 'json' });
}

async function run(): Promise<void> {
  const text = await renderOpenApi();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(OPENAPI_PATH, 'utf8');
    } catch {
      // missing counts as different
    }
    if (current !== text) {
      process.stderr.write(`${OPENAPI_PATH} is out of date: run npx tsx gateway/openapi-export.ts\n`);
      process.exit(1);
    }
    return;
  }
  mkdirSync(dirname(OPENAPI_PATH), { recursive: true });
  writeFileSync(OPENAPI_PATH, text);
  process.stdout.write(`wrote ${OPENAPI_PATH}\n`);
}

if (require.main === module) void run();

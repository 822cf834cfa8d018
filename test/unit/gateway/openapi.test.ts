import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROUTES } from '../../../gateway/routes';
import { buildOpenApiDocument } from '../../../gateway/openapi';
import { OPENAPI_PATH } from '../../../gateway/openapi-export';
import { createAjv } from '../../../gateway/validation';
import { topic } from './fixtures';
import { startGateway } from './harness';

type Doc = {
  openapi: string;
  paths: Record<
    string,
    Record<
      string,
      {
        operationId: string;
        parameters: Array<{ name: string; in: string; schema: object }>;
        requestBody?: { content: Record<string, { schema: object }> };
        responses: Record<string, { content?: Record<string, { schema: object }> }>;
      }
    >
  >;
  components: { schemas: Record<string, object> };
};

describe('OpenAPI document', () => {
  const doc = buildOpenApiDocument() as unknown as Doc;

  test('the committed docs/api/openapi.json is the one generated from the code', async () => {
    const committed = readFileSync(OPENAPI_PATH, 'utf8');
    expect(JSON.parse(committed)).toEqual(doc);
    // Byte for byte too (formatting included): prettier runs outside jest's module system.
    const check = spawnSync(process.execPath, [require.resolve('tsx/cli'), 'gateway/openapi-export.ts', '--check'], {
      cwd: join(__dirname, '..', '..', '..'),
      encoding: 'utf8',
    });
    expect([check.status, check.stderr]).toEqual([0, '']);
  }, 30_000);

  test('is OpenAPI 3.1 with every route, unique operation ids and declared path parameters', () => {
    expect(doc.openapi).toBe('3.1.0');
    const ids = new Set<string>();
    for (const r of ROUTES) {
      const op = doc.paths[r.path]?.[r.method];
      expect(op).toBeDefined();
      expect(ids.has(op.operationId)).toBe(false);
      ids.add(op.operationId);
      for (const name of [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]))
        expect(op.parameters.some((p) => p.in === 'path' && p.name === name)).toBe(true);
    }
    expect(ids.size).toBe(ROUTES.length);
  });

  test('every schema in it compiles as JSON Schema 2020-12 and every $ref resolves', () => {
    const ajv = createAjv();
    const resolve = (ref: string) =>
      ref
        .replace(/^#\//, '')
        .split('/')
        .reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], doc);
    const check = (schema: object) => {
      const text = JSON.stringify(schema);
      for (const m of text.matchAll(/"\$ref":"([^"]+)"/g)) expect(resolve(m[1])).toBeDefined();
      if (!text.includes('$ref')) expect(() => ajv.compile(schema)).not.toThrow();
    };
    for (const ops of Object.values(doc.paths))
      for (const op of Object.values(ops)) {
        op.parameters.forEach((p) => check(p.schema));
        if (op.requestBody) Object.values(op.requestBody.content).forEach((c) => check(c.schema));
        Object.values(op.responses).forEach((r) => Object.values(r.content ?? {}).forEach((c) => check(c.schema)));
      }
    Object.values(doc.components.schemas).forEach(check);
  });

  test('is served at /v1/openapi.json, and every documented route answers (not the catch-all 404)', async () => {
    const gw = await startGateway({ topics: [topic('orders')] });
    try {
      const served = await gw.req('GET', '/v1/openapi.json');
      expect(served.status).toBe(200);
      expect(served.json).toEqual(doc);
      for (const r of ROUTES) {
        const path = r.path.replace('{topic}', 'orders').replace('{partition}', '0').replace('{group}', 'g');
        const res = await gw.req(r.method.toUpperCase(), path, r.method === 'post' ? { body: {} } : {});
        expect([r.id, res.json?.detail]).not.toEqual([r.id, 'no such route; see /v1/openapi.json']);
      }
    } finally {
      await gw.close();
    }
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The CLI knows the gateway only through its HTTP API, so nothing at compile time notices when a
 * route it calls changes. This keeps the routes it calls in step with the committed OpenAPI
 * document (docs/api/openapi.json, checked against the gateway's route table by the gateway's own
 * tests). Routes the CLI calls that the gateway does not serve yet, and handles a 404 for, are
 * listed apart.
 */

const CALLS: Array<[method: string, path: string, by: string]> = [
  ['get', '/v1/topics', 'topics list, status'],
  ['get', '/v1/topics/{topic}', 'topics describe, status, produce, consume'],
  ['post', '/v1/topics/{topic}/records', 'produce'],
  ['get', '/v1/topics/{topic}/partitions/{partition}/records', 'consume'],
  ['get', '/v1/groups/{group}/offsets', 'consume --group'],
  ['post', '/v1/groups/{group}/offsets', 'consume --group'],
  ['post', '/v1/groups/{group}/offsets:reset', 'groups reset'],
  ['get', '/v1/groups/{group}', 'groups describe'],
  ['get', '/v1/groups/{group}/policy', 'groups describe --leased'],
  ['post', '/v1/groups/{group}/fetch', 'consume --leased'],
  ['post', '/v1/groups/{group}/acks', 'consume --leased'],
  ['get', '/v1/topics/{topic}/deadletters', 'dlq list'],
  ['get', '/v1/topics/{topic}/deadletters/{id}', 'dlq show'],
  ['post', '/v1/topics/{topic}/deadletters:replay', 'dlq replay'],
  ['post', '/v1/topics/{topic}/deadletters:archive', 'dlq archive'],
  ['post', '/v1/topics/{topic}/deadletters:purge', 'dlq purge'],
  ['get', '/v1/jobs/{job}', 'dlq replay, dlq job'],
  ['get', '/v1/readiness', 'readiness'],
  ['get', '/v1/readiness/history', 'readiness --history'],
  ['get', '/v1/groups', 'groups list'],
];

const doc = JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'docs', 'api', 'openapi.json'), 'utf8')) as {
  paths: Record<string, Record<string, unknown>>;
};

describe('the routes the CLI calls', () => {
  it.each(CALLS)('%s %s (%s) is in the OpenAPI document', (method, path) => {
    expect(Object.keys(doc.paths[path] ?? {})).toContain(method);
  });
});

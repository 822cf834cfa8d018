import type { PartitionClient } from '../../../protocol/methods';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { DaftkaError } from '../../../common/errors';
import { createLogger } from '../../../common/log';
import { createRegistry } from '../../../common/metrics';

import { loadGatewayConfig } from '../../../gateway/config';
import { runGateway } from '../../../gateway/main';
import { RpcServer } from '../../../protocol/rpc-server';
import { servePartition } from '../../../protocol/serve';
import { FakePartitions } from './fake-partition';

const ROOT = join(__dirname, '..', '..', '..');

function runMain(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [require.resolve('tsx/cli'), 'gateway/main.ts', ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
    timeout: 20_000,
  });
}

describe('gateway configuration', () => {
  test('defaults, env and flags', () => {
    const cfg = loadGatewayConfig({ DAFTKA_GATEWAY_TOPICS_FILE: '/t.json', DAFTKA_GATEWAY_PORT: '9000' }, [
      '--request-timeout-ms=2500',
    ]);
    expect(cfg).toMatchObject({
      topicsFile: '/t.json',
      port: 9000,
      requestTimeoutMs: 2500,
      auth: 'off',
      natsUrl: 'nats://127.0.0.1:4222',
    });
  });

  test.each([
    [{}, [], /missing config topicsFile \/ catalogConfigMap/],
    [
      { DAFTKA_GATEWAY_TOPICS_FILE: 't', DAFTKA_GATEWAY_CATALOG_CONFIGMAP: 'daftka/topics' },
      [],
      /conflicting config topicsFile \/ catalogConfigMap/,
    ],
    [{ DAFTKA_GATEWAY_CATALOG_CONFIGMAP: 'just-a-name' }, [], /catalogConfigMap.*namespace\/name/],
    [{ DAFTKA_GATEWAY_TOPICS_FILE: 't' }, ['--port=http'], /port/],
    [{ DAFTKA_GATEWAY_TOPICS_FILE: 't', DAFTKA_GATEWAY_AUTH: 'tokens' }, [], /tokensFile/],
    [{ DAFTKA_GATEWAY_TOPICS_FILE: 't', DAFTKA_NATS_URL: 'http://x' }, [], /natsUrl/],
    [{ DAFTKA_GATEWAY_TOPICS_FILE: 't' }, ['--fetch-max-records=20000'], /fetchMaxRecords/],
    [{ DAFTKA_GATEWAY_TOPICS_FILE: 't' }, ['--port=9464'], /metricsPort.*9464 is the API port/],
    [
      {
        DAFTKA_GATEWAY_TOPICS_FILE: 't',
        DAFTKA_GATEWAY_CLIENT_KEYS_DIR: '/k',
        DAFTKA_GATEWAY_CLIENT_KEYS_SECRET: 'ns/k',
      },
      [],
      /conflicting config clientKeysDir \/ clientKeysSecret/,
    ],
    [
      { DAFTKA_GATEWAY_TOPICS_FILE: 't', DAFTKA_GATEWAY_CLIENT_KEYS_SECRET: 'keys' },
      [],
      /clientKeysSecret.*namespace\/name/,
    ],
  ])('invalid config %j %j is refused naming the key', (env, argv, key) => {
    expect(() => loadGatewayConfig(env, argv)).toThrow(key);
  });

  test('the process exits 2 with the message on invalid configuration', () => {
    const r = runMain(['--port=abc', '--topics-file=/nope.json']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/daftka gateway: invalid config port/);
    const missing = runMain(['--topics-file=/definitely/missing.json', '--nats-url=off']);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/cannot read topics file \/definitely\/missing.json/);
  }, 30_000);
});

describe('gateway process wiring', () => {
  test('serves produce and fetch through the binary client protocol, following a NOT_LEADER redirect', async () => {
    const rlog = createLogger('replica', { stream: new PassThrough().resume() });
    const leaderImpl = new FakePartitions();
    const leader = new RpcServer({
      host: '127.0.0.1',
      port: 0,
      logger: rlog,
      registry: createRegistry('replica', { defaultMetrics: false }),
    });
    servePartition(leader, leaderImpl);
    const leaderAddr = await leader.start();
    const leaderEndpoint = `127.0.0.1:${leaderAddr.port}`;
    const notLeader = () => Promise.reject(new DaftkaError('NOT_LEADER', 'follower', { leaderHint: leaderEndpoint }));
    const followerImpl: PartitionClient = {
      produce: notLeader,
      fetch: notLeader,
      commitOffset: notLeader,
      getOffset: notLeader,
      status: (req) => leaderImpl.status(req),
    };
    const follower = new RpcServer({
      host: '127.0.0.1',
      port: 0,
      logger: rlog,
      registry: createRegistry('replica', { defaultMetrics: false }),
    });
    servePartition(follower, followerImpl);
    const followerAddr = await follower.start();

    const dir = mkdtempSync(join(tmpdir(), 'daftka-gw-'));
    const topicsFile = join(dir, 'topics.json');
    writeFileSync(
      topicsFile,
      JSON.stringify({
        // Both replicas, the follower first: the catalog is what a NOT_LEADER hint may name.
        topics: [
          { name: 'orders', partitions: 1, replicaEndpoints: [[`127.0.0.1:${followerAddr.port}`, leaderEndpoint]] },
        ],
      }),
    );
    const lines: string[] = [];
    const stream = new PassThrough();
    stream.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    const gw = await runGateway(
      loadGatewayConfig({}, [
        `--topics-file=${topicsFile}`,
        '--nats-url=off',
        '--port=0',
        '--metrics-port=0',
        '--host=127.0.0.1',
      ]),
      {
        logger: createLogger('gateway', { stream }),
        topicsReloadMs: 0,
      },
    );
    try {
      const started = lines.map((l) => JSON.parse(l)).find((l) => l.message === 'gateway_started');
      expect(started).toMatchObject({
        port: gw.port,
        nats: 'off',
        auth: 'off',
        topics: 1,
        requestTimeoutMs: 5000,
        maxBodyBytes: 8388608,
      });

      const p = await fetch(`${gw.url}/v1/topics/orders/records`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'wire-1' },
        body: JSON.stringify({ records: [{ key: 'k', value: 'over the wire', headers: { h: 'v' } }] }),
      });
      expect([p.status, await p.json()]).toEqual([200, { results: [{ partition: 0, offset: 0, status: 'written' }] }]);
      expect(leaderImpl.calls.at(-1)).toMatchObject({ op: 'produce', requestId: 'wire-1' });
      expect(gw.router.table.get('orders', 0)?.endpoint).toBe(leaderEndpoint);

      const f = await fetch(`${gw.url}/v1/topics/orders/partitions/0/records?offset=0&encoding=utf8`);
      const body = (await f.json()) as { records: unknown[] };
      expect(body.records[0]).toMatchObject({
        offset: 0,
        key: 'k',
        value: 'over the wire',
        headers: [{ name: 'h', value: 'v' }],
      });
      expect(((await fetch(`${gw.url}/readyz`).then((r) => r.json())) as { status: string }).status).toBe('ready');

      // /metrics on its own port (a NetworkPolicy keeps it to monitoring); the API port has none.
      expect(gw.metricsUrl).not.toBe(gw.url);
      const m = await fetch(`${gw.metricsUrl}/metrics`);
      expect(m.status).toBe(200);
      expect(await m.text()).toMatch(
        /^daftka_gateway_requests_total\{route="produce",code="200",component="gateway"\} 1$/m,
      );
      expect((await fetch(`${gw.url}/metrics`)).status).toBe(404);
    } finally {
      await gw.close();
      await leader.close();
      await follower.close();
    }
  });
});

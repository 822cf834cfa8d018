import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';

/**
 * `daftka consume` over a compacted partition (docs/compaction.md): the gateway may answer a
 * page with no records whose `next_offset` stepped over records compaction removed. A read that
 * does not follow must go on from there to the high watermark it started with, not stop at the
 * first empty page. The gateway here is a small stand-in serving exactly those answers.
 */

const BIN = join(resolve(__dirname, '..', '..', '..'), 'bin', 'daftka');

/** Offsets 0–9 written; compaction left 2 and 9 only. Pages: [0,5) empty, [5,9) empty, then 9. */
function gateway(): Promise<{ server: Server; url: string; fetched: number[] }> {
  const fetched: number[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const send = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/v1/topics/users')
      return send({
        name: 'users',
        partition_count: 1,
        max_record_bytes: 1024,
        quotas: {},
        rights: ['consume'],
        partitions: [{ partition: 0, high_watermark: 10, log_start_offset: 0 }],
      });
    if (url.pathname === '/v1/topics/users/partitions/0/records') {
      const offset = Number(url.searchParams.get('offset'));
      fetched.push(offset);
      const page = (records: unknown[], next: number) =>
        send({ records, next_offset: next, high_watermark: 10, log_start_offset: 0 });
      const rec = (o: number) => ({ offset: o, timestamp: 0, key: `k${o}`, value: `v${o}`, headers: [] });
      if (offset < 2) return page([rec(2)], 3);
      if (offset < 5) return page([], 5); // removed by compaction: nothing, but next_offset moved
      if (offset < 9) return page([], 9);
      return page([rec(9)], 10);
    }
    res.writeHead(404, { 'content-type': 'application/problem+json' });
    res.end(JSON.stringify({ status: 404, code: 'NOT_FOUND', title: 'not found', detail: url.pathname }));
  });
  return new Promise((done) =>
    server.listen(0, '127.0.0.1', () =>
      done({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, fetched }),
    ),
  );
}

function run(args: string[], url: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('DAFTKA_') && v !== undefined) env[k] = v;
  Object.assign(env, { DAFTKA_URL: url, NO_COLOR: '1', XDG_CONFIG_HOME: '/nonexistent-daftka-test' });
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

test('consume reads past empty pages whose next_offset moved, to the high watermark it started with', async () => {
  const g = await gateway();
  try {
    const r = await run(['consume', 'users', '-p', '0', '-q'], g.url);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l !== '')).toEqual(['v2', 'v9']);
    expect(g.fetched).toEqual([0, 3, 5, 9]);
  } finally {
    g.server.close();
  }
}, 30_000);

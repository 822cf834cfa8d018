import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** A bad configuration stops the replica at start, exit code 2, with a message naming the key. */

jest.setTimeout(120_000);
const dir = mkdtempSync(join(tmpdir(), 'daftka-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run replica/main.ts with `env` and no cluster: resolves with the exit code and output. */
function runReplica(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((res) => {
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('DAFTKA_')) base[k] = v;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(resolve(__dirname, '../../../replica'), 'main.ts')],
      {
        cwd: resolve(__dirname, '../../..'),
        env: { ...base, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      res({ code, output });
    });
  });
}

test('a bad configuration exits non-zero at start with a message naming the key', async () => {
  const good = {
    DAFTKA_TOPIC: 'orders',
    DAFTKA_PARTITION: '0',
    DAFTKA_ORDINAL: '0',
    DAFTKA_REPLICAS: '127.0.0.1:1:2,127.0.0.1:3:4,127.0.0.1:5:6',
    DAFTKA_REPLICATION_FACTOR: '3',
    DAFTKA_DATA_DIR: join(dir, 'never-created'),
  };
  const cases: Array<[Record<string, string>, string, RegExp]> = [
    [{ DAFTKA_ORDINAL: '9' }, 'ordinal', /DAFTKA_ORDINAL/],
    [{ DAFTKA_ORDINAL: '3' }, 'ordinal', /DAFTKA_ORDINAL.*3 has no entry in DAFTKA_REPLICAS/],
    [{ DAFTKA_REPLICAS: '127.0.0.1:1,oops' }, 'replicas', /DAFTKA_REPLICAS/],
    [{ DAFTKA_HEARTBEAT_MS: '500' }, 'heartbeatMs', /DAFTKA_HEARTBEAT_MS.*below electionTimeoutMs/],
  ];
  const results = await Promise.all(cases.map(([env]) => runReplica({ ...good, ...env })));
  results.forEach(({ code, output }, i) => {
    const [, key, message] = cases[i];
    expect({ case: cases[i][0], code }).toEqual({ case: cases[i][0], code: 2 });
    const line = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((e) => e.message === 'config_invalid');
    expect(line).toMatchObject({ level: 'error', key });
    expect(String(line!.error)).toMatch(message);
  });
});

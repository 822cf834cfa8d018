/**
 * Crash safety: a child appends with fsync 'always' and is SIGKILLed mid-stream, three times in
 * a row. Every append it reported as resolved must be there after reopen, intact, and the
 * state machine must match the recovered applied index (state ops and applied index are one
 * atomic batch).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { dec, enc, openStorage, payload, removeDir, tempDir } from '../../../helpers/storage';

jest.setTimeout(120_000);

const CHILD = path.join(__dirname, 'crash-child.ts');
const ROOT = path.join(__dirname, '..', '..', '..', '..');

/** Run the child until it has acknowledged `acks` appends past its start, then SIGKILL it. */
function runAndKill(dir: string, acks: number): Promise<{ start: number; maxAcked: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', 'tsx/cjs', CHILD, dir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let start = -1;
    let maxAcked = 0;
    let seen = 0;
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [what, n] = line.split(' ');
      if (what === 'ready') start = Number(n);
      if (what !== 'ack') return;
      maxAcked = Math.max(maxAcked, Number(n));
      if (++seen === acks) process.kill(child.pid!, 'SIGKILL');
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ start, maxAcked });
      else reject(new Error(`child exited ${code}: ${stderr}`));
    });
  });
}

describe('storage crash safety', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('crash');
  });
  afterEach(() => removeDir(dir));

  it('keeps every acknowledged append across SIGKILL, with state matching the applied index', async () => {
    let lastApplied = 0;
    for (const acks of [150, 301, 77]) {
      const run = await runAndKill(dir, acks);
      const s = await openStorage(dir);
      try {
        const r = s.recovered;
        expect(r.lastIndex).toBeGreaterThanOrEqual(run.maxAcked);
        expect(r.tailRepaired).toBe(0);
        expect(r.hardState?.commit).toBeLessThanOrEqual(r.lastIndex);
        const got = await s.readEntries(1, r.lastIndex + 1, 1 << 30);
        expect(got.length).toBe(r.lastIndex);
        for (const e of got) {
          if (!Buffer.from(e.data).equals(Buffer.from(payload(e.index, 1, 1024))))
            throw new Error(`entry ${e.index} damaged`);
        }
        expect(r.appliedIndex).toBeLessThanOrEqual(r.lastIndex);
        const copy = dec(await s.get(enc('applied-copy')));
        expect(copy === undefined ? 0 : Number(copy)).toBe(r.appliedIndex);
        lastApplied = r.appliedIndex;
      } finally {
        await s.close();
      }
    }
    expect(lastApplied).toBeGreaterThan(0);
  });
});

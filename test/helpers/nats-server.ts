import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port';

/**
 * Starts a real `nats-server` (Debian package `nats-server`, installed by scripts/ensure-deps.sh)
 * on a free loopback port for one test, and stops it. Never a mock.
 */
export interface NatsServerHandle {
  url: string;
  port: number;
  pid: number;
  /** Stop the server (SIGTERM, then SIGKILL after 2 s). Safe to call twice. */
  stop(): Promise<void>;
  /** Stop and start again on the same port (for "NATS goes away and comes back" tests). */
  restart(): Promise<void>;
}

export interface NatsServerOptions {
  port?: number;
  /** Enable JetStream with a store dir in a temp folder. */
  jetstream?: boolean;
  extraArgs?: string[];
}

export function natsServerBinary(): string {
  const found = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status !== 0 || path === '')
    throw new Error(
      'nats-server is not installed: run `scripts/ensure-deps.sh` (it installs the Debian package nats-server) or `apt-get install nats-server`',
    );
  return path;
}

function waitForPort(port: number, timeoutMs: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`nats-server exited with ${child.exitCode}: ${log()}`));
      const sock = netConnect({ host: '127.0.0.1', port });
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        if (Date.now() > deadline)
          reject(new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms: ${log()}`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const bin = natsServerBinary();
  const port = opts.port ?? (await freePort());
  const storeDir = opts.jetstream ? mkdtempSync(join(tmpdir(), 'daftka-nats-')) : undefined;
  let child: ChildProcess;
  let output = '';
  const launch = async () => {
    output = '';
    const args = [
      '-a',
      '127.0.0.1',
      '-p',
      String(port),
      ...(storeDir ? ['-js', '-sd', storeDir] : []),
      ...(opts.extraArgs ?? []),
    ];
    child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
    await waitForPort(port, 10_000, child, () => output);
  };
  const stop = async () => {
    const c = child;
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(t);
  };
  await launch();
  const cleanup = () => child.kill('SIGKILL');
  process.once('exit', cleanup);
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return child.pid ?? -1;
    },
    stop: async () => {
      await stop();
      process.removeListener('exit', cleanup);
      if (storeDir) rmSync(storeDir, { recursive: true, force: true });
    },
    restart: async () => {
      await stop();
      await launch();
    },
  };
}

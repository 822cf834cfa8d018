/**
 * What the e2e tests that install the chart under the pod runner share (test/e2e/install.test.ts,
 * test/e2e/product-under-load.test.ts): command lines run without blocking the event loop, and the
 * bundled NATS image run as the machine's nats-server.
 */
import { spawn } from 'node:child_process';
import type { ContainerRun } from './pod-runner';
import { REPO_ROOT } from './k8s-tools';

/** A command line run without blocking the event loop (the runner keeps tending pods meanwhile). */
export function runCommand(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${err}${out}`)),
    );
  });
}

/** The bundled NATS image runs as the machine's nats-server, on the pod's address, paths mapped to its volumes. */
export function natsLauncher(c: ContainerRun) {
  const args = ((c.container.args ?? []) as string[]).map((a) => {
    const m = c.mounts.find((x) => a === x.containerPath || a.startsWith(`${x.containerPath}/`));
    return m ? m.hostPath + a.slice(m.containerPath.length) : a;
  });
  return spawn('nats-server', [...args, '--addr', c.podIP], {
    env: { ...c.env, PATH: process.env.PATH ?? '/usr/bin:/bin' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

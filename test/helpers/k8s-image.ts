/**
 * The container image, built for real (scripts/image/build.sh: podman from a base made locally)
 * and run the way the chart runs it, without a container runtime: each process starts from the
 * image's exported filesystem with the image's user, environment, working directory and
 * entrypoint, under a read-only root (the chart's readOnlyRootFilesystem), with an emptyDir-like
 * tmpfs on /tmp and host directories mounted where the pod would mount volumes. It shares the
 * host's network namespace, so its servers are reached on 127.0.0.1.
 *
 * Isolation is `unshare --mount` + `chroot` + a user switch (root is needed for both); it is
 * what a pod's container gets for files and identity, not a security boundary.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './k8s-tools';

/** The parts of the image config (`podman image inspect .Config`) a container runtime obeys. */
export interface ImageConfig {
  User?: string;
  Env?: string[];
  WorkingDir?: string;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
}

export interface ExportedImage {
  tag: string;
  rootfs: string;
  config: ImageConfig;
  /** Seconds the build and export took. */
  buildSeconds: number;
}

export interface Mount {
  hostPath: string;
  containerPath: string;
  readOnly?: boolean;
}

/**
 * Builds the image from the repository's Dockerfile and exports it into `dir`. The full build log
 * goes to `dir/build.log`; a failure throws with its tail.
 */
export function buildAndExportImage(dir: string, tag = 'localhost/daftka:e2e'): ExportedImage {
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'build.log');
  const log = fs.openSync(logFile, 'w');
  const started = Date.now();
  const r = spawnSync('bash', [path.join(REPO_ROOT, 'scripts', 'image', 'build.sh'), '--tag', tag, '--export', dir], {
    cwd: REPO_ROOT,
    stdio: ['ignore', log, log],
    timeout: 20 * 60_000,
  });
  fs.closeSync(log);
  if (r.status !== 0) {
    const tail = fs.readFileSync(logFile, 'utf8').split('\n').slice(-40).join('\n');
    throw new Error(`image build failed (${r.error?.message ?? `exit ${r.status}`}), ${logFile}:\n${tail}`);
  }
  return {
    tag,
    rootfs: path.join(dir, 'rootfs'),
    config: JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as ImageConfig,
    buildSeconds: (Date.now() - started) / 1000,
  };
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Starts a container process from an exported image: as in a pod, `command` replaces the image's
 * Entrypoint (and drops its Cmd) and `args` replace the Cmd; `env` is added to the image's Env. Returns the process (its own process group: kill
 * it with `process.kill(-child.pid)`). The root filesystem is read-only; /tmp is a fresh tmpfs.
 */
export function runFromImage(
  image: ExportedImage,
  opts: {
    command?: string[];
    args?: string[];
    env?: Record<string, string>;
    mounts?: Mount[];
    stdio?: 'pipe' | 'ignore';
  } = {},
): ChildProcess {
  const c = image.config;
  const root = image.rootfs;
  const user = c.User && c.User !== '' ? c.User : '0:0';
  if (!/^\d+(:\d+)?$/.test(user)) throw new Error(`image user ${user} is not numeric (uid:gid)`);
  const userspec = user.includes(':') ? user : `${user}:${user}`;
  const argv = opts.command
    ? [...opts.command, ...(opts.args ?? [])]
    : [...(c.Entrypoint ?? []), ...(opts.args ?? c.Cmd ?? [])];
  if (argv.length === 0) throw new Error('image has neither entrypoint nor command');
  const env = [...(c.Env ?? []), ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`)];
  const target = (p: string) => shellQuote(path.join(root, p));
  const mounts = [
    // The root is bind-mounted onto itself first, so the mounts below stay writable when it goes read-only.
    `mount --bind ${shellQuote(root)} ${shellQuote(root)}`,
    `mount -t proc proc ${target('/proc')}`,
    `mount --rbind /dev ${target('/dev')}`,
    `mount -t tmpfs -o mode=1777,size=256m tmpfs ${target('/tmp')}`,
    ...(opts.mounts ?? []).flatMap((m) => [
      // A file (e.g. /etc/hosts) is mounted over the image's file; a directory is made if missing.
      `[ -e ${target(m.containerPath)} ] || ${fs.statSync(m.hostPath).isDirectory() ? 'mkdir -p' : 'touch'} ${target(m.containerPath)}`,
      `mount --bind ${shellQuote(m.hostPath)} ${target(m.containerPath)}`,
      ...(m.readOnly ? [`mount -o remount,bind,ro ${target(m.containerPath)}`] : []),
    ]),
    `mount -o remount,bind,ro ${shellQuote(root)}`,
  ];
  const exec = [
    'exec chroot',
    `--userspec=${userspec}`,
    "--groups=''",
    shellQuote(root),
    '/usr/bin/env -i',
    `-C ${shellQuote(c.WorkingDir && c.WorkingDir !== '' ? c.WorkingDir : '/')}`,
    ...env.map(shellQuote),
    ...argv.map(shellQuote),
  ].join(' ');
  const script = ['set -e', ...mounts, exec].join('\n');
  return spawn('unshare', ['--mount', '--propagation', 'private', '--fork', '--kill-child', 'sh', '-c', script], {
    detached: true,
    stdio: ['ignore', opts.stdio ?? 'pipe', opts.stdio ?? 'pipe'],
  });
}

/** Runs a container process to its end; returns its exit code and output. */
export function runToExit(
  image: ExportedImage,
  opts: Parameters<typeof runFromImage>[1] & { timeoutMs?: number } = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = runFromImage(image, opts);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => stopProcess(child), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** SIGTERM to the container process group, SIGKILL after `graceMs`; resolves when it has exited. */
export function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    kill('SIGTERM');
  });
}

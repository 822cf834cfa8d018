/**
 * Child processes of a benchmark: spawned in their own process group with output to a log file,
 * tracked by pid, and killed (SIGKILL to the whole group) when the benchmark exits — normally, on
 * an uncaught error, or on SIGINT/SIGTERM/SIGHUP — so a failed run never leaves servers behind.
 * Also: free loopback ports, and CPU time of a process (and of each of its threads) read from
 * /proc/<pid>/stat.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** Resolves when the process has exited (any reason). */
  exited: Promise<void>;
  alive(): boolean;
}

const LIVE = new Set<Proc>();
const TEMP_DIRS = new Set<string>();
let hooked = false;

/** A directory removed when the benchmark exits, whatever happened (unless BENCH_KEEP=1). */
export function tempDirRemovedAtExit(dir: string): string {
  hook();
  TEMP_DIRS.add(dir);
  return dir;
}

function killGroup(p: Proc, signal: NodeJS.Signals): void {
  try {
    process.kill(-p.pid, signal);
  } catch {
    try {
      p.child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const p of LIVE) killGroup(p, 'SIGKILL');
    LIVE.clear();
    if (process.env.BENCH_KEEP !== '1')
      for (const d of TEMP_DIRS) {
        try {
          rmSync(d, { recursive: true, force: true });
        } catch {
          /* best effort */
        }
      }
  };
  process.once('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(sig, () => {
      console.error(`\n${sig}: killing ${LIVE.size} child processes`);
      killAll();
      process.exit(130);
    });
  process.once('uncaughtException', (err) => {
    console.error(err);
    killAll();
    process.exit(1);
  });
}

export function startProc(
  name: string,
  command: string,
  args: string[],
  env: Record<string, string>,
  logFile: string,
): Proc {
  hook();
  // Output goes straight to the log file: a pipe read by this (busy) process would put the
  // load generator on the path of every log line the servers write (Node writes stdout to a
  // pipe synchronously, so a full pipe stalls the writer's event loop).
  const fd = openSync(logFile, 'a');
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', fd, fd],
    detached: true, // own process group: a kill reaches the process and anything it spawned
  });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not spawn ${name} (${command})`);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const p: Proc = {
    name,
    child,
    pid: child.pid,
    logFile,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
  };
  LIVE.add(p);
  void exited.then(() => LIVE.delete(p));
  return p;
}

/** kill -9 (the whole process group). Resolves once the process is gone. */
export async function killProc(p: Proc): Promise<void> {
  if (!p.alive()) return;
  killGroup(p, 'SIGKILL');
  await p.exited;
}

/** SIGTERM, SIGKILL after `graceMs`. */
export async function stopProc(p: Proc, graceMs = 10_000): Promise<void> {
  if (!p.alive()) return;
  const t = setTimeout(() => killGroup(p, 'SIGKILL'), graceMs);
  killGroup(p, 'SIGTERM');
  await p.exited;
  clearTimeout(t);
}

const usedPorts = new Set<number>();
/** A free TCP port on 127.0.0.1, never the same twice in this process. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.unref();
      s.on('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const a = s.address();
        const n = typeof a === 'object' && a ? a.port : 0;
        s.close(() => resolve(n));
      });
    });
    if (!usedPorts.has(port)) {
      usedPorts.add(port);
      return port;
    }
  }
}

const TICKS_PER_S = 100; // getconf CLK_TCK on Linux

function statCpuMs(path: string): number {
  // Fields after "(comm) ": state is [0]; utime is field 14 → index 11, stime index 12.
  const s = readFileSync(path, 'utf8');
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / TICKS_PER_S;
}

/** CPU time (user + system, all threads) of a process in ms; NaN when it is gone. */
export function cpuMs(pid: number): number {
  try {
    return statCpuMs(`/proc/${pid}/stat`);
  } catch {
    return NaN;
  }
}

/** CPU time per thread (tid → ms) of a process; the main thread's tid is the pid. */
export function threadCpuMs(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        out.set(Number(t), statCpuMs(`/proc/${pid}/task/${t}/stat`));
      } catch {
        /* thread ended */
      }
    }
  } catch {
    /* process gone */
  }
  return out;
}

export function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

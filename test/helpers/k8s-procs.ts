/**
 * Child processes that never outlive the test run.
 *
 * Every component starts in its own process group (detached => setsid), so killing the group also
 * kills anything it forked. Four layers make sure nothing is left behind:
 *   1. stop(): SIGTERM each group, SIGKILL what is still there after a grace period;
 *   2. process 'exit' and SIGINT/SIGTERM/SIGHUP of the test process: SIGKILL every group synchronously;
 *   3. a watchdog shell (its own group) that polls the test process and kills the groups when it is
 *      gone, even after a SIGKILL of the test process, which no handler sees;
 *   4. sweepStaleEnvs(): groups recorded in the run directories of dead owners are killed on the next
 *      start (after checking /proc/<pid>/cmdline still names that directory, against pid reuse).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Run directories are named <tmp>/<RUN_DIR_PREFIX>XXXXXX. */
export const RUN_DIR_PREFIX = 'daftka-k8s-';
const PIDS_FILE = 'pids';
const OWNER_FILE = 'owner.pid';
/** Present in a run directory kept for debugging (DAFTKA_K8S_KEEP=1): the sweep leaves it in place. */
export const KEEP_FILE = 'kept';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  name: string;
  pid: number;
  logPath: string;
  child: ChildProcess;
  /** Set once the process has exited. */
  exit?: ExitInfo;
  exited: Promise<ExitInfo>;
}

const liveGroups = new Set<ProcessGroups>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const groups of liveGroups) groups.killAllSync();
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      for (const groups of liveGroups) groups.killAllSync();
      // Keep the default behaviour (terminate) unless someone else also handles the signal.
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The process groups of one environment, recorded in <dir>/pids for the watchdog and the sweep. */
export class ProcessGroups {
  readonly procs: ManagedProcess[] = [];
  private watchdog?: ChildProcess;

  constructor(
    readonly dir: string,
    readonly logsDir: string,
  ) {
    fs.mkdirSync(logsDir, { recursive: true });
    fs.writeFileSync(path.join(dir, OWNER_FILE), `${process.pid}\n`);
    fs.writeFileSync(path.join(dir, PIDS_FILE), '');
    installExitHooks();
    liveGroups.add(this);
  }

  /** Starts the watchdog that kills every recorded group once this (the owner) process is gone. */
  startWatchdog(removeDirWhenOrphaned: boolean): void {
    const script = [
      'owner="$1"; dir="$2"; rmdir_after="$3"',
      'while kill -0 "$owner" 2>/dev/null; do sleep 1; done',
      'while read -r pgid _; do [ -n "$pgid" ] && kill -KILL -- "-$pgid" 2>/dev/null; done < "$dir/pids"',
      '[ "$rmdir_after" = 1 ] && rm -rf "$dir"',
      'exit 0',
    ].join('\n');
    const child = spawn(
      'bash',
      ['-c', script, 'daftka-k8s-watchdog', String(process.pid), this.dir, removeDirWhenOrphaned ? '1' : '0'],
      { detached: true, stdio: 'ignore' },
    );
    child.unref();
    this.watchdog = child;
  }

  /** Starts <command> in a new process group; stdout and stderr go to <logsDir>/<name>.log. */
  start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ManagedProcess {
    const logPath = path.join(this.logsDir, `${name}.log`);
    const fd = fs.openSync(logPath, 'a');
    fs.writeSync(fd, `# ${new Date().toISOString()} ${command} ${args.join(' ')}\n`);
    let child: ChildProcess;
    try {
      child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], env, cwd: this.dir });
    } finally {
      fs.closeSync(fd);
    }
    if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
    // Do not keep the test process alive for it: stop() or the exit hook ends it.
    child.unref();
    fs.appendFileSync(path.join(this.dir, PIDS_FILE), `${child.pid} ${name}\n`);
    const proc: ManagedProcess = {
      name,
      pid: child.pid,
      logPath,
      child,
      exited: new Promise<ExitInfo>((resolve) => {
        child.once('exit', (code, signal) => {
          proc.exit = { code, signal };
          resolve(proc.exit);
        });
        child.once('error', () => {
          proc.exit = { code: -1, signal: null };
          resolve(proc.exit);
        });
      }),
    };
    this.procs.push(proc);
    return proc;
  }

  /** Stops one process group: SIGTERM, then SIGKILL after graceMs. */
  async stopOne(proc: ManagedProcess, graceMs = 5_000): Promise<void> {
    killGroup(proc.pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (groupAlive(proc.pid) && Date.now() < deadline) await sleep(50);
    killGroup(proc.pid, 'SIGKILL');
    // Our own child: node reaps it promptly. Bounded all the same (a zombie counts as a member).
    const reapDeadline = Date.now() + 5_000;
    while (groupAlive(proc.pid) && Date.now() < reapDeadline) await sleep(20);
  }

  /** Stops every group, newest first (kwok before the apiserver before etcd), then the watchdog. */
  async stopAll(graceMs = 5_000): Promise<void> {
    for (const proc of [...this.procs].reverse()) await this.stopOne(proc, graceMs);
    if (this.watchdog?.pid) killGroup(this.watchdog.pid, 'SIGKILL');
    liveGroups.delete(this);
  }

  /** For exit hooks: SIGKILL every group now. */
  killAllSync(): void {
    for (const proc of this.procs) killGroup(proc.pid, 'SIGKILL');
    if (this.watchdog?.pid) killGroup(this.watchdog.pid, 'SIGKILL');
  }
}

/** The last `lines` lines of a log file ('' when it does not exist). */
export function tailFile(file: string, lines = 30): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
  return text
    .split('\n')
    .slice(-lines - 1)
    .join('\n');
}

/**
 * Kills the process groups left by environments whose owning process is dead and removes their run
 * directories (except those kept for debugging). Safe while other environments (other test runs, other users) are live: those have
 * a living owner and are not touched.
 */
export function sweepStaleEnvs(tmpRoot = os.tmpdir()): string[] {
  const swept: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(tmpRoot);
  } catch {
    return swept;
  }
  for (const entry of entries) {
    if (!entry.startsWith(RUN_DIR_PREFIX)) continue;
    const dir = path.join(tmpRoot, entry);
    let owner: number;
    try {
      owner = Number(fs.readFileSync(path.join(dir, OWNER_FILE), 'utf8').trim());
    } catch {
      continue; // not ours, or being created right now
    }
    if (!Number.isInteger(owner) || owner <= 0 || alive(owner)) continue;
    let pids = '';
    try {
      pids = fs.readFileSync(path.join(dir, PIDS_FILE), 'utf8');
    } catch {
      // no processes recorded
    }
    for (const line of pids.split('\n')) {
      const pgid = Number(line.split(' ')[0]);
      if (!Number.isInteger(pgid) || pgid <= 0) continue;
      let cmdline = '';
      try {
        cmdline = fs.readFileSync(`/proc/${pgid}/cmdline`, 'utf8');
      } catch {
        continue; // gone
      }
      if (cmdline.includes(dir)) killGroup(pgid, 'SIGKILL');
    }
    if (!fs.existsSync(path.join(dir, KEEP_FILE))) {
      fs.rmSync(dir, { recursive: true, force: true });
      swept.push(dir);
    }
  }
  return swept;
}

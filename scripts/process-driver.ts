import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { Backoff, RestartIntensity } from '../common/backoff';
import type { Logger } from '../common/log';

/**
 * Local mode's stand-in for Kubernetes: runs each program as a child process, writes its output
 * to `<logDir>/<name>.log`, and restarts it when it crashes (capped, jittered backoff, reset after
 * a run of `windowMs`; more than `maxRestarts` in `windowMs` leaves it down and says so — a crash
 * loop is a visible state, not a spin). Stop sends SIGTERM (the graceful path: leadership
 * transfer) and SIGKILL to the child's process group after a grace.
 *
 * One process can be stopped and kept down (`stop(name)`) and started again (`resume(name)`),
 * e.g. to take NATS away in a test; a process that dies on its own is restarted.
 */
export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  env: Record<string, string>;
}

interface Managed {
  spec: ProcessSpec;
  child: ChildProcess | null;
  log: WriteStream;
  backoff: Backoff;
  intensity: RestartIntensity;
  restarts: number;
  startedAt: number;
  state: 'running' | 'backoff' | 'crash-loop' | 'stopped';
}

export interface ProcessDriverOptions {
  maxRestarts: number;
  windowMs: number;
  graceMs: number;
}

/** SIGKILL a child's whole process group (its own helpers too, e.g. tsx's esbuild), or the child alone. */
function killGroup(c: ChildProcess): void {
  if (c.pid === undefined) return;
  try {
    process.kill(-c.pid, 'SIGKILL');
  } catch {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export class ProcessDriver {
  private readonly procs = new Map<string, Managed>();
  private stopping = false;
  private readonly opts: ProcessDriverOptions;
  // If the driver itself dies, its children must not outlive it.
  private readonly onExit = () => {
    for (const m of this.procs.values()) if (m.child) killGroup(m.child);
  };

  constructor(
    private readonly logDir: string,
    private readonly logger: Logger,
    opts: Partial<ProcessDriverOptions> = {},
  ) {
    this.opts = { maxRestarts: 5, windowMs: 60_000, graceMs: 12_000, ...opts };
    mkdirSync(logDir, { recursive: true });
    process.once('exit', this.onExit);
  }

  start(spec: ProcessSpec): void {
    if (this.procs.has(spec.name)) throw new Error(`process ${spec.name} is already managed`);
    const m: Managed = {
      spec,
      child: null,
      log: createWriteStream(join(this.logDir, `${spec.name}.log`), { flags: 'a' }),
      backoff: new Backoff({ initialMs: 200, maxMs: 10_000 }),
      intensity: new RestartIntensity({ maxFailures: this.opts.maxRestarts, windowMs: this.opts.windowMs }),
      restarts: 0,
      startedAt: 0,
      state: 'running',
    };
    this.procs.set(spec.name, m);
    this.launch(m);
  }

  private launch(m: Managed): void {
    // Own process group: a terminal's Ctrl-C reaches only the driver, which then stops the
    // children in order (gateway, replicas with leadership transfer, nats-server).
    const child = spawn(m.spec.command, m.spec.args, {
      env: { ...process.env, ...m.spec.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    m.child = child;
    m.state = 'running';
    m.startedAt = Date.now();
    child.stdout?.pipe(m.log, { end: false });
    child.stderr?.pipe(m.log, { end: false });
    let gone = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null) => {
      if (gone) return;
      gone = true;
      if (m.child === child) m.child = null;
      if (this.stopping || m.state === 'stopped') return;
      this.logger.warn('process_exited', { process: m.spec.name, code, signal, restarts: m.restarts });
      // A process that ran for a whole window was healthy: its next crash starts the backoff over.
      if (Date.now() - m.startedAt >= this.opts.windowMs) m.backoff.reset();
      if (m.intensity.record() === 'escalate') {
        m.state = 'crash-loop';
        this.logger.error('process_crash_loop', { process: m.spec.name, log: join(this.logDir, `${m.spec.name}.log`) });
        return;
      }
      m.state = 'backoff';
      setTimeout(() => {
        if (this.stopping || m.state !== 'backoff') return;
        m.restarts++;
        this.launch(m);
      }, m.backoff.next());
    };
    // A spawn failure (ENOENT, EACCES) emits 'error' and no 'exit': count it as an exit.
    child.on('error', (err) => {
      this.logger.warn('process_spawn_failed', { process: m.spec.name, error: err.message });
      if (child.pid === undefined) onGone(null, null);
    });
    child.on('exit', onGone);
  }

  pid(name: string): number | undefined {
    return this.procs.get(name)?.child?.pid;
  }

  /** How many times the driver restarted `name` after it exited on its own. */
  restarts(name: string): number {
    return this.procs.get(name)?.restarts ?? 0;
  }

  names(): string[] {
    return [...this.procs.keys()];
  }

  states(): Record<string, string> {
    return Object.fromEntries([...this.procs].map(([n, m]) => [n, m.state]));
  }

  /**
   * Stop one process and keep it down until `resume(name)`: `signal` (default SIGTERM, the
   * graceful path), SIGKILL to its process group after the grace.
   */
  async stop(name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const m = this.procs.get(name);
    if (m === undefined) throw new Error(`no process ${name}`);
    await this.terminate(m, signal);
  }

  /** Start again a process stopped with `stop` (or left down in a crash loop), with a fresh restart budget. */
  resume(name: string): void {
    const m = this.procs.get(name);
    if (m === undefined) throw new Error(`no process ${name}`);
    if (this.stopping) throw new Error('the driver is stopping');
    if (m.state !== 'stopped' && m.state !== 'crash-loop') return;
    m.backoff.reset();
    m.intensity = new RestartIntensity({ maxFailures: this.opts.maxRestarts, windowMs: this.opts.windowMs });
    this.launch(m);
  }

  /** SIGTERM every process (in the order given: later groups after earlier ones exit), SIGKILL after the grace. */
  async stopAll(order: Array<(name: string) => boolean> = [() => true]): Promise<void> {
    this.stopping = true;
    const done = new Set<string>();
    for (const pick of [...order, () => true]) {
      const group = [...this.procs.values()].filter((m) => !done.has(m.spec.name) && pick(m.spec.name));
      await Promise.all(group.map((m) => this.terminate(m, 'SIGTERM')));
      for (const m of group) done.add(m.spec.name);
    }
    await Promise.all([...this.procs.values()].map((m) => new Promise<void>((r) => m.log.end(() => r()))));
    process.removeListener('exit', this.onExit);
  }

  private terminate(m: Managed, signal: NodeJS.Signals): Promise<void> {
    m.state = 'stopped';
    const c = m.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => killGroup(c), this.opts.graceMs);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      if (signal === 'SIGKILL') killGroup(c);
      else c.kill(signal);
    });
  }
}

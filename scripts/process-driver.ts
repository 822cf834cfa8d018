import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { Backoff, RestartIntensity } from '../common/backoff';
import type { Logger } from '../common/log';

/**
 * Local mode's stand-in for Kubernetes: runs each program as a child process, writes its output
 * to `<logDir>/<name>.log`, and restarts it when it crashes (capped, jittered backoff; more than
 * `maxRestarts` in `windowMs` leaves it down and says so — a crash loop is a visible state, not a
 * spin). Stop sends SIGTERM (the graceful path: leadership transfer) and SIGKILL after a grace.
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
  state: 'running' | 'backoff' | 'crash-loop' | 'stopped';
}

export class ProcessDriver {
  private readonly procs = new Map<string, Managed>();
  private stopping = false;

  constructor(
    private readonly logDir: string,
    private readonly logger: Logger,
    private readonly opts: { maxRestarts: number; windowMs: number; graceMs: number } = {
      maxRestarts: 5,
      windowMs: 60_000,
      graceMs: 12_000,
    },
  ) {
    mkdirSync(logDir, { recursive: true });
    // If the driver itself dies, its children must not outlive it.
    process.once('exit', () => {
      for (const m of this.procs.values()) m.child?.kill('SIGKILL');
    });
  }

  start(spec: ProcessSpec): void {
    const m: Managed = {
      spec,
      child: null,
      log: createWriteStream(join(this.logDir, `${spec.name}.log`), { flags: 'a' }),
      backoff: new Backoff({ initialMs: 200, maxMs: 10_000 }),
      intensity: new RestartIntensity({ maxFailures: this.opts.maxRestarts, windowMs: this.opts.windowMs }),
      restarts: 0,
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
    child.stdout?.pipe(m.log, { end: false });
    child.stderr?.pipe(m.log, { end: false });
    child.on('exit', (code, signal) => {
      m.child = null;
      if (this.stopping || m.state === 'stopped') return;
      this.logger.warn('process_exited', { process: m.spec.name, code, signal, restarts: m.restarts });
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
    });
  }

  pid(name: string): number | undefined {
    return this.procs.get(name)?.child?.pid;
  }

  states(): Record<string, string> {
    return Object.fromEntries([...this.procs].map(([n, m]) => [n, m.state]));
  }

  /** SIGTERM every process (in the order given: later groups after earlier ones exit), SIGKILL after the grace. */
  async stopAll(order: Array<(name: string) => boolean> = [() => true]): Promise<void> {
    this.stopping = true;
    const done = new Set<string>();
    for (const pick of order) {
      const group = [...this.procs.values()].filter((m) => !done.has(m.spec.name) && pick(m.spec.name));
      await Promise.all(group.map((m) => this.stopOne(m)));
      for (const m of group) done.add(m.spec.name);
    }
  }

  private stopOne(m: Managed): Promise<void> {
    m.state = 'stopped';
    const c = m.child;
    const closeLog = () => new Promise<void>((r) => m.log.end(() => r()));
    if (!c || c.exitCode !== null || c.signalCode !== null) return closeLog();
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), this.opts.graceMs);
      c.once('exit', () => {
        clearTimeout(t);
        void closeLog().then(resolve);
      });
      c.kill('SIGTERM');
    });
  }
}

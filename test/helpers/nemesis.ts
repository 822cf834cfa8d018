import type { ProxyMesh } from './fault-proxy';
import { sleep, type ReplicaCluster } from './replica-cluster';
import type { Prng } from '../sim/prng';

/**
 * The nemesis of the tier-3 test (test/integration/replica/nemesis.test.ts): a fault schedule drawn
 * from a seed (`plan`) and the runner that applies it to a replica cluster whose peer links pass
 * through a fault-injecting proxy mesh (`Nemesis`): leader isolated, a link cut one way, links
 * delayed and stalled, a replica SIGSTOPped, leader and follower killed with SIGKILL.
 */

export type Role = 'leader' | 'follower';
export type Fault =
  | { kind: 'isolate'; role: Role; holdMs: number }
  | { kind: 'cut-one-way'; fromLeader: boolean; holdMs: number }
  | { kind: 'delay'; role: Role; delayMs: number; holdMs: number }
  | { kind: 'stall-links'; role: Role; holdMs: number }
  | { kind: 'sigstop'; role: Role; holdMs: number }
  | { kind: 'kill9'; role: Role; downMs: number };

/** The schedule from the seed: every fault class once (leader isolated and killed at least once), then random extras. */
export function plan(rng: Prng): { faults: Fault[]; pick: Prng } {
  const role = (): Role => (rng.chance(0.5) ? 'leader' : 'follower');
  const one = (kind: Fault['kind'], r: Role = role()): Fault => {
    switch (kind) {
      case 'isolate':
        return { kind, role: r, holdMs: rng.intIn(1500, 3500) };
      case 'cut-one-way':
        return { kind, fromLeader: rng.chance(0.5), holdMs: rng.intIn(1500, 3500) };
      case 'delay':
        return { kind, role: r, delayMs: rng.intIn(20, 150), holdMs: rng.intIn(1500, 3000) };
      case 'stall-links':
        return { kind, role: r, holdMs: rng.intIn(800, 2000) };
      case 'sigstop':
        return { kind, role: r, holdMs: rng.intIn(800, 2500) };
      case 'kill9':
        return { kind, role: r, downMs: rng.intIn(300, 1500) };
    }
  };
  const must: Fault[] = [
    one('isolate', 'leader'),
    one('cut-one-way'),
    one('delay'),
    one('stall-links'),
    one('sigstop'),
    one('kill9', 'leader'),
    one('kill9', 'follower'),
  ];
  for (let i = must.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [must[i], must[j]] = [must[j], must[i]];
  }
  const kinds: Array<Fault['kind']> = ['isolate', 'cut-one-way', 'delay', 'stall-links', 'sigstop', 'kill9'];
  const extras = Array.from({ length: 12 }, () => one(rng.pick(kinds)));
  return { faults: [...must, ...extras], pick: rng.fork() };
}

const describeFault = (f: Fault): string => JSON.stringify(f);

/** Runs the schedule: one fault at a time, each healed before the next. */
export class Nemesis {
  readonly done: Array<{ fault: string; target: string; atMs: number; tookMs: number }> = [];
  readonly stopped = new Set<number>();
  private aborted = false;

  constructor(
    private readonly cluster: ReplicaCluster,
    private readonly mesh: ProxyMesh,
    private readonly pick: Prng,
  ) {}

  abort(): void {
    this.aborted = true;
  }

  private async leader(): Promise<number | null> {
    return (await this.cluster.leader())?.ordinal ?? null;
  }

  /** The ordinal for `role`: the leader, or one of the others (seeded choice). */
  private async choose(role: Role): Promise<number> {
    // One draw whatever the answer, so the rest of the schedule replays from the seed.
    const draw = this.pick.next();
    const l = await this.leader();
    if (role === 'leader' && l !== null) return l;
    const others = this.cluster.slots.map((s) => s.ordinal).filter((o) => o !== l);
    return others[Math.floor(draw * others.length)];
  }

  private async hold(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.aborted && Date.now() < until) await sleep(Math.min(100, until - Date.now()));
  }

  /** Every process answers status again (after a restart or SIGCONT), bounded. */
  private async settle(timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!this.aborted && Date.now() < until) {
      const st = await this.cluster.statuses();
      if (st.every((s) => s !== null && s.appliedIndex > 0) && (await this.leader()) !== null) return;
      await sleep(100);
    }
  }

  async run(faults: Fault[], budgetMs: number, mandatory: number): Promise<void> {
    const t0 = Date.now();
    for (const [i, f] of faults.entries()) {
      if (this.aborted) return;
      if (i >= mandatory && Date.now() - t0 >= budgetMs) return;
      await this.hold(this.pick.intIn(300, 1000));
      const at = Date.now() - t0;
      const target = await this.apply(f);
      this.done.push({ fault: describeFault(f), target, atMs: at, tookMs: Date.now() - t0 - at });
    }
  }

  private neighbours(o: number): number[] {
    return this.cluster.slots.map((s) => s.ordinal).filter((x) => x !== o);
  }

  private async apply(f: Fault): Promise<string> {
    switch (f.kind) {
      case 'isolate': {
        const o = await this.choose(f.role);
        this.mesh.isolate(o);
        await this.hold(f.holdMs);
        this.mesh.healAll();
        return `replica ${o}`;
      }
      case 'cut-one-way': {
        const l = (await this.leader()) ?? 0;
        const other = this.pick.pick(this.neighbours(l));
        const [from, to] = f.fromLeader ? [l, other] : [other, l];
        this.mesh.cutOneWay(from, to);
        await this.hold(f.holdMs);
        this.mesh.healAll();
        return `link ${from}→${to}`;
      }
      case 'delay': {
        const o = await this.choose(f.role);
        for (const x of this.neighbours(o)) {
          this.mesh.delayLink(o, x, f.delayMs);
          this.mesh.delayLink(x, o, f.delayMs);
        }
        await this.hold(f.holdMs);
        this.mesh.healAll();
        return `links of replica ${o}`;
      }
      case 'stall-links': {
        const o = await this.choose(f.role);
        const x = this.pick.pick(this.neighbours(o));
        this.mesh.pauseLink(o, x);
        this.mesh.pauseLink(x, o);
        await this.hold(f.holdMs);
        this.mesh.healAll();
        return `links ${o}↔${x}`;
      }
      case 'sigstop': {
        const o = await this.choose(f.role);
        const pid = this.cluster.slots[o].pid;
        if (pid === undefined || !this.cluster.slots[o].running) return `replica ${o} (not running)`;
        process.kill(pid, 'SIGSTOP');
        this.stopped.add(pid);
        await this.hold(f.holdMs);
        this.cont(pid);
        await this.settle();
        return `replica ${o} (pid ${pid})`;
      }
      case 'kill9': {
        const o = await this.choose(f.role);
        const pid = this.cluster.slots[o].pid;
        await this.cluster.kill(o, 'SIGKILL');
        await this.hold(f.downMs);
        if (!this.aborted) await this.cluster.restart(o);
        await this.settle();
        return `replica ${o} (pid ${pid} → ${this.cluster.slots[o].pid})`;
      }
    }
  }

  cont(pid: number): void {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    this.stopped.delete(pid);
  }

  /** Undo whatever is still in force: links healed, stopped processes continued. */
  healEverything(): void {
    this.mesh.healAll();
    for (const pid of [...this.stopped]) this.cont(pid);
  }
}

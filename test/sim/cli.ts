/**
 * Deterministic simulation CLI.
 *   npm run sim -- --seeds 1000 [--from 5000]     run a range of seeds (swarm)
 *   npm run sim -- --seed 1234 --trace            replay one seed and print its event trace
 *   npm run sim -- --seed 1234 --bug commitPreviousTermEntries   the same with a rule broken
 *   --quick                                       the CI budget (what the jest swarm runs)
 * A failing seed prints the exact command that replays it.
 */
import type { RaftBugs } from '../../replica/raft/bugs';
import { replayCommand, runSeed, type RunResult } from './simulation';

function parseArgs(argv: string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const next = argv[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      out.set(a.slice(2), next);
      i++;
    } else out.set(a.slice(2), true);
  }
  return out;
}

function intArg(args: Map<string, string | true>, name: string, def: number): number {
  const v = args.get(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
  return n;
}

function summary(r: RunResult): string {
  const p = r.profile;
  return (
    `seed ${r.seed}: ${r.ok ? 'ok' : `FAIL (${r.invariant})`} events=${r.events} simMs=${r.simMs.toFixed(0)} ` +
    `acks=${r.acks} committed=${r.committed} terms=${r.terms} crashes=${r.crashes} confChanges=${r.confChanges} ` +
    `[nodes=${p.nodes} E=${p.electionTicks} H=${p.heartbeatTicks} preVote=${p.preVote} checkQuorum=${p.checkQuorum} ` +
    `drop=${p.dropRate} dup=${p.dupRate} faultMs=${p.faultMeanMs} operatorMs=${p.operatorMeanMs}]`
  );
}

function main(): number {
  const args = parseArgs(process.argv.slice(2));
  const bug = args.get('bug');
  const bugs: RaftBugs | undefined = typeof bug === 'string' ? { [bug]: true } : undefined;
  const budget = args.has('quick') ? 'quick' : 'full';
  if (args.has('seed')) {
    const seed = intArg(args, 'seed', 0);
    const r = runSeed({ seed, trace: args.has('trace'), bugs, budget });
    if (args.has('trace')) for (const line of r.trace) console.log(line);
    console.log(summary(r));
    if (!r.ok) console.log(r.error);
    return r.ok ? 0 : 1;
  }
  const count = intArg(args, 'seeds', 100);
  const from = intArg(args, 'from', 0);
  const started = performance.now();
  const failures: RunResult[] = [];
  let events = 0;
  for (let seed = from; seed < from + count; seed++) {
    const r = runSeed({ seed, bugs, budget });
    events += r.events;
    if (!r.ok) {
      failures.push(r);
      console.log(summary(r));
      console.log(`  ${r.error?.split('\n')[0]}`);
      console.log(`  replay: ${replayCommand({ seed, budget, bugs })}`);
    }
    if (args.has('verbose')) console.log(summary(r));
  }
  const secs = (performance.now() - started) / 1000;
  console.log(
    `${count} seeds [${from}, ${from + count}) in ${secs.toFixed(1)}s (${((secs * 1000) / count).toFixed(1)} ms/seed, ` +
      `${events} events): ${failures.length} failed`,
  );
  return failures.length === 0 ? 0 : 1;
}

process.exitCode = main();

import type { RaftBugs } from '../../replica/raft/bugs';
import { replayCommand, runSeed, type RunResult } from './simulation';
import type { Budget } from './profile';

export interface SwarmReport {
  seeds: number;
  events: number;
  failures: RunResult[];
  /** One line per failure: what broke and how to replay it. */
  summary: string;
}

/** Run seeds [from, from+count); collect failures with their replay commands. */
export function runSwarm(
  from: number,
  count: number,
  opts: { budget?: Budget; bugs?: RaftBugs; stopAtFirstFailure?: boolean } = {},
): SwarmReport {
  const failures: RunResult[] = [];
  let events = 0;
  let seeds = 0;
  for (let seed = from; seed < from + count; seed++) {
    const r = runSeed({ seed, budget: opts.budget, bugs: opts.bugs });
    seeds++;
    events += r.events;
    if (!r.ok) {
      failures.push(r);
      if (opts.stopAtFirstFailure) break;
    }
  }
  const summary = failures
    .map(
      (r) =>
        `seed ${r.seed}: ${r.invariant}: ${r.error?.split('\n')[0]}\n  replay: ${replayCommand({ seed: r.seed, budget: opts.budget, bugs: opts.bugs })}`,
    )
    .join('\n');
  return { seeds, events, failures, summary };
}

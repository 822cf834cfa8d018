import type { RaftBugs } from '../../replica/raft/bugs';
import type { Profile } from './profile';
import { Simulation } from './simulation';
import type { SimNode } from './simnode';

/**
 * Scripted scenarios on the simulator: a fixed, benign profile (no random clients, faults or
 * operator), the oracle checking every event as in the swarm, and helpers to drive elections
 * and writes by hand.
 */
export const SCENARIO_PROFILE: Profile = {
  nodes: 3,
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  maxSizePerMsgBytes: 1 << 20,
  maxInflightMsgs: 64,
  maxInflightBytes: 1 << 24,
  maxUncommittedBytes: 0,
  maxCommittedBytesPerReady: 64 << 20,
  tickMs: 10,
  clockDrift: 0,
  delayMaxBaseMs: 1,
  delayJitterMs: 0.5,
  reorderRate: 0,
  slowMsgRate: 0,
  dropRate: 0,
  dupRate: 0,
  codec: true,
  sendAppsBeforePersist: false,
  diskLatencyMs: 0.5,
  diskStallRate: 0,
  diskStallMs: 0,
  storageUnavailableRate: 0,
  faultMeanMs: 0,
  faultWeights: {
    crash: 0,
    crashLeader: 0,
    crashLeaderOnCommit: 0,
    partition: 0,
    oneWay: 0,
    isolate: 0,
    isolateLeader: 0,
    bridge: 0,
    diskStall: 0,
    pause: 0,
  },
  faultMeanDurationMs: 100,
  clientMeanMs: 10,
  clientMaxBatch: 1,
  payloadMaxBytes: 0,
  clientMisrouteRate: 0,
  clientMaxBacklog: 100,
  operatorMeanMs: 0,
  transferMeanMs: 0,
  compactEvery: 0,
  compactKeep: 0,
  chaosMs: 0,
  livenessElectionTimeouts: 40,
};

export function scenario(over: Partial<Profile> = {}, opts: { bugs?: RaftBugs; trace?: boolean } = {}): Simulation {
  const sim = new Simulation(1, { profile: { ...SCENARIO_PROFILE, ...over }, bugs: opts.bugs, trace: opts.trace });
  sim.phase = 'manual';
  sim.bootstrap();
  return sim;
}

/** The founding member with ordinal i (1-based). */
export function member(sim: Simulation, i: number): SimNode {
  return sim.node(`n${i}.1`);
}

/** Make `n` campaign until it leads (forcing its timeout each round). */
export function elect(sim: Simulation, n: SimNode, rounds = 5): void {
  for (let i = 0; i < rounds; i++) {
    sim.campaign(n);
    if (sim.runFor(20 * sim.profile.tickMs, () => n.raft?.role === 'leader' || n.raft?.role === 'follower')) {
      if (n.raft?.role === 'leader') return;
    }
  }
  throw new Error(`${n.id} did not win an election: ${sim.describe()}`);
}

/** Wait (simulated time) until `pred`, or fail with the cluster state. */
export function waitFor(sim: Simulation, what: string, pred: () => boolean, ms = 2000): void {
  if (!sim.runFor(ms, pred)) throw new Error(`timed out waiting for ${what}: ${sim.describe()}`);
}

/** Propose `count` entries at `n` and wait until all are acknowledged. Returns their indexes. */
export function write(sim: Simulation, n: SimNode, count = 1, ms = 2000): number[] {
  const before = sim.stats.acks;
  const idx = sim.propose(n, count);
  if (idx === null) throw new Error(`${n.id} refused the proposal: ${sim.describe()}`);
  waitFor(sim, `${count} acks`, () => sim.stats.acks >= before + count, ms);
  return idx;
}

export function cutBoth(sim: Simulation, a: SimNode, others: SimNode[]): void {
  for (const b of others) {
    sim.cut(a.id, b.id);
    sim.cut(b.id, a.id);
  }
}

import type { Prng } from './prng';

/**
 * A fault profile. Swarm testing: every seed draws its own (some seeds have no crashes but heavy
 * loss, others constant membership churn on a perfect network…), which finds more bugs than
 * one "average" mix applied to every run.
 */
export interface Profile {
  /** Founding voters. */
  nodes: number;
  electionTicks: number;
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  maxSizePerMsgBytes: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  maxUncommittedBytes: number;
  maxCommittedBytesPerReady: number;
  tickMs: number;
  /** Each node's tick period is tickMs × (1 ± up to this). */
  clockDrift: number;

  /** Network: one-way delay = linkBaseMs (per link, drawn in [0, delayMaxBaseMs]) + jitter. */
  delayMaxBaseMs: number;
  delayJitterMs: number;
  /**
   * Links are FIFO (TCP) except for this fraction of messages, which take their own delay and
   * so overtake or fall behind the stream.
   */
  reorderRate: number;
  /** Of the reordered messages (and duplicates), the fraction that are much later (20–200 ms). */
  slowMsgRate: number;
  dropRate: number;
  dupRate: number;
  /** Round-trip every message through the binary codec. */
  codec: boolean;

  /** The driver sends a leader's App/Heartbeat before persisting the Ready (as the replica does). */
  sendAppsBeforePersist: boolean;
  diskLatencyMs: number;
  /** Chance that an fsync stalls for up to diskStallMs. */
  diskStallRate: number;
  diskStallMs: number;
  /** Chance that the storage answers "not available now" (null) to entries()/snapshot(). */
  storageUnavailableRate: number;

  /** Mean ms between faults (crash, partition …); 0 = none. */
  faultMeanMs: number;
  /** Relative weights of the fault kinds. */
  faultWeights: {
    crash: number;
    /** Crash whoever leads right now. */
    crashLeader: number;
    /** Crash the leader the moment its commit index next advances (the worst moment). */
    crashLeaderOnCommit: number;
    partition: number;
    oneWay: number;
    isolate: number;
    /** Cut the current leader off (it keeps taking proposals it cannot commit). */
    isolateLeader: number;
    bridge: number;
    diskStall: number;
    /** Freeze a process (GC pause, SIGSTOP): its timers and messages wait, then all at once. */
    pause: number;
  };
  /** How long a fault lasts (a crashed node stays down, a partition holds). */
  faultMeanDurationMs: number;

  /** Mean ms between client proposals; batch size and payload size bounds. */
  clientMeanMs: number;
  clientMaxBatch: number;
  payloadMaxBytes: number;
  /** Chance a client targets a random node instead of the current leader. */
  clientMisrouteRate: number;
  /** Clients hold back while the leader has this many uncommitted entries (bounded queues); 0 = derived. */
  clientMaxBacklog: number;

  /** Mean ms between operator actions (membership changes); 0 = none. */
  operatorMeanMs: number;
  /** Mean ms between leadership transfers; 0 = none. */
  transferMeanMs: number;
  /** Applied entries between driver snapshots + compactions; 0 = never compact. */
  compactEvery: number;
  /** Entries kept below the snapshot index when compacting. */
  compactKeep: number;

  /** Simulated duration of the chaos phase. */
  chaosMs: number;
  /** Liveness: after healing, a leader and a committed, applied write within this many election timeouts. */
  livenessElectionTimeouts: number;
}

/**
 * 'full' runs each seed longer (CLI default); 'quick' is the CI budget (jest): shorter chaos
 * and lighter client load, so ten thousand seeds fit in a few minutes.
 */
export type Budget = 'full' | 'quick';

export function drawProfile(rng: Prng, budget: Budget = 'full'): Profile {
  const electionTicks = rng.intIn(5, 15);
  const pick = <T>(xs: T[]) => rng.pick(xs);
  const faulty = rng.chance(0.85);
  const p: Profile = {
    nodes: pick([1, 2, 3, 3, 3, 3, 4, 5, 5, 5]),
    electionTicks,
    heartbeatTicks: rng.intIn(1, Math.min(3, electionTicks - 1)),
    preVote: rng.chance(0.8),
    checkQuorum: rng.chance(0.8),
    maxSizePerMsgBytes: pick([32, 256, 4096, 1 << 20]),
    maxInflightMsgs: pick([1, 2, 4, 16, 256]),
    maxInflightBytes: pick([64, 1024, 1 << 20]),
    maxUncommittedBytes: pick([0, 0, 512, 8192]),
    maxCommittedBytesPerReady: pick([64, 4096, 64 << 20]),
    tickMs: 10,
    clockDrift: pick([0, 0.01, 0.05, 0.1]),

    delayMaxBaseMs: pick([0.2, 1, 5, 20]),
    delayJitterMs: pick([0, 1, 5, 30]),
    reorderRate: pick([0, 0.01, 0.05, 0.2]),
    slowMsgRate: pick([0, 0.1, 0.5]),
    dropRate: pick([0, 0, 0.01, 0.05, 0.2]),
    dupRate: pick([0, 0, 0.01, 0.1]),
    codec: rng.chance(0.3),

    sendAppsBeforePersist: rng.chance(0.5),
    diskLatencyMs: pick([0.05, 0.5, 2, 8]),
    diskStallRate: pick([0, 0, 0.01, 0.05]),
    diskStallMs: pick([20, 100, 400]),
    storageUnavailableRate: pick([0, 0, 0, 0.02, 0.2]),

    faultMeanMs: faulty ? pick([40, 100, 300, 800]) : 0,
    faultWeights: {
      crash: pick([0, 1, 3]),
      crashLeader: pick([0, 1, 2]),
      crashLeaderOnCommit: pick([0, 1, 2]),
      partition: pick([0, 1, 2]),
      oneWay: pick([0, 1]),
      isolate: pick([0, 1, 2]),
      isolateLeader: pick([0, 1, 2]),
      bridge: pick([0, 1]),
      diskStall: pick([0, 1]),
      pause: pick([0, 1, 2]),
    },
    faultMeanDurationMs: pick([30, 150, 500]),

    clientMeanMs: budget === 'full' ? pick([2, 5, 20, 60]) : pick([8, 20, 60]),
    clientMaxBatch: pick([1, 4, 32]),
    payloadMaxBytes: pick([8, 64, 512]),
    clientMisrouteRate: pick([0, 0.1, 0.5]),
    clientMaxBacklog: 0,

    operatorMeanMs: rng.chance(0.55) ? pick([60, 200, 600]) : 0,
    transferMeanMs: rng.chance(0.4) ? pick([100, 400]) : 0,
    compactEvery: pick([0, 8, 40, 200]),
    compactKeep: pick([0, 0, 5, 50]),

    chaosMs: budget === 'full' ? pick([800, 1500, 2500]) : pick([250, 400, 600]),
    livenessElectionTimeouts: 40,
  };
  return p;
}

/**
 * Size the client backlog to a few round trips of what replication can carry, so healing is
 * followed by progress within the liveness bound whatever the flow-control settings.
 */
export function defaultClientBacklog(p: Profile): number {
  const avgPayload = 6 + p.payloadMaxBytes / 2;
  const perMsg = Math.max(1, Math.floor(p.maxSizePerMsgBytes / avgPayload));
  const perRtt = Math.min(
    p.maxInflightMsgs * perMsg,
    Math.max(1, Math.floor(p.maxInflightBytes / avgPayload)) + perMsg,
  );
  return Math.min(1000, Math.max(4, 4 * perRtt));
}

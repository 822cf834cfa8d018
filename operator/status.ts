/**
 * Observed state, as pure functions: what the replicas report on NATS (status reports and leader
 * announcements, with the time the operator received them), joined with pods and nodes, becomes the
 * Partition and Topic status and their conditions. No I/O; `now` is an argument.
 */
import type { LeaderAnnouncement, StatusReport } from '../common/control-subjects';
import type { Condition, ConditionType, PartitionCrStatus, PartitionOperation, TopicCrStatus } from './crd-schema';
import { ordinalOfReplicaId, podName } from './names';

export interface ReportEntry {
  report: StatusReport;
  /** When the operator received it (its own clock: replica clocks are not trusted for staleness). */
  receivedAtMs: number;
}

export interface AnnouncementEntry {
  announcement: LeaderAnnouncement;
  receivedAtMs: number;
}

export interface PodInfo {
  name: string;
  uid?: string;
  ordinal: number;
  node?: string;
  phase?: string;
  ready: boolean;
  deleting: boolean;
  /** controller-revision-hash label: the StatefulSet revision the pod runs. */
  revision?: string;
  createdAtMs?: number;
  /**
   * When the replica container last started (its containerStatus's state.running.startedAt): a
   * container restarted in the same pod (a crash, the OOM killer, a failed liveness probe) is a new
   * process, so reports received before it are its predecessor's.
   */
  containerStartedAtMs?: number;
  /** The kubelet reports the replica container not running (exited, waiting to be restarted). */
  containerDown?: boolean;
  /** Held by the spare-slot scheduling gate (operator/slots.ts): not scheduled, runs nothing. */
  gated?: boolean;
}

export interface NodeInfo {
  name: string;
  zone?: string;
  /** Cordoned (spec.unschedulable). */
  unschedulable: boolean;
  /** Labelled daftka.io/drain=true. */
  drain: boolean;
}

export interface HealthSettings {
  /** A report older than this (by receive time) no longer counts. */
  staleMs: number;
  /** A follower further behind than this (entries) is not caught up. */
  maxLagEntries: number;
}

export interface ReplicaView {
  ordinal: number;
  pod: string;
  podInfo?: PodInfo;
  node?: string;
  zone?: string;
  id?: string;
  incarnation?: string;
  /** leader, follower, learner, candidate; unknown without a fresh report. */
  role: string;
  lag?: number;
  fresh: boolean;
  ready: boolean;
  voter: boolean;
  /** Fresh report, ready, a voter, caught up, and its pod exists and is not being deleted. */
  healthy: boolean;
  lastReportMs?: number;
  /** Why it is not healthy (for conditions and the rebalancer's log). */
  problem?: string;
}

export interface PartitionView {
  topic: string;
  index: number;
  /** Desired voters (the replication factor). */
  replicas: number;
  replicaViews: ReplicaView[];
  leaderId?: string;
  leaderOrdinal?: number;
  term?: number;
  highWatermark?: number;
  logStartOffset?: number;
  /** Membership as the leader reports it (empty without a leader report). */
  voters: string[];
  learners: string[];
  healthyVoters: number;
  leaderElected: boolean;
  quorumHealthy: boolean;
  underReplicated: boolean;
  ready: boolean;
  freshReports: number;
  /** Pods not on the StatefulSet's update revision (a roll is due). */
  outdatedOrdinals: number[];
  /** Why the partition is changing shape, or null when it is stable. */
  reconfiguring: string | null;
  operation?: PartitionOperation;
  /**
   * The spare slot (operator/slots.ts) and its pod: where a move adds the new replica. Absent
   * when not known (the rebalancer then starts no move).
   */
  spare?: { ordinal: number; pod?: PodInfo };
}

export const quorum = (voters: number): number => Math.floor(voters / 2) + 1;

/** Joins reports, pods and nodes into what the operator knows of one partition. */
export function observePartition(input: {
  topic: string;
  index: number;
  replicas: number;
  reports: readonly ReportEntry[];
  announcement?: AnnouncementEntry;
  pods: ReadonlyMap<number, PodInfo>;
  nodes: ReadonlyMap<string, NodeInfo>;
  updateRevision?: string;
  operation?: PartitionOperation;
  /**
   * The StatefulSet ordinals that hold (or, during a move, receive) a replica; the spare slot is
   * not among them (operator/slots.ts). Default: 0 … replicas − 1.
   */
  slots?: readonly number[];
  settings: HealthSettings;
  nowMs: number;
}): PartitionView {
  const { topic, index, replicas, settings, nowMs } = input;
  const slots = input.slots ?? Array.from({ length: replicas }, (_, o) => o);
  const fresh = input.reports.filter((e) => nowMs - e.receivedAtMs <= settings.staleMs);
  // The leader: the fresh leader report (or announcement) with the highest term.
  let leaderReport: StatusReport | undefined;
  for (const e of fresh)
    if (e.report.role === 'leader' && (!leaderReport || e.report.term > leaderReport.term)) leaderReport = e.report;
  const ann =
    input.announcement && nowMs - input.announcement.receivedAtMs <= settings.staleMs
      ? input.announcement.announcement
      : undefined;
  let leaderId = leaderReport?.replicaId;
  let term = leaderReport?.term;
  let highWatermark = leaderReport?.highWatermark;
  if (ann && (term === undefined || ann.term > term)) {
    leaderId = ann.leaderId;
    term = ann.term;
    highWatermark = ann.highWatermark;
    if (leaderReport && leaderReport.replicaId !== ann.leaderId) leaderReport = undefined;
  }
  const voters = leaderReport?.voters ?? [];
  const learners = leaderReport?.learners ?? [];

  const views: ReplicaView[] = [];
  for (const ordinal of slots) {
    const pod = input.pods.get(ordinal);
    const node = pod?.node ? input.nodes.get(pod.node) : undefined;
    // The newest report of this ordinal (a wiped replica comes back as a new incarnation), from the
    // current pod: a report received before the pod existed is its predecessor's, still "fresh" for a
    // while after that pod went — it must not make a successor that has not spoken yet look healthy.
    // (creationTimestamp has whole seconds, hence the margin.) Likewise a container restarted in
    // its pod: the dead process's last report stays fresh for staleMs, and a crashed replica must
    // not look healthy meanwhile (a roll or move would then disrupt another replica of the group).
    const since = Math.max(
      pod?.createdAtMs !== undefined ? pod.createdAtMs + 1000 : -Infinity,
      pod?.containerStartedAtMs !== undefined ? pod.containerStartedAtMs + 1000 : -Infinity,
    );
    let latest: ReportEntry | undefined;
    for (const e of input.reports)
      if (
        ordinalOfReplicaId(e.report.replicaId) === ordinal &&
        e.receivedAtMs >= since &&
        (!latest || e.receivedAtMs > latest.receivedAtMs)
      )
        latest = e;
    const isFresh = latest !== undefined && nowMs - latest.receivedAtMs <= settings.staleMs;
    const r = isFresh ? latest!.report : undefined;
    const role = r ? r.role : 'unknown';
    const voter = r ? (leaderReport ? voters.includes(r.replicaId) : role === 'leader' || role === 'follower') : false;
    const lag = r ? (r.replicaId === leaderId ? 0 : leaderReport?.lag?.[r.replicaId]) : undefined;
    let problem: string | undefined;
    if (!pod) problem = `pod ${podName(topic, index, ordinal)} does not exist`;
    else if (pod.deleting) problem = `pod ${pod.name} is being deleted`;
    else if (pod.gated) problem = `pod ${pod.name} waits for the operator to admit it (spare slot)`;
    else if (!pod.node) problem = `pod ${pod.name} is not scheduled`;
    else if (pod.containerDown) problem = `the replica container of ${pod.name} is not running`;
    else if (!latest) problem = `no status report from ${pod.name}`;
    else if (!isFresh)
      problem = `no status report from ${pod.name} for ${Math.round((nowMs - latest.receivedAtMs) / 1000)} s`;
    else if (!r!.ready) problem = `${pod.name} reports not ready (${role})`;
    else if (leaderId === undefined) problem = `${pod.name} knows no leader (${role})`;
    else if (!voter) problem = `${pod.name} is not a voter (${role})`;
    else if (lag !== undefined && lag > settings.maxLagEntries)
      problem = `${pod.name} is ${lag} entries behind the leader (limit ${settings.maxLagEntries})`;
    else if (leaderReport && lag === undefined && r!.replicaId !== leaderId)
      problem = `the leader reports no progress for ${pod.name}`;
    views.push({
      ordinal,
      pod: podName(topic, index, ordinal),
      ...(pod ? { podInfo: pod } : {}),
      ...(pod?.node ? { node: pod.node } : {}),
      ...(node?.zone ? { zone: node.zone } : {}),
      ...(latest ? { id: latest.report.replicaId, incarnation: latest.report.incarnation } : {}),
      role,
      ...(lag !== undefined ? { lag } : {}),
      fresh: isFresh,
      ready: r?.ready ?? false,
      voter,
      healthy: problem === undefined,
      ...(latest ? { lastReportMs: latest.receivedAtMs } : {}),
      ...(problem ? { problem } : {}),
    });
  }
  const healthyVoters = views.filter((v) => v.healthy).length;
  const leaderElected = leaderId !== undefined;
  // During a move the group has a voter more than the replication factor: a majority of those.
  const quorumHealthy = leaderElected && healthyVoters >= quorum(Math.max(replicas, voters.length));
  const outdatedOrdinals = input.updateRevision
    ? views
        .filter((v) => v.podInfo && v.podInfo.revision !== undefined && v.podInfo.revision !== input.updateRevision)
        .map((v) => v.ordinal)
    : [];

  let reconfiguring: string | null = null;
  if (input.operation)
    reconfiguring = `${input.operation.kind} of ${input.operation.pod} (${input.operation.reason}) in progress`;
  else if (learners.length > 0) reconfiguring = `learners catching up: ${learners.join(', ')}`;
  else if (leaderReport && voters.length !== replicas)
    reconfiguring = `${voters.length} voters, ${replicas} wanted: membership change in progress`;
  else if (outdatedOrdinals.length > 0)
    reconfiguring = `${outdatedOrdinals.length} pod(s) not on the current template: ${outdatedOrdinals.map((o) => podName(topic, index, o)).join(', ')}`;

  const leaderOrdinal = leaderId !== undefined ? ordinalOfReplicaId(leaderId) : undefined;
  return {
    topic,
    index,
    replicas,
    replicaViews: views,
    ...(leaderId !== undefined ? { leaderId } : {}),
    ...(leaderOrdinal !== undefined ? { leaderOrdinal } : {}),
    ...(term !== undefined ? { term } : {}),
    ...(highWatermark !== undefined ? { highWatermark } : {}),
    ...(leaderReport ? { logStartOffset: leaderReport.logStartOffset } : {}),
    voters,
    learners,
    healthyVoters,
    leaderElected,
    quorumHealthy,
    // As Kafka counts it: a partition with a leader and fewer healthy voters than wanted (leaderless ones apart).
    underReplicated: leaderElected && healthyVoters < replicas,
    ready: leaderElected && quorumHealthy,
    freshReports: fresh.length,
    outdatedOrdinals,
    reconfiguring,
    ...(input.operation ? { operation: input.operation } : {}),
  };
}

// ---- conditions -----------------------------------------------------------------------------------

export interface ConditionInput {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

/** Sets conditions in the standard shape, keeping lastTransitionTime when the status did not change. */
export function mergeConditions(
  previous: readonly Condition[] | undefined,
  next: readonly ConditionInput[],
  generation: number,
  nowIso: string,
): Condition[] {
  return next.map((c) => {
    const prev = previous?.find((p) => p.type === c.type);
    return {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message.slice(0, 32768),
      observedGeneration: generation,
      lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : nowIso,
    };
  });
}

function list(items: string[], max = 5): string {
  return items.length <= max ? items.join('; ') : `${items.slice(0, max).join('; ')}; and ${items.length - max} more`;
}

function partitionProblems(v: PartitionView): string[] {
  return v.replicaViews.filter((r) => !r.healthy).map((r) => r.problem ?? `${r.pod} unhealthy`);
}

export function partitionConditions(v: PartitionView, extra: { problems?: string[] } = {}): ConditionInput[] {
  const problems = [...partitionProblems(v), ...(extra.problems ?? [])];
  const noReports = v.freshReports === 0;
  return [
    v.ready
      ? {
          type: 'Ready',
          status: 'True',
          reason: 'LeaderAndQuorum',
          message: `leader ${v.leaderId}, ${v.healthyVoters}/${v.replicas} voters healthy`,
        }
      : {
          type: 'Ready',
          status: 'False',
          reason: !v.leaderElected ? 'NoLeader' : 'NoQuorum',
          message: !v.leaderElected
            ? noReports
              ? 'no replica has reported on NATS recently; ' + (list(problems) || 'waiting for reports')
              : 'no leader reported; ' + list(problems)
            : `${v.healthyVoters}/${v.replicas} voters healthy, ${quorum(v.replicas)} needed: ${list(problems)}`,
        },
    v.quorumHealthy
      ? {
          type: 'QuorumHealthy',
          status: 'True',
          reason: 'QuorumHealthy',
          message: `${v.healthyVoters}/${v.replicas} voters healthy`,
        }
      : {
          type: 'QuorumHealthy',
          status: noReports ? 'Unknown' : 'False',
          reason: noReports ? 'NoReports' : 'QuorumLost',
          message:
            `${v.healthyVoters}/${v.replicas} voters healthy, ${quorum(v.replicas)} needed` +
            (problems.length ? `: ${list(problems)}` : ''),
        },
    v.leaderElected
      ? {
          type: 'LeaderElected',
          status: 'True',
          reason: 'LeaderReported',
          message: `${v.leaderId} leads in term ${v.term}`,
        }
      : {
          type: 'LeaderElected',
          status: noReports ? 'Unknown' : 'False',
          reason: noReports ? 'NoReports' : 'NoLeader',
          message: noReports ? 'no fresh status report from any replica' : 'replicas report no leader',
        },
    v.reconfiguring
      ? {
          type: 'Reconfiguring',
          status: 'True',
          reason: v.operation ? 'Rebalancing' : 'MembershipChange',
          message: v.reconfiguring,
        }
      : { type: 'Reconfiguring', status: 'False', reason: 'Stable', message: 'membership matches the spec' },
    v.underReplicated || (extra.problems?.length ?? 0) > 0
      ? {
          type: 'Degraded',
          status: 'True',
          reason: v.underReplicated ? 'UnderReplicated' : 'Problems',
          message: list(problems, 8),
        }
      : {
          type: 'Degraded',
          status: 'False',
          reason: 'AllReplicasHealthy',
          message: 'all replicas healthy and caught up',
        },
  ];
}

/** Partition status (everything except `operation`, which the rebalancer owns). */
export function partitionStatus(
  v: PartitionView,
  previous: PartitionCrStatus | undefined,
  generation: number,
  nowMs: number,
): PartitionCrStatus {
  const nowIso = new Date(nowMs).toISOString();
  const leaderView = v.replicaViews.find((r) => r.id !== undefined && r.id === v.leaderId);
  return {
    observedGeneration: generation,
    ...(v.leaderId !== undefined ? { leader: v.leaderId } : {}),
    ...(leaderView ? { leaderPod: leaderView.pod } : {}),
    // Keep the last known numbers when the leader is briefly unknown: they never go backwards.
    ...(v.term !== undefined ? { term: v.term } : previous?.term !== undefined ? { term: previous.term } : {}),
    ...(v.highWatermark !== undefined
      ? { highWatermark: v.highWatermark }
      : previous?.highWatermark !== undefined
        ? { highWatermark: previous.highWatermark }
        : {}),
    ...(v.logStartOffset !== undefined
      ? { logStartOffset: v.logStartOffset }
      : previous?.logStartOffset !== undefined
        ? { logStartOffset: previous.logStartOffset }
        : {}),
    replicas: v.replicaViews.map((r) => ({
      ordinal: r.ordinal,
      ...(r.id !== undefined ? { id: r.id } : {}),
      ...(r.incarnation !== undefined ? { incarnation: r.incarnation } : {}),
      pod: r.pod,
      ...(r.node !== undefined ? { node: r.node } : {}),
      ...(r.zone !== undefined ? { zone: r.zone } : {}),
      role: r.role,
      ...(r.lag !== undefined ? { lag: r.lag } : {}),
      healthy: r.healthy,
      ...(r.lastReportMs !== undefined ? { lastReportTime: new Date(r.lastReportMs).toISOString() } : {}),
    })),
    conditions: mergeConditions(previous?.conditions, partitionConditions(v), generation, nowIso),
  };
}

export interface TopicObservation {
  /** spec.partitions */
  partitions: number;
  /** Views of the partitions that exist, by index. */
  views: readonly PartitionView[];
  /** Errors of this reconcile (apply failures), with the apiserver's text. */
  errors: string[];
}

export function topicConditions(o: TopicObservation): ConditionInput[] {
  const missing = o.partitions - o.views.length;
  const notReady = o.views.filter((v) => !v.ready);
  const leaderless = o.views.filter((v) => !v.leaderElected);
  const noQuorum = o.views.filter((v) => !v.quorumHealthy);
  const urp = o.views.filter((v) => v.underReplicated);
  const reconf = o.views.filter((v) => v.reconfiguring !== null);
  const ready = o.views.length - notReady.length;
  const why = (v: PartitionView): string =>
    `${v.index}: ${!v.leaderElected ? 'no leader' : `${v.healthyVoters}/${v.replicas} voters healthy`}` +
    (v.replicaViews.find((r) => !r.healthy)?.problem ? ` (${v.replicaViews.find((r) => !r.healthy)!.problem})` : '');
  const noReportsAnywhere = o.views.length > 0 && o.views.every((v) => v.freshReports === 0);
  const conds: ConditionInput[] = [];
  conds.push(
    notReady.length === 0 && missing <= 0 && o.errors.length === 0
      ? {
          type: 'Ready',
          status: 'True',
          reason: 'AllPartitionsReady',
          message: `${ready}/${o.partitions} partitions ready`,
        }
      : {
          type: 'Ready',
          status: 'False',
          reason: o.errors.length > 0 ? 'ApplyFailed' : missing > 0 ? 'PartitionsMissing' : 'PartitionsNotReady',
          message:
            `${ready}/${o.partitions} partitions ready` +
            (o.errors.length > 0 ? `; ${list(o.errors, 3)}` : '') +
            (notReady.length > 0 ? `; not ready: ${list(notReady.map(why))}` : ''),
        },
  );
  conds.push(
    noQuorum.length === 0 && o.views.length > 0
      ? {
          type: 'QuorumHealthy',
          status: 'True',
          reason: 'QuorumHealthy',
          message: 'every partition has a healthy majority',
        }
      : {
          type: 'QuorumHealthy',
          status: noReportsAnywhere || o.views.length === 0 ? 'Unknown' : 'False',
          reason: noReportsAnywhere || o.views.length === 0 ? 'NoReports' : 'QuorumLost',
          message:
            o.views.length === 0
              ? 'no partitions yet'
              : noReportsAnywhere
                ? 'no replica of this topic has reported on NATS recently'
                : `partitions without a healthy majority: ${list(noQuorum.map(why))}`,
        },
  );
  conds.push(
    leaderless.length === 0 && o.views.length > 0
      ? { type: 'LeaderElected', status: 'True', reason: 'AllPartitionsLed', message: 'every partition has a leader' }
      : {
          type: 'LeaderElected',
          status: noReportsAnywhere || o.views.length === 0 ? 'Unknown' : 'False',
          reason: noReportsAnywhere || o.views.length === 0 ? 'NoReports' : 'LeaderlessPartitions',
          message:
            o.views.length === 0
              ? 'no partitions yet'
              : `${leaderless.length} partition(s) without a leader: ${leaderless.map((v) => v.index).join(', ')}`,
        },
  );
  conds.push(
    reconf.length > 0 || missing > 0
      ? {
          type: 'Reconfiguring',
          status: 'True',
          reason: reconf.some((v) => v.operation)
            ? 'Rebalancing'
            : missing > 0
              ? 'CreatingPartitions'
              : 'MembershipChange',
          message: [
            ...(missing > 0 ? [`${missing} partition(s) being created`] : []),
            ...reconf.map((v) => `${v.index}: ${v.reconfiguring}`),
          ].join('; '),
        }
      : { type: 'Reconfiguring', status: 'False', reason: 'Stable', message: 'every partition matches the spec' },
  );
  const degraded = [...o.errors, ...urp.map((v) => `partition ${why(v)}`)];
  conds.push(
    degraded.length > 0
      ? {
          type: 'Degraded',
          status: 'True',
          reason: o.errors.length > 0 ? 'ApplyFailed' : 'UnderReplicated',
          message: list(degraded, 8),
        }
      : {
          type: 'Degraded',
          status: 'False',
          reason: 'AllReplicasHealthy',
          message: 'all replicas healthy and caught up',
        },
  );
  return conds;
}

export function topicStatus(
  o: TopicObservation,
  previous: TopicCrStatus | undefined,
  topicId: string,
  generation: number,
  nowMs: number,
  override?: ConditionInput[],
): TopicCrStatus {
  const conds = topicConditions(o);
  for (const c of override ?? []) {
    const i = conds.findIndex((x) => x.type === c.type);
    if (i >= 0) conds[i] = c;
  }
  return {
    observedGeneration: generation,
    topicId,
    partitions: o.views.length,
    readyPartitions: o.views.filter((v) => v.ready).length,
    leaderlessPartitions: o.views.filter((v) => !v.leaderElected).length,
    underReplicatedPartitions: o.views.filter((v) => v.underReplicated).length,
    conditions: mergeConditions(previous?.conditions, conds, generation, new Date(nowMs).toISOString()),
  };
}

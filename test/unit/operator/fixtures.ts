import type { StatusReport } from '../../../common/control-subjects';
import type { Topic, TopicCrSpec } from '../../../operator/crd-schema';
import type { ReplicaSettings } from '../../../operator/desired';
import {
  observePartition,
  type NodeInfo,
  type PartitionView,
  type PodInfo,
  type ReportEntry,
} from '../../../operator/status';
import { occupiedSlots } from '../../../operator/slots';

export const settings: ReplicaSettings = {
  namespace: 'daftka',
  image: 'ghcr.io/daftka/daftka:1.2.3',
  imagePullPolicy: 'IfNotPresent',
  command: ['node', 'dist/replica/main.js'],
  natsUrl: 'nats://nats.daftka.svc:4222',
  clusterDomain: 'cluster.local',
  resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } },
  storage: { size: '10Gi' },
  antiAffinity: 'required',
  terminationGracePeriodSeconds: 30,
  runAsUser: 10001,
  extraEnv: { DAFTKA_LOG_LEVEL: 'info' },
  adminAuth: true,
};

export function topic(name: string, spec: Partial<TopicCrSpec> = {}): Topic {
  return {
    apiVersion: 'daftka.io/v1alpha1',
    kind: 'Topic',
    metadata: { name, namespace: 'daftka', uid: `uid-${name}`, generation: 1 },
    spec: {
      partitions: 3,
      replicationFactor: 3,
      deletionPolicy: 'Retain',
      deletionProtection: false,
      ...spec,
    },
  };
}

export const NOW = 1_700_000_000_000;
export const HEALTH = { staleMs: 10_000, maxLagEntries: 100 };

export function report(
  topicName: string,
  partition: number,
  id: string,
  o: Partial<StatusReport> & { role: string },
  receivedAtMs = NOW - 500,
): ReportEntry {
  return {
    receivedAtMs,
    report: {
      v: 1,
      topic: topicName,
      partition,
      replicaId: id,
      incarnation: id.slice(id.indexOf('.') + 1),
      term: 1,
      leaderId: null,
      lastIndex: 100,
      commitIndex: 100,
      appliedIndex: 100,
      highWatermark: 50,
      logStartOffset: 0,
      logBytes: 1000,
      voters: [],
      learners: [],
      ready: true,
      ts: receivedAtMs,
      ...o,
    },
  };
}

export function node(name: string, zone: string, o: Partial<NodeInfo> = {}): NodeInfo {
  return { name, zone, unschedulable: false, drain: false, ...o };
}

export function nodesOf(...list: NodeInfo[]): Map<string, NodeInfo> {
  return new Map(list.map((n) => [n.name, n]));
}

/**
 * A partition view from a compact description: where each ordinal's pod runs, which ordinal leads,
 * per-ordinal overrides (lag, not ready, missing report, revision), as the operator would observe it.
 * `nodes` is indexed by ordinal (slot); the spare slot (default: ordinal rf) has a gated pod with no
 * node unless `nodes` gives one; `voters`/`learners` (ordinals) override the leader's membership.
 */
export function view(o: {
  topic?: string;
  index: number;
  rf?: number;
  nodes: Array<string | undefined>;
  leader?: number | null;
  lag?: Record<number, number>;
  notReady?: number[];
  silent?: number[];
  revisions?: Record<number, string>;
  updateRevision?: string;
  learners?: number[];
  voters?: number[];
  gated?: number[];
  spare?: number;
  nodeInfo: Map<string, NodeInfo>;
  operation?: PartitionView['operation'];
  uids?: Record<number, string>;
  ids?: Record<number, string>;
  /** More pod fields per ordinal (e.g. the replica container's state). */
  podExtra?: Record<number, Partial<PodInfo>>;
}): PartitionView {
  const t = o.topic ?? 't';
  const rf = o.rf ?? o.nodes.length;
  const spare = o.spare ?? rf;
  const id = (ord: number) => o.ids?.[ord] ?? `${ord}.inc${ord}`;
  const leader = o.leader === undefined ? 0 : o.leader;
  const slots = occupiedSlots(rf, spare, o.operation);
  const pods = new Map<number, PodInfo>();
  for (let ord = 0; ord <= rf; ord++) {
    const n = o.nodes[ord];
    const gated = o.gated?.includes(ord) ?? (ord === spare && !slots.includes(ord));
    if (ord >= o.nodes.length && !gated) continue;
    pods.set(ord, {
      name: `${t}-${o.index}-${ord}`,
      uid: o.uids?.[ord] ?? `pod-uid-${ord}`,
      ordinal: ord,
      ...(n && !gated ? { node: n } : {}),
      phase: n && !gated ? 'Running' : 'Pending',
      ready: !gated,
      deleting: false,
      revision: o.revisions?.[ord] ?? o.updateRevision ?? 'rev1',
      ...(gated ? { gated: true } : {}),
      ...o.podExtra?.[ord],
    });
  }
  // Default membership: every occupied slot but a move's target (not joined yet) and the learners.
  const target = o.operation?.kind === 'move' ? o.operation.target : undefined;
  const voters = (o.voters ?? slots.filter((x) => x !== target && !o.learners?.includes(x))).map(id);
  const learners = (o.learners ?? []).map(id);
  const reports: ReportEntry[] = [];
  for (const ord of slots) {
    if (o.silent?.includes(ord) || !o.nodes[ord] || o.gated?.includes(ord)) continue;
    const isLeader = leader === ord;
    const lag: Record<string, number> = {};
    if (isLeader)
      for (const f of [...voters, ...learners]) if (f !== id(ord)) lag[f] = o.lag?.[Number(f.split('.')[0])] ?? 0;
    reports.push(
      report(t, o.index, id(ord), {
        role: isLeader ? 'leader' : o.learners?.includes(ord) ? 'learner' : 'follower',
        ready: !o.notReady?.includes(ord),
        leaderId: leader === null ? null : id(leader),
        ...(isLeader ? { lag, voters, learners } : {}),
      }),
    );
  }
  const v = observePartition({
    topic: t,
    index: o.index,
    replicas: rf,
    reports,
    pods,
    nodes: o.nodeInfo,
    updateRevision: o.updateRevision ?? 'rev1',
    ...(o.operation ? { operation: o.operation } : {}),
    slots,
    settings: HEALTH,
    nowMs: NOW,
  });
  v.spare = { ordinal: spare, ...(pods.has(spare) ? { pod: pods.get(spare)! } : {}) };
  return v;
}

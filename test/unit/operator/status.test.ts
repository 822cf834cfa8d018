import {
  mergeConditions,
  observePartition,
  partitionStatus,
  topicStatus,
  type PodInfo,
} from '../../../operator/status';
import { podInfoOf } from '../../../operator/reconcile';
import { HEALTH, NOW, node, nodesOf, report, view } from './fixtures';

const nodes = nodesOf(node('n1', 'zone-a'), node('n2', 'zone-b'), node('n3', 'zone-c'));
const cond = (
  conds: Array<{ type: string; status: string; reason: string; message: string }> | undefined,
  type: string,
) => conds?.find((c) => c.type === type);

describe('status: a partition from replica reports, pods and nodes', () => {
  it('healthy: leader, term, watermarks, one row per replica with pod, node, zone, role and lag', () => {
    const v = view({ index: 2, nodes: ['n1', 'n2', 'n3'], leader: 1, lag: { 0: 3, 2: 0 }, nodeInfo: nodes });
    expect(v.ready).toBe(true);
    expect(v.underReplicated).toBe(false);
    const s = partitionStatus(v, undefined, 4, NOW);
    expect(s).toMatchObject({
      observedGeneration: 4,
      leader: '1.inc1',
      leaderPod: 't-2-1',
      term: 1,
      highWatermark: 50,
      logStartOffset: 0,
    });
    expect(s.replicas).toEqual([
      {
        ordinal: 0,
        id: '0.inc0',
        incarnation: 'inc0',
        pod: 't-2-0',
        node: 'n1',
        zone: 'zone-a',
        role: 'follower',
        lag: 3,
        healthy: true,
        lastReportTime: new Date(NOW - 500).toISOString(),
      },
      {
        ordinal: 1,
        id: '1.inc1',
        incarnation: 'inc1',
        pod: 't-2-1',
        node: 'n2',
        zone: 'zone-b',
        role: 'leader',
        lag: 0,
        healthy: true,
        lastReportTime: new Date(NOW - 500).toISOString(),
      },
      {
        ordinal: 2,
        id: '2.inc2',
        incarnation: 'inc2',
        pod: 't-2-2',
        node: 'n3',
        zone: 'zone-c',
        role: 'follower',
        lag: 0,
        healthy: true,
        lastReportTime: new Date(NOW - 500).toISOString(),
      },
    ]);
    expect(s.conditions!.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'True', 'LeaderAndQuorum'],
      ['QuorumHealthy', 'True', 'QuorumHealthy'],
      ['LeaderElected', 'True', 'LeaderReported'],
      ['Reconfiguring', 'False', 'Stable'],
      ['Degraded', 'False', 'AllReplicasHealthy'],
    ]);
    for (const c of s.conditions!) {
      expect(c.observedGeneration).toBe(4);
      expect(c.lastTransitionTime).toBe(new Date(NOW).toISOString());
    }
  });

  it('a lagging follower makes it under-replicated, with the lag in the Degraded message', () => {
    const v = view({ index: 0, nodes: ['n1', 'n2', 'n3'], leader: 0, lag: { 2: 5000 }, nodeInfo: nodes });
    expect(v.ready).toBe(true);
    expect(v.underReplicated).toBe(true);
    const s = partitionStatus(v, undefined, 1, NOW);
    expect(cond(s.conditions, 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'UnderReplicated',
      message: 't-0-2 is 5000 entries behind the leader (limit 100)',
    });
  });

  it('stale reports count for nothing: no leader, quorum Unknown, the age in the message', () => {
    const pods = new Map<number, PodInfo>(
      [0, 1, 2].map((o) => [o, { name: `t-0-${o}`, ordinal: o, node: `n${o + 1}`, ready: true, deleting: false }]),
    );
    const reports = [0, 1, 2].map((o) =>
      report('t', 0, `${o}.x`, { role: o === 0 ? 'leader' : 'follower' }, NOW - 30_000),
    );
    const v = observePartition({
      topic: 't',
      index: 0,
      replicas: 3,
      reports,
      pods,
      nodes,
      settings: HEALTH,
      nowMs: NOW,
    });
    expect(v.leaderElected).toBe(false);
    expect(v.freshReports).toBe(0);
    const s = partitionStatus(v, { term: 7, highWatermark: 99 }, 1, NOW);
    // Numbers are kept from the last status rather than dropped.
    expect(s).toMatchObject({ term: 7, highWatermark: 99 });
    expect(s.leader).toBeUndefined();
    expect(cond(s.conditions, 'LeaderElected')).toMatchObject({ status: 'Unknown', reason: 'NoReports' });
    expect(cond(s.conditions, 'QuorumHealthy')).toMatchObject({ status: 'Unknown' });
    expect(cond(s.conditions, 'Ready')!.message).toContain('no status report from t-0-0 for 30 s');
  });

  it("a container restarted in its pod: the dead process's last report does not make it healthy", () => {
    const v = (extra: Partial<PodInfo>) =>
      view({ index: 0, nodes: ['n1', 'n2', 'n3'], leader: 0, nodeInfo: nodes, podExtra: { 2: extra } });
    // Exited, waiting to be restarted (its last report, NOW − 500, is still fresh).
    const down = v({ containerDown: true }).replicaViews[2];
    expect(down).toMatchObject({ healthy: false, problem: 'the replica container of t-0-2 is not running' });
    // Started again after that report: the report was its predecessor's.
    const restarted = v({ containerStartedAtMs: NOW - 200 }).replicaViews[2];
    expect(restarted).toMatchObject({ healthy: false, problem: 'no status report from t-0-2' });
    expect(v({ containerStartedAtMs: NOW - 200 }).underReplicated).toBe(true);
    // A report received more than a second after the start is the running process's own.
    expect(v({ containerStartedAtMs: NOW - 5000 }).replicaViews[2]).toMatchObject({ healthy: true });
  });

  it('the pod object: the replica container running since startedAt, or down', () => {
    const pod = (state: object | undefined) => ({
      metadata: { name: 't-0-2', labels: { 'apps.kubernetes.io/pod-index': '2' } },
      spec: { nodeName: 'n3' },
      status: { phase: 'Running', ...(state ? { containerStatuses: [{ name: 'replica', state }] } : {}) },
    });
    expect(podInfoOf(pod({ running: { startedAt: '2026-01-02T03:04:05Z' } }))).toMatchObject({
      containerStartedAtMs: Date.parse('2026-01-02T03:04:05Z'),
    });
    expect(podInfoOf(pod({ waiting: { reason: 'CrashLoopBackOff' } }))).toMatchObject({ containerDown: true });
    expect(podInfoOf(pod({ terminated: { exitCode: 137 } }))).toMatchObject({ containerDown: true });
    const fresh = podInfoOf(pod(undefined))!; // not started by a kubelet yet: nothing known
    expect(fresh.containerDown).toBeUndefined();
    expect(fresh.containerStartedAtMs).toBeUndefined();
  });

  it('a wiped replica back as a new incarnation: the newest report of the ordinal counts; a learner is not healthy', () => {
    const pods = new Map<number, PodInfo>(
      [0, 1, 2].map((o) => [o, { name: `t-0-${o}`, ordinal: o, node: `n${o + 1}`, ready: true, deleting: false }]),
    );
    const reports = [
      report('t', 0, '0.a', {
        role: 'leader',
        voters: ['0.a', '1.b', '2.old'],
        learners: ['2.new'],
        lag: { '1.b': 0, '2.old': 0, '2.new': 40 },
      }),
      report('t', 0, '1.b', { role: 'follower' }),
      report('t', 0, '2.old', { role: 'follower' }, NOW - 9000),
      report('t', 0, '2.new', { role: 'learner', ready: true }, NOW - 200),
    ];
    const v = observePartition({
      topic: 't',
      index: 0,
      replicas: 3,
      reports,
      pods,
      nodes,
      settings: HEALTH,
      nowMs: NOW,
    });
    expect(v.replicaViews[2]).toMatchObject({ id: '2.new', role: 'learner', healthy: false, lag: 40 });
    expect(v.replicaViews[2].problem).toBe('t-0-2 is not a voter (learner)');
    expect(v.reconfiguring).toBe('learners catching up: 2.new');
    expect(v.quorumHealthy).toBe(true);
    expect(v.underReplicated).toBe(true);
  });

  it('pods not on the StatefulSet update revision are listed as a pending roll', () => {
    const v = view({
      index: 0,
      nodes: ['n1', 'n2', 'n3'],
      nodeInfo: nodes,
      updateRevision: 'r2',
      revisions: { 0: 'r1', 1: 'r2', 2: 'r1' },
    });
    expect(v.outdatedOrdinals).toEqual([0, 2]);
    expect(v.reconfiguring).toBe('2 pod(s) not on the current template: t-0-0, t-0-2');
  });
});

describe('status: conditions and the topic roll-up', () => {
  it('mergeConditions keeps lastTransitionTime while the status stays, moves it when it flips', () => {
    const t0 = '2024-01-01T00:00:00.000Z';
    const prev = mergeConditions(undefined, [{ type: 'Ready', status: 'True', reason: 'A', message: 'a' }], 1, t0);
    const same = mergeConditions(prev, [{ type: 'Ready', status: 'True', reason: 'B', message: 'b' }], 2, 'later');
    expect(same[0]).toEqual({
      type: 'Ready',
      status: 'True',
      reason: 'B',
      message: 'b',
      observedGeneration: 2,
      lastTransitionTime: t0,
    });
    const flipped = mergeConditions(same, [{ type: 'Ready', status: 'False', reason: 'C', message: 'c' }], 2, 'later');
    expect(flipped[0].lastTransitionTime).toBe('later');
  });

  it('counts ready, leaderless and under-replicated partitions and says which and why', () => {
    const views = [
      view({ index: 0, nodes: ['n1', 'n2', 'n3'], nodeInfo: nodes }),
      view({ index: 1, nodes: ['n1', 'n2', 'n3'], nodeInfo: nodes, lag: { 1: 1_000_000 } }),
      view({ index: 2, nodes: ['n1', 'n2', 'n3'], nodeInfo: nodes, leader: null }),
    ];
    const s = topicStatus({ partitions: 4, views, errors: [] }, undefined, 'id-1', 3, NOW);
    expect(s).toMatchObject({
      observedGeneration: 3,
      topicId: 'id-1',
      partitions: 3,
      readyPartitions: 2,
      leaderlessPartitions: 1,
      underReplicatedPartitions: 1,
    });
    expect(cond(s.conditions, 'Ready')).toMatchObject({ status: 'False', reason: 'PartitionsMissing' });
    expect(cond(s.conditions, 'Ready')!.message).toMatch(/^2\/4 partitions ready; not ready: 2: no leader/);
    expect(cond(s.conditions, 'LeaderElected')).toMatchObject({
      status: 'False',
      message: '1 partition(s) without a leader: 2',
    });
    expect(cond(s.conditions, 'Reconfiguring')).toMatchObject({ status: 'True', reason: 'CreatingPartitions' });
    expect(cond(s.conditions, 'Degraded')).toMatchObject({ status: 'True', reason: 'UnderReplicated' });
    expect(cond(s.conditions, 'Degraded')!.message).toContain('t-1-1 is 1000000 entries behind the leader');
  });

  it('an apply error is Degraded and not Ready, with the apiserver text', () => {
    const views = [view({ index: 0, nodes: ['n1', 'n2', 'n3'], nodeInfo: nodes })];
    const err = 'StatefulSet t-0: 422 Unprocessable Entity: spec.template.spec.containers[0].image: Required value';
    const s = topicStatus({ partitions: 1, views, errors: [err] }, undefined, 'id', 1, NOW);
    expect(cond(s.conditions, 'Ready')).toMatchObject({ status: 'False', reason: 'ApplyFailed' });
    expect(cond(s.conditions, 'Degraded')).toMatchObject({ status: 'True', reason: 'ApplyFailed', message: err });
  });
});

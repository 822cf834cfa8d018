import {
  DEFAULT_REBALANCE_SETTINGS,
  planRebalance,
  type Decision,
  type RebalanceSettings,
} from '../../../operator/rebalancer';
import type { PartitionView, PodInfo } from '../../../operator/status';
import { NOW, node, nodesOf, view } from './fixtures';

const three = nodesOf(node('n1', 'a'), node('n2', 'b'), node('n3', 'c'));
const four = (o: Partial<Record<string, { drain?: boolean; unschedulable?: boolean }>> = {}) =>
  nodesOf(node('n1', 'a', o.n1), node('n2', 'b', o.n2), node('n3', 'c', o.n3), node('n4', 'c', o.n4));

function plan(
  partitions: PartitionView[],
  nodes: ReturnType<typeof nodesOf>,
  s: Partial<RebalanceSettings> = {},
  extra: { recentTransfers?: Map<string, number>; recentOperations?: Map<string, number> } = {},
) {
  return planRebalance({
    partitions,
    nodes,
    recentTransfers: extra.recentTransfers ?? new Map(),
    recentOperations: extra.recentOperations ?? new Map(),
    nowMs: NOW,
    settings: { ...DEFAULT_REBALANCE_SETTINGS, ...s },
  });
}

/** A compact, readable form of the decisions for table assertions. */
function brief(d: Decision): string {
  switch (d.kind) {
    case 'startOperation':
      return `start ${d.operation.kind} ${d.operation.pod} (${d.operation.reason})`;
    case 'transferLeadership':
      return `transfer ${d.key} ${d.from}→${d.to} (${d.reason})`;
    case 'removeMember':
      return `remove ${d.id} (${d.pod})`;
    case 'deletePod':
      return `delete ${d.pod}${d.wipe ? ' +pvc' : ''}`;
    case 'finishOperation':
      return `finish ${d.operation.kind} ${d.operation.pod}${d.spare !== undefined ? ` spare=${d.spare}` : ''}`;
    case 'blocked':
      return `blocked ${d.key} ${d.reason}`;
  }
}

/** Partition i of topic t: ordinal o on nodes[o]; leader ordinal given. */
const spread = (
  index: number,
  leader: number,
  nodes: string[],
  nodeInfo = three,
  o: Partial<Parameters<typeof view>[0]> = {},
) => view({ index, nodes, leader, nodeInfo, ...o });

describe('rebalancer: leader spread', () => {
  it('moves leadership off the node that leads everything, a bounded number per pass, to the least busy nodes', () => {
    const parts = Array.from({ length: 6 }, (_, i) => spread(i, 0, ['n1', 'n2', 'n3']));
    const p = plan(parts, three, { maxLeaderTransfers: 2 });
    expect(p.leadersPerNode).toEqual({ n1: 6, n2: 0, n3: 0 });
    expect(p.leaderSkew).toBe(6);
    // Equal gains: each partition's preferred leader (index mod RF) wins the tie.
    expect(p.decisions.map(brief)).toEqual([
      'transfer t/1 0.inc0→1.inc1 (balance)',
      'transfer t/2 0.inc0→2.inc2 (balance)',
    ]);
  });

  it('leaves balanced leadership alone (skew within the threshold)', () => {
    const parts = Array.from({ length: 6 }, (_, i) => spread(i, i % 3, ['n1', 'n2', 'n3']));
    const p = plan(parts, three);
    expect(p.leadersPerNode).toEqual({ n1: 2, n2: 2, n3: 2 });
    expect(p.leaderSkew).toBe(0);
    expect(p.decisions).toEqual([]);
  });

  it('a skew of one is within the default threshold; two is not', () => {
    const at = (leaders: number[]) => leaders.map((l, i) => spread(i, l, ['n1', 'n2', 'n3']));
    expect(plan(at([0, 1, 2, 0]), three).leaderSkew).toBe(1);
    expect(plan(at([0, 1, 2, 0]), three).decisions).toEqual([]);
    expect(plan(at([0, 1, 0]), three).decisions.map(brief)).toEqual(['transfer t/2 0.inc0→2.inc2 (balance)']);
  });

  it('never hands leadership to a lagging or silent replica, nor touches a partition in its transfer cool-down', () => {
    const parts = [
      spread(0, 0, ['n1', 'n2', 'n3'], three, { lag: { 1: 5000 }, silent: [2] }),
      spread(1, 0, ['n1', 'n2', 'n3']),
      spread(2, 0, ['n1', 'n2', 'n3']),
    ];
    const p = plan(parts, three, { maxLeaderTransfers: 5 }, { recentTransfers: new Map([['t/1', NOW - 1000]]) });
    expect(p.decisions.map(brief)).toEqual(['transfer t/2 0.inc0→2.inc2 (balance)']);
  });

  it('converges: applying the transfers and planning again ends with no skew above the threshold', () => {
    let leaders = Array.from({ length: 9 }, () => 0);
    for (let pass = 0; pass < 10; pass++) {
      const parts = leaders.map((l, i) => spread(i, l, ['n1', 'n2', 'n3']));
      const p = plan(parts, three, { maxLeaderTransfers: 2 });
      const transfers = p.decisions.filter((d) => d.kind === 'transferLeadership');
      if (transfers.length === 0) {
        expect(p.leaderSkew).toBeLessThanOrEqual(1);
        return;
      }
      leaders = leaders.map((l, i) => {
        const t = transfers.find((d) => d.index === i);
        return t && t.kind === 'transferLeadership' ? Number(t.to[0]) : l;
      });
    }
    throw new Error('did not converge in 10 passes');
  });
});

describe('rebalancer: drained and cordoned nodes (add, then remove)', () => {
  const nodes = four({ n3: { drain: true } });
  const onN3 = (i: number, leader = 0) => spread(i, leader, ['n1', 'n2', 'n3'], nodes);
  const move = {
    kind: 'move' as const,
    reason: 'drain',
    ordinal: 2,
    target: 3,
    pod: 't-0-2',
    podUid: 'pod-uid-2',
    node: 'n3',
    startedAt: new Date(NOW - 30_000).toISOString(),
  };
  /** Partition 0 during the move of ordinal 2 (n3) to the spare slot 3 (n4). */
  const moving = (o: Partial<Parameters<typeof view>[0]> = {}) =>
    view({ index: 0, rf: 3, nodes: ['n1', 'n2', 'n3', 'n4'], leader: 0, nodeInfo: nodes, operation: move, ...o });

  it.each([
    ['drain label', four({ n3: { drain: true } }), 'drain'],
    ['cordon', four({ n3: { unschedulable: true } }), 'cordoned'],
  ])('%s: starts one move at a time into the spare slot; nothing is deleted yet', (_, n, reason) => {
    const parts = [0, 1, 2].map((i) => spread(i, 0, ['n1', 'n2', 'n3'], n));
    const p = plan(parts, n, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)).toEqual([`start move t-0-2 (${reason})`]);
    expect(p.operationsInFlight).toBe(1);
    const start = p.decisions[0];
    expect(start.kind === 'startOperation' && start.operation).toMatchObject({
      kind: 'move',
      ordinal: 2,
      target: 3,
      node: 'n3',
      podUid: 'pod-uid-2',
      startedAt: new Date(NOW).toISOString(),
    });
  });

  it('the target is the spare slot wherever it is (here ordinal 1, after an earlier move)', () => {
    const p = plan(
      [view({ index: 0, rf: 3, nodes: ['n1', undefined, 'n3', 'n2'], spare: 1, leader: 0, nodeInfo: nodes })],
      nodes,
      { maxLeaderTransfers: 0 },
    );
    expect(p.decisions.map(brief)).toEqual(['start move t-0-2 (drain)']);
    expect(p.decisions[0].kind === 'startOperation' && p.decisions[0].operation.target).toBe(1);
  });

  it('honours maxConcurrentMoves across partitions', () => {
    const parts = [0, 1, 2, 3].map((i) => onN3(i));
    expect(plan(parts, nodes, { maxConcurrentMoves: 2, maxLeaderTransfers: 0 }).decisions.map(brief)).toEqual([
      'start move t-0-2 (drain)',
      'start move t-1-2 (drain)',
    ]);
  });

  it('step by step: wait for the new replica, leadership off the old one, remove it, delete its pod and volume, finish', () => {
    const s = { maxLeaderTransfers: 0 };
    // The new replica in slot 3 is not scheduled yet, then a learner catching up: wait (4 copies on the way, 3 kept).
    expect(plan([moving({ silent: [3] })], nodes, s).decisions.map(brief)).toEqual([]);
    expect(plan([moving({ learners: [3], lag: { 3: 5000 } })], nodes, s).decisions.map(brief)).toEqual([]);
    // A caught-up voter: the old replica leads, so leadership moves first (never to the old one).
    expect(plan([moving({ voters: [0, 1, 2, 3], leader: 2 })], nodes, s).decisions.map(brief)).toEqual([
      'transfer t/0 2.inc2→0.inc0 (before-move)',
    ]);
    // A follower now: removed from the group while its pod still runs.
    expect(plan([moving({ voters: [0, 1, 2, 3] })], nodes, s).decisions.map(brief)).toEqual(['remove 2.inc2 (t-0-2)']);
    // Out of the group: only now its pod and claim go.
    expect(plan([moving({ voters: [0, 1, 3] })], nodes, s).decisions.map(brief)).toEqual(['delete t-0-2 +pvc']);
    // The StatefulSet made pod 2 again, held by the gate: slot 2 is the spare.
    const done = plan([moving({ voters: [0, 1, 3], gated: [2], uids: { 2: 'successor' } }), onN3(1)], nodes, s);
    expect(done.decisions.map(brief)).toEqual(['finish move t-0-2 spare=2', 'start move t-1-2 (drain)']);
  });

  it('the old replica is removed only while RF other copies are healthy: a lagging one makes it wait', () => {
    const p = plan([moving({ voters: [0, 1, 2, 3], lag: { 1: 50_000 } })], nodes, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)).toEqual(['blocked t/0 copies-at-risk']);
    expect(p.decisions[0].kind === 'blocked' && p.decisions[0].message).toMatch(/2\/3 other voters healthy/);
  });

  it('an old incarnation re-added as a learner is removed again', () => {
    const p = plan([moving({ voters: [0, 1, 3], learners: [2] })], nodes, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)).toEqual(['remove 2.inc2 (t-0-2)']);
  });

  it('an operation in progress holds its slot: no new move starts until it finishes', () => {
    const p = plan([moving({ learners: [3] }), onN3(1)], nodes, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)).toEqual([]);
    expect(p.operationsInFlight).toBe(1);
  });

  it('a move recorded without a target (an older operator) is finished and looked at afresh', () => {
    const { target: _t, ...legacy } = move;
    const p = plan([moving({ operation: legacy, voters: [0, 1, 2] })], nodes, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)[0]).toBe('finish move t-0-2');
  });

  it('never drops a partition below quorum: with another replica unhealthy the move waits', () => {
    const p = plan([spread(0, 0, ['n1', 'n2', 'n3'], nodes, { silent: [1] })], nodes);
    expect(p.decisions.map(brief)).toEqual(['blocked t/0 quorum-at-risk']);
    const b = p.decisions[0];
    expect(b.kind === 'blocked' && b.message).toMatch(/1\/3 other voters healthy, 2 needed/);
  });

  it('waits when no schedulable node is free of this partition', () => {
    const full = nodesOf(node('n1', 'a'), node('n2', 'b'), node('n3', 'c', { drain: true }));
    const p = plan([spread(0, 0, ['n1', 'n2', 'n3'], full)], full);
    expect(p.decisions.map(brief)).toEqual(['blocked t/0 no-free-node']);
  });

  it('waits while the spare pod does not exist or is not held by its gate', () => {
    const missing = view({ index: 0, nodes: ['n1', 'n2', 'n3'], leader: 0, nodeInfo: nodes, gated: [] });
    expect(plan([missing], nodes).decisions.map(brief)).toEqual(['blocked t/0 no-spare-slot']);
  });

  it('rolls the replicas that stay onto the current template before moving (an older one cannot reach the spare)', () => {
    const stale = spread(0, 0, ['n1', 'n2', 'n3'], nodes, {
      updateRevision: 'rev2',
      revisions: { 0: 'rev1', 1: 'rev1', 2: 'rev1' },
    });
    expect(plan([stale], nodes, { maxLeaderTransfers: 0 }).decisions.map(brief)).toEqual([
      'start roll t-0-1 (revision)',
      'delete t-0-1',
    ]);
    // Only the replica being moved is old: it leaves anyway, the move starts.
    const onlyMoving = spread(0, 0, ['n1', 'n2', 'n3'], nodes, {
      updateRevision: 'rev2',
      revisions: { 0: 'rev2', 1: 'rev2', 2: 'rev1' },
    });
    expect(plan([onlyMoving], nodes, { maxLeaderTransfers: 0 }).decisions.map(brief)).toEqual([
      'start move t-0-2 (drain)',
    ]);
  });

  it("without the leader's membership report, the old replica is neither removed nor deleted", () => {
    // The replicas' own reports (or an announcement) still show a leader; the leader's is missing.
    const v = { ...moving({ voters: [0, 1, 3] }), voters: [], learners: [] };
    expect(v.replicaViews.find((r) => r.ordinal === 3)!.healthy).toBe(true);
    expect(plan([v], nodes, { maxLeaderTransfers: 0 }).decisions.map(brief)).toEqual([
      'blocked t/0 no-membership-report',
    ]);
  });

  it('a member left in the spare slot (its pod gated) is removed from the group', () => {
    const v = view({ index: 0, rf: 3, nodes: ['n1', 'n2', 'n4'], voters: [0, 1, 2, 3], leader: 0, nodeInfo: nodes });
    expect(plan([v], nodes, { maxLeaderTransfers: 0 }).decisions.map(brief)).toEqual(['remove 3.inc3 (t-0-3)']);
  });

  it('refuses to move the only replica of an RF=1 partition', () => {
    const p = plan([view({ index: 0, nodes: ['n3'], leader: 0, nodeInfo: nodes })], nodes);
    expect(p.decisions.map(brief)).toEqual(['blocked t/0 rf1-cannot-move']);
  });
});

describe('rebalancer: co-located replicas', () => {
  it('two replicas on one node: moves the follower with the highest ordinal', () => {
    const nodes = four();
    const p = plan([spread(0, 0, ['n1', 'n1', 'n2'], nodes)], nodes, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)).toEqual(['start move t-0-1 (colocated-node)']);
  });

  it('two replicas in one zone while another zone is free: moves one', () => {
    const nodes = nodesOf(node('n1', 'a'), node('n2', 'a'), node('n3', 'b'), node('n4', 'c'));
    const p = plan([spread(0, 0, ['n1', 'n2', 'n3'], nodes)], nodes, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)).toEqual(['start move t-0-1 (colocated-zone)']);
  });

  it('two replicas in one zone with no free zone: nothing to gain, no move', () => {
    const nodes = nodesOf(node('n1', 'a'), node('n2', 'a'), node('n3', 'b'));
    expect(plan([spread(0, 0, ['n1', 'n2', 'n3'], nodes)], nodes).decisions).toEqual([]);
  });

  it('does not move again for co-location during the cool-down after the last operation', () => {
    const nodes = four();
    const p = plan(
      [spread(0, 0, ['n1', 'n1', 'n2'], nodes)],
      nodes,
      {},
      { recentOperations: new Map([['t/0', NOW - 60_000]]) },
    );
    expect(p.decisions).toEqual([]);
  });
});

describe('rebalancer: operator-driven rolls (OnDelete)', () => {
  const outdated = (o: Partial<Parameters<typeof view>[0]> = {}) =>
    spread(0, 0, ['n1', 'n2', 'n3'], three, {
      updateRevision: 'rev2',
      revisions: { 0: 'rev1', 1: 'rev1', 2: 'rev1' },
      ...o,
    });

  it('restarts followers first, highest ordinal first, keeping the volume', () => {
    expect(plan([outdated()], three, { maxLeaderTransfers: 0 }).decisions.map(brief)).toEqual([
      'start roll t-0-2 (revision)',
      'delete t-0-2',
    ]);
  });

  it('a lagging replica blocks the roll (a majority of the others must be caught up)', () => {
    const p = plan([outdated({ lag: { 1: 5000 } })], three, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)).toEqual(['blocked t/0 quorum-at-risk']);
    expect(p.decisions[0].kind === 'blocked' && p.decisions[0].message).toMatch(/1\/3 other voters healthy/);
  });

  it('a not-ready replica blocks it too', () => {
    expect(
      plan([outdated({ notReady: [2], revisions: { 0: 'rev1', 1: 'rev1', 2: 'rev2' } })], three).decisions.map(brief),
    ).toEqual(['blocked t/0 quorum-at-risk']);
  });

  it('a replica whose container just crashed blocks it, though its last report is still fresh', () => {
    // Ordinal 1 rolled already; ordinal 2's process died a moment ago (the kubelet restarts it in
    // the same pod): its last report, sent before, would count as fresh for reportStaleSeconds.
    const crashed = (extra: Record<number, Partial<PodInfo>>) =>
      plan([outdated({ revisions: { 0: 'rev1', 1: 'rev2', 2: 'rev2' }, podExtra: extra })], three, {
        maxLeaderTransfers: 0,
      }).decisions.map(brief);
    expect(crashed({ 2: { containerDown: true } })).toEqual(['blocked t/0 quorum-at-risk']);
    // Running again, but not a word from the new process yet.
    expect(crashed({ 2: { containerStartedAtMs: NOW - 100 } })).toEqual(['blocked t/0 quorum-at-risk']);
    // It has reported since it started: the roll goes on.
    expect(crashed({ 2: { containerStartedAtMs: NOW - 60_000 } })).toEqual([
      'start roll t-0-0 (revision)',
      'transfer t/0 0.inc0→1.inc1 (before-roll)',
    ]);
  });

  it('moves leadership off the leader before restarting it, and only when it is the last one', () => {
    const p = plan([outdated({ revisions: { 0: 'rev1', 1: 'rev2', 2: 'rev2' } })], three, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)).toEqual(['start roll t-0-0 (revision)', 'transfer t/0 0.inc0→1.inc1 (before-roll)']);
  });

  it('waits for the restarted pod to catch up before the next one', () => {
    const op = {
      kind: 'roll' as const,
      reason: 'revision',
      ordinal: 2,
      pod: 't-0-2',
      podUid: 'pod-uid-2',
      startedAt: new Date(NOW - 5000).toISOString(),
    };
    const catchingUp = outdated({
      revisions: { 0: 'rev1', 1: 'rev1', 2: 'rev2' },
      uids: { 2: 'new' },
      lag: { 2: 900 },
      operation: op,
    });
    expect(plan([catchingUp], three, { maxLeaderTransfers: 0 }).decisions.map(brief)).toEqual([]);
    const caughtUp = outdated({ revisions: { 0: 'rev1', 1: 'rev1', 2: 'rev2' }, uids: { 2: 'new' }, operation: op });
    expect(plan([caughtUp], three, { maxLeaderTransfers: 0 }).decisions.map(brief)).toEqual(['finish roll t-0-2']);
  });

  it('reports an operation that takes longer than the timeout (and keeps its slot)', () => {
    const op = {
      kind: 'roll' as const,
      reason: 'revision',
      ordinal: 2,
      pod: 't-0-2',
      podUid: 'pod-uid-2',
      startedAt: new Date(NOW - 3_600_000).toISOString(),
    };
    const stuck = outdated({ uids: { 2: 'new' }, silent: [2], operation: op });
    const p = plan([stuck], three, { maxLeaderTransfers: 0 });
    expect(p.decisions.map(brief)).toEqual(['blocked t/0 operation-stuck']);
    expect(p.operationsInFlight).toBe(1);
  });

  it('drains before rolls when the budget is short', () => {
    const nodes = four({ n3: { drain: true } });
    const roll = spread(0, 0, ['n1', 'n2', 'n4'], nodes, { updateRevision: 'rev2', revisions: { 2: 'rev1' } });
    const drain = spread(1, 0, ['n1', 'n2', 'n3'], nodes);
    expect(plan([roll, drain], nodes, { maxLeaderTransfers: 0 }).decisions.map(brief)).toEqual([
      'start move t-1-2 (drain)',
    ]);
  });
});

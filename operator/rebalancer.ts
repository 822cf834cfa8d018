/**
 * The rebalancer's decisions, as pure functions of what the operator observes (DESIGN §7). The
 * driver (operator/rebalance-driver.ts) runs them inside the reconcile loop and carries them out.
 *
 * - Replica moves (drained or cordoned node, two replicas of a partition on one node or zone):
 *   add, then remove, so the group never has fewer than RF caught-up copies (operator/slots.ts).
 *   The StatefulSet has one spare ordinal whose pod is held by a scheduling gate; a move admits it
 *   (the scheduler places it where it may go; the leader adds the replica as a learner and
 *   promotes it once caught up), waits until it is a healthy voter, moves leadership off the old
 *   replica, removes the old replica from the group (NATS control request), and only then
 *   deletes the old pod and its PVC: the StatefulSet makes that pod again, gated, and its slot is
 *   the new spare.
 * - Rolls (pods not on the StatefulSet's update revision; updateStrategy OnDelete): leadership off
 *   the pod, delete it (volume kept), wait until it is back and caught up.
 * - Leaders: spread evenly over nodes by leadership transfer, a bounded number per pass.
 *
 * Safety: a replica is disrupted only while the *other* replicas hold a healthy, caught-up
 * majority of the voters (for odd RF that is the same as "a majority of the others"), so a
 * partition never drops below quorum; at most `maxConcurrentMoves` partitions are disrupted at once,
 * and one replica per partition. An operation in progress is recorded in the Partition's
 * status.operation, so the bound holds across operator restarts.
 */
import type { PartitionOperation } from './crd-schema';
import { ordinalOfReplicaId, partitionName, podName } from './names';
import { quorum, type NodeInfo, type PartitionView, type ReplicaView } from './status';

export interface RebalanceSettings {
  /** Partitions with a replica move or roll in progress at once. */
  maxConcurrentMoves: number;
  /** Leadership transfers started per pass. */
  maxLeaderTransfers: number;
  /** Leaders per node may differ by this much before a transfer is started (≥ 1). */
  leaderSkewThreshold: number;
  /** An operation running longer is reported as stuck (it keeps its slot: a person must look). */
  operationTimeoutMs: number;
  /** No new transfer for a partition this soon after the last one (the election must settle). */
  transferCooldownMs: number;
  /** No new co-location move for a partition this soon after its last operation ended. */
  moveCooldownMs: number;
}

export const DEFAULT_REBALANCE_SETTINGS: RebalanceSettings = {
  maxConcurrentMoves: 1,
  maxLeaderTransfers: 2,
  leaderSkewThreshold: 1,
  operationTimeoutMs: 15 * 60_000,
  transferCooldownMs: 15_000,
  moveCooldownMs: 10 * 60_000,
};

export type MoveReason = 'drain' | 'cordoned' | 'colocated-node' | 'colocated-zone';
export type TransferReason = 'balance' | 'before-move' | 'before-roll';

export type Decision =
  | { kind: 'startOperation'; key: string; topic: string; index: number; operation: PartitionOperation }
  | {
      kind: 'transferLeadership';
      key: string;
      topic: string;
      index: number;
      from: string;
      to: string;
      toPod: string;
      reason: TransferReason;
    }
  | {
      kind: 'deletePod';
      key: string;
      topic: string;
      index: number;
      ordinal: number;
      pod: string;
      /** Also delete the PVC: the replica is rebuilt from its peers (a move). */
      wipe: boolean;
      reason: string;
    }
  | {
      kind: 'removeMember';
      key: string;
      topic: string;
      index: number;
      /** The slot the member belongs to, and its replica id. */
      ordinal: number;
      id: string;
      pod: string;
      reason: string;
    }
  | {
      kind: 'finishOperation';
      key: string;
      topic: string;
      index: number;
      operation: PartitionOperation;
      message: string;
      /** A move: the slot that is spare from now on (the old replica's). */
      spare?: number;
    }
  | { kind: 'blocked'; key: string; topic: string; index: number; reason: string; message: string };

export interface RebalancePlan {
  decisions: Decision[];
  /** Leaders per node (nodes that host a healthy voter). */
  leadersPerNode: Record<string, number>;
  /** max − min of leadersPerNode (0 with fewer than two nodes). */
  leaderSkew: number;
  /** Partitions with an operation after this pass. */
  operationsInFlight: number;
}

export interface RebalanceInput {
  partitions: readonly PartitionView[];
  nodes: ReadonlyMap<string, NodeInfo>;
  /** partition key → when the operator last asked for a leadership transfer there. */
  recentTransfers: ReadonlyMap<string, number>;
  /** partition key → when its last operation finished. */
  recentOperations: ReadonlyMap<string, number>;
  nowMs: number;
  settings: RebalanceSettings;
}

export const partitionKey = (topic: string, index: number): string => `${topic}/${index}`;

const nodeOut = (n: NodeInfo | undefined): boolean => n !== undefined && (n.drain || n.unschedulable);

/** Replicas (other than `except`) that hold a healthy majority without it. */
export function othersHoldQuorum(v: PartitionView, except: number): boolean {
  const others = v.replicaViews.filter((r) => r.ordinal !== except && r.healthy).length;
  return v.leaderElected && others >= quorum(v.replicas);
}

/** The best new leader among the healthy voters other than `except`: least lag, then fewest leaders on its node. */
export function transferTarget(
  v: PartitionView,
  except: number,
  leadersPerNode: ReadonlyMap<string, number>,
  nodes: ReadonlyMap<string, NodeInfo>,
): ReplicaView | undefined {
  return v.replicaViews
    .filter((r) => r.ordinal !== except && r.healthy && r.id !== undefined && r.role !== 'leader')
    .filter((r) => !nodeOut(r.node ? nodes.get(r.node) : undefined))
    .sort(
      (a, b) =>
        (a.lag ?? 0) - (b.lag ?? 0) ||
        (leadersPerNode.get(a.node ?? '') ?? 0) - (leadersPerNode.get(b.node ?? '') ?? 0) ||
        a.ordinal - b.ordinal,
    )[0];
}

/** Is there a node the scheduler may put a rebuilt replica on (schedulable, not drained, not hosting a sibling)? */
function freeNodeFor(v: PartitionView, ordinal: number, nodes: ReadonlyMap<string, NodeInfo>): boolean {
  const taken = new Set(v.replicaViews.filter((r) => r.ordinal !== ordinal && r.node).map((r) => r.node!));
  for (const n of nodes.values()) if (!n.drain && !n.unschedulable && !taken.has(n.name)) return true;
  return false;
}

/** A zone with schedulable nodes and no replica of this partition (a co-located replica could go there). */
function freeZoneFor(v: PartitionView, nodes: ReadonlyMap<string, NodeInfo>): boolean {
  const used = new Set(v.replicaViews.filter((r) => r.zone).map((r) => r.zone!));
  for (const n of nodes.values()) if (n.zone && !n.drain && !n.unschedulable && !used.has(n.zone)) return true;
  return false;
}

/** Why a replica of this partition should move, most urgent first; null when none should. */
export function moveCandidate(
  v: PartitionView,
  nodes: ReadonlyMap<string, NodeInfo>,
): { ordinal: number; reason: MoveReason; node: string } | null {
  // Drained or cordoned nodes first: the node is going away.
  for (const r of v.replicaViews) {
    const n = r.node ? nodes.get(r.node) : undefined;
    if (n?.drain) return { ordinal: r.ordinal, reason: 'drain', node: n.name };
    if (n?.unschedulable) return { ordinal: r.ordinal, reason: 'cordoned', node: n.name };
  }
  // Then co-location: prefer moving a follower, the highest ordinal.
  const pick = (group: ReplicaView[]) =>
    [...group].sort((a, b) => Number(a.role === 'leader') - Number(b.role === 'leader') || b.ordinal - a.ordinal)[0];
  const byNode = new Map<string, ReplicaView[]>();
  for (const r of v.replicaViews) if (r.node) byNode.set(r.node, [...(byNode.get(r.node) ?? []), r]);
  for (const [node, group] of [...byNode].sort(([a], [b]) => a.localeCompare(b)))
    if (group.length > 1) return { ordinal: pick(group).ordinal, reason: 'colocated-node', node };
  if (freeZoneFor(v, nodes)) {
    const byZone = new Map<string, ReplicaView[]>();
    for (const r of v.replicaViews) if (r.zone) byZone.set(r.zone, [...(byZone.get(r.zone) ?? []), r]);
    for (const [, group] of [...byZone].sort(([a], [b]) => a.localeCompare(b)))
      if (group.length > 1) {
        const r = pick(group);
        return { ordinal: r.ordinal, reason: 'colocated-zone', node: r.node! };
      }
  }
  return null;
}

/** Leaders per node, counting nodes that host a healthy voter (those that could lead). */
export function leaderCounts(partitions: readonly PartitionView[], nodes: ReadonlyMap<string, NodeInfo>) {
  const counts = new Map<string, number>();
  for (const v of partitions)
    for (const r of v.replicaViews)
      if (r.healthy && r.node && !nodeOut(nodes.get(r.node)) && !counts.has(r.node)) counts.set(r.node, 0);
  for (const v of partitions) {
    const leader = v.replicaViews.find((r) => r.id !== undefined && r.id === v.leaderId);
    if (leader?.node) counts.set(leader.node, (counts.get(leader.node) ?? 0) + 1);
  }
  return counts;
}

function skewOf(counts: ReadonlyMap<string, number>, nodes: ReadonlyMap<string, NodeInfo>): number {
  const values = [...counts].filter(([n]) => !nodeOut(nodes.get(n))).map(([, c]) => c);
  return values.length < 2 ? 0 : Math.max(...values) - Math.min(...values);
}

/** A leadership transfer off `r` (cooldown respected), or why none can be made. */
function transferOff(
  v: PartitionView,
  r: ReplicaView,
  reason: TransferReason,
  input: RebalanceInput,
  counts: Map<string, number>,
  out: Decision[],
): void {
  const key = partitionKey(v.topic, v.index);
  const base = { key, topic: v.topic, index: v.index };
  const last = input.recentTransfers.get(key);
  if (last !== undefined && input.nowMs - last < input.settings.transferCooldownMs) return;
  const target = transferTarget(v, r.ordinal, counts, input.nodes);
  if (!target) {
    out.push({
      kind: 'blocked',
      ...base,
      reason: 'no-transfer-target',
      message: `${r.pod} leads and no other voter is healthy and caught up to take over`,
    });
    return;
  }
  out.push({ kind: 'transferLeadership', ...base, from: r.id!, to: target.id!, toPod: target.pod, reason });
}

function stuck(v: PartitionView, op: PartitionOperation, what: string, input: RebalanceInput, out: Decision[]): void {
  if (input.nowMs - Date.parse(op.startedAt) > input.settings.operationTimeoutMs)
    out.push({
      kind: 'blocked',
      key: partitionKey(v.topic, v.index),
      topic: v.topic,
      index: v.index,
      reason: 'operation-stuck',
      message: `${op.kind} of ${op.pod} started ${op.startedAt} has not finished: ${what}`,
    });
}

/**
 * Next step of a move (add, then remove): the target slot's replica becomes a healthy voter (the
 * reconciler admits its pod; the leader adds and promotes it), leadership leaves the old replica,
 * the old replica is removed from the group — only while the others hold RF healthy copies —
 * and then its pod and claim are deleted. Never fewer than RF caught-up copies, never below quorum.
 */
function continueMove(
  v: PartitionView,
  op: PartitionOperation,
  input: RebalanceInput,
  counts: Map<string, number>,
  out: Decision[],
): boolean {
  const key = partitionKey(v.topic, v.index);
  const base = { key, topic: v.topic, index: v.index };
  const old = v.replicaViews.find((x) => x.ordinal === op.ordinal);
  const target = v.replicaViews.find((x) => x.ordinal === op.target);
  if (op.target === undefined || op.target === op.ordinal) {
    // Written by an operator that deleted first; whatever it left, the next pass looks afresh.
    out.push({ kind: 'finishOperation', ...base, operation: op, message: `${op.pod}: move without a target slot` });
    return false;
  }
  // Members of the old slot in the leader's configuration (whatever incarnation).
  const oldMembers = [...v.voters, ...v.learners].filter((id) => ordinalOfReplicaId(id) === op.ordinal);
  const oldPod = old?.podInfo;
  const oldPodLive =
    oldPod !== undefined && !oldPod.deleting && !oldPod.gated && (op.podUid === undefined || oldPod.uid === op.podUid);
  if (!target?.healthy) {
    stuck(
      v,
      op,
      `the new replica ${target?.pod ?? `in slot ${op.target}`}: ${target?.problem ?? 'no view'}`,
      input,
      out,
    );
    return true;
  }
  if (v.voters.length === 0) {
    // Without the leader's report of the membership, "the old replica is no longer a member"
    // cannot be told from "nobody said": deleting it then could leave a dead voter in the group.
    out.push({
      kind: 'blocked',
      ...base,
      reason: 'no-membership-report',
      message: `waiting for the leader's report of the membership before removing ${op.pod}`,
    });
    return true;
  }
  if (old && old.role === 'leader' && old.id !== undefined && old.id === v.leaderId) {
    transferOff(v, old, 'before-move', input, counts, out);
    return true;
  }
  if (oldMembers.length > 0) {
    // Removing it must leave RF healthy, caught-up voters: the new one and the others.
    const copies = v.replicaViews.filter((x) => x.ordinal !== op.ordinal && x.healthy).length;
    if (!v.leaderElected || copies < v.replicas) {
      out.push({
        kind: 'blocked',
        ...base,
        reason: 'copies-at-risk',
        message: `waiting to remove ${op.pod} from the group: ${copies}/${v.replicas} other voters healthy and caught up (${v.replicaViews
          .filter((x) => x.ordinal !== op.ordinal && !x.healthy)
          .map((x) => x.problem ?? x.pod)
          .join('; ')})`,
      });
      return true;
    }
    out.push({
      kind: 'removeMember',
      ...base,
      ordinal: op.ordinal,
      id: oldMembers[0],
      pod: op.pod,
      reason: op.reason,
    });
    return true;
  }
  if (oldPodLive) {
    out.push({ kind: 'deletePod', ...base, ordinal: op.ordinal, pod: op.pod, wipe: true, reason: op.reason });
    return true;
  }
  out.push({
    kind: 'finishOperation',
    ...base,
    operation: op,
    spare: op.ordinal,
    message: `${target.pod} on ${target.node} is a caught-up voter and ${op.pod} left the group; slot ${op.ordinal} is the spare now`,
  });
  return false;
}

/** Next step of an operation in progress: act, wait, or finish. */
function continueOperation(
  v: PartitionView,
  op: PartitionOperation,
  input: RebalanceInput,
  counts: Map<string, number>,
  out: Decision[],
): boolean {
  if (op.kind === 'move') return continueMove(v, op, input, counts, out);
  const key = partitionKey(v.topic, v.index);
  const base = { key, topic: v.topic, index: v.index };
  const r = v.replicaViews.find((x) => x.ordinal === op.ordinal);
  if (!r) {
    out.push({ kind: 'finishOperation', ...base, operation: op, message: `ordinal ${op.ordinal} no longer exists` });
    return false;
  }
  const pod = r.podInfo;
  const outdated = v.outdatedOrdinals.includes(op.ordinal);
  // The pod being replaced is recognised by its UID; any other pod for the ordinal is its successor.
  const original = pod !== undefined && (op.podUid !== undefined ? pod.uid === op.podUid : outdated);
  const done = r.healthy && pod !== undefined && !pod.deleting && !original;
  if (done) {
    out.push({
      kind: 'finishOperation',
      ...base,
      operation: op,
      message: `${r.pod} restarted on the current template and caught up`,
    });
    return false;
  }
  const needsAction = pod !== undefined && !pod.deleting && original;
  if (needsAction) {
    if (r.role === 'leader' && v.replicas > 1) {
      transferOff(v, r, 'before-roll', input, counts, out);
      return true;
    }
    if (v.replicas > 1 && !othersHoldQuorum(v, r.ordinal)) {
      const others = v.replicaViews.filter((x) => x.ordinal !== r.ordinal);
      out.push({
        kind: 'blocked',
        ...base,
        reason: 'quorum-at-risk',
        message: `waiting to restart ${r.pod}: ${others.filter((x) => x.healthy).length}/${v.replicas} other voters healthy, ${quorum(v.replicas)} needed (${others
          .filter((x) => !x.healthy)
          .map((x) => x.problem ?? x.pod)
          .join('; ')})`,
      });
      return true;
    }
    out.push({ kind: 'deletePod', ...base, ordinal: r.ordinal, pod: r.pod, wipe: false, reason: op.reason });
    return true;
  }
  // Waiting for the pod to come back and catch up.
  stuck(v, op, r.problem ?? 'waiting', input, out);
  return true;
}

/** One rebalancer pass over every partition the operator manages. */
export function planRebalance(input: RebalanceInput): RebalancePlan {
  const { settings, nodes, nowMs } = input;
  const decisions: Decision[] = [];
  const sorted = [...input.partitions].sort((a, b) => a.topic.localeCompare(b.topic) || a.index - b.index);
  const counts = leaderCounts(sorted, nodes);
  const busy = new Set<string>();

  // 1. Operations in progress: take their next step (they keep their slot until done).
  let inFlight = 0;
  for (const v of sorted) {
    if (!v.operation) continue;
    if (continueOperation(v, v.operation, input, counts, decisions)) {
      inFlight++;
      busy.add(partitionKey(v.topic, v.index));
    }
  }

  // 2. New operations, most urgent first, within the budget.
  type Candidate = {
    v: PartitionView;
    ordinal: number;
    kind: 'move' | 'roll';
    reason: string;
    node?: string;
    rank: number;
  };
  const candidates: Candidate[] = [];
  const rank: Record<string, number> = { drain: 0, cordoned: 1, 'colocated-node': 2, 'colocated-zone': 3, revision: 4 };
  for (const v of sorted) {
    const key = partitionKey(v.topic, v.index);
    if (v.operation || busy.has(key)) continue;
    // A member in the spare slot while its pod is held by the gate is dead weight (a move's old
    // replica added back by another leader, say): remove it, or the group counts a voter that
    // can never answer.
    const spare = v.spare;
    if (spare && (!spare.pod || spare.pod.gated) && v.leaderElected) {
      const stale = [...v.voters, ...v.learners].filter((id) => ordinalOfReplicaId(id) === spare.ordinal);
      if (stale.length > 0) {
        decisions.push({
          kind: 'removeMember',
          key,
          topic: v.topic,
          index: v.index,
          ordinal: spare.ordinal,
          id: stale[0],
          pod: podName(v.topic, v.index, spare.ordinal),
          reason: 'spare-slot-member',
        });
        continue;
      }
    }
    const mv = moveCandidate(v, nodes);
    if (mv) {
      const recent = input.recentOperations.get(key);
      const colocated = mv.reason === 'colocated-node' || mv.reason === 'colocated-zone';
      const pod = v.replicaViews.find((r) => r.ordinal === mv.ordinal)!.pod;
      if (colocated && recent !== undefined && nowMs - recent < settings.moveCooldownMs) {
        // Just moved: give the scheduler's choice a chance before moving again.
      } else if (v.replicas === 1) {
        // The spare of an RF 1 partition is its only other ordinal: a fresh replica there could not
        // tell "join the group in the other slot" from "found a new one" while that one is down.
        if (!colocated)
          decisions.push({
            kind: 'blocked',
            key,
            topic: v.topic,
            index: v.index,
            reason: 'rf1-cannot-move',
            message: `${partitionName(v.topic, v.index)} has replicationFactor 1: the operator does not move its only replica off ${mv.node}; delete the pod yourself if its volume can follow it`,
          });
        continue;
      } else if (!freeNodeFor(v, mv.ordinal, nodes)) {
        decisions.push({
          kind: 'blocked',
          key,
          topic: v.topic,
          index: v.index,
          reason: 'no-free-node',
          message: `cannot move ${pod} off ${mv.node} (${mv.reason}): no schedulable node without a replica of this partition`,
        });
        continue;
      } else if (!v.spare || !v.spare.pod || v.spare.pod.deleting || !v.spare.pod.gated) {
        // The spare pod is made by the StatefulSet (RF + 1 ordinals) and held by its gate.
        decisions.push({
          kind: 'blocked',
          key,
          topic: v.topic,
          index: v.index,
          reason: 'no-spare-slot',
          message: `move of ${pod} off ${mv.node} (${mv.reason}) waits: ${
            !v.spare
              ? 'the partition has no spare slot'
              : `the spare pod ${v.spare.pod?.name ?? `in slot ${v.spare.ordinal}`} ${
                  !v.spare.pod
                    ? 'does not exist yet'
                    : v.spare.pod.deleting
                      ? 'is being replaced'
                      : 'is not held by its gate'
                }`
          }`,
        });
        continue;
      } else if (!v.outdatedOrdinals.some((o) => o !== mv.ordinal)) {
        candidates.push({
          v,
          ordinal: mv.ordinal,
          kind: 'move',
          reason: mv.reason,
          node: mv.node,
          rank: rank[mv.reason],
        });
        continue;
      } else {
        // The replicas that stay must run the current template before the move: one from an
        // older operator does not know the spare slot's address, and the new replica could never
        // join. They are rolled first, as urgently as the move.
        const isLeader = (o: number) => Number(v.replicaViews.find((r) => r.ordinal === o)?.role === 'leader');
        const ord = v.outdatedOrdinals
          .filter((o) => o !== mv.ordinal)
          .sort((a, b) => isLeader(a) - isLeader(b) || b - a)[0];
        candidates.push({ v, ordinal: ord, kind: 'roll', reason: 'revision', rank: rank[mv.reason] });
        continue;
      }
    }
    if (v.outdatedOrdinals.length > 0) {
      // Followers first (highest ordinal first), the leader last: one leadership change per roll.
      const isLeader = (o: number) => Number(v.replicaViews.find((r) => r.ordinal === o)?.role === 'leader');
      const ord = [...v.outdatedOrdinals].sort((a, b) => isLeader(a) - isLeader(b) || b - a)[0];
      candidates.push({ v, ordinal: ord, kind: 'roll', reason: 'revision', rank: rank.revision });
    }
  }
  candidates.sort((a, b) => a.rank - b.rank);
  for (const c of candidates) {
    if (inFlight >= settings.maxConcurrentMoves) break;
    const v = c.v;
    const key = partitionKey(v.topic, v.index);
    const r = v.replicaViews.find((x) => x.ordinal === c.ordinal)!;
    // Start only when disrupting it keeps a majority; an RF=1 roll is downtime by definition.
    const safe =
      v.replicas === 1 ? r.healthy || !r.podInfo || r.podInfo.phase !== 'Running' : othersHoldQuorum(v, c.ordinal);
    if (!safe || v.learners.length > 0) {
      decisions.push({
        kind: 'blocked',
        key,
        topic: v.topic,
        index: v.index,
        reason: 'quorum-at-risk',
        message: `${c.kind === 'move' ? `move of ${r.pod} (${c.reason})` : `roll of ${r.pod}`} waits: ${
          v.learners.length > 0
            ? `learners still catching up (${v.learners.join(', ')})`
            : `${v.replicaViews.filter((x) => x.ordinal !== c.ordinal && x.healthy).length}/${v.replicas} other voters healthy, ${quorum(v.replicas)} needed`
        }`,
      });
      continue;
    }
    const operation: PartitionOperation = {
      kind: c.kind,
      reason: c.reason,
      ordinal: c.ordinal,
      pod: r.pod,
      ...(r.podInfo?.uid ? { podUid: r.podInfo.uid } : {}),
      ...(c.kind === 'move' && c.node ? { node: c.node } : {}),
      ...(c.kind === 'move' && v.spare ? { target: v.spare.ordinal } : {}),
      startedAt: new Date(nowMs).toISOString(),
      message:
        c.kind === 'move'
          ? `moving ${r.pod} off ${c.node} (${c.reason}): a new replica in slot ${v.spare?.ordinal} joins and catches up first, then ${r.pod} leaves the group and its volume is dropped`
          : `restarting ${r.pod} on the current StatefulSet template`,
    };
    decisions.push({ kind: 'startOperation', key, topic: v.topic, index: v.index, operation });
    continueOperation({ ...v, operation }, operation, input, counts, decisions);
    inFlight++;
    busy.add(key);
  }

  const leadersPerNode = Object.fromEntries([...counts].sort(([a], [b]) => a.localeCompare(b)));
  const leaderSkew = skewOf(counts, nodes);

  // 3. Leaders: move leadership from the busiest node to the least busy one, a few per pass.
  let transfers = 0;
  const used = new Set<string>();
  while (transfers < settings.maxLeaderTransfers) {
    let best: { v: PartitionView; from: ReplicaView; to: ReplicaView; gain: number; preferred: boolean } | undefined;
    for (const v of sorted) {
      const key = partitionKey(v.topic, v.index);
      if (busy.has(key) || used.has(key) || v.operation || !v.ready || v.learners.length > 0) continue;
      const last = input.recentTransfers.get(key);
      if (last !== undefined && nowMs - last < settings.transferCooldownMs) continue;
      const leader = v.replicaViews.find((r) => r.id !== undefined && r.id === v.leaderId);
      if (!leader?.node) continue;
      const from = counts.get(leader.node) ?? 0;
      const preferred = v.index % v.replicas;
      for (const r of v.replicaViews) {
        if (r === leader || !r.healthy || !r.node || r.node === leader.node || nodeOut(nodes.get(r.node))) continue;
        const gain = from - (counts.get(r.node) ?? 0);
        if (gain <= settings.leaderSkewThreshold) continue;
        // Largest gain first; on a tie, a partition's preferred leader; then the first partition.
        const isPreferred = r.ordinal === preferred;
        if (!best || gain > best.gain || (gain === best.gain && isPreferred && !best.preferred))
          best = { v, from: leader, to: r, gain, preferred: isPreferred };
      }
    }
    if (!best) break;
    const key = partitionKey(best.v.topic, best.v.index);
    decisions.push({
      kind: 'transferLeadership',
      key,
      topic: best.v.topic,
      index: best.v.index,
      from: best.from.id!,
      to: best.to.id!,
      toPod: best.to.pod,
      reason: 'balance',
    });
    counts.set(best.from.node!, (counts.get(best.from.node!) ?? 0) - 1);
    counts.set(best.to.node!, (counts.get(best.to.node!) ?? 0) + 1);
    used.add(key);
    transfers++;
  }

  return {
    decisions,
    leadersPerNode,
    leaderSkew,
    operationsInFlight: inFlight,
  };
}

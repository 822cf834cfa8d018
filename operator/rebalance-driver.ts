/**
 * Carries out the rebalancer's decisions (operator/rebalancer.ts): leadership transfers and member
 * removals as NATS control requests to the partition leader, the spare slot's pod admitted at the
 * start of a move (operator/slots.ts), replica moves and rolls as PVC/pod deletes, the spare slot
 * as an annotation on the Partition, and the operation in progress as `status.operation` (field manager
 * `daftka-operator-rebalancer`, so the reconciler's status writes never clear it). One pass runs
 * as the `@rebalance` key of the reconcile work queue. Every decision is logged, counted and
 * visible in status (operation, or the Reconfiguring condition for a move that has to wait).
 */
import type { NatsConnection } from 'nats';
import { SUBJECTS, type ControlReply, type ControlRequest } from '../common/control-subjects';
import type { Logger } from '../common/log';
import { API_VERSION, type Partition, type PartitionOperation } from './crd-schema';
import type { EventRecorder } from './events';
import type { KObject } from '../common/informer';
import { RESOURCES, resourcePath, type KubeClient } from '../common/kube';
import type { OperatorMetrics } from './metrics';
import { REBALANCER_FIELD_MANAGER, VOLUME_NAME, partitionName, podName } from './names';
import { admitPod } from './pod-gates';
import { planRebalance, type Decision, type RebalancePlan, type RebalanceSettings } from './rebalancer';
import type { TopicReconciler, Caches } from './reconcile';
import { SPARE_ANNOTATION } from './slots';
import type { NodeInfo, PartitionView } from './status';

export interface RebalanceDriverContext {
  kube: KubeClient;
  caches: Caches;
  reconciler: TopicReconciler;
  nodes: () => ReadonlyMap<string, NodeInfo>;
  nats: () => NatsConnection | null;
  recorder: EventRecorder;
  logger: Logger;
  metrics: OperatorMetrics;
  settings: RebalanceSettings;
  /** Written here, read by the reconciler for status. */
  notes: Map<string, string>;
  /** Topics whose status should be refreshed after an action. */
  touched: (topicKey: string) => void;
  controlTimeoutMs?: number;
  now?: () => number;
  /** Signs a control request with the topic's admin key (common/control-auth.ts); absent: sent unsigned. */
  signControl?: (topic: string, index: number, req: ControlRequest) => ControlRequest;
}

export class RebalanceDriver {
  private readonly recentTransfers = new Map<string, number>();
  private readonly recentOperations = new Map<string, number>();
  private readonly lastBlocked = new Map<string, string>();
  /** Operations written but maybe not yet in the informer cache (so a quick next pass never double-starts). */
  private readonly written = new Map<string, { op: PartitionOperation | null; atMs: number }>();
  /**
   * Pods this driver deleted (UID → when), until the pod cache shows them deleting or gone. The
   * cache lags the DELETE: a pass in between would see the pod as it was and delete again — and the
   * second PVC delete of a move would hit the claim the StatefulSet just made for the successor,
   * wiping the rebuilt replica and leaving its pod Pending without a claim (the StatefulSet
   * controller does not watch claims, so nothing may recreate it for minutes).
   */
  private readonly deletedPods = new Map<string, number>();
  private readonly enc = new TextEncoder();
  private readonly dec = new TextDecoder();

  constructor(private readonly ctx: RebalanceDriverContext) {}

  private now(): number {
    return this.ctx.now ? this.ctx.now() : Date.now();
  }

  /** One pass: observe every partition, plan, act. Returns the plan (tests and metrics). */
  async run(): Promise<RebalancePlan> {
    const views: PartitionView[] = [];
    const owners = new Map<string, { topicKey: string; partition: Partition & KObject }>();
    for (const topic of this.ctx.caches.topics.list()) {
      if (topic.metadata.deletionTimestamp) continue;
      if (this.ctx.reconciler.nameOwner(topic.metadata.name) !== topic) continue;
      const topicKey = `${topic.metadata.namespace}/${topic.metadata.name}`;
      for (const p of this.ctx.caches.partitions.byIndex(topicKey)) {
        if (p.metadata.deletionTimestamp) continue;
        const v = this.ctx.reconciler.viewOf(topic, p);
        const key = `${topic.metadata.name}/${p.spec.index}`;
        const w = this.written.get(key);
        if (w) {
          const cached = p.status?.operation ?? null;
          if (JSON.stringify(cached) === JSON.stringify(w.op) || this.now() - w.atMs > 60_000) this.written.delete(key);
          else if (w.op) v.operation = w.op;
          // Just finished, and the cache has not seen it — nor the spare slot written before it:
          // nothing to do there until it has (a stale spare would look like a missing replica).
          else continue;
        }
        views.push(v);
        owners.set(`${topic.metadata.name}/${p.spec.index}`, { topicKey, partition: p });
      }
    }
    const nowMs = this.now();
    this.applyDeletedPods(views, nowMs);
    for (const m of [this.recentTransfers, this.recentOperations])
      for (const [k, t] of m) if (nowMs - t > 3_600_000) m.delete(k);
    const plan = planRebalance({
      partitions: views,
      nodes: this.ctx.nodes(),
      recentTransfers: this.recentTransfers,
      recentOperations: this.recentOperations,
      nowMs,
      settings: this.ctx.settings,
    });
    this.ctx.metrics.leaderSkew.set(plan.leaderSkew);
    this.ctx.metrics.movesInFlight.set(plan.operationsInFlight);

    const notes = new Map<string, string>();
    for (const d of plan.decisions) {
      const owner = owners.get(d.key);
      if (!owner) continue;
      try {
        await this.execute(d, owner.partition, notes);
      } catch (err) {
        this.ctx.metrics.rebalanceActions.inc({ action: d.kind, reason: reasonOf(d), outcome: 'error' });
        this.ctx.logger.warn('rebalance_action_failed', {
          partition: d.key,
          action: d.kind,
          error: (err as Error).message,
        });
        notes.set(d.key, `rebalancer: ${d.kind} failed: ${(err as Error).message}`);
      }
      this.ctx.touched(owner.topicKey);
    }
    // Notes that changed (appeared, went away) refresh the status of their topic.
    for (const k of new Set([...notes.keys(), ...this.ctx.notes.keys()]))
      if (notes.get(k) !== this.ctx.notes.get(k)) {
        const o = owners.get(k);
        if (o) this.ctx.touched(o.topicKey);
      }
    this.ctx.notes.clear();
    for (const [k, v] of notes) this.ctx.notes.set(k, v);
    return plan;
  }

  private async execute(d: Decision, partition: Partition & KObject, notes: Map<string, string>): Promise<void> {
    const log = this.ctx.logger;
    const m = this.ctx.metrics;
    const ns = partition.metadata.namespace!;
    switch (d.kind) {
      case 'startOperation':
        await this.writeOperation(partition, d.operation);
        m.rebalanceActions.inc({ action: 'startOperation', reason: d.operation.reason, outcome: 'ok' });
        {
          // `message` is the log line's own field: the operation's goes in `detail`.
          const { message, ...operation } = d.operation;
          log.info('rebalance_operation_started', { partition: d.key, ...operation, detail: message });
        }
        this.ctx.recorder.emit(
          partition,
          'Normal',
          d.operation.kind === 'move' ? 'MoveStarted' : 'RollStarted',
          d.operation.message ?? '',
        );
        if (d.operation.kind === 'move' && d.operation.target !== undefined) {
          // Admit the spare slot's pod now (the reconciler would too, once its cache has the operation).
          const name = podName(d.topic, d.index, d.operation.target);
          const pod = this.ctx.caches.pods.get(`${ns}/${name}`);
          const admitted = await admitPod(this.ctx.kube, ns, name, pod?.metadata.uid);
          log.info('rebalance_pod_admitted', { partition: d.key, pod: name, admitted, reason: d.operation.reason });
        }
        return;
      case 'finishOperation':
        // The spare slot first: the cache shows an object's writes in order, so whoever sees the
        // operation gone also sees the slot that is spare now.
        if (d.spare !== undefined) await this.writeSpare(partition, d.spare);
        await this.writeOperation(partition, null);
        this.recentOperations.set(d.key, this.now());
        m.rebalanceActions.inc({ action: 'finishOperation', reason: d.operation.reason, outcome: 'ok' });
        log.info('rebalance_operation_finished', {
          partition: d.key,
          kind: d.operation.kind,
          pod: d.operation.pod,
          detail: d.message,
        });
        this.ctx.recorder.emit(
          partition,
          'Normal',
          d.operation.kind === 'move' ? 'MoveFinished' : 'RollFinished',
          d.message,
        );
        return;
      case 'transferLeadership': {
        this.recentTransfers.set(d.key, this.now());
        const reply = await this.control(d.topic, d.index, { v: 1, op: 'transferLeadership', to: d.to });
        const outcome = reply.ok ? 'ok' : reply.code;
        m.rebalanceActions.inc({ action: 'transferLeadership', reason: d.reason, outcome });
        log.info('rebalance_transfer_leadership', {
          partition: d.key,
          from: d.from,
          to: d.to,
          reason: d.reason,
          outcome,
          ...(reply.ok ? {} : { detail: reply.detail }),
        });
        this.ctx.recorder.emit(
          partition,
          reply.ok ? 'Normal' : 'Warning',
          'LeadershipTransfer',
          `asked ${d.from} to hand leadership to ${d.to} (${d.toPod}) (${d.reason})${reply.ok ? '' : `: ${reply.code} ${reply.detail}`}`,
        );
        return;
      }
      case 'removeMember': {
        const reply = await this.control(d.topic, d.index, { v: 1, op: 'removeMember', id: d.id });
        const outcome = reply.ok ? 'ok' : reply.code;
        m.rebalanceActions.inc({ action: 'removeMember', reason: d.reason, outcome });
        log.info('rebalance_remove_member', {
          partition: d.key,
          pod: d.pod,
          member: d.id,
          reason: d.reason,
          outcome,
          ...(reply.ok ? {} : { detail: reply.detail }),
        });
        this.ctx.recorder.emit(
          partition,
          reply.ok ? 'Normal' : 'Warning',
          'MemberRemoved',
          `asked the leader to remove ${d.id} (${d.pod}) from the group: its replacement is a caught-up voter (${d.reason})${reply.ok ? '' : `: ${reply.code} ${reply.detail}`}`,
        );
        return;
      }
      case 'deletePod': {
        const pod = this.ctx.caches.pods.get(`${ns}/${d.pod}`);
        const uid = pod?.metadata.uid;
        const volume = d.wipe ? await this.deleteClaimOf(ns, d.pod, pod?.metadata.creationTimestamp) : 'kept';
        await this.ctx.kube.delete(resourcePath(RESOURCES.pods, { namespace: ns, name: d.pod }), {
          ...(uid ? { preconditions: { uid } } : {}),
        });
        if (uid) this.deletedPods.set(uid, this.now());
        m.rebalanceActions.inc({ action: 'deletePod', reason: d.reason, outcome: 'ok' });
        log.info('rebalance_pod_deleted', {
          partition: d.key,
          pod: d.pod,
          volume_deleted: d.wipe,
          ...(d.wipe ? { volume } : {}),
          reason: d.reason,
        });
        this.ctx.recorder.emit(
          partition,
          'Normal',
          d.wipe ? 'ReplicaMoving' : 'ReplicaRestarting',
          d.wipe
            ? `deleted ${d.pod} and its volume (${d.reason}): it has left the group, its replacement holds the data; the pod comes back held by the spare gate`
            : `deleted ${d.pod} to restart it on the current template`,
        );
        return;
      }
      case 'blocked': {
        notes.set(d.key, d.message);
        m.rebalanceBlocked.inc({ reason: d.reason });
        if (this.lastBlocked.get(d.key) !== d.message) {
          this.lastBlocked.set(d.key, d.message);
          log.info('rebalance_waiting', { partition: d.key, reason: d.reason, detail: d.message });
          this.ctx.recorder.emit(partition, 'Warning', 'RebalanceWaiting', d.message);
        }
        return;
      }
    }
  }

  /**
   * Pods deleted by an earlier pass count as deleting until the cache says so (or drops them):
   * the plan then waits for the successor instead of acting on the old pod again.
   */
  private applyDeletedPods(views: PartitionView[], nowMs: number): void {
    if (this.deletedPods.size === 0) return;
    const seen = new Set<string>();
    for (const v of views)
      v.replicaViews = v.replicaViews.map((r) => {
        const uid = r.podInfo?.uid;
        if (uid === undefined || !this.deletedPods.has(uid)) return r;
        seen.add(uid);
        if (r.podInfo!.deleting) {
          this.deletedPods.delete(uid); // the cache caught up
          return r;
        }
        return {
          ...r,
          podInfo: { ...r.podInfo!, deleting: true },
          healthy: false,
          problem: `pod ${r.pod} is being deleted`,
        };
      });
    // Gone from the cache (deleted), or kept past any plausible watch lag: forget.
    for (const [uid, atMs] of this.deletedPods)
      if (!seen.has(uid) || nowMs - atMs > 60_000) this.deletedPods.delete(uid);
  }

  /**
   * Deletes the claim of the pod being moved, and only that one: a claim that is already being
   * deleted is left alone, and one made after the pod (the successor's, were this decision stale)
   * is never deleted. The DELETE carries the claim's UID as a precondition.
   */
  private async deleteClaimOf(ns: string, pod: string, podCreated: string | undefined): Promise<string> {
    const path = resourcePath(RESOURCES.pvcs, { namespace: ns, name: `${VOLUME_NAME}-${pod}` });
    const claim = await this.ctx.kube.get<KObject>(path);
    if (!claim) return 'absent';
    if (claim.metadata.deletionTimestamp) return 'already-deleting';
    const created = claim.metadata.creationTimestamp;
    if (podCreated && created && Date.parse(created) > Date.parse(podCreated)) {
      this.ctx.logger.warn('rebalance_claim_kept', {
        pod,
        claim: claim.metadata.name,
        detail: `claim created ${created}, after the pod (${podCreated}): it belongs to a successor`,
      });
      return 'newer-than-pod';
    }
    await this.ctx.kube.delete(path, claim.metadata.uid ? { preconditions: { uid: claim.metadata.uid } } : {});
    return 'deleted';
  }

  private async control(topic: string, index: number, req: ControlRequest): Promise<ControlReply> {
    const nc = this.ctx.nats();
    if (!nc || nc.isClosed()) return { v: 1, ok: false, code: 'UNAVAILABLE', detail: 'not connected to NATS' };
    try {
      const body = this.ctx.signControl ? this.ctx.signControl(topic, index, req) : req;
      const msg = await nc.request(SUBJECTS.ctl(topic, index), this.enc.encode(JSON.stringify(body)), {
        timeout: this.ctx.controlTimeoutMs ?? 2000,
      });
      const reply = JSON.parse(this.dec.decode(msg.data)) as ControlReply;
      if (typeof reply !== 'object' || reply === null || reply.v !== 1)
        return { v: 1, ok: false, code: 'INVALID_REPLY', detail: 'control reply is not a v1 object' };
      return reply;
    } catch (err) {
      return {
        v: 1,
        ok: false,
        code: 'TIMEOUT',
        detail: `no answer from the leader of ${partitionName(topic, index)}: ${(err as Error).message}`,
      };
    }
  }

  /** The spare slot, as an annotation of the Partition under the rebalancer's field manager. */
  private async writeSpare(p: Partition & KObject, spare: number): Promise<void> {
    await this.ctx.kube.apply(
      resourcePath(RESOURCES.partitions, { namespace: p.metadata.namespace, name: p.metadata.name }),
      {
        apiVersion: API_VERSION,
        kind: 'Partition',
        metadata: { name: p.metadata.name, annotations: { [SPARE_ANNOTATION]: String(spare) } },
      },
      REBALANCER_FIELD_MANAGER,
    );
  }

  private async writeOperation(p: Partition & KObject, op: PartitionOperation | null): Promise<void> {
    await this.ctx.kube.apply(
      resourcePath(RESOURCES.partitions, {
        namespace: p.metadata.namespace,
        name: p.metadata.name,
        subresource: 'status',
      }),
      {
        apiVersion: API_VERSION,
        kind: 'Partition',
        metadata: { name: p.metadata.name },
        status: op ? { operation: op } : {},
      },
      REBALANCER_FIELD_MANAGER,
    );
    this.written.set(`${p.spec.topic}/${p.spec.index}`, { op, atMs: this.now() });
  }
}

function reasonOf(d: Decision): string {
  switch (d.kind) {
    case 'startOperation':
    case 'finishOperation':
      return d.operation.reason;
    case 'transferLeadership':
    case 'removeMember':
    case 'deletePod':
    case 'blocked':
      return d.reason;
  }
}

/**
 * The Topic reconciler (STYLE.md: controller-runtime, level-triggered). For one Topic it reads the
 * world from the informer caches and the NATS report table, computes the desired objects from the
 * spec alone (operator/desired.ts), applies them with server-side apply (field manager
 * `daftka-operator`, force) and writes the Partition and Topic status from what it observed
 * (operator/status.ts). It never asks which event woke it. Errors are collected: the status
 * carries the apiserver's text, and the reconcile fails so the work queue retries with backoff.
 *
 * The peer-auth Secret is the one object not applied: it is created once when absent and never
 * written over (operator/desired.ts desiredPeerSecret). Its value also gives the topic's client
 * key, which the controller publishes to the gateway (operator/catalog.ts). The admin-auth Secret
 * (desiredAdminSecret) is created when absent and replaced when its value is not the desired one
 * (the installation's admin secret changed): Secrets are only ever read by name, created and
 * deleted, never listed, watched or patched (the chart's RBAC).
 *
 * Deletion: a finalizer holds the Topic until cleanup is done. deletionPolicy Retain keeps the PVCs
 * (ownerReferences that would let the garbage collector take them are removed first); Delete
 * removes them and waits until they are gone. Until then the Ready condition says what is left.
 * The peer-auth and admin-auth Secrets are deleted under both policies.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from '../common/log';
import { canonicalJson } from '../common/control-auth';
import { clientKeyOf } from '../protocol/rpc-auth';
import { API_VERSION, type Partition, type PartitionCrStatus, type Topic, type TopicCrStatus } from './crd-schema';
import {
  MIN_PEER_SECRET_CHARS,
  desiredAdminSecret,
  desiredPartitions,
  desiredPeerSecret,
  desiredWorkloads,
  type KubeObject,
  type ReplicaSettings,
} from './desired';
import type { EventRecorder } from './events';
import { objectKey, type Informer, type KObject } from '../common/informer';
import { KubeApiError, RESOURCES, isConflict, resourcePath, type KubeClient, type ResourceType } from '../common/kube';
import type { OperatorMetrics } from './metrics';
import {
  ADMIN_SECRET_ENV,
  ADMIN_SECRET_KEY,
  adminSecretName,
  FIELD_MANAGER,
  FINALIZER,
  LABELS,
  PEER_SECRET_KEY,
  POD_INDEX_LABEL,
  REVISION_LABEL,
  REPLICA_CONTAINER,
  HASH_ANNOTATION,
  parsePodName,
  partitionName,
  peerSecretName,
  PEER_SECRET_ENV,
} from './names';
import type { ReportTable } from './report-table';
import {
  observePartition,
  partitionStatus,
  topicStatus,
  type ConditionInput,
  type HealthSettings,
  type NodeInfo,
  type PartitionView,
  type PodInfo,
} from './status';
import { admitPod } from './pod-gates';
import { SPARE_GATE, admittableSlots, gateActions, occupiedSlots, slotCount, spareSlotOf } from './slots';

export interface StatefulSetObject extends KObject {
  spec?: {
    volumeClaimTemplates?: unknown[];
    persistentVolumeClaimRetentionPolicy?: { whenDeleted?: string };
    template?: { spec?: { containers?: Array<{ env?: Array<{ name: string }> }> } };
  };
  status?: { updateRevision?: string; currentRevision?: string; readyReplicas?: number };
}

export interface PodObject extends KObject {
  spec?: { nodeName?: string; schedulingGates?: Array<{ name: string }> };
  status?: {
    phase?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: Array<{
      name: string;
      state?: { running?: { startedAt?: string }; waiting?: unknown; terminated?: unknown };
    }>;
  };
}

export interface NodeObject extends KObject {
  spec?: { unschedulable?: boolean };
}

export interface Caches {
  topics: Informer<Topic & KObject>;
  partitions: Informer<Partition & KObject>;
  statefulsets: Informer<StatefulSetObject>;
  services: Informer<KObject>;
  pdbs: Informer<KObject>;
  pods: Informer<PodObject>;
}

export interface ReconcileContext {
  kube: KubeClient;
  caches: Caches;
  reports: ReportTable;
  nodes: () => ReadonlyMap<string, NodeInfo>;
  settings: Omit<ReplicaSettings, 'namespace'>;
  health: HealthSettings;
  recorder: EventRecorder;
  logger: Logger;
  metrics: OperatorMetrics;
  resyncMs: number;
  /** partition key (`topic/index`) → why the rebalancer is waiting there, shown in status. */
  rebalanceNotes: ReadonlyMap<string, string>;
  now?: () => number;
  /**
   * The installation's admin secret (operator config DAFTKA_ADMIN_SECRET): each topic gets an
   * admin-auth Secret derived from it, and its replicas read it (settings.adminAuth). Absent: none.
   */
  adminSecret?: string;
  /**
   * Called when a topic's client key became known or changed (the gateway's keys Secret is then
   * rewritten). When set, the reconciler reads each topic's peer Secret once after a start even
   * where a workload already uses it: the client key is derived from its value.
   */
  onClientKeys?: () => void;
}

/** Index value of the objects of a topic: `<namespace>/<topic>` (the work-queue key). */
export const topicKeyOf = (o: KObject): string | undefined => {
  const t = o.metadata.labels?.[LABELS.topic];
  return t && o.metadata.namespace ? `${o.metadata.namespace}/${t}` : undefined;
};

export class ReconcileError extends Error {
  constructor(readonly errors: string[]) {
    super(errors.join('; '));
    this.name = 'ReconcileError';
  }
}

/** Runs fn over items with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const errorText = (what: string, err: unknown): string =>
  err instanceof KubeApiError ? `${what}: ${err.statusCode} ${err.apiMessage}` : `${what}: ${(err as Error).message}`;

export function podInfoOf(p: PodObject): PodInfo | null {
  const label = p.metadata.labels?.[POD_INDEX_LABEL];
  const ordinal = label !== undefined ? Number(label) : parsePodName(p.metadata.name)?.ordinal;
  if (ordinal === undefined || !Number.isInteger(ordinal)) return null;
  return {
    name: p.metadata.name,
    ...(p.metadata.uid ? { uid: p.metadata.uid } : {}),
    ordinal,
    ...(p.spec?.nodeName ? { node: p.spec.nodeName } : {}),
    ...(p.status?.phase ? { phase: p.status.phase } : {}),
    ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    deleting: p.metadata.deletionTimestamp !== undefined,
    ...(p.metadata.labels?.[REVISION_LABEL] ? { revision: p.metadata.labels[REVISION_LABEL] } : {}),
    ...(p.metadata.creationTimestamp ? { createdAtMs: Date.parse(p.metadata.creationTimestamp) } : {}),
    ...replicaContainerOf(p),
    ...(p.spec?.schedulingGates?.some((g) => g.name === SPARE_GATE) ? { gated: true } : {}),
  };
}

/** The replica container's start time, or that it is down (a container status without `running`). */
function replicaContainerOf(p: PodObject): Pick<PodInfo, 'containerStartedAtMs' | 'containerDown'> {
  const c = p.status?.containerStatuses?.find((x) => x.name === REPLICA_CONTAINER);
  if (!c?.state) return {};
  if (!c.state.running) return { containerDown: true };
  const at = c.state.running.startedAt ? Date.parse(c.state.running.startedAt) : NaN;
  return Number.isFinite(at) ? { containerStartedAtMs: at } : {};
}

const CLEANUP_STALL_MS = 2 * 60_000;
/** Random bytes of a topic's peer secret (base64: 44 characters). */
const PEER_SECRET_BYTES = 32;

export class TopicReconciler {
  /** What was last applied per object: skip identical applies while the object is unchanged. */
  private readonly applied = new Map<string, { hash: string; generation?: number; resourceVersion?: string }>();
  private readonly lastFull = new Map<string, number>();
  private readonly lastStatus = new Map<string, string>();
  private readonly topicIds = new Map<string, string>();
  private readonly deletingSince = new Map<string, number>();
  /**
   * Topic UID → whether its peer-auth Secret is known to exist (seen or created here) or was
   * deleted by cleanup; `key` lets forget() drop the entry. By UID: a new Topic of the same name
   * starts unknown. Unknown means one GET.
   */
  private readonly peerSecrets = new Map<string, { key: string; exists: boolean; clientKey?: string }>();
  /** Topic name → its client key (the name owner's), for checking the replicas' NATS signatures. */
  private readonly keysByName = new Map<string, Buffer>();
  /** Topic UID → the admin-auth value known to be in place (hex), or null once deleted by cleanup. */
  private readonly adminSecrets = new Map<string, { key: string; value: string | null }>();

  constructor(private readonly ctx: ReconcileContext) {}

  private now(): number {
    return this.ctx.now ? this.ctx.now() : Date.now();
  }

  /** The Topic that owns a name across namespaces: the oldest (NATS subjects carry no namespace). */
  nameOwner(name: string): (Topic & KObject) | undefined {
    const same = this.ctx.caches.topics.list().filter((t) => t.metadata.name === name);
    same.sort(
      (a, b) =>
        (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') ||
        (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? ''),
    );
    return same[0];
  }

  /** Reconciles one topic (`namespace/name`); returns when to look again (ms). */
  async reconcile(key: string): Promise<number> {
    const topic = this.ctx.caches.topics.get(key);
    if (!topic) {
      this.forget(key);
      return 0;
    }
    if (topic.metadata.deletionTimestamp) return this.finalize(topic);
    const owner = this.nameOwner(topic.metadata.name);
    if (owner && owner !== topic) {
      const msg = `a topic named ${topic.metadata.name} already exists in namespace ${owner.metadata.namespace}; topic names are unique across namespaces (NATS subjects carry no namespace): rename this one`;
      this.ctx.recorder.emit(topic, 'Warning', 'NameConflict', msg);
      await this.writeTopicStatus(topic, { partitions: topic.spec.partitions, views: [], errors: [msg] }, [
        { type: 'Ready', status: 'False', reason: 'NameConflict', message: msg },
        { type: 'Degraded', status: 'True', reason: 'NameConflict', message: msg },
      ]);
      return this.ctx.resyncMs;
    }

    const nowMs = this.now();
    // Full applies (drift repair) every resyncMs per topic, spread out: a restarted operator does
    // not re-apply every object at once; it trusts the hash annotation of what is already there.
    // The first one comes between resyncMs/2 and resyncMs after the topic is first seen, so a
    // (re)started operator is quiet once it has converged, and later passes stay spread.
    if (!this.lastFull.has(key)) this.lastFull.set(key, nowMs - (Math.random() * this.ctx.resyncMs) / 2);
    const full = nowMs - this.lastFull.get(key)! >= this.ctx.resyncMs;
    if (full) this.lastStatus.clear();
    const errors: string[] = [];
    if (!topic.metadata.finalizers?.includes(FINALIZER)) {
      try {
        await this.ctx.kube.apply(
          resourcePath(RESOURCES.topics, { namespace: topic.metadata.namespace, name: topic.metadata.name }),
          { apiVersion: API_VERSION, kind: 'Topic', metadata: { name: topic.metadata.name, finalizers: [FINALIZER] } },
          FIELD_MANAGER,
        );
      } catch (err) {
        errors.push(errorText('adding the finalizer', err));
      }
    }

    // The peer-auth and admin-auth Secrets first: replica pods cannot start without them.
    try {
      await this.ensurePeerSecret(topic, full);
    } catch (err) {
      errors.push(errorText(`Secret ${peerSecretName(topic.metadata.name)}`, err));
    }
    if (this.ctx.adminSecret !== undefined)
      try {
        await this.ensureAdminSecret(topic, this.ctx.adminSecret, full);
      } catch (err) {
        errors.push(errorText(`Secret ${adminSecretName(topic.metadata.name)}`, err));
      }

    // Topic → Partitions (owned by the Topic).
    const partitions = new Map<number, Partition & KObject>();
    const created: string[] = [];
    await mapLimit(desiredPartitions(topic), 4, async (p) => {
      try {
        if (!this.ctx.caches.partitions.get(objectKey(p))) created.push(p.metadata.name);
        const obj = await this.ensure<Partition & KObject>(RESOURCES.partitions, p, full);
        partitions.set(p.spec.index, obj);
      } catch (err) {
        errors.push(errorText(`Partition ${p.metadata.name}`, err));
      }
    });

    // Partition → StatefulSet, headless Service, PodDisruptionBudget (owned by the Partition).
    const settings = { ...this.ctx.settings, namespace: topic.metadata.namespace! };
    const ns = topic.metadata.namespace!;
    const existingTemplates = (index: number) =>
      this.ctx.caches.statefulsets.get(`${ns}/${partitionName(topic.metadata.name, index)}`)?.spec
        ?.volumeClaimTemplates;
    let workloads: ReturnType<typeof desiredWorkloads> = [];
    try {
      workloads = desiredWorkloads(topic, partitions, settings, existingTemplates);
    } catch (err) {
      errors.push(errorText('desired state', err));
    }
    await mapLimit(workloads, 4, async (w) => {
      for (const [r, obj] of [
        [RESOURCES.statefulsets, w.statefulSet],
        [RESOURCES.services, w.service],
        [RESOURCES.pdbs, w.pdb],
      ] as const) {
        try {
          await this.ensure(r, obj, full);
        } catch (err) {
          errors.push(errorText(`${r.kind} ${obj.metadata.name}`, err));
        }
      }
    });
    await this.admitPods(topic, partitions, errors);
    if (errors.length === 0 && full) this.lastFull.set(key, nowMs);
    if (created.length > 0)
      this.ctx.recorder.emit(
        topic,
        'Normal',
        'PartitionsCreated',
        `created ${created.length} partition(s) with their StatefulSet, headless Service and PodDisruptionBudget: ${created.sort().join(', ')}`,
      );

    // Status from what the replicas report.
    const views: PartitionView[] = [];
    for (const [, p] of [...partitions].sort(([a], [b]) => a - b)) {
      const v = this.viewOf(topic, p);
      views.push(v);
      const status = partitionStatus(v, p.status, p.metadata.generation ?? 0, nowMs);
      try {
        await this.writeStatus(RESOURCES.partitions, p, status, p.status);
      } catch (err) {
        errors.push(errorText(`status of Partition ${p.metadata.name}`, err));
      }
    }
    try {
      await this.writeTopicStatus(topic, { partitions: topic.spec.partitions, views, errors });
    } catch (err) {
      errors.push(errorText('Topic status', err));
    }
    if (errors.length > 0) {
      this.ctx.recorder.emit(topic, 'Warning', 'ReconcileFailed', errors.join('; '));
      throw new ReconcileError(errors);
    }
    return this.ctx.resyncMs;
  }

  /**
   * Replica pods are created held by the spare gate (operator/slots.ts): admit those of the
   * occupied slots — new pods, and pods the StatefulSet made again after a roll or an eviction —
   * and replace a spare pod made from an old template.
   */
  private async admitPods(
    topic: Topic & KObject,
    partitions: ReadonlyMap<number, Partition & KObject>,
    errors: string[],
  ): Promise<void> {
    const ns = topic.metadata.namespace!;
    const byPartition = new Map<string, PodInfo[]>();
    for (const pod of this.ctx.caches.pods.byIndex(`${ns}/${topic.metadata.name}`)) {
      const info = podInfoOf(pod);
      if (!info?.gated) continue;
      const k = pod.metadata.labels?.[LABELS.partition] ?? '';
      byPartition.set(k, [...(byPartition.get(k) ?? []), info]);
    }
    for (const [index, p] of partitions) {
      const gated = byPartition.get(String(index));
      if (!gated) continue;
      const sts = this.ctx.caches.statefulsets.get(`${ns}/${p.metadata.name}`);
      const admittable = admittableSlots(
        p.spec.replicas,
        spareSlotOf(p.spec.replicas, p.metadata.annotations),
        p.status?.operation,
      );
      const { admit, recreate } = gateActions(gated, admittable, sts?.status?.updateRevision);
      for (const pod of admit)
        try {
          if (await admitPod(this.ctx.kube, ns, pod.name, pod.uid))
            this.ctx.logger.info('pod_admitted', { pod: pod.name, slot: pod.ordinal });
        } catch (err) {
          errors.push(errorText(`admitting pod ${pod.name}`, err));
        }
      for (const pod of recreate)
        try {
          await this.ctx.kube.delete(resourcePath(RESOURCES.pods, { namespace: ns, name: pod.name }), {
            ...(pod.uid ? { preconditions: { uid: pod.uid } } : {}),
          });
          this.ctx.logger.info('spare_pod_replaced', { pod: pod.name, revision: pod.revision });
        } catch (err) {
          if (!(err instanceof KubeApiError && [404, 409].includes(err.statusCode)))
            errors.push(errorText(`replacing spare pod ${pod.name}`, err));
        }
    }
  }

  /** What the operator knows about one partition now (for status and the rebalancer). */
  viewOf(topic: Topic & KObject, p: Partition & KObject): PartitionView {
    const ns = topic.metadata.namespace!;
    const index = p.spec.index;
    const sts = this.ctx.caches.statefulsets.get(`${ns}/${p.metadata.name}`);
    const pods = new Map<number, PodInfo>();
    for (const pod of this.ctx.caches.pods.byIndex(`${ns}/${topic.metadata.name}`)) {
      if (pod.metadata.labels?.[LABELS.partition] !== String(index)) continue;
      const info = podInfoOf(pod);
      if (info && info.ordinal < slotCount(p.spec.replicas)) pods.set(info.ordinal, info);
    }
    const spare = spareSlotOf(p.spec.replicas, p.metadata.annotations);
    const v = observePartition({
      topic: topic.metadata.name,
      index,
      replicas: p.spec.replicas,
      reports: this.ctx.reports.reports(topic.metadata.name, index),
      announcement: this.ctx.reports.announcement(topic.metadata.name, index),
      pods,
      nodes: this.ctx.nodes(),
      ...(sts?.status?.updateRevision ? { updateRevision: sts.status.updateRevision } : {}),
      ...(p.status?.operation ? { operation: p.status.operation } : {}),
      slots: occupiedSlots(p.spec.replicas, spare, p.status?.operation),
      settings: this.ctx.health,
      nowMs: this.now(),
    });
    v.spare = { ordinal: spare, ...(pods.has(spare) ? { pod: pods.get(spare)! } : {}) };
    const note = this.ctx.rebalanceNotes.get(`${topic.metadata.name}/${index}`);
    if (note) v.reconfiguring = v.reconfiguring ? `${v.reconfiguring}; ${note}` : note;
    return v;
  }

  private cacheOf(r: ResourceType): Informer<KObject> | undefined {
    const c = this.ctx.caches;
    if (r === RESOURCES.partitions) return c.partitions as unknown as Informer<KObject>;
    if (r === RESOURCES.statefulsets) return c.statefulsets;
    if (r === RESOURCES.services) return c.services;
    if (r === RESOURCES.pdbs) return c.pdbs;
    return undefined;
  }

  /**
   * Server-side apply, skipped when this operator already applied the same object and it has not
   * changed since (same generation, or resourceVersion for kinds without one); always applied on
   * a full resync (drift repair).
   */
  private async ensure<T extends KObject>(r: ResourceType, obj: KubeObject | Partition, full: boolean): Promise<T> {
    const key = `${r.plural}/${objectKey(obj)}`;
    const hash = createHash('sha1').update(canonicalJson(obj)).digest('hex');
    const cached = this.cacheOf(r)?.get(objectKey(obj)) as
      (T & { metadata: { annotations?: Record<string, string> } }) | undefined;
    const version = (o: KObject) =>
      o.metadata.generation !== undefined
        ? { generation: o.metadata.generation }
        : { resourceVersion: o.metadata.resourceVersion };
    if (!full && cached) {
      const rec = this.applied.get(key);
      const unchanged =
        rec !== undefined &&
        rec.hash === hash &&
        (rec.generation !== undefined
          ? cached.metadata.generation === rec.generation
          : cached.metadata.resourceVersion === rec.resourceVersion);
      // First sight after a start: the object carries the hash of what was last applied to it.
      const marked = rec === undefined && cached.metadata.annotations?.[HASH_ANNOTATION] === hash;
      if (unchanged || marked) {
        if (marked) this.applied.set(key, { hash, ...version(cached) });
        this.ctx.metrics.applies.inc({ kind: r.plural, result: 'skipped' });
        return cached;
      }
    }
    const body = {
      ...obj,
      metadata: { ...obj.metadata, annotations: { ...(obj.metadata.annotations ?? {}), [HASH_ANNOTATION]: hash } },
    };
    const res = await this.ctx.kube.apply<T>(
      resourcePath(r, { namespace: obj.metadata.namespace, name: obj.metadata.name }),
      body,
      FIELD_MANAGER,
    );
    this.ctx.metrics.applies.inc({ kind: r.plural, result: 'applied' });
    this.applied.set(key, { hash, ...version(res) });
    return res;
  }

  /**
   * Creates the topic's peer-auth Secret when it is absent (GET → 404 → POST) and never writes over
   * an existing one: running replicas hold the value they started with, so a new value would cut
   * them off from restarted peers. Once seen or created it is not asked for again, except on a
   * full resync (drift repair: a Secret deleted by hand is made again within resyncSeconds).
   */
  private async ensurePeerSecret(topic: Topic & KObject, full: boolean): Promise<void> {
    const key = objectKey(topic);
    const uid = topic.metadata.uid ?? key;
    const needKey = this.ctx.onClientKeys !== undefined;
    const known = this.peerSecrets.get(uid);
    if (!full && known?.exists && (!needKey || known.clientKey !== undefined)) return;
    const ns = topic.metadata.namespace!;
    const name = peerSecretName(topic.metadata.name);
    // A restarted operator trusts a workload that already reads the Secret: it was made after the
    // Secret (this step runs first), so a restart costs no GET per topic; a full resync still looks.
    // Not when the gateway needs the client key: that comes from the value.
    if (!full && !needKey && this.workloadReads(topic, PEER_SECRET_ENV)) {
      this.peerSecrets.set(uid, { key, exists: true });
      return;
    }
    const found = await this.ctx.kube.get<{ data?: Record<string, string> }>(
      resourcePath(RESOURCES.secrets, { namespace: ns, name }),
    );
    if (found) {
      // Someone else's Secret of this name is used as it is, but replicas refuse a short value: say so.
      const chars = Buffer.from(found.data?.[PEER_SECRET_KEY] ?? '', 'base64').toString('utf8').length;
      if (chars < MIN_PEER_SECRET_CHARS)
        throw new Error(
          `exists, but its key "${PEER_SECRET_KEY}" holds ${chars} characters; replicas need at least ${MIN_PEER_SECRET_CHARS}: delete the Secret and the operator makes a new one`,
        );
      this.rememberPeerSecret(topic, Buffer.from(found.data![PEER_SECRET_KEY], 'base64').toString('utf8'));
      return;
    }
    const value = randomBytes(PEER_SECRET_BYTES).toString('base64');
    try {
      await this.ctx.kube.create(resourcePath(RESOURCES.secrets, { namespace: ns }), desiredPeerSecret(topic, value));
      this.ctx.logger.info('peer_secret_created', { topic: key, secret: name });
      this.rememberPeerSecret(topic, value);
    } catch (err) {
      // 409: created between our GET and POST (e.g. by a previous leader still finishing): that value
      // stands; its client key is read on the next pass.
      if (!isConflict(err)) throw err;
      this.peerSecrets.set(uid, { key, exists: true });
    }
  }

  /** The peer Secret's value is known: keep the topic's client key (never the value itself). */
  private rememberPeerSecret(topic: Topic & KObject, value: string): void {
    const key = objectKey(topic);
    const uid = topic.metadata.uid ?? key;
    const clientKey = clientKeyOf(value, topic.metadata.name).toString('hex');
    const before = this.peerSecrets.get(uid)?.clientKey;
    this.peerSecrets.set(uid, { key, exists: true, clientKey });
    this.keysByName.set(topic.metadata.name, Buffer.from(clientKey, 'hex'));
    if (before !== clientKey) this.ctx.onClientKeys?.();
  }

  /** Whether partition 0's StatefulSet (in the cache) gives its pods this variable. */
  private workloadReads(topic: Topic & KObject, env: string): boolean {
    const sts = this.ctx.caches.statefulsets.get(
      `${topic.metadata.namespace}/${partitionName(topic.metadata.name, 0)}`,
    );
    return sts?.spec?.template?.spec?.containers?.some((c) => c.env?.some((e) => e.name === env)) ?? false;
  }

  /** The client key of the topic of this name, once its peer Secret value is known (NATS signatures). */
  clientKeyOf(topic: string): Buffer | undefined {
    return this.keysByName.get(topic);
  }

  /** Topic name → client key (hex) of every live topic whose peer Secret value is known. */
  clientKeys(topics: ReadonlyArray<Topic & KObject>): Map<string, string> {
    const out = new Map<string, string>();
    for (const t of topics) {
      const k = this.peerSecrets.get(t.metadata.uid ?? objectKey(t))?.clientKey;
      if (k !== undefined) out.set(t.metadata.name, k);
    }
    return out;
  }

  /**
   * The topic's admin-auth Secret holds the value derived from the installation's admin secret:
   * created when absent; deleted and created again when it holds another value (the installation
   * secret was changed: replicas take the new one when they restart). Checked once after a start
   * (or trusted from a workload that reads it) and on every full resync.
   */
  private async ensureAdminSecret(topic: Topic & KObject, installSecret: string, full: boolean): Promise<void> {
    const key = objectKey(topic);
    const uid = topic.metadata.uid ?? key;
    const desired = desiredAdminSecret(topic, installSecret);
    const want = (desired.data as Record<string, string>)[ADMIN_SECRET_KEY];
    if (!full && this.adminSecrets.get(uid)?.value === want) return;
    if (!full && this.workloadReads(topic, ADMIN_SECRET_ENV)) {
      this.adminSecrets.set(uid, { key, value: want });
      return;
    }
    const path = resourcePath(RESOURCES.secrets, { namespace: topic.metadata.namespace!, name: desired.metadata.name });
    const found = await this.ctx.kube.get<{ metadata: { uid?: string }; data?: Record<string, string> }>(path);
    if (found?.data?.[ADMIN_SECRET_KEY] === want) {
      this.adminSecrets.set(uid, { key, value: want });
      return;
    }
    if (found) {
      await this.ctx.kube.delete(path, found.metadata.uid ? { preconditions: { uid: found.metadata.uid } } : {});
      this.ctx.logger.info('admin_secret_replaced', { topic: key, secret: desired.metadata.name });
    }
    try {
      await this.ctx.kube.create(resourcePath(RESOURCES.secrets, { namespace: topic.metadata.namespace! }), desired);
    } catch (err) {
      // 409: another instance made it meanwhile; its value is checked on the next pass.
      if (!isConflict(err)) throw err;
      return;
    }
    this.adminSecrets.set(uid, { key, value: want });
  }

  private async writeStatus(
    r: ResourceType,
    obj: { metadata: { name: string; namespace?: string } },
    status: PartitionCrStatus | TopicCrStatus,
    previous: PartitionCrStatus | TopicCrStatus | undefined,
  ): Promise<void> {
    const key = `${r.plural}/${objectKey(obj)}`;
    const json = canonicalJson(status);
    // `operation` belongs to the rebalancer's field manager: not part of the comparison.
    const prevJson = previous ? canonicalJson({ ...previous, operation: undefined }) : '';
    if (json === prevJson || this.lastStatus.get(key) === json) return;
    await this.ctx.kube.apply(
      resourcePath(r, { namespace: obj.metadata.namespace, name: obj.metadata.name, subresource: 'status' }),
      { apiVersion: API_VERSION, kind: r.kind, metadata: { name: obj.metadata.name }, status },
      FIELD_MANAGER,
    );
    this.lastStatus.set(key, json);
  }

  private topicIdOf(topic: Topic & KObject): string {
    const uid = topic.metadata.uid ?? objectKey(topic);
    const id = topic.status?.topicId ?? this.topicIds.get(uid) ?? randomUUID();
    this.topicIds.set(uid, id);
    return id;
  }

  private async writeTopicStatus(
    topic: Topic & KObject,
    o: { partitions: number; views: PartitionView[]; errors: string[] },
    override?: ConditionInput[],
  ): Promise<void> {
    const status = topicStatus(
      o,
      topic.status,
      this.topicIdOf(topic),
      topic.metadata.generation ?? 0,
      this.now(),
      override,
    );
    await this.writeStatus(RESOURCES.topics, topic, status, topic.status);
  }

  private forget(key: string): void {
    this.lastFull.delete(key);
    this.deletingSince.delete(key);
    for (const [uid, e] of [...this.peerSecrets])
      if (e.key === key) {
        // Only the name owner's entry holds a key (a topic in conflict never reads its Secret).
        if (e.clientKey !== undefined) this.keysByName.delete(key.slice(key.indexOf('/') + 1));
        this.peerSecrets.delete(uid);
      }
    for (const [uid, e] of [...this.adminSecrets]) if (e.key === key) this.adminSecrets.delete(uid);
    const [ns, name] = key.split('/');
    for (const k of [...this.applied.keys()]) if (k.includes(`/${ns}/${name}-`)) this.applied.delete(k);
    for (const k of [...this.lastStatus.keys()]) if (k.includes(`/${ns}/${name}`)) this.lastStatus.delete(k);
  }

  /** Cleanup behind the finalizer; returns when to look again, 0 once the finalizer is gone. */
  private async finalize(topic: Topic & KObject): Promise<number> {
    if (!topic.metadata.finalizers?.includes(FINALIZER)) return 0;
    const ns = topic.metadata.namespace!;
    const name = topic.metadata.name;
    const key = `${ns}/${name}`;
    const kube = this.ctx.kube;
    const nowMs = this.now();
    if (!this.deletingSince.has(key)) {
      this.deletingSince.set(key, nowMs);
      this.ctx.recorder.emit(
        topic,
        'Normal',
        'Deleting',
        `deleting topic ${name}: volumes ${topic.spec.deletionPolicy === 'Delete' ? 'will be deleted' : 'are kept'} (deletionPolicy ${topic.spec.deletionPolicy})`,
      );
    }
    const selector = `${LABELS.topic}=${name},${LABELS.managedBy}=${FIELD_MANAGER}`;
    const waiting: string[] = [];
    try {
      const pvcs = (
        await kube.list<KObject & { metadata: { ownerReferences?: Array<{ kind: string }> } }>(
          resourcePath(RESOURCES.pvcs, { namespace: ns }),
          { labelSelector: selector },
        )
      ).items;
      if (topic.spec.deletionPolicy !== 'Delete') {
        // Retain: nothing may let the garbage collector take a volume with the StatefulSet.
        for (const pvc of pvcs)
          if (pvc.metadata.ownerReferences?.some((r) => r.kind === 'StatefulSet'))
            await kube.patch(resourcePath(RESOURCES.pvcs, { namespace: ns, name: pvc.metadata.name }), {
              metadata: { ownerReferences: null },
            });
      }
      // The objects of every partition: explicit deletes, so cleanup does not depend on the garbage collector.
      for (const [r, cache] of [
        [RESOURCES.statefulsets, this.ctx.caches.statefulsets],
        [RESOURCES.services, this.ctx.caches.services],
        [RESOURCES.pdbs, this.ctx.caches.pdbs],
        [RESOURCES.partitions, this.ctx.caches.partitions],
      ] as const)
        for (const o of (cache as Informer<KObject>).byIndex(key))
          if (!o.metadata.deletionTimestamp)
            await kube.delete(resourcePath(r, { namespace: ns, name: o.metadata.name }), {
              propagationPolicy: 'Background',
            });
      // The peer-auth Secret, under both policies: it holds no data, and a Topic made again with
      // this name (possible only once this one is gone) gets a new one instead of a stale one.
      const uid = topic.metadata.uid ?? key;
      if (this.peerSecrets.get(uid)?.exists !== false) {
        await kube.delete(resourcePath(RESOURCES.secrets, { namespace: ns, name: peerSecretName(name) }));
        if (this.peerSecrets.get(uid)?.clientKey !== undefined) this.keysByName.delete(name);
        this.peerSecrets.set(uid, { key, exists: false });
        this.ctx.onClientKeys?.();
      }
      if (this.ctx.adminSecret !== undefined && this.adminSecrets.get(uid)?.value !== null) {
        await kube.delete(resourcePath(RESOURCES.secrets, { namespace: ns, name: adminSecretName(name) }));
        this.adminSecrets.set(uid, { key, value: null });
      }
      const pods = this.ctx.caches.pods.byIndex(key);
      if (topic.spec.deletionPolicy === 'Delete') {
        for (const pod of pods)
          if (!pod.metadata.deletionTimestamp)
            await kube.delete(resourcePath(RESOURCES.pods, { namespace: ns, name: pod.metadata.name }));
        for (const pvc of pvcs)
          if (!pvc.metadata.deletionTimestamp)
            await kube.delete(resourcePath(RESOURCES.pvcs, { namespace: ns, name: pvc.metadata.name }));
        if (pvcs.length > 0)
          waiting.push(
            `${pvcs.length} PersistentVolumeClaim(s) still exist (${pvcs
              .slice(0, 5)
              .map((p) => p.metadata.name)
              .join(
                ', ',
              )}${pvcs.length > 5 ? ', …' : ''})${pods.length > 0 ? `; ${pods.length} pod(s) still use them` : ''}`,
          );
      }
      const left = [this.ctx.caches.statefulsets, this.ctx.caches.partitions].reduce(
        (n, c) => n + (c as Informer<KObject>).byIndex(key).length,
        0,
      );
      if (left > 0) waiting.push(`${left} StatefulSet/Partition object(s) still being deleted`);
    } catch (err) {
      waiting.push(errorText('cleanup failed', err));
    }

    if (waiting.length > 0) {
      const stalled = nowMs - this.deletingSince.get(key)! > CLEANUP_STALL_MS;
      const message = `deleting (deletionPolicy ${topic.spec.deletionPolicy}): waiting: ${waiting.join('; ')}`;
      const conds: ConditionInput[] = [
        { type: 'Ready', status: 'False', reason: 'Deleting', message },
        stalled
          ? { type: 'Degraded', status: 'True', reason: 'CleanupBlocked', message }
          : { type: 'Degraded', status: 'False', reason: 'Deleting', message: 'cleanup in progress' },
      ];
      if (stalled) this.ctx.recorder.emit(topic, 'Warning', 'CleanupBlocked', message);
      try {
        await this.writeTopicStatus(topic, { partitions: topic.spec.partitions, views: [], errors: [] }, conds);
      } catch (err) {
        this.ctx.logger.warn('status_write_failed', { topic: key, error: (err as Error).message });
      }
      this.ctx.logger.info('topic_cleanup_waiting', { topic: key, waiting });
      return 2000;
    }

    // Done: drop our finalizer (and only ours), guarded by the list we read.
    const finalizers = topic.metadata.finalizers ?? [];
    await kube.patch(
      resourcePath(RESOURCES.topics, { namespace: ns, name }),
      [
        { op: 'test', path: '/metadata/finalizers', value: finalizers },
        { op: 'replace', path: '/metadata/finalizers', value: finalizers.filter((f) => f !== FINALIZER) },
      ],
      'json',
    );
    this.ctx.recorder.emit(
      topic,
      'Normal',
      topic.spec.deletionPolicy === 'Delete' ? 'VolumesDeleted' : 'VolumesRetained',
      topic.spec.deletionPolicy === 'Delete'
        ? `topic ${name} deleted with its volumes`
        : `topic ${name} deleted; its PersistentVolumeClaims (label ${LABELS.topic}=${name}) are kept`,
    );
    this.ctx.logger.info('topic_finalized', { topic: key, deletion_policy: topic.spec.deletionPolicy });
    this.ctx.reports.forget(name);
    this.forget(key);
    return 0;
  }
}

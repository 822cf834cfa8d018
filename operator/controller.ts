/**
 * The controller: informers (Topics, Partitions, StatefulSets, Services, PDBs, Pods, Nodes) feed a
 * rate-limited work queue keyed by topic (`namespace/name`), plus two keys of its own: `@rebalance`
 * (one rebalancer pass) and `@catalog` (the gateway catalog ConfigMap and client keys Secret). Workers take keys one at a
 * time per key; a failed key comes back with per-key exponential backoff. NATS reports that change
 * a partition's picture enqueue its topic; watermarks are refreshed on the status interval.
 */
import type { NatsConnection } from 'nats';
import type { Logger } from '../common/log';
import { CatalogWriter, ClientKeysWriter, renderCatalog } from './catalog';
import { signControl } from '../common/control-auth';
import { topicAdminSecret } from '../common/topic-credentials';
import { adminKeyOf } from '../protocol/rpc-auth';
import type { ControlRequest } from '../common/control-subjects';
import type { Partition, Topic } from './crd-schema';
import type { ReplicaSettings } from './desired';
import type { EventRecorder } from './events';
import { Informer, objectKey, type KObject } from '../common/informer';
import { RESOURCES, resourcePath, type KubeClient, type ResourceType } from '../common/kube';
import type { OperatorMetrics } from './metrics';
import { DRAIN_LABEL, MANAGED_SELECTOR, NAMESPACE_CLIENT_KEYS_SECRET, ZONE_LABEL } from './names';
import { RebalanceDriver } from './rebalance-driver';
import type { RebalanceSettings } from './rebalancer';
import {
  ReconcileError,
  TopicReconciler,
  topicKeyOf,
  type Caches,
  type NodeObject,
  type PodObject,
  type StatefulSetObject,
} from './reconcile';
import type { ReportTable } from './report-table';
import type { HealthSettings, NodeInfo } from './status';
import { WorkQueue } from './workqueue';

export const REBALANCE_KEY = '@rebalance';
export const CATALOG_KEY = '@catalog';

export interface ControllerOptions {
  kube: KubeClient;
  logger: Logger;
  metrics: OperatorMetrics;
  recorder: EventRecorder;
  reports: ReportTable;
  nats: () => NatsConnection | null;
  /** Empty = every namespace. */
  watchNamespaces: readonly string[];
  settings: Omit<ReplicaSettings, 'namespace'>;
  health: HealthSettings;
  rebalance: RebalanceSettings;
  workers: number;
  resyncMs: number;
  statusIntervalMs: number;
  rebalanceIntervalMs: number;
  catalog?: { namespace: string; name: string };
  /** The gateway's client keys Secret (every topic's client key); absent = not written. */
  clientKeys?: { namespace: string; name: string };
  /** The installation's admin secret: every topic gets its admin-auth Secret (operator/desired.ts). */
  adminSecret?: string;
  /** Each Topic namespace gets NAMESPACE_CLIENT_KEYS_SECRET with its topics' client keys (replay). */
  namespaceClientKeys?: boolean;
}

export class Controller {
  readonly caches: Caches;
  private readonly nodeInformer: Informer<NodeObject>;
  private readonly nodeInfos = new Map<string, NodeInfo>();
  readonly queue: WorkQueue;
  readonly reconciler: TopicReconciler;
  readonly rebalancer: RebalanceDriver;
  private readonly catalogWriter: CatalogWriter | null;
  private readonly keysWriter: ClientKeysWriter | null;
  /** Namespace → the writer of its client keys Secret (namespaceClientKeys). */
  private readonly nsKeysWriters = new Map<string, ClientKeysWriter>();
  private readonly notes = new Map<string, string>();
  private timers: NodeJS.Timeout[] = [];
  private workers: Promise<void>[] = [];
  private started = false;
  private synced = false;
  /** Completed reconciles per key (tests wait on it). */
  readonly reconciles = new Map<string, number>();

  constructor(private readonly o: ControllerOptions) {
    const collection = (r: ResourceType): string[] =>
      o.watchNamespaces.length === 0
        ? [resourcePath(r)]
        : o.watchNamespaces.map((ns) => resourcePath(r, { namespace: ns }));
    this.queue = new WorkQueue({
      baseDelayMs: 250,
      maxDelayMs: 60_000,
      onDepth: (d) => o.metrics.queueDepth.set(d),
    });
    const enqueueOwner = (obj: KObject) => {
      const k = topicKeyOf(obj);
      if (k) this.queue.add(k);
    };
    const make = <T extends KObject>(name: string, r: ResourceType, managed: boolean, onEvent: (obj: T) => void) =>
      new Informer<T>(o.kube, {
        name,
        paths: collection(r),
        ...(managed ? { labelSelector: MANAGED_SELECTOR } : {}),
        logger: o.logger,
        indexBy: managed ? topicKeyOf : undefined,
        onEvent: (_type, obj) => onEvent(obj),
      });
    const topics = new Informer<Topic & KObject>(o.kube, {
      name: 'topics',
      paths: collection(RESOURCES.topics),
      logger: o.logger,
      indexBy: (t) => t.metadata.name,
      onEvent: (_type, t) => {
        // Every topic of that name: a name conflict resolves when the older one goes.
        for (const same of this.caches.topics.byIndex(t.metadata.name)) this.queue.add(objectKey(same));
        this.queue.add(objectKey(t));
        this.queue.add(CATALOG_KEY);
        o.metrics.topics.set(this.caches.topics.size);
      },
    });
    this.caches = {
      topics,
      partitions: make<Partition & KObject>('partitions', RESOURCES.partitions, true, enqueueOwner),
      statefulsets: make<StatefulSetObject>('statefulsets', RESOURCES.statefulsets, true, enqueueOwner),
      services: make<KObject>('services', RESOURCES.services, true, enqueueOwner),
      pdbs: make<KObject>('pdbs', RESOURCES.pdbs, true, enqueueOwner),
      pods: make<PodObject>('pods', RESOURCES.pods, true, (p) => {
        enqueueOwner(p);
        this.queue.add(REBALANCE_KEY);
      }),
    };
    this.nodeInformer = new Informer<NodeObject>(o.kube, {
      name: 'nodes',
      paths: [resourcePath(RESOURCES.nodes)],
      logger: o.logger,
      onEvent: (type, n) => this.onNode(type, n),
    });
    const nodes = () => this.nodeInfos;
    this.reconciler = new TopicReconciler({
      kube: o.kube,
      caches: this.caches,
      reports: o.reports,
      nodes,
      settings: o.settings,
      health: o.health,
      recorder: o.recorder,
      logger: o.logger,
      metrics: o.metrics,
      resyncMs: o.resyncMs,
      rebalanceNotes: this.notes,
      ...(o.adminSecret !== undefined ? { adminSecret: o.adminSecret } : {}),
      ...(o.clientKeys || o.namespaceClientKeys ? { onClientKeys: () => this.queue.add(CATALOG_KEY) } : {}),
    });
    this.rebalancer = new RebalanceDriver({
      kube: o.kube,
      caches: this.caches,
      reconciler: this.reconciler,
      nodes,
      nats: o.nats,
      recorder: o.recorder,
      logger: o.logger,
      metrics: o.metrics,
      settings: o.rebalance,
      notes: this.notes,
      touched: (k) => this.queue.add(k),
      // Membership and leadership requests carry the topic admin key's signature: replicas refuse
      // unsigned ones (a NATS user that may publish control subjects is not enough).
      ...(o.adminSecret !== undefined
        ? {
            signControl: (topic: string, index: number, req: ControlRequest) =>
              signControl(adminKeyOf(topicAdminSecret(o.adminSecret!, topic)), topic, index, req, Date.now()),
          }
        : {}),
    });
    this.catalogWriter = o.catalog ? new CatalogWriter(o.kube, o.catalog) : null;
    this.keysWriter = o.clientKeys ? new ClientKeysWriter(o.kube, o.clientKeys) : null;
  }

  private onNode(type: 'add' | 'update' | 'delete', n: NodeObject): void {
    const before = this.nodeInfos.get(n.metadata.name);
    if (type === 'delete') this.nodeInfos.delete(n.metadata.name);
    else
      this.nodeInfos.set(n.metadata.name, {
        name: n.metadata.name,
        ...(n.metadata.labels?.[ZONE_LABEL] ? { zone: n.metadata.labels[ZONE_LABEL] } : {}),
        unschedulable: n.spec?.unschedulable === true,
        drain: n.metadata.labels?.[DRAIN_LABEL] === 'true',
      });
    const after = this.nodeInfos.get(n.metadata.name);
    if (JSON.stringify(before) === JSON.stringify(after)) return;
    // Zones and drains show in status and drive the rebalancer.
    this.queue.add(REBALANCE_KEY);
    if (this.synced) for (const t of this.caches.topics.list()) this.queue.add(objectKey(t));
  }

  /** A replica report changed the picture of a partition: reconcile its topic (in every namespace). */
  onReport(topic: string): void {
    if (!this.started) return;
    for (const t of this.caches.topics.byIndex(topic)) this.queue.add(objectKey(t));
    this.queue.add(REBALANCE_KEY);
  }

  /** Reconcile errors since this controller started, and the latest (the operator's health report). */
  errors = 0;
  lastError: { atMs: number; kind: string; message: string } | null = null;

  get isSynced(): boolean {
    return this.synced;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const all = [...Object.values(this.caches), this.nodeInformer] as Informer<KObject>[];
    for (const i of all) i.start();
    await Promise.all(all.map((i) => i.waitForSync()));
    this.synced = true;
    this.o.logger.info('caches_synced', {
      topics: this.caches.topics.size,
      partitions: this.caches.partitions.size,
      pods: this.caches.pods.size,
      nodes: this.nodeInfos.size,
    });
    for (const t of this.caches.topics.list()) this.queue.add(objectKey(t));
    this.queue.add(REBALANCE_KEY);
    this.queue.add(CATALOG_KEY);
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.o.statusIntervalMs, () => {
      for (const t of this.caches.topics.list()) this.queue.add(objectKey(t));
    });
    every(this.o.rebalanceIntervalMs, () => this.queue.add(REBALANCE_KEY));
    for (let i = 0; i < this.o.workers; i++) this.workers.push(this.work());
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === null) return;
      const kind = key === REBALANCE_KEY ? 'rebalance' : key === CATALOG_KEY ? 'catalog' : 'topic';
      const started = process.hrtime.bigint();
      let result = 'ok';
      try {
        let again = 0;
        if (kind === 'rebalance') await this.rebalancer.run();
        else if (kind === 'catalog') await this.writeCatalog();
        else again = await this.reconciler.reconcile(key);
        this.queue.forget(key);
        if (again > 0) this.queue.addAfter(key, again);
      } catch (err) {
        result = 'error';
        this.o.metrics.reconcileErrors.inc({ kind });
        this.errors++;
        const message = err instanceof ReconcileError ? err.errors.join('; ') : (err as Error).message;
        this.lastError = { atMs: Date.now(), kind, message: String(message).slice(0, 300) };
        const delay = this.queue.addRateLimited(key);
        this.o.logger.warn('reconcile_failed', {
          key,
          kind,
          error: err instanceof ReconcileError ? err.errors : (err as Error).message,
          attempt: this.queue.failuresOf(key),
          retry_in_ms: delay,
        });
      } finally {
        const s = Number(process.hrtime.bigint() - started) / 1e9;
        this.o.metrics.reconcileDuration.observe({ kind, result }, s);
        this.reconciles.set(key, (this.reconciles.get(key) ?? 0) + 1);
        this.queue.done(key);
      }
    }
  }

  private async writeCatalog(): Promise<void> {
    const topics = this.caches.topics
      .list()
      .filter((t) => !t.metadata.deletionTimestamp && this.reconciler.nameOwner(t.metadata.name) === t);
    // Keys before the catalog, and a topic in the catalog only once its key is published: a
    // gateway that sees a topic can prove its key (no refused connections in between). A key is
    // known after the topic's first reconcile has read or made its peer Secret (onClientKeys).
    let listed = topics;
    const keys = this.keysWriter || this.o.namespaceClientKeys ? this.reconciler.clientKeys(topics) : undefined;
    if (keys && this.o.namespaceClientKeys) await this.writeNamespaceKeys(topics, keys);
    if (keys && this.keysWriter) {
      if (await this.keysWriter.write(keys)) this.o.logger.info('gateway_client_keys_written', { topics: keys.size });
      listed = topics.filter((t) => keys.has(t.metadata.name));
    }
    if (!this.catalogWriter) return;
    if (await this.catalogWriter.write(renderCatalog(listed, this.o.settings)))
      this.o.logger.info('gateway_catalog_written', { topics: listed.length });
  }

  /**
   * Each Topic namespace's client keys Secret holds the keys of that namespace's topics only (a
   * namespace whose last topic went keeps an empty one). Replicas mount it for replay into another
   * topic of their namespace.
   */
  private async writeNamespaceKeys(
    topics: ReadonlyArray<Topic & KObject>,
    keys: ReadonlyMap<string, string>,
  ): Promise<void> {
    const byNs = new Map<string, Map<string, string>>();
    for (const t of topics) {
      const k = keys.get(t.metadata.name);
      const ns = t.metadata.namespace!;
      if (!byNs.has(ns)) byNs.set(ns, new Map());
      if (k !== undefined) byNs.get(ns)!.set(t.metadata.name, k);
    }
    for (const ns of new Set([...byNs.keys(), ...this.nsKeysWriters.keys()])) {
      let w = this.nsKeysWriters.get(ns);
      if (!w) {
        w = new ClientKeysWriter(this.o.kube, { namespace: ns, name: NAMESPACE_CLIENT_KEYS_SECRET });
        this.nsKeysWriters.set(ns, w);
      }
      const mine = byNs.get(ns) ?? new Map<string, string>();
      if (await w.write(mine))
        this.o.logger.info('namespace_client_keys_written', { namespace: ns, topics: mine.size });
    }
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.queue.shutdown();
    await Promise.all(this.workers);
    this.workers = [];
    await Promise.all([...Object.values(this.caches), this.nodeInformer].map((i) => (i as Informer<KObject>).stop()));
  }
}

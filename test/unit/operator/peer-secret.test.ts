/**
 * The peer-auth Secret as the Topic reconciler handles it, against an in-memory stand-in for the
 * apiserver that records every request: created once when absent (GET → 404 → POST), never
 * written over, remembered so a reconcile does not ask again, deleted by the finalizer.
 */
import { createLogger } from '../../../common/log';
import type { Topic } from '../../../operator/crd-schema';
import type { EventRecorder } from '../../../operator/events';
import type { Informer, KObject } from '../../../common/informer';
import { KubeApiError, type KubeClient } from '../../../common/kube';
import { operatorMetrics } from '../../../operator/metrics';
import { FINALIZER } from '../../../operator/names';
import { TopicReconciler, type Caches, type ReconcileContext } from '../../../operator/reconcile';
import { ReportTable } from '../../../operator/report-table';
import { HEALTH, NOW, settings, topic } from './fixtures';
import { topicAdminSecret } from '../../../common/topic-credentials';
import { clientKeyOf } from '../../../protocol/rpc-auth';

/* eslint-disable @typescript-eslint/no-explicit-any -- the objects are plain JSON; tests index into them */

const SECRETS = '/api/v1/namespaces/daftka/secrets';
const RESYNC_MS = 60_000;

/** Objects by path; every call is recorded as `METHOD path`. */
class FakeApi {
  readonly objects = new Map<string, any>();
  readonly calls: string[] = [];
  /** Set: the next POST of a Secret fails with 409 (another operator created it after our GET). */
  raceOnCreate = false;
  private rv = 1;

  private stamp(obj: any): any {
    const uid = obj.metadata.uid ?? `uid-${obj.metadata.name}-${this.rv}`;
    return { ...obj, metadata: { ...obj.metadata, uid, generation: 1, resourceVersion: String(this.rv++) } };
  }
  secretCalls(): string[] {
    return this.calls.filter((c) => c.includes('/secrets'));
  }

  async get(path: string) {
    this.calls.push(`GET ${path}`);
    return this.objects.get(path) ?? null;
  }
  async list(path: string) {
    this.calls.push(`LIST ${path}`);
    return { items: [], resourceVersion: '1' };
  }
  async apply(path: string, obj: any) {
    this.calls.push(`APPLY ${path}`);
    const stored = this.stamp(obj);
    this.objects.set(path, stored);
    return stored;
  }
  async create(path: string, obj: any) {
    this.calls.push(`POST ${path}`);
    const at = `${path}/${obj.metadata.name}`;
    if (this.raceOnCreate || this.objects.has(at)) {
      this.raceOnCreate = false;
      throw new KubeApiError('POST', path, 409, 'Conflict', { reason: 'AlreadyExists' });
    }
    const stored = this.stamp(obj);
    this.objects.set(at, stored);
    return stored;
  }
  async patch(path: string) {
    this.calls.push(`PATCH ${path}`);
    return {};
  }
  async replace(path: string) {
    this.calls.push(`PUT ${path}`);
    return {};
  }
  async delete(path: string) {
    this.calls.push(`DELETE ${path}`);
    return this.objects.delete(path);
  }
}

/** An informer cache holding fixed objects (the reconciler only reads caches). */
function cache<T extends KObject>(objs: T[] = []): Informer<T> {
  const key = (o: T) => `${o.metadata.namespace}/${o.metadata.name}`;
  return {
    get: (k: string) => objs.find((o) => key(o) === k),
    list: () => objs,
    byIndex: () => [],
  } as unknown as Informer<T>;
}

function reconcilerFor(api: FakeApi, topics: Topic[], clock: { ms: number }, extra: Partial<ReconcileContext> = {}) {
  const caches = {
    topics: cache(topics as Array<Topic & KObject>),
    partitions: cache(),
    statefulsets: cache(),
    services: cache(),
    pdbs: cache(),
    pods: cache(),
  } as unknown as Caches;
  const ctx: ReconcileContext = {
    kube: api as unknown as KubeClient,
    caches,
    reports: new ReportTable({ settings: HEALTH, onChange: () => undefined }),
    nodes: () => new Map(),
    settings: (({ namespace: _ns, ...rest }) => rest)(settings),
    health: HEALTH,
    recorder: { emit: () => undefined } as unknown as EventRecorder,
    logger: createLogger('operator', { level: 'error' }),
    metrics: operatorMetrics(),
    resyncMs: RESYNC_MS,
    rebalanceNotes: new Map(),
    now: () => clock.ms,
    ...extra,
  };
  return new TopicReconciler(ctx);
}

/** The value replicas get: the Secret's `secret` key, decoded from the Secret's base64. */
const valueOf = (secret: any): string => Buffer.from(secret.data.secret, 'base64').toString('utf8');

describe('peer-auth Secret (reconciler)', () => {
  it('is created when absent (GET → 404 → POST) with 32 random bytes, base64, and not asked for again', async () => {
    const api = new FakeApi();
    const clock = { ms: NOW };
    const r = reconcilerFor(api, [topic('orders')], clock);
    await r.reconcile('daftka/orders');
    expect(api.secretCalls()).toEqual([`GET ${SECRETS}/orders-peer-auth`, `POST ${SECRETS}`]);
    const secret = api.objects.get(`${SECRETS}/orders-peer-auth`);
    expect(secret.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Topic', uid: 'uid-orders' })]);
    expect(secret.immutable).toBe(true);
    expect(valueOf(secret)).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(valueOf(secret), 'base64')).toHaveLength(32);
    // The Secret comes before the workloads: pods cannot start without it.
    expect(api.calls.findIndex((c) => c.includes('/secrets'))).toBeLessThan(
      api.calls.findIndex((c) => c.includes('/statefulsets/')),
    );

    clock.ms += 1000;
    await r.reconcile('daftka/orders');
    expect(api.secretCalls()).toHaveLength(2);
  });

  it('never writes over an existing Secret: one GET, then nothing', async () => {
    const api = new FakeApi();
    const mine = {
      metadata: { name: 'orders-peer-auth' },
      data: { secret: Buffer.from('k'.repeat(44)).toString('base64') },
    };
    api.objects.set(`${SECRETS}/orders-peer-auth`, mine);
    const clock = { ms: NOW };
    const r = reconcilerFor(api, [topic('orders')], clock);
    await r.reconcile('daftka/orders');
    await r.reconcile('daftka/orders');
    expect(api.secretCalls()).toEqual([`GET ${SECRETS}/orders-peer-auth`]);
    expect(api.objects.get(`${SECRETS}/orders-peer-auth`)).toBe(mine);
  });

  it('a 409 on POST (another operator made it meanwhile) is success, and that Secret stands', async () => {
    const api = new FakeApi();
    api.raceOnCreate = true;
    const clock = { ms: NOW };
    const r = reconcilerFor(api, [topic('orders')], clock);
    await expect(r.reconcile('daftka/orders')).resolves.toBe(RESYNC_MS);
    await r.reconcile('daftka/orders');
    expect(api.secretCalls()).toEqual([`GET ${SECRETS}/orders-peer-auth`, `POST ${SECRETS}`]);
  });

  it('an existing Secret with a value too short for the replicas fails the reconcile, saying what to do', async () => {
    const api = new FakeApi();
    api.objects.set(`${SECRETS}/orders-peer-auth`, {
      metadata: { name: 'orders-peer-auth' },
      data: { secret: Buffer.from('short').toString('base64') },
    });
    const r = reconcilerFor(api, [topic('orders')], { ms: NOW });
    await expect(r.reconcile('daftka/orders')).rejects.toThrow(
      'Secret orders-peer-auth: exists, but its key "secret" holds 5 characters; replicas need at least 32: delete the Secret and the operator makes a new one',
    );
    // Not remembered as good: looked at again on the retry; the workloads were applied all the same.
    await r.reconcile('daftka/orders').catch(() => undefined);
    expect(api.secretCalls()).toEqual([`GET ${SECRETS}/orders-peer-auth`, `GET ${SECRETS}/orders-peer-auth`]);
    expect(api.objects.has('/apis/apps/v1/namespaces/daftka/statefulsets/orders-0')).toBe(true);
  });

  it('each topic gets its own value; a restarted operator asks once per topic; a full resync makes a deleted one again', async () => {
    const api = new FakeApi();
    const clock = { ms: NOW };
    const topics = [topic('orders'), topic('payments')];
    const r = reconcilerFor(api, topics, clock);
    for (const t of topics) await r.reconcile(`daftka/${t.metadata.name}`);
    const orders = valueOf(api.objects.get(`${SECRETS}/orders-peer-auth`));
    expect(valueOf(api.objects.get(`${SECRETS}/payments-peer-auth`))).not.toBe(orders);

    const restarted = reconcilerFor(api, topics, clock);
    api.calls.length = 0;
    for (let i = 0; i < 3; i++) for (const t of topics) await restarted.reconcile(`daftka/${t.metadata.name}`);
    expect(api.secretCalls()).toEqual([`GET ${SECRETS}/orders-peer-auth`, `GET ${SECRETS}/payments-peer-auth`]);
    expect(valueOf(api.objects.get(`${SECRETS}/orders-peer-auth`))).toBe(orders);

    // Deleted by hand: made again (a new value) at the next full resync, not before.
    api.objects.delete(`${SECRETS}/orders-peer-auth`);
    api.calls.length = 0;
    await restarted.reconcile('daftka/orders');
    expect(api.secretCalls()).toEqual([]);
    clock.ms += RESYNC_MS;
    await restarted.reconcile('daftka/orders');
    expect(api.secretCalls()).toEqual([`GET ${SECRETS}/orders-peer-auth`, `POST ${SECRETS}`]);
    expect(valueOf(api.objects.get(`${SECRETS}/orders-peer-auth`))).not.toBe(orders);
  });

  it.each(['Retain', 'Delete'] as const)('deletionPolicy %s: the finalizer deletes the Secret once', async (policy) => {
    const api = new FakeApi();
    const clock = { ms: NOW };
    const live = topic('orders', { deletionPolicy: policy });
    await reconcilerFor(api, [live], clock).reconcile('daftka/orders');
    const deleting: Topic = {
      ...live,
      metadata: { ...live.metadata, finalizers: [FINALIZER], deletionTimestamp: new Date(NOW).toISOString() },
    } as Topic;
    const r = reconcilerFor(api, [deleting], clock);
    api.calls.length = 0;
    await expect(r.reconcile('daftka/orders')).resolves.toBe(0);
    expect(api.secretCalls()).toEqual([`DELETE ${SECRETS}/orders-peer-auth`]);
    expect(api.objects.has(`${SECRETS}/orders-peer-auth`)).toBe(false);
  });
});

describe('admin-auth Secret and client keys (reconciler)', () => {
  const INSTALL = 'i'.repeat(48);
  const adminValue = (secret: any): string => Buffer.from(secret.data.secret, 'base64').toString('utf8');

  it("is created next to the peer Secret with the topic's derived admin secret, then not asked for again", async () => {
    const api = new FakeApi();
    const clock = { ms: NOW };
    const r = reconcilerFor(api, [topic('orders')], clock, { adminSecret: INSTALL });
    await r.reconcile('daftka/orders');
    expect(api.secretCalls()).toEqual([
      `GET ${SECRETS}/orders-peer-auth`,
      `POST ${SECRETS}`,
      `GET ${SECRETS}/orders-admin-auth`,
      `POST ${SECRETS}`,
    ]);
    const secret = api.objects.get(`${SECRETS}/orders-admin-auth`);
    expect(adminValue(secret)).toBe(topicAdminSecret(INSTALL, 'orders'));
    expect(secret.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'Topic', uid: 'uid-orders' })]);
    // Before the workloads: the pods read it at start.
    expect(Math.max(...api.calls.map((c, i) => (c.includes('/secrets') ? i : -1)))).toBeLessThan(
      api.calls.findIndex((c) => c.includes('/statefulsets/')),
    );
    api.calls.length = 0;
    clock.ms += 1000;
    await r.reconcile('daftka/orders');
    expect(api.secretCalls()).toEqual([]);
  });

  it('a restarted operator with another installation secret replaces the Secret (DELETE with the old uid, then POST)', async () => {
    const api = new FakeApi();
    const clock = { ms: NOW };
    await reconcilerFor(api, [topic('orders')], clock, { adminSecret: INSTALL }).reconcile('daftka/orders');
    const old = api.objects.get(`${SECRETS}/orders-admin-auth`);
    const rotated = 'r'.repeat(48);
    const r = reconcilerFor(api, [topic('orders')], clock, { adminSecret: rotated });
    api.calls.length = 0;
    await r.reconcile('daftka/orders');
    expect(api.secretCalls()).toEqual([
      `GET ${SECRETS}/orders-peer-auth`,
      `GET ${SECRETS}/orders-admin-auth`,
      `DELETE ${SECRETS}/orders-admin-auth`,
      `POST ${SECRETS}`,
    ]);
    const now = api.objects.get(`${SECRETS}/orders-admin-auth`);
    expect(now.metadata.uid).not.toBe(old.metadata.uid);
    expect(adminValue(now)).toBe(topicAdminSecret(rotated, 'orders'));
    // The same value: one GET at a full resync, nothing written.
    api.calls.length = 0;
    clock.ms += RESYNC_MS;
    await r.reconcile('daftka/orders');
    expect(api.secretCalls()).toEqual([`GET ${SECRETS}/orders-peer-auth`, `GET ${SECRETS}/orders-admin-auth`]);
  });

  it("learns each topic's client key from its peer Secret (made or read) and says so once", async () => {
    const api = new FakeApi();
    const theirs = 'k'.repeat(44);
    api.objects.set(`${SECRETS}/payments-peer-auth`, {
      metadata: { name: 'payments-peer-auth' },
      data: { secret: Buffer.from(theirs).toString('base64') },
    });
    const clock = { ms: NOW };
    let changes = 0;
    const topics = [topic('orders'), topic('payments')];
    const r = reconcilerFor(api, topics, clock, { onClientKeys: () => changes++ });
    for (const t of topics) await r.reconcile(`daftka/${t.metadata.name}`);
    const made = valueOf(api.objects.get(`${SECRETS}/orders-peer-auth`));
    const keys = r.clientKeys(topics as any);
    expect(keys).toEqual(
      new Map([
        ['orders', clientKeyOf(made, 'orders').toString('hex')],
        ['payments', clientKeyOf(theirs, 'payments').toString('hex')],
      ]),
    );
    expect(changes).toBe(2);
    clock.ms += 1000;
    for (const t of topics) await r.reconcile(`daftka/${t.metadata.name}`);
    expect(changes).toBe(2);
    // A topic the reconciler has not seen has no key yet (the catalog leaves it out until then).
    expect(r.clientKeys([topic('later') as any]).size).toBe(0);
  });

  it('the finalizer deletes the admin-auth Secret too, and the topic loses its client key', async () => {
    const api = new FakeApi();
    const clock = { ms: NOW };
    const live = topic('orders');
    let changes = 0;
    const ctx = { adminSecret: INSTALL, onClientKeys: () => changes++ };
    const r0 = reconcilerFor(api, [live], clock, ctx);
    await r0.reconcile('daftka/orders');
    const deleting = {
      ...live,
      metadata: { ...live.metadata, finalizers: [FINALIZER], deletionTimestamp: new Date(NOW).toISOString() },
    } as Topic;
    const r = reconcilerFor(api, [deleting], clock, ctx);
    api.calls.length = 0;
    await expect(r.reconcile('daftka/orders')).resolves.toBe(0);
    expect(api.secretCalls()).toEqual([`DELETE ${SECRETS}/orders-peer-auth`, `DELETE ${SECRETS}/orders-admin-auth`]);
    expect(r.clientKeys([deleting as any]).size).toBe(0);
  });
});

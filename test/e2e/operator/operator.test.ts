/**
 * The operator against a real control plane (DESIGN §12 tier 4): etcd + kube-apiserver +
 * kube-controller-manager + kube-scheduler, and kwok with four fake Nodes in three zones. Replica
 * reports come from scripted replicas (./fake-replicas.ts) on a real nats-server. One environment
 * for the whole file; the tests run in order and build on each other's topics.
 */
import { desiredPdb, desiredService, desiredStatefulSet, topicReplicas } from '../../../operator/desired';
import { topicAdminSecret } from '../../../common/topic-credentials';
import { clientKeyOf } from '../../../protocol/rpc-auth';
import { KubeClient, RESOURCES, resourcePath } from '../../../common/kube';
import { SUBJECTS } from '../../../common/control-subjects';
import { connect } from 'nats';
import { startK8sEnv, type K8sEnv } from '../../helpers/k8s-env';
import { startNatsServer, type NatsServerHandle } from '../../helpers/nats-server';
import { FakeReplicas } from './fake-replicas';
import {
  NS,
  REPLICA_SETTINGS,
  apiError,
  applyTopic,
  condition,
  createNamespace,
  createVolumes,
  eventually,
  getObj,
  installCrds,
  listObjs,
  sleep,
  startTestOperator,
  topicPath,
  type Obj,
  type TestOperator,
} from './harness';

/** The owner reference every object of Topic `orders` carries. */
const ownedByOrders = (uid: string | undefined) => [
  { apiVersion: 'daftka.io/v1alpha1', kind: 'Topic', name: 'orders', uid, controller: true, blockOwnerDeletion: true },
];

jest.setTimeout(120_000);

let env: K8sEnv;
let nats: NatsServerHandle;
let kube: KubeClient;
let fake: FakeReplicas;
let active: TestOperator;
const operators: TestOperator[] = [];

const topicSel = (t: string) => `daftka.io/topic=${t}`;

/** The value a topic's replicas get as DAFTKA_PEER_SECRET (the Secret's `secret` key, decoded). */
const peerValue = (secret: Obj): string => Buffer.from(secret.data.secret, 'base64').toString('utf8');

async function peerSecret(topic: string): Promise<Obj> {
  return eventually(async () => {
    const s = await getObj(kube, 'secrets', `${topic}-peer-auth`);
    expect(s).not.toBeNull();
    return s;
  });
}

/** orders-peer-auth as first created: later spec changes, and other operators, must leave it as it is. */
let ordersSecret: { resourceVersion: string; value: string } | undefined;

function expectOrdersSecretUnchanged(s: Obj): void {
  expect(ordersSecret).toBeDefined();
  expect({ resourceVersion: s.metadata.resourceVersion, value: peerValue(s) }).toEqual(ordersSecret);
}

async function runningPods(topic: string): Promise<Obj[]> {
  return (await listObjs(kube, 'pods', topicSel(topic))).filter(
    (p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp,
  );
}

/** Every partition ready and every replica healthy (not under-replicated). */
async function waitReady(topic: string, partitions: number, timeoutMs = 60_000): Promise<Obj> {
  return eventually(async () => {
    const t = await getObj(kube, 'topics', topic);
    expect(t.status?.readyPartitions).toBe(partitions);
    expect(t.status?.underReplicatedPartitions).toBe(0);
    expect(condition(t, 'Ready')?.status).toBe('True');
    return t;
  }, timeoutMs);
}

/** The installation's admin secret and the gateway client keys Secret, as the chart configures them. */
const ADMIN_SECRET = 'a'.repeat(24) + 'b'.repeat(24);
const CLIENT_KEYS = 'daftka-gateway-client-keys';

/** The gateway client keys Secret, decoded: topic → hex key. */
async function clientKeys(name = CLIENT_KEYS): Promise<Record<string, string>> {
  const s = await getObj(kube, 'secrets', name);
  return Object.fromEntries(
    Object.entries((s?.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );
}

async function startOp(identity: string, extraEnv: Record<string, string> = {}): Promise<TestOperator> {
  const op = await startTestOperator(env, nats.url, identity, {
    DAFTKA_ADMIN_SECRET: ADMIN_SECRET,
    DAFTKA_OPERATOR_GATEWAY_CLIENT_KEYS_SECRET: CLIENT_KEYS,
    DAFTKA_OPERATOR_REPLICA_CLIENT_KEYS: 'true',
    ...extraEnv,
  });
  operators.push(op);
  return op;
}

/** The operators' warnings and errors (kept in memory), printed at the end of the file for diagnosis. */
function dumpWarnings(): void {
  for (const op of operators) {
    const tail = op.lines.filter((l) => /"level":"(warn|error)"/.test(l)).slice(-30);
    if (tail.length > 0) process.stderr.write(`--- ${op.identity}: last warnings ---\n${tail.join('\n')}\n`);
  }
}

const started = Date.now();
/** Progress on stderr (jest prints results only at the end of the file). */
const progress = (msg: string) =>
  process.stderr.write(`[operator e2e +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);

beforeEach(() => progress(`start: ${expect.getState().currentTestName}`));
afterEach(() => progress(`end: ${expect.getState().currentTestName}`));

beforeAll(async () => {
  [env, nats] = await Promise.all([startK8sEnv({ nodes: 4 }), startNatsServer()]);
  kube = new KubeClient({ kubeConfig: env.kc, qps: 200, burst: 400 });
  await installCrds(kube);
  await createNamespace(kube);
  // Every claim ever made keeps its volume (Retain): RF + 1 per partition (the spare slot's too).
  await createVolumes(kube, 200);
  fake = new FakeReplicas({
    kube,
    natsUrl: nats.url,
    namespace: NS,
    intervalMs: 300,
    catchUpMs: 800,
    adminSecret: ADMIN_SECRET,
  });
  await fake.start();
  active = await startOp('op-a');
  await eventually(() => expect(active.isLeader()).toBe(true), 20_000);
}, 240_000);

afterAll(async () => {
  dumpWarnings();
  await fake?.stop();
  for (const op of operators) await op.kill().catch(() => undefined);
  kube?.close();
  await nats?.stop();
  await env?.stop();
}, 60_000);

describe('admission: the CRDs and the deletion-protection policy on the real apiserver', () => {
  it('refuses a replication factor other than 1, 3, 5 or 7, and names it', async () => {
    const err = await apiError(applyTopic(kube, 'bad-rf', { replicationFactor: 2 }));
    expect(err.statusCode).toBe(422);
    expect(err.apiMessage).toContain('replicationFactor must be 1, 3, 5 or 7');
  });

  it('refuses names that cannot become StatefulSet and Service names', async () => {
    const err = await apiError(applyTopic(kube, '9lives', { partitions: 1 }));
    expect(err.statusCode).toBe(422);
    expect(err.apiMessage).toContain('topic name 9lives is not allowed');
  });

  it('refuses decreasing partitions and changing RF or storage, saying what to do instead', async () => {
    await applyTopic(kube, 'guarded', {
      partitions: 2,
      replicationFactor: 1,
      storage: { size: '1Gi', storageClassName: 'e2e-static' },
    });
    const dec = await apiError(
      applyTopic(kube, 'guarded', {
        partitions: 1,
        replicationFactor: 1,
        storage: { size: '1Gi', storageClassName: 'e2e-static' },
      }),
    );
    expect(dec.statusCode).toBe(422);
    expect(dec.apiMessage).toContain('spec.partitions cannot decrease');
    expect(dec.apiMessage).toContain('create a new topic with the wanted count and migrate');
    const rf = await apiError(
      applyTopic(kube, 'guarded', {
        partitions: 2,
        replicationFactor: 3,
        storage: { size: '1Gi', storageClassName: 'e2e-static' },
      }),
    );
    expect(rf.apiMessage).toContain('spec.replicationFactor cannot change after creation; create a new topic');
    const st = await apiError(
      applyTopic(kube, 'guarded', {
        partitions: 2,
        replicationFactor: 1,
        storage: { size: '5Gi', storageClassName: 'e2e-static' },
      }),
    );
    expect(st.apiMessage).toContain('spec.storage cannot change after the topic is created');
  });

  it('deletionProtection: DELETE is refused by the admission policy until it is turned off', async () => {
    await applyTopic(kube, 'protected', { partitions: 1, replicationFactor: 1, deletionProtection: true });
    const err = await apiError(kube.delete(topicPath('protected')));
    expect(err.statusCode).toBe(403);
    expect(err.apiMessage).toContain('topic protected has spec.deletionProtection: true; set it to false first');
    await applyTopic(kube, 'protected', { partitions: 1, replicationFactor: 1, deletionProtection: false });
    await eventually(async () => expect(await kube.delete(topicPath('protected'))).toBe(true), 10_000);
    await eventually(async () => expect(await getObj(kube, 'topics', 'protected')).toBeNull(), 30_000);
    await kube.delete(topicPath('guarded'));
  });
});

describe('reconcile: Topic → Partitions → StatefulSets, Services, PDBs', () => {
  it('creates every object exactly as specified, with owner references', async () => {
    await applyTopic(kube, 'orders', { partitions: 3 });
    const topic = await eventually(async () => {
      const t = await getObj(kube, 'topics', 'orders');
      expect(t.metadata.finalizers).toEqual(['daftka.io/cleanup']);
      expect(t.status?.partitions).toBe(3);
      expect(t.status?.topicId).toMatch(/^[0-9a-f-]{36}$/);
      return t;
    });
    const settings = { ...REPLICA_SETTINGS(nats.url), namespace: NS, adminAuth: true, namespaceClientKeys: true };
    const replicas = topicReplicas(topic, settings);
    for (let i = 0; i < 3; i++) {
      const p = await eventually(async () => {
        const got = await getObj(kube, 'partitions', `orders-${i}`);
        expect(got).not.toBeNull();
        return got;
      });
      expect(p.spec).toEqual({ topic: 'orders', index: i, replicas: 3, preferredLeader: i % 3 });
      expect(p.metadata.ownerReferences).toEqual(ownedByOrders(topic.metadata.uid));
      const [sts, svc, pdb] = await eventually(async () => {
        const objs = await Promise.all([
          getObj(kube, 'statefulsets', `orders-${i}`),
          getObj(kube, 'services', `orders-${i}`),
          getObj(kube, 'pdbs', `orders-${i}`),
        ]);
        for (const o of objs) expect(o).not.toBeNull();
        return objs;
      });
      const want = {
        statefulSet: desiredStatefulSet(
          topic,
          p,
          i,
          replicas.filter((r) => r.partition === i),
          settings,
        ),
        service: desiredService(topic, p, i, settings),
        pdb: desiredPdb(topic, p, i, settings),
      };
      // The server adds defaults; everything the operator sets must be there as set.
      expect(sts).toMatchObject(want.statefulSet);
      expect(svc).toMatchObject(want.service);
      expect(pdb).toMatchObject(want.pdb);
      expect(sts.metadata.ownerReferences[0]).toMatchObject({
        kind: 'Partition',
        name: `orders-${i}`,
        uid: p.metadata.uid,
      });
      expect(sts.spec.updateStrategy).toEqual({ type: 'OnDelete' });
      expect(svc.spec.clusterIP).toBe('None');
      expect(svc.spec.publishNotReadyAddresses).toBe(true);
      // A majority of the voters; minAvailable, as the StatefulSet's gated spare pod is never available.
      expect(pdb.spec.minAvailable).toBe(2);
      expect(sts.spec.replicas).toBe(4);
      expect(
        sts.metadata.managedFields.some((m: Obj) => m.manager === 'daftka-operator' && m.operation === 'Apply'),
      ).toBe(true);
      expect(sts.spec.template.spec.containers[0].env).toContainEqual({
        name: 'DAFTKA_PEER_SECRET',
        valueFrom: { secretKeyRef: { name: 'orders-peer-auth', key: 'secret' } },
      });
      // Client-port admission on: the admin key from the topic's admin-auth Secret, no DAFTKA_CLIENT_AUTH.
      expect(sts.spec.template.spec.containers[0].env).toContainEqual({
        name: 'DAFTKA_ADMIN_SECRET',
        valueFrom: { secretKeyRef: { name: 'orders-admin-auth', key: 'secret' } },
      });
      expect(sts.spec.template.spec.containers[0].env.map((e: Obj) => e.name)).not.toContain('DAFTKA_CLIENT_AUTH');
    }

    // The peer-auth Secret: 32 random bytes, base64 (44 characters), owned by the Topic.
    const secret = await peerSecret('orders');
    expect(peerValue(secret)).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(peerValue(secret), 'base64')).toHaveLength(32);
    expect(secret.type).toBe('Opaque');
    expect(secret.immutable).toBe(true);
    expect(secret.metadata.labels).toEqual({
      'app.kubernetes.io/name': 'daftka',
      'app.kubernetes.io/component': 'peer-auth',
      'app.kubernetes.io/managed-by': 'daftka-operator',
      'app.kubernetes.io/instance': 'orders',
      'daftka.io/topic': 'orders',
    });
    expect(secret.metadata.ownerReferences).toEqual(ownedByOrders(topic.metadata.uid));
    ordersSecret = { resourceVersion: secret.metadata.resourceVersion, value: peerValue(secret) };

    // The admin-auth Secret: the topic's admin secret derived from the installation's, owned by the Topic.
    const admin = await eventually(async () => {
      const s = await getObj(kube, 'secrets', 'orders-admin-auth');
      expect(s).not.toBeNull();
      return s;
    });
    expect(peerValue(admin)).toBe(topicAdminSecret(ADMIN_SECRET, 'orders'));
    expect(admin.metadata.labels['app.kubernetes.io/component']).toBe('admin-auth');
    expect(admin.metadata.ownerReferences).toEqual(ownedByOrders(topic.metadata.uid));
    // The gateway's client keys Secret holds the key derived from the peer secret.
    await eventually(async () =>
      expect((await clientKeys()).orders).toBe(clientKeyOf(ordersSecret!.value, 'orders').toString('hex')),
    );
    // The namespace's own keys Secret (replay into another topic of the namespace) holds it too.
    await eventually(async () =>
      expect((await clientKeys('daftka-client-keys')).orders).toBe(
        clientKeyOf(ordersSecret!.value, 'orders').toString('hex'),
      ),
    );

    // A second topic gets its own value; a spec change re-reconciles it and leaves the Secret as it was.
    await applyTopic(kube, 'payments', { partitions: 1, replicationFactor: 1, deletionPolicy: 'Delete' });
    const other = await peerSecret('payments');
    expect(peerValue(other)).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(peerValue(other)).not.toBe(ordersSecret.value);
    await applyTopic(kube, 'payments', { partitions: 2, replicationFactor: 1, deletionPolicy: 'Delete' });
    await eventually(async () => {
      const t = await getObj(kube, 'topics', 'payments');
      expect(t.status?.observedGeneration).toBe(t.metadata.generation);
      expect(t.status?.partitions).toBe(2);
      expect(await getObj(kube, 'statefulsets', 'payments-1')).not.toBeNull();
    });
    const after = await getObj(kube, 'secrets', 'payments-peer-auth');
    expect(after.metadata.resourceVersion).toBe(other.metadata.resourceVersion);
    expect(after.data).toEqual(other.data);
    expectOrdersSecretUnchanged(await getObj(kube, 'secrets', 'orders-peer-auth'));
    await eventually(async () =>
      expect((await clientKeys()).payments).toBe(clientKeyOf(peerValue(other), 'payments').toString('hex')),
    );
    // Gone again before the rebalancer tests (an RF 1 replica cannot be drained), its Secrets and key with it.
    await kube.delete(topicPath('payments'));
    await eventually(async () => {
      expect(await getObj(kube, 'topics', 'payments')).toBeNull();
      expect(await getObj(kube, 'secrets', 'payments-peer-auth')).toBeNull();
      expect(await getObj(kube, 'secrets', 'payments-admin-auth')).toBeNull();
      expect(Object.keys(await clientKeys())).not.toContain('payments');
      expect(Object.keys(await clientKeys('daftka-client-keys'))).not.toContain('payments');
    }, 60_000);
  });

  it('the scheduler places the replicas of a partition on different nodes, over the zones', async () => {
    const nodes = await kube.list<Obj>(resourcePath(RESOURCES.nodes));
    const zoneOf = new Map(
      nodes.items.map((n: Obj) => [n.metadata.name, n.metadata.labels['topology.kubernetes.io/zone']]),
    );
    const pods = await eventually(async () => {
      const ps = await runningPods('orders');
      expect(ps).toHaveLength(9);
      return ps;
    }, 60_000);
    for (let i = 0; i < 3; i++) {
      const mine = pods.filter((p) => p.metadata.labels['daftka.io/partition'] === String(i));
      expect(new Set(mine.map((p) => p.spec.nodeName)).size).toBe(3);
      expect(new Set(mine.map((p) => zoneOf.get(p.spec.nodeName))).size).toBeGreaterThanOrEqual(2);
      // The ordinal each replica is told comes from the pod-index label.
      for (const p of mine)
        expect(p.metadata.labels['apps.kubernetes.io/pod-index']).toBe(p.metadata.name.split('-').pop());
    }
    // The spare slot (ordinal 3) has a pod held by its scheduling gate: no node, nothing running.
    const all = await listObjs(kube, 'pods', topicSel('orders'));
    const spares = all.filter((p) => p.spec.schedulingGates?.length).map((p) => p.metadata.name);
    expect(spares.sort()).toEqual(['orders-0-3', 'orders-1-3', 'orders-2-3']);
    for (const p of all.filter((x) => spares.includes(x.metadata.name))) expect(p.spec.nodeName).toBeUndefined();
  });

  it('writes status from the replica reports on NATS: leader, term, watermark, replicas with node and zone', async () => {
    const topic = await waitReady('orders', 3);
    expect(topic.status).toMatchObject({ partitions: 3, leaderlessPartitions: 0, underReplicatedPartitions: 0 });
    for (const type of ['QuorumHealthy', 'LeaderElected']) expect(condition(topic, type).status).toBe('True');
    expect(condition(topic, 'Degraded').status).toBe('False');
    const p = await eventually(async () => {
      const got = await getObj(kube, 'partitions', 'orders-0');
      expect(got.status?.replicas?.every((r: Obj) => r.healthy)).toBe(true);
      // The rebalancer may be moving leadership right now: the status follows within a reconcile.
      expect(got.status.leader).toBe(fake.leaderId('orders/0'));
      return got;
    });
    expect(p.status.term).toBeGreaterThanOrEqual(1);
    expect(p.status.highWatermark).toBeGreaterThan(0);
    const pods = await runningPods('orders');
    const nodes = await kube.list<Obj>(resourcePath(RESOURCES.nodes));
    for (const r of p.status.replicas) {
      const pod = pods.find((x) => x.metadata.name === r.pod);
      expect(r.node).toBe(pod.spec.nodeName);
      expect(r.zone).toBe(
        nodes.items.find((n: Obj) => n.metadata.name === r.node).metadata.labels['topology.kubernetes.io/zone'],
      );
      expect(['leader', 'follower']).toContain(r.role);
      expect(r.id).toMatch(/^\d\.[0-9a-f]{8}$/);
    }
  });

  it("drops status reports and announcements not signed with the topic's client key (any replica may publish them)", async () => {
    const before = await getObj(kube, 'partitions', 'orders-0');
    const invalid = async () => {
      const text = await active.metrics.registry.getSingleMetricAsString('daftka_operator_nats_reports_total');
      return ['status', 'leader'].map((k) =>
        Number(new RegExp(`kind="${k}",result="invalid"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? 0),
      );
    };
    const [status0, leader0] = await invalid();
    const nc = await connect({ servers: nats.url });
    try {
      // What a replica of another topic could publish: orders-0 led by an impostor in a later term.
      const forged = { ...(fake.lastReport('orders/0') as Obj), replicaId: '9.evil0000', term: 999, role: 'leader' };
      delete forged.sig;
      const enc = new TextEncoder();
      for (let i = 0; i < 5; i++) {
        nc.publish(SUBJECTS.status('orders', 0, '9.evil0000'), enc.encode(JSON.stringify(forged)));
        nc.publish(
          SUBJECTS.leader('orders', 0),
          enc.encode(
            JSON.stringify({
              v: 1,
              topic: 'orders',
              partition: 0,
              term: 999,
              leaderId: '9.evil0000',
              endpoint: 'evil:1',
              highWatermark: 1,
              ts: Date.now(),
              sig: 'x'.repeat(43),
            }),
          ),
        );
        await sleep(200);
      }
      await nc.flush();
      await eventually(async () => {
        const [s, l] = await invalid();
        expect(s).toBeGreaterThanOrEqual(status0 + 5);
        expect(l).toBeGreaterThanOrEqual(leader0 + 5);
      });
      // The real replicas may move leadership meanwhile (the rebalancer); the impostor never shows.
      const after = await getObj(kube, 'partitions', 'orders-0');
      expect(after.status.term).toBeLessThan(999);
      expect(after.status.term).toBeGreaterThanOrEqual(before.status.term);
      expect(after.status.leader).not.toBe('9.evil0000');
      expect(after.status.replicas.map((r: Obj) => r.id)).not.toContain('9.evil0000');
    } finally {
      await nc.close();
    }
  });

  it('reports going stale turn the conditions Unknown with the reason, and back', async () => {
    fake.publishing = false;
    try {
      await eventually(async () => {
        const t = await getObj(kube, 'topics', 'orders');
        expect(condition(t, 'LeaderElected')).toMatchObject({ status: 'Unknown', reason: 'NoReports' });
        expect(condition(t, 'Ready').status).toBe('False');
      }, 20_000);
    } finally {
      fake.publishing = true;
    }
    await waitReady('orders', 3);
  });

  it('increasing partitions adds Partitions and their workloads', async () => {
    await applyTopic(kube, 'orders', { partitions: 4 });
    await eventually(async () => {
      expect(await getObj(kube, 'statefulsets', 'orders-3')).not.toBeNull();
      expect(await getObj(kube, 'partitions', 'orders-3')).not.toBeNull();
    });
    await waitReady('orders', 4, 60_000);
    expectOrdersSecretUnchanged(await getObj(kube, 'secrets', 'orders-peer-auth'));
  });
});

describe('rebalancer (scripted replica reports, real NATS control requests)', () => {
  it('leader skew: leadership is transferred to the least loaded nodes until leaders are even', async () => {
    // Every new partition's first leader is its replica on kwok-node-0 when it has one.
    fake.chooseLeader = (_key, live) => live.find((l) => l.node === 'kwok-node-0')?.ordinal ?? live[0].ordinal;
    await applyTopic(kube, 'skewed', { partitions: 6 });
    await waitReady('skewed', 6, 90_000);
    const skew = () => {
      const counts = new Map<string, number>(env.nodeNames.map((n) => [n, 0]));
      for (const node of fake.leaderNodes().values()) counts.set(node, (counts.get(node) ?? 0) + 1);
      return Math.max(...counts.values()) - Math.min(...counts.values());
    };
    // The scheduler may have spread the first leaders evenly already (nothing to balance, nothing
    // shown): elections then move every leadership it can to kwok-node-0, as after a restart there.
    fake.leadOn('kwok-node-0', ['orders', 'skewed']);
    expect(skew()).toBeGreaterThanOrEqual(2);
    await eventually(() => expect(skew()).toBeLessThanOrEqual(1), 60_000);
    const balance = fake.transfers.filter((t) => t.topic === 'skewed' || t.topic === 'orders');
    expect(balance.length).toBeGreaterThan(0);
    // Every request went to the partition's leader and named a live voter; the replicas accepted each.
    expect(balance.every((t) => t.ok && t.fromLeader !== null && t.to !== t.fromLeader)).toBe(true);
    // Each signed with the topic's admin key (the scripted replicas check it as real ones do).
    expect(fake.refusedControls).toEqual([]);
    await eventually(async () => {
      const m = await active.metrics.registry.getSingleMetricAsString('daftka_operator_leader_skew');
      expect(Number(/daftka_operator_leader_skew\{[^}]*\} (\d+)/.exec(m)?.[1])).toBeLessThanOrEqual(1);
    }, 20_000);
  });

  it('drain: each replica is added elsewhere before the old one leaves, one at a time, never below RF copies', async () => {
    fake.chooseLeader = (_k, live) => Math.min(...live.map((l) => l.ordinal));
    const node = 'kwok-node-1';
    const before = (await listObjs(kube, 'pods')).filter((p) => p.spec?.nodeName === node).map((p) => p.metadata.name);
    expect(before.length).toBeGreaterThan(0);
    const claimsBefore = new Map((await listObjs(kube, 'pvcs')).map((c) => [c.metadata.name, c.metadata.uid]));
    fake.track(['orders', 'skewed']);
    await kube.patch(resourcePath(RESOURCES.nodes, { name: node }), {
      metadata: { labels: { 'daftka.io/drain': 'true' } },
    });
    try {
      await eventually(
        async () => {
          const left = (await listObjs(kube, 'pods')).filter((p) => p.spec?.nodeName === node);
          expect(left.map((p) => p.metadata.name)).toEqual([]);
          for (const t of ['orders', 'skewed']) {
            const topic = await getObj(kube, 'topics', t);
            expect(topic.status.underReplicatedPartitions).toBe(0);
            expect(condition(topic, 'Ready').status).toBe('True');
          }
          const parts = await listObjs(kube, 'partitions');
          expect(parts.filter((p) => p.status?.operation)).toEqual([]);
        },
        // Below the test timeout: a stall fails with what is still missing, not a bare timeout.
        150_000,
        1000,
      );
    } finally {
      await kube.patch(resourcePath(RESOURCES.nodes, { name: node }), {
        metadata: { labels: { 'daftka.io/drain': null } },
      });
    }
    // One partition disrupted at a time (maxConcurrentMoves 1), each kept a majority of live voters.
    expect(fake.overlaps).toEqual([]);
    expect(fake.maxDisrupted).toBe(1);
    expect(fake.belowQuorum).toEqual([]);
    // Add, then remove: at every sample, every partition (RF 3) had at least 3 caught-up members;
    // each removal was asked while 4 voters were live (the new one caught up, the old one still there).
    expect(fake.belowRf).toEqual([]);
    expect([...fake.minLiveVoters.values()].every((n) => n >= 3)).toBe(true);
    const removals = fake.removals.filter((r) => r.ok);
    expect(removals.length).toBe(before.length);
    expect(removals.filter((r) => r.liveVotersBefore < 4)).toEqual([]);
    // It ends with RF voters per partition, each on a node of its own, none on the drained node.
    for (const t of ['orders', 'skewed'])
      for (const part of await listObjs(kube, 'partitions', topicSel(t))) {
        const voters = fake.votersOf(`${t}/${part.spec.index}`);
        expect(voters).toHaveLength(3);
        expect(voters.every((v) => v.node !== undefined && v.node !== node)).toBe(true);
        expect(new Set(voters.map((v) => v.node)).size).toBe(3);
      }
    // Leadership was moved off before a leader's pod went.
    expect(fake.leaderPodsDeleted).toEqual([]);
    // Each moved replica got a new volume (a new incarnation rebuilt from its peers).
    const claimsAfter = new Map((await listObjs(kube, 'pvcs')).map((c) => [c.metadata.name, c.metadata.uid]));
    for (const pod of before) expect(claimsAfter.get(`data-${pod}`)).not.toBe(claimsBefore.get(`data-${pod}`));
    // Each replica was deleted exactly once, with its own claim: a pass acting on a pod cache that
    // had not yet seen its own DELETE used to delete again, and so the successor's new claim.
    const moved = active.lines
      .map((l) => JSON.parse(l) as Obj)
      .filter((l) => l.message === 'rebalance_pod_deleted' && l.reason === 'drain');
    expect(moved.map((l) => l.pod).sort()).toEqual([...before].sort());
    expect(moved.every((l) => l.volume_deleted === true && l.volume === 'deleted')).toBe(true);
    // Each old replica was removed from the group before its pod was deleted.
    const steps = active.lines.map((l) => JSON.parse(l) as Obj);
    for (const pod of before) {
      const removed = steps.findIndex(
        (l) => l.message === 'rebalance_remove_member' && l.pod === pod && l.outcome === 'ok',
      );
      const deleted = steps.findIndex((l) => l.message === 'rebalance_pod_deleted' && l.pod === pod);
      expect(removed).toBeGreaterThanOrEqual(0);
      expect(deleted).toBeGreaterThan(removed);
    }
    // No claim in use is left being deleted.
    const claims = await listObjs(kube, 'pvcs');
    const inUse = new Set(
      (await runningPods('orders')).concat(await runningPods('skewed')).map((p) => `data-${p.metadata.name}`),
    );
    expect(
      claims.filter((c) => inUse.has(c.metadata.name) && c.metadata.deletionTimestamp).map((c) => c.metadata.name),
    ).toEqual([]);
  }, 180_000);

  it('roll: a template change restarts pods one at a time, leadership moved off first, volumes kept', async () => {
    await applyTopic(kube, 'rolling', { partitions: 1 });
    await waitReady('rolling', 1, 60_000);
    const claims = new Map(
      (await listObjs(kube, 'pvcs', topicSel('rolling'))).map((c) => [c.metadata.name, c.metadata.uid]),
    );
    const leaderBefore = fake.leaderId('rolling/0');
    const revisionBefore = (await getObj(kube, 'statefulsets', 'rolling-0')).status.updateRevision;
    expect(revisionBefore).toBeDefined();
    fake.track(['rolling']);
    const transfersBefore = fake.transfers.length;
    await applyTopic(kube, 'rolling', { partitions: 1, resources: { requests: { cpu: '200m', memory: '256Mi' } } });
    await eventually(
      async () => {
        const sts = await getObj(kube, 'statefulsets', 'rolling-0');
        const rev = sts.status.updateRevision;
        // The operator applied the new template (a new revision), and every pod runs it.
        expect(rev).toBeDefined();
        expect(rev).not.toBe(revisionBefore);
        const pods = await runningPods('rolling');
        expect(pods).toHaveLength(3);
        for (const p of pods) expect(p.metadata.labels['controller-revision-hash']).toBe(rev);
        const part = await getObj(kube, 'partitions', 'rolling-0');
        expect(part.status.operation).toBeUndefined();
        expect(condition(await getObj(kube, 'topics', 'rolling'), 'Ready').status).toBe('True');
      },
      120_000,
      1000,
    );
    // kwok restarts a pod faster than the scripted replicas sample, so the operator's own record
    // is the evidence: one operation at a time, each started, acted on and finished before the next.
    expect(fake.overlaps).toEqual([]);
    expect(fake.belowQuorum).toEqual([]);
    expect(fake.maxDisrupted).toBeLessThanOrEqual(1);
    expect(fake.leaderPodsDeleted).toEqual([]);
    const steps = active.lines
      .map((l) => JSON.parse(l) as Obj)
      .filter(
        (l) =>
          l.partition === 'rolling/0' &&
          /^rebalance_(operation_started|operation_finished|pod_deleted|transfer_leadership)$/.test(l.message),
      )
      .map((l) =>
        l.message === 'rebalance_transfer_leadership'
          ? `transfer:${l.reason}`
          : `${l.message.replace('rebalance_', '')}:${l.pod ?? ''}`,
      );
    const compact = steps.filter((x, i) => x !== steps[i - 1]);
    const started = compact.filter((x) => x.startsWith('operation_started'));
    expect(started).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      const from = compact.indexOf(started[i]);
      const end = compact.indexOf(`operation_finished:${started[i].split(':')[1]}`, from);
      expect(end).toBeGreaterThan(from);
      // Nothing else starts in between.
      expect(compact.slice(from + 1, end).filter((x) => x.startsWith('operation_started'))).toEqual([]);
    }
    // The leader was restarted last, after leadership was handed over (the replicas saw the request).
    const t = fake.transfers.slice(transfersBefore).filter((x) => x.topic === 'rolling');
    expect(t.some((x) => x.fromLeader === leaderBefore && x.ok)).toBe(true);
    expect(compact).toContain('transfer:before-roll');
    expect(compact.indexOf('transfer:before-roll')).toBeLessThan(
      compact.lastIndexOf(`pod_deleted:rolling-0-${leaderBefore!.split('.')[0]}`),
    );
    // A roll keeps the volumes: same claims, same incarnations.
    const after = new Map(
      (await listObjs(kube, 'pvcs', topicSel('rolling'))).map((c) => [c.metadata.name, c.metadata.uid]),
    );
    expect(after).toEqual(claims);
  });
});

describe('deletion: finalizer and deletionPolicy', () => {
  it('Retain: the Topic goes, its PVCs stay', async () => {
    await applyTopic(kube, 'keep', { partitions: 1, deletionPolicy: 'Retain' });
    await eventually(async () => expect(await listObjs(kube, 'pvcs', topicSel('keep'))).toHaveLength(4), 60_000);
    await kube.delete(topicPath('keep'));
    await eventually(async () => {
      expect(await getObj(kube, 'topics', 'keep')).toBeNull();
      expect(await getObj(kube, 'statefulsets', 'keep-0')).toBeNull();
      expect(await getObj(kube, 'partitions', 'keep-0')).toBeNull();
    }, 60_000);
    await sleep(2000);
    const pvcs = await listObjs(kube, 'pvcs', topicSel('keep'));
    expect(pvcs.map((p) => p.metadata.name).sort()).toEqual([
      'data-keep-0-0',
      'data-keep-0-1',
      'data-keep-0-2',
      'data-keep-0-3', // the spare slot's
    ]);
    expect(pvcs.every((p) => !p.metadata.deletionTimestamp)).toBe(true);
    // The peer-auth Secret holds no data: deleted under Retain too (docs/operator.md).
    expect(await getObj(kube, 'secrets', 'keep-peer-auth')).toBeNull();
  });

  it('Delete: the finalizer holds the Topic until pods and PVCs are gone', async () => {
    await applyTopic(kube, 'drop', { partitions: 1, deletionPolicy: 'Delete' });
    await eventually(async () => expect(await runningPods('drop')).toHaveLength(3), 60_000);
    await kube.delete(topicPath('drop'));
    await eventually(async () => {
      expect(await getObj(kube, 'topics', 'drop')).toBeNull();
      expect(await listObjs(kube, 'pvcs', topicSel('drop'))).toEqual([]);
    }, 90_000);
    expect(await getObj(kube, 'secrets', 'drop-peer-auth')).toBeNull();
  });
});

describe('high availability', () => {
  it('two operators: exactly one is active; a graceful stop hands over at once', async () => {
    const b = await startOp('op-b');
    await sleep(2000);
    expect([active.isLeader(), b.isLeader()]).toEqual([true, false]);
    expect(b.controller()).toBeNull();
    const lease = await kube.get<Obj>(resourcePath(RESOURCES.leases, { namespace: NS, name: 'daftka-operator' }));
    expect(lease.spec.holderIdentity).toBe(active.identity);
    const t0 = Date.now();
    await active.stop();
    await eventually(() => expect(b.isLeader()).toBe(true), 10_000, 100);
    expect(Date.now() - t0).toBeLessThan(5000);
    active = b;
    await applyTopic(kube, 'after-failover', { partitions: 1 });
    await eventually(async () => expect(await getObj(kube, 'statefulsets', 'after-failover-0')).not.toBeNull(), 30_000);
  });

  it('an operator killed mid-reconcile: the next one takes over after the Lease expires and converges', async () => {
    const c = await startOp('op-c');
    await applyTopic(kube, 'big', { partitions: 12 });
    await eventually(
      async () => expect((await listObjs(kube, 'partitions', topicSel('big'))).length).toBeGreaterThan(0),
      20_000,
      20,
    );
    await active.kill(); // no Lease release: op-c waits for it to expire
    const applied = (await listObjs(kube, 'statefulsets', topicSel('big'))).length;
    await eventually(() => expect(c.isLeader()).toBe(true), 15_000, 100);
    active = c;
    await eventually(
      async () => {
        expect(await listObjs(kube, 'statefulsets', topicSel('big'))).toHaveLength(12);
        expect(await listObjs(kube, 'services', topicSel('big'))).toHaveLength(12);
        expect(await listObjs(kube, 'pdbs', topicSel('big'))).toHaveLength(12);
        const t = await getObj(kube, 'topics', 'big');
        expect(t.status.partitions).toBe(12);
      },
      90_000,
      1000,
    );
    process.stderr.write(`restart mid-reconcile: ${applied}/12 StatefulSets existed when the first operator died\n`);
    // Three operators later, the Secret is the one first created (found, never written over).
    expect(await getObj(kube, 'secrets', 'big-peer-auth')).not.toBeNull();
    expectOrdersSecretUnchanged(await getObj(kube, 'secrets', 'orders-peer-auth'));
  });

  it('serves /healthz, /readyz and the reconcile metrics', async () => {
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${active.healthPort}${path}`);
      return { status: res.status, body: await res.text() };
    };
    expect((await get('/healthz')).status).toBe(200);
    // Ready once it leads with synced caches. The failover test above can pass before the new
    // leader synced (when the first operator had already made every object), so on a loaded
    // machine /readyz may still answer 503 "caches syncing" here: wait for it, within a bound.
    await eventually(
      async () => {
        const ready = await get('/readyz');
        expect(ready.status).toBe(200);
        expect(JSON.parse(ready.body)).toMatchObject({ ready: true, leader: true });
      },
      30_000,
      250,
    );
    const metrics = (await get('/metrics')).body;
    for (const name of [
      'daftka_operator_reconcile_duration_seconds_bucket',
      'daftka_operator_workqueue_depth',
      'daftka_operator_kube_requests_total',
      'daftka_operator_leader_skew',
      'daftka_operator_is_leader',
    ])
      expect(metrics).toContain(name);
  });

  it('signed every membership and leadership request of the whole run with the topic admin key', () => {
    // Transfers, and the drain's and roll's membership changes: the scripted replicas refuse what
    // real ones would (unsigned, stale, replayed, another topic's key) and none was refused.
    expect(fake.transfers.length).toBeGreaterThan(0);
    expect(fake.refusedControls).toEqual([]);
  });
});

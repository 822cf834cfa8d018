import { clientKeysFromSecretData, topicAdminSecret } from '../../../common/topic-credentials';
import { ClientKeysWriter, desiredGatewayClientKeys } from '../../../operator/catalog';
import { adminKeyOf, clientKeyOf, dirKeyring } from '../../../protocol/rpc-auth';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeClient } from '../../../common/kube';
import {
  desiredAdminSecret,
  desiredPartitions,
  desiredPeerSecret,
  desiredPdb,
  desiredService,
  desiredStatefulSet,
  desiredWorkloads,
  maxUnavailable,
  topicReplicas,
} from '../../../operator/desired';
import { peerSecretName } from '../../../operator/names';
import { settings, topic } from './fixtures';

/** The owner reference every object of Topic `orders` carries. */
const ownedByOrders = (uid: string | undefined) => [
  { apiVersion: 'daftka.io/v1alpha1', kind: 'Topic', name: 'orders', uid, controller: true, blockOwnerDeletion: true },
];

/* eslint-disable @typescript-eslint/no-explicit-any -- the objects are plain JSON; tests index into them */

const partitionObj = (name: string) => ({
  apiVersion: 'daftka.io/v1alpha1',
  kind: 'Partition',
  metadata: { name, uid: `puid-${name}` },
});

const labels = (t: string, p: number) => ({
  'app.kubernetes.io/name': 'daftka',
  'app.kubernetes.io/component': 'replica',
  'app.kubernetes.io/managed-by': 'daftka-operator',
  'app.kubernetes.io/instance': t,
  'daftka.io/topic': t,
  'daftka.io/partition': String(p),
});
const selector = (t: string, p: number) => ({
  'app.kubernetes.io/component': 'replica',
  'daftka.io/topic': t,
  'daftka.io/partition': String(p),
});

describe('desired state: Topic → Partitions', () => {
  it('makes one Partition per spec.partitions, owned by the Topic, with round-robin preferred leaders', () => {
    const parts = desiredPartitions(topic('orders', { partitions: 4, replicationFactor: 3 }));
    expect(parts.map((p) => p.metadata.name)).toEqual(['orders-0', 'orders-1', 'orders-2', 'orders-3']);
    expect(parts.map((p) => p.spec)).toEqual([
      { topic: 'orders', index: 0, replicas: 3, preferredLeader: 0 },
      { topic: 'orders', index: 1, replicas: 3, preferredLeader: 1 },
      { topic: 'orders', index: 2, replicas: 3, preferredLeader: 2 },
      { topic: 'orders', index: 3, replicas: 3, preferredLeader: 0 },
    ]);
    expect(parts[2].metadata).toEqual({
      name: 'orders-2',
      namespace: 'daftka',
      labels: labels('orders', 2),
      ownerReferences: ownedByOrders('uid-orders'),
    });
  });

  it('refuses to make owned objects for an owner that has no uid yet', () => {
    const t = topic('orders');
    delete t.metadata.uid;
    expect(() => desiredPartitions(t)).toThrow(/no uid yet/);
  });
});

describe('desired state: Partition → StatefulSet', () => {
  const t = topic('orders', { partitions: 2, replicationFactor: 3, retention: { ms: 3_600_000, bytes: 1 << 30 } });
  const replicas = topicReplicas(t, settings).filter((r) => r.partition === 1);
  const sts = desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, settings) as any;
  const pod = sts.spec.template.spec;
  const container = pod.containers[0];

  it('is named after the partition, owned by the Partition, selects only its pods', () => {
    expect(sts.apiVersion).toBe('apps/v1');
    expect(sts.kind).toBe('StatefulSet');
    expect(sts.metadata).toEqual({
      name: 'orders-1',
      namespace: 'daftka',
      labels: labels('orders', 1),
      ownerReferences: [
        {
          apiVersion: 'daftka.io/v1alpha1',
          kind: 'Partition',
          name: 'orders-1',
          uid: 'puid-orders-1',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    });
    expect(sts.spec.selector).toEqual({ matchLabels: selector('orders', 1) });
    expect(sts.spec.template.metadata.labels).toEqual(labels('orders', 1));
  });

  it('has RF replicas and the spare slot, parallel start, OnDelete updates, and the headless service name', () => {
    expect(sts.spec.replicas).toBe(4);
    expect(sts.spec.serviceName).toBe('orders-1');
    expect(sts.spec.podManagementPolicy).toBe('Parallel');
    expect(sts.spec.updateStrategy).toEqual({ type: 'OnDelete' });
  });

  it('pods start held by the spare-slot scheduling gate (the operator admits the occupied slots)', () => {
    expect(sts.spec.template.spec.schedulingGates).toEqual([{ name: 'daftka.io/spare-slot' }]);
  });

  it('claims a volume per pod (operator default, or spec.storage), kept on delete with deletionPolicy Retain', () => {
    expect(sts.spec.volumeClaimTemplates).toEqual([
      {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'data', labels: labels('orders', 1) },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } },
      },
    ]);
    expect(sts.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: 'Retain', whenScaled: 'Retain' });
    const del = desiredStatefulSet(
      topic('orders', { deletionPolicy: 'Delete', storage: { size: '50Gi', storageClassName: 'fast' } }),
      partitionObj('orders-1'),
      1,
      replicas,
      settings,
    ) as any;
    expect(del.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: 'Delete', whenScaled: 'Retain' });
    expect(del.spec.volumeClaimTemplates[0].spec).toEqual({
      accessModes: ['ReadWriteOnce'],
      storageClassName: 'fast',
      resources: { requests: { storage: '50Gi' } },
    });
  });

  it('keeps the claim templates of an existing StatefulSet (they are immutable)', () => {
    const existing = [
      {
        metadata: { name: 'data' },
        spec: { resources: { requests: { storage: '1Gi' } } },
        status: { phase: 'Pending' },
      },
    ];
    const kept = desiredStatefulSet(
      t,
      partitionObj('orders-1'),
      1,
      replicas,
      { ...settings, storage: { size: '99Gi' } },
      existing,
    ) as any;
    expect(kept.spec.volumeClaimTemplates).toBe(existing);
  });

  it('reads the NATS URL from a Secret when configured (credentials stay out of the pod spec)', () => {
    const withSecret = desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, {
      ...settings,
      natsUrlSecret: { name: 'nats-clients', key: 'replica-url' },
      imagePullSecrets: [{ name: 'regcred' }],
    }) as any;
    expect(withSecret.spec.template.spec.containers[0].env.find((e: any) => e.name === 'DAFTKA_NATS_URL')).toEqual({
      name: 'DAFTKA_NATS_URL',
      valueFrom: { secretKeyRef: { name: 'nats-clients', key: 'replica-url' } },
    });
    expect(withSecret.spec.template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
  });

  it('keeps replicas of a partition on different nodes (required) and spreads them over zones', () => {
    expect(pod.affinity).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'daftka.io/drain', operator: 'NotIn', values: ['true'] }] }],
        },
      },
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          { labelSelector: { matchLabels: selector('orders', 1) }, topologyKey: 'kubernetes.io/hostname' },
        ],
      },
    });
    expect(pod.topologySpreadConstraints).toEqual([
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: { matchLabels: selector('orders', 1) },
      },
    ]);
    const preferred = desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, {
      ...settings,
      antiAffinity: 'preferred',
    }) as any;
    expect(preferred.spec.template.spec.affinity.podAntiAffinity).toEqual({
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          podAffinityTerm: {
            labelSelector: { matchLabels: selector('orders', 1) },
            topologyKey: 'kubernetes.io/hostname',
          },
        },
      ],
    });
  });

  it('probes /readyz and /healthz on the http port and gives SIGTERM time to hand leadership over', () => {
    expect(container.readinessProbe).toEqual({
      httpGet: { path: '/readyz', port: 'http' },
      periodSeconds: 5,
      failureThreshold: 3,
      timeoutSeconds: 2,
    });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(pod.terminationGracePeriodSeconds).toBe(30);
    expect(container.ports).toEqual([
      { name: 'client', containerPort: 9092, protocol: 'TCP' },
      { name: 'peer', containerPort: 9093, protocol: 'TCP' },
      { name: 'http', containerPort: 9100, protocol: 'TCP' },
    ]);
  });

  it('runs as non-root with a read-only root filesystem, no service-account token, no service links', () => {
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      fsGroup: 10001,
      fsGroupChangePolicy: 'OnRootMismatch',
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(container.volumeMounts).toEqual([
      { name: 'data', mountPath: '/var/lib/daftka' },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.enableServiceLinks).toBe(false);
  });

  it('passes the replica contract from desiredReplicas, the ordinal from the pod-index label', () => {
    const host = (o: number) => `orders-1-${o}.orders-1.daftka.svc.cluster.local`;
    expect(container.env).toEqual([
      { name: 'DAFTKA_ADMIN_SECRET', valueFrom: { secretKeyRef: { name: 'orders-admin-auth', key: 'secret' } } },
      { name: 'DAFTKA_DATA_DIR', value: '/var/lib/daftka/data' },
      { name: 'DAFTKA_HTTP_PORT', value: '9100' },
      { name: 'DAFTKA_LISTEN_HOST', value: '0.0.0.0' },
      { name: 'DAFTKA_LOG_LEVEL', value: 'info' },
      { name: 'DAFTKA_MAX_RECORD_BYTES', value: String(1024 * 1024) },
      { name: 'DAFTKA_NATS_URL', value: 'nats://nats.daftka.svc:4222' },
      {
        name: 'DAFTKA_ORDINAL',
        valueFrom: { fieldRef: { fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" } },
      },
      { name: 'DAFTKA_PARTITION', value: '1' },
      { name: 'DAFTKA_PEER_SECRET', valueFrom: { secretKeyRef: { name: 'orders-peer-auth', key: 'secret' } } },
      // Every slot, the spare one too: a move adds a replica there (operator/slots.ts).
      { name: 'DAFTKA_REPLICAS', value: [0, 1, 2, 3].map((o) => `${host(o)}:9093:9092`).join(',') },
      { name: 'DAFTKA_REPLICATION_FACTOR', value: '3' },
      { name: 'DAFTKA_RETENTION_BYTES', value: String(1 << 30) },
      { name: 'DAFTKA_RETENTION_MS', value: '3600000' },
      { name: 'DAFTKA_SHUTDOWN_TIMEOUT_MS', value: '25000' },
      { name: 'DAFTKA_TOPIC', value: 'orders' },
      // Process settings the replica cannot apply itself (common/replica-process.ts).
      { name: 'MALLOC_ARENA_MAX', value: '2' },
      { name: 'MALLOC_MMAP_THRESHOLD_', value: '131072' },
      { name: 'MALLOC_TRIM_THRESHOLD_', value: '131072' },
      { name: 'NODE_OPTIONS', value: '--enable-source-maps --max-semi-space-size=4' },
    ]);
  });

  it("reads DAFTKA_PEER_SECRET from its own topic's peer-auth Secret, never from extraEnv", () => {
    const peerEnv = (sts: any) =>
      sts.spec.template.spec.containers[0].env.filter((e: any) => e.name === 'DAFTKA_PEER_SECRET');
    expect(peerEnv(sts)).toEqual([
      { name: 'DAFTKA_PEER_SECRET', valueFrom: { secretKeyRef: { name: 'orders-peer-auth', key: 'secret' } } },
    ]);
    // One value in extraEnv would be shared by every topic: it is ignored.
    const shared = { ...settings, extraEnv: { ...settings.extraEnv, DAFTKA_PEER_SECRET: 'x'.repeat(44) } };
    expect(peerEnv(desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, shared))).toEqual(peerEnv(sts));
    // Another topic's replicas read another Secret.
    const other = topic('payments', { partitions: 1 });
    const otherSts = desiredStatefulSet(other, partitionObj('payments-0'), 0, topicReplicas(other, settings), settings);
    expect(peerEnv(otherSts)).toEqual([
      { name: 'DAFTKA_PEER_SECRET', valueFrom: { secretKeyRef: { name: 'payments-peer-auth', key: 'secret' } } },
    ]);
    expect(peerSecretName('payments')).toBe('payments-peer-auth');
  });

  it("reads DAFTKA_ADMIN_SECRET from its own topic's admin-auth Secret; client-port admission is never switched off", () => {
    const securityEnv = (sts: any) =>
      sts.spec.template.spec.containers[0].env.filter((e: any) =>
        ['DAFTKA_ADMIN_SECRET', 'DAFTKA_CLIENT_AUTH', 'DAFTKA_PEER_SECRET'].includes(e.name),
      );
    const expected = [
      { name: 'DAFTKA_ADMIN_SECRET', valueFrom: { secretKeyRef: { name: 'orders-admin-auth', key: 'secret' } } },
      { name: 'DAFTKA_PEER_SECRET', valueFrom: { secretKeyRef: { name: 'orders-peer-auth', key: 'secret' } } },
    ];
    expect(securityEnv(sts)).toEqual(expected);
    // extraEnv cannot open the client port, nor hand every topic one admin secret.
    const open = {
      ...settings,
      extraEnv: { ...settings.extraEnv, DAFTKA_CLIENT_AUTH: 'off', DAFTKA_ADMIN_SECRET: 'a'.repeat(64) },
    };
    expect(securityEnv(desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, open))).toEqual(expected);
    // An operator without an installation admin secret gives replicas none (admin methods then refused).
    const none = { ...settings, adminAuth: false };
    expect(securityEnv(desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, none))).toEqual([expected[1]]);
  });

  it("with namespaceClientKeys, mounts its namespace's client keys Secret (optional) as DAFTKA_CLIENT_KEYS_DIR; never from extraEnv", () => {
    const keysOf = (sts: any) => {
      const pod = sts.spec.template.spec;
      return {
        env: pod.containers[0].env.filter((e: any) => e.name === 'DAFTKA_CLIENT_KEYS_DIR'),
        mounts: pod.containers[0].volumeMounts.filter((m: any) => m.name === 'client-keys'),
        volumes: pod.volumes.filter((v: any) => v.name === 'client-keys'),
      };
    };
    expect(keysOf(sts)).toEqual({ env: [], mounts: [], volumes: [] });
    const withKeys = { ...settings, namespaceClientKeys: true };
    expect(keysOf(desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, withKeys))).toEqual({
      env: [{ name: 'DAFTKA_CLIENT_KEYS_DIR', value: '/etc/daftka/client-keys' }],
      mounts: [{ name: 'client-keys', mountPath: '/etc/daftka/client-keys', readOnly: true }],
      volumes: [{ name: 'client-keys', secret: { secretName: 'daftka-client-keys', optional: true } }],
    });
    const pointed = { ...settings, extraEnv: { DAFTKA_CLIENT_KEYS_DIR: '/elsewhere' } };
    expect(keysOf(desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, pointed)).env).toEqual([]);
  });

  it('with a TLS Secret, mounts it whole (rotation needs the symlink swap, not a subPath) as DAFTKA_TLS_DIR; never from extraEnv', () => {
    const tlsOf = (sts: any) => {
      const pod = sts.spec.template.spec;
      return {
        env: pod.containers[0].env.filter((e: any) => e.name.startsWith('DAFTKA_TLS_')),
        mounts: pod.containers[0].volumeMounts.filter((m: any) => m.name === 'tls'),
        volumes: pod.volumes.filter((v: any) => v.name === 'tls'),
      };
    };
    expect(tlsOf(sts)).toEqual({ env: [], mounts: [], volumes: [] });
    const withTls = { ...settings, tls: { secretName: 'daftka-replica-tls', serverName: 'replica.daftka.internal' } };
    expect(tlsOf(desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, withTls))).toEqual({
      env: [
        { name: 'DAFTKA_TLS_DIR', value: '/etc/daftka/tls' },
        { name: 'DAFTKA_TLS_SERVER_NAME', value: 'replica.daftka.internal' },
      ],
      mounts: [{ name: 'tls', mountPath: '/etc/daftka/tls', readOnly: true }],
      // Not optional: a replica told to serve TLS does not start without its certificate.
      volumes: [{ name: 'tls', secret: { secretName: 'daftka-replica-tls', defaultMode: 0o440 } }],
    });
    // extraEnv can neither switch TLS off nor point it elsewhere.
    const pointed = { ...withTls, extraEnv: { DAFTKA_TLS_DIR: '', DAFTKA_TLS_SERVER_NAME: 'evil' } };
    expect(tlsOf(desiredStatefulSet(t, partitionObj('orders-1'), 1, replicas, pointed)).env).toEqual([
      { name: 'DAFTKA_TLS_DIR', value: '/etc/daftka/tls' },
      { name: 'DAFTKA_TLS_SERVER_NAME', value: 'replica.daftka.internal' },
    ]);
  });

  it('takes image and resources from the operator config unless the Topic sets resources', () => {
    expect(container.image).toBe('ghcr.io/daftka/daftka:1.2.3');
    expect(container.command).toEqual(['node', 'dist/replica/main.js']);
    expect(container.resources).toEqual({ requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } });
    const own = desiredStatefulSet(
      topic('orders', { resources: { requests: { cpu: '2' }, limits: { cpu: 4, memory: '8Gi' } } }),
      partitionObj('orders-1'),
      1,
      replicas,
      settings,
    ) as any;
    expect(own.spec.template.spec.containers[0].resources).toEqual({
      requests: { cpu: '2' },
      limits: { cpu: 4, memory: '8Gi' },
    });
  });
});

describe('desired state: Topic → peer-auth Secret', () => {
  const value = 'q'.repeat(43) + '=';

  it('is named after the topic, labelled like its other objects, owned by the Topic, immutable', () => {
    expect(desiredPeerSecret(topic('orders'), value)).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'orders-peer-auth',
        namespace: 'daftka',
        labels: {
          'app.kubernetes.io/name': 'daftka',
          'app.kubernetes.io/component': 'peer-auth',
          'app.kubernetes.io/managed-by': 'daftka-operator',
          'app.kubernetes.io/instance': 'orders',
          'daftka.io/topic': 'orders',
        },
        ownerReferences: ownedByOrders('uid-orders'),
      },
      type: 'Opaque',
      immutable: true,
      data: { secret: Buffer.from(value).toString('base64') },
    });
  });

  it('refuses a value shorter than the 32 characters replicas accept', () => {
    expect(() => desiredPeerSecret(topic('orders'), 'x'.repeat(31))).toThrow(/31 characters, at least 32/);
  });
});

describe('desired state: Topic → admin-auth Secret', () => {
  const install = 'i'.repeat(48);

  it("holds the topic's admin secret derived from the installation's, owned by the Topic", () => {
    const secret = desiredAdminSecret(topic('orders'), install) as any;
    expect(secret).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'orders-admin-auth',
        namespace: 'daftka',
        labels: {
          'app.kubernetes.io/name': 'daftka',
          'app.kubernetes.io/component': 'admin-auth',
          'app.kubernetes.io/managed-by': 'daftka-operator',
          'app.kubernetes.io/instance': 'orders',
          'daftka.io/topic': 'orders',
        },
        ownerReferences: ownedByOrders('uid-orders'),
      },
      type: 'Opaque',
      data: { secret: Buffer.from(topicAdminSecret(install, 'orders')).toString('base64') },
    });
    const value = Buffer.from(secret.data.secret, 'base64').toString('utf8');
    // 64 hex characters: a replica accepts it as DAFTKA_ADMIN_SECRET (at least 32).
    expect(value).toMatch(/^[0-9a-f]{64}$/);
    expect(value).not.toContain(install);
  });

  it("gives each topic its own value: one topic's admin key is not another's, nor the installation's", () => {
    const orders = topicAdminSecret(install, 'orders');
    const payments = topicAdminSecret(install, 'payments');
    expect(payments).not.toBe(orders);
    expect(adminKeyOf(orders).equals(adminKeyOf(payments))).toBe(false);
    expect(adminKeyOf(orders).equals(adminKeyOf(install))).toBe(false);
    // Deterministic: every operator instance and restart computes the same value.
    expect(topicAdminSecret(install, 'orders')).toBe(orders);
    expect(topicAdminSecret('j'.repeat(48), 'orders')).not.toBe(orders);
    expect(() => topicAdminSecret('short', 'orders')).toThrow(/at least 32/);
  });
});

describe("desired state: the gateway's client keys Secret", () => {
  const peer = (t: string) => `${t}-`.padEnd(44, 'p');
  const keys = new Map([
    ['payments', clientKeyOf(peer('payments'), 'payments').toString('hex')],
    ['orders', clientKeyOf(peer('orders'), 'orders').toString('hex')],
  ]);

  it('holds one data key per topic, the client key in hex, sorted; nothing else', () => {
    const obj = desiredGatewayClientKeys(
      { namespace: 'daftka-system', name: 'daftka-gateway-client-keys' },
      keys,
    ) as any;
    expect(obj).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'daftka-gateway-client-keys', namespace: 'daftka-system' },
      type: 'Opaque',
      data: {
        orders: Buffer.from(keys.get('orders')!).toString('base64'),
        payments: Buffer.from(keys.get('payments')!).toString('base64'),
      },
    });
    expect(Object.keys(obj.data)).toEqual(['orders', 'payments']);
  });

  it("what the gateway reads back is each topic's client key, the same as local mode's keys folder holds", () => {
    const obj = desiredGatewayClientKeys({ namespace: 'd', name: 'k' }, keys) as any;
    const read = clientKeysFromSecretData(obj.data);
    expect([...read.keys()].sort()).toEqual(['orders', 'payments']);
    expect(read.get('orders')).toEqual(clientKeyOf(peer('orders'), 'orders'));
    // The same Secret mounted as a folder (a file per data key) is a dirKeyring.
    const dir = mkdtempSync(join(tmpdir(), 'daftka-keys-'));
    try {
      for (const [k, v] of Object.entries(obj.data as Record<string, string>))
        writeFileSync(join(dir, k), Buffer.from(v, 'base64'));
      expect(dirKeyring(dir)('payments')).toEqual(read.get('payments'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Malformed entries are no key at all.
    const bad = clientKeysFromSecretData({
      'Bad Name': obj.data.orders,
      short: Buffer.from('abcd').toString('base64'),
      orders: obj.data.orders,
    });
    expect([...bad.keys()]).toEqual(['orders']);
  });

  it('is applied only when the keys change, and a deleted topic leaves it', async () => {
    const applied: any[] = [];
    const kube = { apply: async (path: string, obj: any) => applied.push({ path, obj }) } as unknown as KubeClient;
    const w = new ClientKeysWriter(kube, { namespace: 'daftka-system', name: 'daftka-gateway-client-keys' });
    expect(await w.write(keys)).toBe(true);
    expect(await w.write(new Map(keys))).toBe(false);
    expect(await w.write(new Map([['orders', keys.get('orders')!]]))).toBe(true);
    expect(applied.map((a) => a.path)).toEqual([
      '/api/v1/namespaces/daftka-system/secrets/daftka-gateway-client-keys',
      '/api/v1/namespaces/daftka-system/secrets/daftka-gateway-client-keys',
    ]);
    expect(Object.keys(applied[1].obj.data)).toEqual(['orders']);
  });
});

describe('desired state: Service and PodDisruptionBudget', () => {
  const t = topic('orders', { replicationFactor: 5 });

  it('a headless Service that publishes not-ready pods so peers find each other before they are ready', () => {
    expect(desiredService(t, partitionObj('orders-0'), 0, settings)).toEqual({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'orders-0',
        namespace: 'daftka',
        labels: labels('orders', 0),
        ownerReferences: [
          {
            apiVersion: 'daftka.io/v1alpha1',
            kind: 'Partition',
            name: 'orders-0',
            uid: 'puid-orders-0',
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {
        clusterIP: 'None',
        publishNotReadyAddresses: true,
        selector: selector('orders', 0),
        ports: [
          { name: 'client', port: 9092, targetPort: 'client', protocol: 'TCP' },
          { name: 'peer', port: 9093, targetPort: 'peer', protocol: 'TCP' },
          { name: 'http', port: 9100, targetPort: 'http', protocol: 'TCP' },
        ],
      },
    });
  });

  it.each([
    [1, 0],
    [3, 1],
    [5, 2],
    [7, 3],
  ])('RF %i → PDB minAvailable RF − %i (a majority always stays up; one more voter during a move)', (rf, max) => {
    expect(maxUnavailable(rf)).toBe(max);
    const pdb = desiredPdb(
      topic('x', { replicationFactor: rf as 1 | 3 | 5 | 7 }),
      partitionObj('x-0'),
      0,
      settings,
    ) as any;
    expect(pdb.apiVersion).toBe('policy/v1');
    // minAvailable: the StatefulSet also holds the gated spare pod, which is never available.
    expect(pdb.spec).toEqual({ minAvailable: rf - max, selector: { matchLabels: selector('x', 0) } });
    const moving = desiredPdb(
      topic('x', { replicationFactor: rf as 1 | 3 | 5 | 7 }),
      partitionObj('x-0'),
      0,
      settings,
      rf + 1,
    ) as any;
    expect(moving.spec.minAvailable).toBe(Math.floor((rf + 1) / 2) + 1);
  });

  it('desiredWorkloads makes the three objects for every partition that exists', () => {
    const parts = new Map([
      [0, partitionObj('orders-0')],
      [2, partitionObj('orders-2')],
    ]);
    const w = desiredWorkloads(topic('orders', { partitions: 3 }), parts, settings);
    expect(w.map((x) => [x.index, x.statefulSet.metadata.name, x.service.metadata.name, x.pdb.metadata.name])).toEqual([
      [0, 'orders-0', 'orders-0', 'orders-0'],
      [2, 'orders-2', 'orders-2', 'orders-2'],
    ]);
  });
});

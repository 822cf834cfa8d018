/**
 * Desired state, as pure functions of the Topic spec and the operator's settings (STYLE.md:
 * controller-runtime, level-triggered). Topic → Partition objects and the peer-auth Secret;
 * Partition → StatefulSet, headless Service and PodDisruptionBudget. The replica configuration
 * comes from common/topic-spec.ts `desiredReplicas`, the same function local mode uses with its
 * process driver. The topic's admin-auth Secret too (desiredAdminSecret); the gateway's client
 * keys Secret is in operator/catalog.ts.
 */
import { MIN_PEER_SECRET_CHARS } from '../common/peer-secret';
import { CLIENT_AUTH_ENV, topicAdminSecret } from '../common/topic-credentials';
import { desiredReplicas, type DesiredReplica } from '../common/topic-spec';
import { API_VERSION, type OwnerReference, type Partition, type Topic } from './crd-schema';
import { SPARE_GATE, slotCount } from './slots';
import {
  ADMIN_SECRET_ENV,
  ADMIN_SECRET_KEY,
  DATA_DIR,
  DATA_MOUNT,
  DRAIN_LABEL,
  HOSTNAME_LABEL,
  PEER_SECRET_ENV,
  PEER_SECRET_KEY,
  POD_INDEX_LABEL,
  PORTS,
  VOLUME_NAME,
  ZONE_LABEL,
  partitionLabels,
  partitionName,
  partitionSelector,
  adminSecretName,
  CLIENT_KEYS_MOUNT,
  TLS_MOUNT,
  NAMESPACE_CLIENT_KEYS_SECRET,
  peerSecretName,
  replicaHost,
  topicLabels,
  REPLICA_CONTAINER,
} from './names';

/** What the operator's config decides about every replica pod (operator/config.ts). */
export interface ReplicaSettings {
  namespace: string;
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  imagePullSecrets?: Array<{ name: string }>;
  /** Container command; the image's entrypoint when empty. */
  command: string[];
  natsUrl: string;
  /** When set, replicas read DAFTKA_NATS_URL from this Secret (credentials stay out of the pod spec). */
  natsUrlSecret?: { name: string; key: string };
  clusterDomain: string;
  /** Container resources when the Topic has none. */
  resources: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  /** PVC size and class when the Topic has no spec.storage (fixed per StatefulSet once created). */
  storage: { size?: string; storageClassName?: string };
  /**
   * required: two replicas of a partition never share a node (a node loss costs at most one vote);
   * pods stay Pending when there are fewer schedulable nodes than replicas.
   * preferred: the scheduler tries; the rebalancer moves co-located replicas when a node frees up.
   */
  antiAffinity: 'required' | 'preferred';
  /** Time a replica gets on SIGTERM to hand leadership over and flush. */
  terminationGracePeriodSeconds: number;
  /** UID/GID the replica runs as (non-root). */
  runAsUser: number;
  /** Extra replica environment (e.g. DAFTKA_LOG_LEVEL); never overrides the contract variables. */
  extraEnv: Record<string, string>;
  /** ServiceAccount of replica pods; its token is not mounted (replicas never call the apiserver). */
  serviceAccountName?: string;
  /**
   * The operator holds an installation admin secret: replicas read DAFTKA_ADMIN_SECRET from their
   * topic's admin-auth Secret (desiredAdminSecret). Without it admin methods on the client port
   * are refused to everyone (the replica's rule when it has a peer secret and no admin secret).
   */
  adminAuth?: boolean;
  /**
   * Replica pods mount their namespace's client keys Secret (NAMESPACE_CLIENT_KEYS_SECRET, optional)
   * as DAFTKA_CLIENT_KEYS_DIR: replay into another topic of the same namespace.
   */
  namespaceClientKeys?: boolean;
  /**
   * Replica pods mount this kubernetes.io/tls Secret of their namespace (tls.crt, tls.key, ca.crt;
   * cert-manager's layout) as DAFTKA_TLS_DIR: TLS on the client port, mutual TLS on the peer port.
   * `serverName`: the name replicas check in each other's certificates (default: the pod DNS name).
   */
  tls?: { secretName: string; serverName?: string };
}

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReference[];
  };
} & Record<string, unknown>;

export function ownerRef(obj: { apiVersion: string; kind: string; metadata: { name: string; uid?: string } }) {
  if (!obj.metadata.uid) throw new Error(`ownerRef: ${obj.kind} ${obj.metadata.name} has no uid yet`);
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    name: obj.metadata.name,
    uid: obj.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** PodDisruptionBudget: a majority must stay up. RF=1 gives 0: voluntary evictions are refused (see docs/operator.md). */
export function maxUnavailable(replicationFactor: number): number {
  return Math.floor((replicationFactor - 1) / 2);
}

/**
 * The PDB's minAvailable: a majority of the voters — RF, or RF + 1 while a move has added the new
 * replica and not yet removed the old one. (minAvailable, not maxUnavailable: the StatefulSet has
 * RF + 1 pods, one of them the gated spare that is never available; see operator/slots.ts.)
 */
export function minAvailable(voters: number): number {
  return voters - maxUnavailable(voters);
}

/** The preferred leader of a partition: ordinals round-robin over partitions, as Kafka's first replica. */
export function preferredLeader(index: number, replicationFactor: number): number {
  return index % replicationFactor;
}

/** Every replica of the topic with its configuration contract (desiredReplicas with pod DNS names). */
export function topicReplicas(topic: Topic, s: ReplicaSettings): DesiredReplica[] {
  const name = topic.metadata.name;
  return desiredReplicas(
    name,
    topic.spec,
    (p, o) => ({
      host: replicaHost(s.namespace, name, p, o, s.clusterDomain),
      peerPort: PORTS.peer,
      clientPort: PORTS.client,
      httpPort: PORTS.http,
    }),
    { natsUrl: s.natsUrl, dataDir: () => DATA_DIR, listenHost: '0.0.0.0', spareSlots: 1 },
  );
}

export function desiredPartition(topic: Topic, index: number): Partition {
  const name = topic.metadata.name;
  const rf = topic.spec.replicationFactor;
  return {
    apiVersion: API_VERSION,
    kind: 'Partition',
    metadata: {
      name: partitionName(name, index),
      namespace: topic.metadata.namespace,
      labels: partitionLabels(name, index),
      ownerReferences: [ownerRef(topic)],
    },
    spec: { topic: name, index, replicas: rf, preferredLeader: preferredLeader(index, rf) },
  };
}

export function desiredPartitions(topic: Topic): Partition[] {
  return Array.from({ length: topic.spec.partitions }, (_, i) => desiredPartition(topic, i));
}

/** Shortest peer secret the replicas accept. */
export { MIN_PEER_SECRET_CHARS };

/**
 * The Topic's peer-auth Secret, holding `value` (the caller draws it: 32 random bytes, base64).
 * Only ever created, never applied over an existing one: replacing the value would split running
 * replicas (old value) from restarted ones (new value). Immutable, so nothing else overwrites it
 * either; to change it, delete it (the operator makes a new one) and restart the topic's pods.
 */
export function desiredPeerSecret(topic: Topic, value: string): KubeObject {
  if (value.length < MIN_PEER_SECRET_CHARS)
    throw new Error(`desiredPeerSecret: ${value.length} characters, at least ${MIN_PEER_SECRET_CHARS} needed`);
  const name = topic.metadata.name;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: peerSecretName(name),
      namespace: topic.metadata.namespace,
      labels: topicLabels(name, 'peer-auth'),
      ownerReferences: [ownerRef(topic)],
    },
    type: 'Opaque',
    immutable: true,
    data: { [PEER_SECRET_KEY]: Buffer.from(value, 'utf8').toString('base64') },
  };
}

/**
 * The topic's admin-auth Secret: the topic admin secret derived from the installation's admin
 * secret (common/topic-credentials.ts), hex. A pure function of both, so it is applied like any
 * desired object; a new installation secret changes it, and the replicas take the new value when
 * they restart. Only this topic's admin rights can be had from it.
 */
export function desiredAdminSecret(topic: Topic, installAdminSecret: string): KubeObject {
  const name = topic.metadata.name;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: adminSecretName(name),
      namespace: topic.metadata.namespace,
      labels: topicLabels(name, 'admin-auth'),
      ownerReferences: [ownerRef(topic)],
    },
    type: 'Opaque',
    data: { [ADMIN_SECRET_KEY]: Buffer.from(topicAdminSecret(installAdminSecret, name), 'utf8').toString('base64') },
  };
}

const CONTRACT_ENV = new Set(['DAFTKA_ORDINAL']);
/** Security settings extraEnv may not set: secrets come from Secrets, admission is never switched off. */
const RESERVED_ENV = new Set([
  PEER_SECRET_ENV,
  ADMIN_SECRET_ENV,
  CLIENT_AUTH_ENV,
  'DAFTKA_CLIENT_KEYS_DIR',
  'DAFTKA_TLS_DIR',
  'DAFTKA_TLS_SERVER_NAME',
]);

/**
 * The pod environment: the contract of ordinal 0 with DAFTKA_ORDINAL taken from the pod's index
 * label, and DAFTKA_PEER_SECRET from the topic's peer-auth Secret (never a plain value, never from
 * extraEnv: one value for every topic would let any topic's replica pose as a peer of another);
 * likewise DAFTKA_ADMIN_SECRET from the topic's admin-auth Secret. Client-port admission stays at
 * its default (required): extraEnv cannot turn it off.
 */
function podEnv(topic: string, replicas: readonly DesiredReplica[], s: ReplicaSettings) {
  const first = replicas.find((r) => r.ordinal === 0);
  if (!first) throw new Error('podEnv: no ordinal 0 among the replicas');
  // Every ordinal shares one pod template: only the ordinal differs between them.
  for (const r of replicas)
    for (const [k, v] of Object.entries(r.env))
      if (!CONTRACT_ENV.has(k) && first.env[k] !== v)
        throw new Error(`podEnv: ${k} differs between ordinals (${first.env[k]} vs ${v}); one template cannot hold it`);
  const env: Array<Record<string, unknown>> = [];
  const contract = { ...first.env };
  delete contract[PEER_SECRET_ENV];
  for (const [k, v] of Object.entries(s.extraEnv))
    if (!(k in contract) && !RESERVED_ENV.has(k)) env.push({ name: k, value: v });
  env.push({
    name: PEER_SECRET_ENV,
    valueFrom: { secretKeyRef: { name: peerSecretName(topic), key: PEER_SECRET_KEY } },
  });
  if (s.adminAuth)
    env.push({
      name: ADMIN_SECRET_ENV,
      valueFrom: { secretKeyRef: { name: adminSecretName(topic), key: ADMIN_SECRET_KEY } },
    });
  if (s.namespaceClientKeys) env.push({ name: 'DAFTKA_CLIENT_KEYS_DIR', value: CLIENT_KEYS_MOUNT });
  if (s.tls) env.push({ name: 'DAFTKA_TLS_DIR', value: TLS_MOUNT });
  if (s.tls?.serverName) env.push({ name: 'DAFTKA_TLS_SERVER_NAME', value: s.tls.serverName });
  for (const [k, v] of Object.entries(contract)) {
    if (k === 'DAFTKA_ORDINAL')
      env.push({ name: k, valueFrom: { fieldRef: { fieldPath: `metadata.labels['${POD_INDEX_LABEL}']` } } });
    else if (k === 'DAFTKA_NATS_URL' && s.natsUrlSecret)
      env.push({ name: k, valueFrom: { secretKeyRef: { name: s.natsUrlSecret.name, key: s.natsUrlSecret.key } } });
    else env.push({ name: k, value: v });
  }
  // SIGTERM handling must finish inside the grace period, with a margin for the kubelet.
  const shutdownMs = Math.max(1000, (s.terminationGracePeriodSeconds - 5) * 1000);
  env.push({ name: 'DAFTKA_SHUTDOWN_TIMEOUT_MS', value: String(shutdownMs) });
  return env.sort((a, b) => String(a.name).localeCompare(String(b.name)));
}

function podAffinity(topic: string, index: number, s: ReplicaSettings) {
  const term = { labelSelector: { matchLabels: partitionSelector(topic, index) }, topologyKey: HOSTNAME_LABEL };
  return {
    // Never (re)schedule onto a node marked for drain; NotIn also matches nodes without the label.
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: DRAIN_LABEL, operator: 'NotIn', values: ['true'] }] }],
      },
    },
    podAntiAffinity:
      s.antiAffinity === 'required'
        ? { requiredDuringSchedulingIgnoredDuringExecution: [term] }
        : { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: term }] },
  };
}

/** The volume claim template of a new StatefulSet: the Topic's storage, else the operator's default. */
export function desiredClaimTemplate(topic: Topic, index: number, s: ReplicaSettings) {
  const size = topic.spec.storage?.size ?? s.storage.size ?? '10Gi';
  const storageClassName = topic.spec.storage?.storageClassName ?? s.storage.storageClassName;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: VOLUME_NAME, labels: partitionLabels(topic.metadata.name, index) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      ...(storageClassName ? { storageClassName } : {}),
      resources: { requests: { storage: size } },
    },
  };
}

type ClaimTemplate = ReturnType<typeof desiredClaimTemplate>;

/**
 * The existing templates when they differ from the desired one in what matters (name, size, class,
 * access modes), since they cannot change; otherwise the desired one (the server's copy carries
 * defaults such as volumeMode and status, which would make every apply look like a change).
 */
function claimTemplates(desired: ClaimTemplate, existing: unknown[] | undefined): unknown[] {
  if (!existing) return [desired];
  const e = existing as Array<Partial<ClaimTemplate>>;
  const same =
    e.length === 1 &&
    e[0].metadata?.name === desired.metadata.name &&
    e[0].spec?.resources?.requests?.storage === desired.spec.resources.requests.storage &&
    (e[0].spec?.storageClassName ?? '') === (desired.spec.storageClassName ?? '') &&
    JSON.stringify(e[0].spec?.accessModes) === JSON.stringify(desired.spec.accessModes);
  return same ? [desired] : existing;
}

/**
 * The StatefulSet of one partition. `existingClaimTemplates` are those of the StatefulSet when it
 * already exists: volume claim templates are immutable, so a later change of the operator's
 * default storage applies to new partitions only and never blocks updates of existing ones.
 */
export function desiredStatefulSet(
  topic: Topic,
  partition: { metadata: { name: string; uid?: string }; apiVersion: string; kind: string },
  index: number,
  replicas: readonly DesiredReplica[],
  s: ReplicaSettings,
  existingClaimTemplates?: unknown[],
): KubeObject {
  const name = topic.metadata.name;
  const rf = topic.spec.replicationFactor;
  const labels = partitionLabels(name, index);
  const selector = partitionSelector(name, index);
  const resources = topic.spec.resources ?? s.resources;
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: {
      name: partitionName(name, index),
      namespace: s.namespace,
      labels,
      ownerReferences: [ownerRef(partition)],
    },
    spec: {
      // RF replicas and the spare slot, whose pod the scheduling gate holds (operator/slots.ts).
      replicas: slotCount(rf),
      serviceName: partitionName(name, index),
      selector: { matchLabels: selector },
      // Parallel: ordinal 0 bootstraps only once every peer answers, so ordered start-up would deadlock.
      podManagementPolicy: 'Parallel',
      // The operator rolls pods itself: one at a time, leadership moved off first (operator/rebalancer.ts).
      updateStrategy: { type: 'OnDelete' },
      persistentVolumeClaimRetentionPolicy: {
        whenDeleted: topic.spec.deletionPolicy === 'Delete' ? 'Delete' : 'Retain',
        whenScaled: 'Retain',
      },
      revisionHistoryLimit: 5,
      template: {
        metadata: {
          labels,
          annotations: { 'kubectl.kubernetes.io/default-container': 'replica' },
        },
        spec: {
          ...(s.serviceAccountName ? { serviceAccountName: s.serviceAccountName } : {}),
          ...(s.imagePullSecrets && s.imagePullSecrets.length > 0 ? { imagePullSecrets: s.imagePullSecrets } : {}),
          automountServiceAccountToken: false,
          // Held until the operator admits the pod: only occupied slots run (operator/slots.ts).
          schedulingGates: [{ name: SPARE_GATE }],
          // Thousands of Services in a namespace would otherwise become thousands of env variables.
          enableServiceLinks: false,
          terminationGracePeriodSeconds: s.terminationGracePeriodSeconds,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: s.runAsUser,
            runAsGroup: s.runAsUser,
            fsGroup: s.runAsUser,
            fsGroupChangePolicy: 'OnRootMismatch',
            seccompProfile: { type: 'RuntimeDefault' },
          },
          affinity: podAffinity(name, index, s),
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: ZONE_LABEL,
              // Fewer zones than replicas must still schedule; the rebalancer reports co-location.
              whenUnsatisfiable: 'ScheduleAnyway',
              labelSelector: { matchLabels: selector },
            },
          ],
          containers: [
            {
              name: REPLICA_CONTAINER,
              image: s.image,
              imagePullPolicy: s.imagePullPolicy,
              ...(s.command.length > 0 ? { command: s.command } : {}),
              ports: [
                { name: 'client', containerPort: PORTS.client, protocol: 'TCP' },
                { name: 'peer', containerPort: PORTS.peer, protocol: 'TCP' },
                { name: 'http', containerPort: PORTS.http, protocol: 'TCP' },
              ],
              env: podEnv(name, replicas, s),
              resources,
              startupProbe: {
                httpGet: { path: '/healthz', port: 'http' },
                periodSeconds: 2,
                failureThreshold: 60,
                timeoutSeconds: 2,
              },
              livenessProbe: {
                httpGet: { path: '/healthz', port: 'http' },
                periodSeconds: 10,
                failureThreshold: 6,
                timeoutSeconds: 5,
              },
              readinessProbe: {
                httpGet: { path: '/readyz', port: 'http' },
                periodSeconds: 5,
                failureThreshold: 3,
                timeoutSeconds: 2,
              },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: VOLUME_NAME, mountPath: DATA_MOUNT },
                { name: 'tmp', mountPath: '/tmp' },
                ...(s.namespaceClientKeys
                  ? [{ name: 'client-keys', mountPath: CLIENT_KEYS_MOUNT, readOnly: true }]
                  : []),
                // The whole folder, never subPath: the kubelet updates a mounted Secret by swapping a
                // symlink, which a subPath mount never sees (the replica polls the files, common/tls.ts).
                ...(s.tls ? [{ name: 'tls', mountPath: TLS_MOUNT, readOnly: true }] : []),
              ],
            },
          ],
          volumes: [
            { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
            // Optional: pods start before the operator first writes it; the kubelet fills it in later.
            ...(s.namespaceClientKeys
              ? [{ name: 'client-keys', secret: { secretName: NAMESPACE_CLIENT_KEYS_SECRET, optional: true } }]
              : []),
            // Not optional: a replica told to serve TLS must not start without its certificate.
            ...(s.tls ? [{ name: 'tls', secret: { secretName: s.tls.secretName, defaultMode: 0o440 } }] : []),
          ],
        },
      },
      volumeClaimTemplates: claimTemplates(desiredClaimTemplate(topic, index, s), existingClaimTemplates),
    },
  };
}

export function desiredService(
  topic: Topic,
  partition: { metadata: { name: string; uid?: string }; apiVersion: string; kind: string },
  index: number,
  s: ReplicaSettings,
): KubeObject {
  const name = topic.metadata.name;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: partitionName(name, index),
      namespace: s.namespace,
      labels: partitionLabels(name, index),
      ownerReferences: [ownerRef(partition)],
    },
    spec: {
      clusterIP: 'None',
      // Peers must find each other before they are ready: readiness needs a formed group.
      publishNotReadyAddresses: true,
      selector: partitionSelector(name, index),
      ports: [
        { name: 'client', port: PORTS.client, targetPort: 'client', protocol: 'TCP' },
        { name: 'peer', port: PORTS.peer, targetPort: 'peer', protocol: 'TCP' },
        { name: 'http', port: PORTS.http, targetPort: 'http', protocol: 'TCP' },
      ],
    },
  };
}

export function desiredPdb(
  topic: Topic,
  partition: { metadata: { name: string; uid?: string }; apiVersion: string; kind: string },
  index: number,
  s: ReplicaSettings,
  voters: number = topic.spec.replicationFactor,
): KubeObject {
  const name = topic.metadata.name;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: {
      name: partitionName(name, index),
      namespace: s.namespace,
      labels: partitionLabels(name, index),
      ownerReferences: [ownerRef(partition)],
    },
    spec: {
      minAvailable: minAvailable(voters),
      selector: { matchLabels: partitionSelector(name, index) },
    },
  };
}

/** StatefulSet, Service and PDB of every partition, given the Partition objects (with uids) by index. */
export function desiredWorkloads(
  topic: Topic,
  partitions: ReadonlyMap<
    number,
    { metadata: { name: string; uid?: string }; apiVersion: string; kind: string; status?: Partition['status'] }
  >,
  s: ReplicaSettings,
  existingClaimTemplates: (index: number) => unknown[] | undefined = () => undefined,
): Array<{ index: number; statefulSet: KubeObject; service: KubeObject; pdb: KubeObject }> {
  const all = topicReplicas(topic, s);
  const byPartition = new Map<number, DesiredReplica[]>();
  for (const r of all) {
    const list = byPartition.get(r.partition) ?? [];
    list.push(r);
    byPartition.set(r.partition, list);
  }
  const out = [];
  for (let index = 0; index < topic.spec.partitions; index++) {
    const p = partitions.get(index);
    if (!p) continue;
    out.push({
      index,
      statefulSet: desiredStatefulSet(topic, p, index, byPartition.get(index) ?? [], s, existingClaimTemplates(index)),
      service: desiredService(topic, p, index, s),
      // A move in progress has one voter more (the new replica before the old one leaves).
      pdb: desiredPdb(
        topic,
        p,
        index,
        s,
        topic.spec.replicationFactor + (p.status?.operation?.kind === 'move' ? 1 : 0),
      ),
    });
  }
  return out;
}

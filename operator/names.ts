/**
 * Names, labels and fixed ports of the objects the operator manages. A partition `p` of topic `t`
 * is the Partition `t-p`, the StatefulSet, headless Service and PodDisruptionBudget `t-p`, the pods
 * `t-p-<ordinal>` and their PVCs `data-t-p-<ordinal>`. The topic's replicas share the peer
 * authentication Secret `t-peer-auth` and the admin-auth Secret `t-admin-auth`.
 */

export const FIELD_MANAGER = 'daftka-operator';
/** The rebalancer writes `status.operation` of Partitions under its own manager (SSA ownership). */
export const REBALANCER_FIELD_MANAGER = 'daftka-operator-rebalancer';
export const FINALIZER = 'daftka.io/cleanup';
/** Hash of the desired object last applied: lets a restarted operator skip identical applies. */
export const HASH_ANNOTATION = 'daftka.io/applied-hash';
export const DRAIN_LABEL = 'daftka.io/drain';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const HOSTNAME_LABEL = 'kubernetes.io/hostname';
export const POD_INDEX_LABEL = 'apps.kubernetes.io/pod-index';
export const REVISION_LABEL = 'controller-revision-hash';

export const LABELS = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  instance: 'app.kubernetes.io/instance',
  topic: 'daftka.io/topic',
  partition: 'daftka.io/partition',
} as const;

/** Selects every object the operator made (informers and RBAC-friendly list calls). */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${FIELD_MANAGER}`;

/** Ports inside a replica pod: the same for every replica, so DNS name + port identify a peer. */
export const PORTS = { client: 9092, peer: 9093, http: 9100 } as const;

/** Where the PVC is mounted, and the replica's data directory inside it. */
export const DATA_MOUNT = '/var/lib/daftka';
export const DATA_DIR = `${DATA_MOUNT}/data`;
export const VOLUME_NAME = 'data';
/** The replica pod's one container. */
export const REPLICA_CONTAINER = 'replica';

export const partitionName = (topic: string, index: number): string => `${topic}-${index}`;
/** One per topic: every replica of the topic reads it, replicas of other topics cannot (replica peer auth). */
export const peerSecretName = (topic: string): string => `${topic}-peer-auth`;
/** The key of the peer Secret that holds the shared value (32 random bytes, base64: 44 characters). */
export const PEER_SECRET_KEY = 'secret';
/** The replica's environment variable that receives it (replica/config.ts). */
export { PEER_SECRET_ENV } from '../common/peer-secret';
/**
 * One per topic, next to the peer Secret: the topic's admin secret (derived from the
 * installation's, common/topic-credentials.ts), which the replicas get as DAFTKA_ADMIN_SECRET.
 */
export const adminSecretName = (topic: string): string => `${topic}-admin-auth`;
export const ADMIN_SECRET_KEY = 'secret';
export { ADMIN_SECRET_ENV } from '../common/topic-credentials';
/**
 * One per Topic namespace: the client keys of that namespace's topics (a data key per topic, hex),
 * mounted into its replica pods as DAFTKA_CLIENT_KEYS_DIR, so a dead-letter replay can write into
 * another topic of the same namespace. Never another namespace's keys (another tenant's topics).
 */
export const NAMESPACE_CLIENT_KEYS_SECRET = 'daftka-client-keys';
export const CLIENT_KEYS_MOUNT = '/etc/daftka/client-keys';
/** Where replica pods mount the TLS Secret (DAFTKA_TLS_DIR), when the operator names one. */
export const TLS_MOUNT = '/etc/daftka/tls';
export const podName = (topic: string, index: number, ordinal: number): string => `${topic}-${index}-${ordinal}`;
export const pvcName = (topic: string, index: number, ordinal: number): string =>
  `${VOLUME_NAME}-${podName(topic, index, ordinal)}`;

export function partitionLabels(topic: string, index: number): Record<string, string> {
  return {
    [LABELS.name]: 'daftka',
    [LABELS.component]: 'replica',
    [LABELS.managedBy]: FIELD_MANAGER,
    [LABELS.instance]: topic,
    [LABELS.topic]: topic,
    [LABELS.partition]: String(index),
  };
}

/** Labels of an object that belongs to the whole topic rather than to one partition. */
export function topicLabels(topic: string, component: string): Record<string, string> {
  return {
    [LABELS.name]: 'daftka',
    [LABELS.component]: component,
    [LABELS.managedBy]: FIELD_MANAGER,
    [LABELS.instance]: topic,
    [LABELS.topic]: topic,
  };
}

/** The (immutable) StatefulSet selector: one partition's pods. */
export function partitionSelector(topic: string, index: number): Record<string, string> {
  return { [LABELS.component]: 'replica', [LABELS.topic]: topic, [LABELS.partition]: String(index) };
}

/** Stable DNS name of one replica: `<pod>.<service>.<namespace>.svc.<clusterDomain>`. */
export function replicaHost(namespace: string, topic: string, index: number, ordinal: number, clusterDomain: string) {
  return `${podName(topic, index, ordinal)}.${partitionName(topic, index)}.${namespace}.svc.${clusterDomain}`;
}

/** `<topic>-<partition>-<ordinal>` → its parts, or null for names that are not replica pods. */
export function parsePodName(name: string): { topic: string; index: number; ordinal: number } | null {
  const m = /^(.+)-(\d+)-(\d+)$/.exec(name);
  return m ? { topic: m[1], index: Number(m[2]), ordinal: Number(m[3]) } : null;
}

/** `<ordinal>.<incarnation>` → ordinal (replica/config.ts replicaId). */
export function ordinalOfReplicaId(id: string): number | undefined {
  const m = /^(\d+)\./.exec(id);
  return m ? Number(m[1]) : undefined;
}

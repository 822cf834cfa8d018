import { TOPIC_NAME_RE } from './names';
import { REPLICA_LAUNCH_ENV } from './replica-process';

/**
 * A Topic's spec (the `topics.daftka.io` custom resource's `spec`) and the desired state derived
 * from it: which replicas exist and how each is configured. Pure functions, shared by the
 * operator (StatefulSet driver) and local mode (process driver), so both run the same plan.
 */

export interface TopicSpec {
  partitions: number;
  replicationFactor: 1 | 3 | 5 | 7;
  retention?: { ms?: number; bytes?: number };
  /** How old records go (Kafka's cleanup.policy); absent: delete. docs/compaction.md. */
  cleanup?: CleanupPolicy;
  compaction?: { deleteRetentionMs?: number; minLagMs?: number; minDirtyPercent?: number };
  maxRecordBytes?: number;
  quotas?: { produceBytesPerSecond?: number; fetchBytesPerSecond?: number; recordsPerSecond?: number };
  storage?: { size?: string; storageClassName?: string };
  access?: TopicAccessSpec;
  deadLetter?: { maxAttempts?: number; retentionMs?: number };
  deletionPolicy?: 'Retain' | 'Delete';
  deletionProtection?: boolean;
}

export const CLEANUP_POLICIES = ['delete', 'compact', 'compact,delete'] as const;
export type CleanupPolicy = (typeof CLEANUP_POLICIES)[number];
/** Whether a topic keeps the latest record per key (and so needs a key on every record). */
export const isCompacted = (p: CleanupPolicy | undefined): boolean => p === 'compact' || p === 'compact,delete';

/**
 * A group grant: the principals that may use the consumer groups matched by `name` (exact;
 * `*` = every group) or `prefix` (Kafka's prefixed group ACL). Using a group = committing,
 * reading and resetting its offsets, leased fetch and acks, reading its leased policy; changing
 * the policy needs the topic's admin right. A topic's admins hold every group of the topic.
 */
export interface GroupGrant {
  principals: string[];
  name?: string;
  prefix?: string;
}

/**
 * Who may do what on a topic. Closed by default: a list that is absent is empty, and a right
 * not granted is held by nobody (only the anonymous principal of a gateway without auth, which
 * local mode runs by default, holds every right). `*` in a principal list = every authenticated
 * principal.
 */
export interface TopicAccessSpec {
  producers?: string[];
  consumers?: string[];
  admins?: string[];
  groups?: GroupGrant[];
}

export const TOPIC_DEFAULTS = {
  partitions: 3,
  replicationFactor: 3,
  retentionMs: 7 * 24 * 3600 * 1000,
  retentionBytes: -1,
  maxRecordBytes: 1024 * 1024,
} as const;

/** Where one replica listens; the operator uses stable pod DNS names, local mode loopback ports. */
export interface ReplicaAddress {
  host: string;
  peerPort: number;
  clientPort: number;
  httpPort: number;
}

export interface DesiredReplica {
  topic: string;
  partition: number;
  ordinal: number;
  /** `${topic}-${partition}-${ordinal}`: the StatefulSet pod name, and the local process name. */
  name: string;
  address: ReplicaAddress;
  /** The replica's configuration contract (replica/config.ts), as environment variables. */
  env: Record<string, string>;
}

export interface PlanOptions {
  natsUrl: string;
  /** Data directory of a replica (a PVC mount in Kubernetes, a folder under ./data locally). */
  dataDir: (partition: number, ordinal: number) => string;
  /** Bind address of the replica's ports (0.0.0.0 in a pod, 127.0.0.1 locally). */
  listenHost: string;
  extraEnv?: Record<string, string>;
  /**
   * Ordinals beyond the replication factor that every replica knows the address of (the
   * operator's spare slot, where a move adds a replica before removing the old one; 0 locally).
   * They are listed like the others, and in DAFTKA_REPLICAS; DAFTKA_REPLICATION_FACTOR stays RF.
   */
  spareSlots?: number;
}

export function validateTopic(name: string, spec: TopicSpec): string | null {
  if (!TOPIC_NAME_RE.test(name))
    return `topic name ${JSON.stringify(name)} must be a DNS label (lowercase letters, digits and -, at most 63)`;
  if (!Number.isInteger(spec.partitions) || spec.partitions < 1 || spec.partitions > 1000)
    return `partitions must be an integer from 1 to 1000, got ${spec.partitions}`;
  if (![1, 3, 5, 7].includes(spec.replicationFactor))
    return `replicationFactor must be 1, 3, 5 or 7, got ${spec.replicationFactor}`;
  if (spec.cleanup !== undefined && !(CLEANUP_POLICIES as readonly string[]).includes(spec.cleanup))
    return `cleanup must be one of ${CLEANUP_POLICIES.join(', ')}, got ${JSON.stringify(spec.cleanup)}`;
  const k = spec.compaction;
  if (k !== undefined) {
    if (k === null || typeof k !== 'object') return 'compaction must be an object';
    for (const f of Object.keys(k))
      if (!['deleteRetentionMs', 'minLagMs', 'minDirtyPercent'].includes(f)) return `compaction has no field ${f}`;
    for (const f of ['deleteRetentionMs', 'minLagMs'] as const)
      if (k[f] !== undefined && !(Number.isSafeInteger(k[f]) && k[f]! >= 0))
        return `compaction.${f} must be a non-negative integer (ms), got ${k[f]}`;
    if (
      k.minDirtyPercent !== undefined &&
      !(Number.isInteger(k.minDirtyPercent) && k.minDirtyPercent >= 0 && k.minDirtyPercent <= 100)
    )
      return `compaction.minDirtyPercent must be an integer from 0 to 100, got ${k.minDirtyPercent}`;
  }
  return null;
}

/** Every replica of every partition of a topic, with its configuration. */
export function desiredReplicas(
  topic: string,
  spec: TopicSpec,
  addressOf: (partition: number, ordinal: number) => ReplicaAddress,
  opts: PlanOptions,
): DesiredReplica[] {
  const bad = validateTopic(topic, spec);
  if (bad) throw new RangeError(bad);
  const out: DesiredReplica[] = [];
  const slots = spec.replicationFactor + (opts.spareSlots ?? 0);
  for (let p = 0; p < spec.partitions; p++) {
    const addrs = Array.from({ length: slots }, (_, o) => addressOf(p, o));
    const replicas = addrs.map((a) => `${a.host}:${a.peerPort}:${a.clientPort}`).join(',');
    for (let o = 0; o < slots; o++) {
      out.push({
        topic,
        partition: p,
        ordinal: o,
        name: `${topic}-${p}-${o}`,
        address: addrs[o],
        env: {
          DAFTKA_TOPIC: topic,
          DAFTKA_PARTITION: String(p),
          DAFTKA_ORDINAL: String(o),
          DAFTKA_REPLICAS: replicas,
          DAFTKA_REPLICATION_FACTOR: String(spec.replicationFactor),
          DAFTKA_DATA_DIR: opts.dataDir(p, o),
          DAFTKA_LISTEN_HOST: opts.listenHost,
          DAFTKA_HTTP_PORT: String(addrs[o].httpPort),
          DAFTKA_NATS_URL: opts.natsUrl,
          DAFTKA_RETENTION_MS: String(spec.retention?.ms ?? TOPIC_DEFAULTS.retentionMs),
          DAFTKA_RETENTION_BYTES: String(spec.retention?.bytes ?? TOPIC_DEFAULTS.retentionBytes),
          DAFTKA_MAX_RECORD_BYTES: String(spec.maxRecordBytes ?? TOPIC_DEFAULTS.maxRecordBytes),
          // Key compaction (only when set: an unchanged spec keeps its pods' template, no roll).
          ...(spec.cleanup !== undefined ? { DAFTKA_CLEANUP_POLICY: spec.cleanup } : {}),
          ...(spec.compaction?.deleteRetentionMs !== undefined
            ? { DAFTKA_DELETE_RETENTION_MS: String(spec.compaction.deleteRetentionMs) }
            : {}),
          ...(spec.compaction?.minLagMs !== undefined
            ? { DAFTKA_MIN_COMPACTION_LAG_MS: String(spec.compaction.minLagMs) }
            : {}),
          ...(spec.compaction?.minDirtyPercent !== undefined
            ? { DAFTKA_COMPACTION_MIN_DIRTY_PERCENT: String(spec.compaction.minDirtyPercent) }
            : {}),
          // Leased groups: the topic's dead-letter defaults (a group's policy may override them).
          ...(spec.deadLetter?.maxAttempts !== undefined
            ? { DAFTKA_DEAD_LETTER_MAX_ATTEMPTS: String(spec.deadLetter.maxAttempts) }
            : {}),
          ...(spec.deadLetter?.retentionMs !== undefined
            ? { DAFTKA_DEAD_LETTER_RETENTION_MS: String(spec.deadLetter.retentionMs) }
            : {}),
          // Process settings the replica cannot apply itself (V8's young generation, glibc's arenas).
          ...REPLICA_LAUNCH_ENV,
          ...(opts.extraEnv ?? {}),
        },
      });
    }
  }
  return out;
}

/** The gateway's view of a topic (gateway/catalog.ts topics-file entry). */
export function catalogEntry(topic: string, spec: TopicSpec, replicas: readonly DesiredReplica[]) {
  const endpoints: string[][] = Array.from({ length: spec.partitions }, () => []);
  for (const r of replicas)
    if (r.topic === topic) endpoints[r.partition][r.ordinal] = `${r.address.host}:${r.address.clientPort}`;
  return {
    name: topic,
    partitions: spec.partitions,
    // The endpoints may list more than RF slots (the operator's spare slot): say what RF is.
    replicationFactor: spec.replicationFactor,
    maxRecordBytes: spec.maxRecordBytes ?? TOPIC_DEFAULTS.maxRecordBytes,
    ...(spec.cleanup !== undefined ? { cleanup: spec.cleanup } : {}),
    quotas: spec.quotas ?? {},
    // Closed by default: what the spec does not grant, nobody holds.
    access: {
      producers: [...(spec.access?.producers ?? [])],
      consumers: [...(spec.access?.consumers ?? [])],
      admins: [...(spec.access?.admins ?? [])],
      groups: (spec.access?.groups ?? []).map((g) => ({ ...g, principals: [...g.principals] })),
    },
    replicaEndpoints: endpoints,
  };
}

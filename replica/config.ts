import { ConfigError, defineSchema, loadConfig, requireKeys, type ConfigOf } from '../common/config';
import { MIN_PEER_SECRET_CHARS } from '../common/peer-secret';

/**
 * The replica's configuration: environment variables (as the operator's StatefulSet and the
 * local-mode process driver pass them) and flags. Rendered into docs/configuration.md.
 */
export const replicaSchema = defineSchema({
  topic: {
    type: 'string',
    env: 'DAFTKA_TOPIC',
    pattern: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    patternDoc: 'a DNS label (lowercase letters, digits, -)',
    doc: 'topic this replica belongs to',
  },
  partition: { type: 'int', env: 'DAFTKA_PARTITION', min: 0, max: 65535, doc: 'partition index' },
  ordinal: {
    type: 'int',
    env: 'DAFTKA_ORDINAL',
    min: 0,
    max: 6,
    doc: "this replica's ordinal in the partition (StatefulSet pod index)",
  },
  replicas: {
    type: 'list',
    env: 'DAFTKA_REPLICAS',
    default: [],
    pattern: /^[A-Za-z0-9.-]+:\d{1,5}:\d{1,5}$/,
    patternDoc: 'host:peerPort:clientPort, one per ordinal in ordinal order',
    doc: 'every replica of the partition, ordinal order (this one included)',
  },
  replicationFactor: {
    type: 'int',
    env: 'DAFTKA_REPLICATION_FACTOR',
    min: 1,
    max: 7,
    doc: 'desired voters; produce is refused while fewer than a majority of it are voters',
  },
  bootstrap: {
    type: 'bool',
    env: 'DAFTKA_BOOTSTRAP',
    default: true,
    doc: 'ordinal 0 may found a new group when its data dir is new and every peer reports an empty one',
  },
  dataDir: { type: 'string', env: 'DAFTKA_DATA_DIR', default: 'data', doc: 'where RocksDB lives' },
  listenHost: {
    type: 'string',
    env: 'DAFTKA_LISTEN_HOST',
    default: '127.0.0.1',
    doc: 'address the peer, client and http ports bind to',
  },
  httpPort: {
    type: 'int',
    env: 'DAFTKA_HTTP_PORT',
    default: 0,
    min: 0,
    max: 65535,
    doc: '/metrics, /healthz, /readyz (0 = any free port)',
  },
  natsUrl: {
    type: 'string',
    env: 'DAFTKA_NATS_URL',
    default: '',
    doc: 'NATS server(s), comma-separated; empty disables announcements',
  },
  fsync: {
    type: 'enum',
    env: 'DAFTKA_FSYNC',
    values: ['always', 'interval'] as const,
    default: 'always',
    doc: 'always: fsync before every ack; interval: weaker, see docs/storage.md',
  },
  fsyncIntervalMs: {
    type: 'int',
    env: 'DAFTKA_FSYNC_INTERVAL_MS',
    default: 100,
    min: 1,
    max: 60_000,
    unit: 'ms',
    doc: 'sync period with fsync=interval',
  },
  tickMs: { type: 'int', env: 'DAFTKA_TICK_MS', default: 10, min: 1, max: 1000, unit: 'ms', doc: 'Raft tick length' },
  electionTimeoutMs: {
    type: 'int',
    env: 'DAFTKA_ELECTION_TIMEOUT_MS',
    default: 150,
    min: 20,
    max: 60_000,
    unit: 'ms',
    doc: 'election timeout base; the actual one is jittered in [T, 2T)',
  },
  heartbeatMs: {
    type: 'int',
    env: 'DAFTKA_HEARTBEAT_MS',
    default: 50,
    min: 1,
    max: 10_000,
    unit: 'ms',
    doc: 'leader heartbeat interval',
  },
  announceIntervalMs: {
    type: 'int',
    env: 'DAFTKA_ANNOUNCE_INTERVAL_MS',
    default: 1000,
    min: 50,
    max: 60_000,
    unit: 'ms',
    doc: 'leader announcement and status report period on NATS',
  },
  maxInflightMsgs: {
    type: 'int',
    env: 'DAFTKA_MAX_INFLIGHT_MSGS',
    default: 64,
    min: 1,
    max: 4096,
    unit: 'messages',
    doc: 'append messages in flight per follower',
  },
  maxInflightBytes: {
    type: 'int',
    env: 'DAFTKA_MAX_INFLIGHT_BYTES',
    default: 32 * 1024 * 1024,
    min: 1024,
    unit: 'bytes',
    doc: 'append payload in flight per follower',
  },
  maxSizePerMsgBytes: {
    type: 'int',
    env: 'DAFTKA_MAX_SIZE_PER_MSG_BYTES',
    default: 1024 * 1024,
    min: 1024,
    unit: 'bytes',
    doc: 'payload per append message',
  },
  maxUncommittedBytes: {
    type: 'int',
    env: 'DAFTKA_MAX_UNCOMMITTED_BYTES',
    default: 64 * 1024 * 1024,
    min: 1024,
    unit: 'bytes',
    doc: 'uncommitted payload before produce is refused OVERLOADED',
  },
  entryCacheBytes: {
    type: 'int',
    env: 'DAFTKA_ENTRY_CACHE_BYTES',
    default: 64 * 1024 * 1024,
    min: 0,
    unit: 'bytes',
    doc: 'recent log entries kept in memory for replication and fetch',
  },
  maxRecordBytes: {
    type: 'int',
    env: 'DAFTKA_MAX_RECORD_BYTES',
    default: 1024 * 1024,
    min: 1,
    unit: 'bytes',
    doc: 'largest record value+key+headers',
  },
  maxBatchRecords: {
    type: 'int',
    env: 'DAFTKA_MAX_BATCH_RECORDS',
    default: 1000,
    min: 1,
    unit: 'records',
    doc: 'records per produce batch',
  },
  maxFetchWaiters: {
    type: 'int',
    env: 'DAFTKA_MAX_FETCH_WAITERS',
    default: 10_000,
    min: 0,
    unit: 'requests',
    doc: 'long-poll fetches parked at once; more are answered at once',
  },
  retentionMs: {
    type: 'int',
    env: 'DAFTKA_RETENTION_MS',
    default: 7 * 24 * 3600 * 1000,
    min: -1,
    unit: 'ms',
    doc: 'delete records older than this (-1 = forever)',
  },
  retentionBytes: {
    type: 'int',
    env: 'DAFTKA_RETENTION_BYTES',
    default: -1,
    min: -1,
    unit: 'bytes',
    doc: 'delete oldest records beyond this log size (-1 = unbounded)',
  },
  retentionCheckMs: {
    type: 'int',
    env: 'DAFTKA_RETENTION_CHECK_MS',
    default: 30_000,
    min: 10,
    unit: 'ms',
    doc: 'how often the leader checks retention',
  },
  dedupWindowMs: {
    type: 'int',
    env: 'DAFTKA_DEDUP_WINDOW_MS',
    default: 24 * 3600 * 1000,
    min: 1000,
    unit: 'ms',
    doc: 'how long idempotency keys are remembered',
  },
  storageMaxPendingBytes: {
    type: 'int',
    env: 'DAFTKA_STORAGE_MAX_PENDING_BYTES',
    default: 64 * 1024 * 1024,
    min: 64 * 1024,
    unit: 'bytes',
    doc: 'storage: bytes accepted but not yet written; past it the Raft loop waits for the disk (backpressure)',
  },
  peerSecret: {
    type: 'string',
    env: 'DAFTKA_PEER_SECRET',
    default: '',
    doc: 'shared by the replicas of a partition group (the operator gives each Topic its own; local mode makes one): peer hellos are signed with it and unsigned peers refused; at least 32 characters; empty: peers are not authenticated',
  },
  membershipCheckMs: {
    type: 'int',
    env: 'DAFTKA_MEMBERSHIP_CHECK_MS',
    default: 500,
    min: 10,
    unit: 'ms',
    doc: 'leader: how often configured replicas are checked and added/promoted',
  },
  readyMaxLagEntries: {
    type: 'int',
    env: 'DAFTKA_READY_MAX_LAG_ENTRIES',
    default: 1000,
    min: 0,
    unit: 'entries',
    doc: '/readyz: a follower or learner is not ready while it has applied more than this many entries fewer than its leader has committed',
  },
  shutdownTimeoutMs: {
    type: 'int',
    env: 'DAFTKA_SHUTDOWN_TIMEOUT_MS',
    default: 10_000,
    min: 100,
    unit: 'ms',
    doc: 'SIGTERM: time for leadership transfer and flush before exit',
  },
  leaseMs: {
    type: 'int',
    env: 'DAFTKA_LEASE_MS',
    default: 30_000,
    min: 100,
    max: 12 * 3600 * 1000,
    unit: 'ms',
    doc: 'leased groups: default lease length (a group policy or the fetch may set its own)',
  },
  leaseMaxAttempts: {
    type: 'int',
    env: 'DAFTKA_DEAD_LETTER_MAX_ATTEMPTS',
    default: 5,
    min: 1,
    max: 1000,
    unit: 'deliveries',
    doc: 'leased groups: default deliveries before a record is dead-lettered (Topic spec deadLetter.maxAttempts)',
  },
  leaseBackoffInitialMs: {
    type: 'int',
    env: 'DAFTKA_LEASE_BACKOFF_INITIAL_MS',
    default: 1000,
    min: 0,
    max: 24 * 3600 * 1000,
    unit: 'ms',
    doc: 'leased groups: default redelivery delay after the first release',
  },
  leaseBackoffMaxMs: {
    type: 'int',
    env: 'DAFTKA_LEASE_BACKOFF_MAX_MS',
    default: 60_000,
    min: 0,
    max: 24 * 3600 * 1000,
    unit: 'ms',
    doc: 'leased groups: default cap of the redelivery delay',
  },
  leaseBackoffMultiplier: {
    type: 'number',
    env: 'DAFTKA_LEASE_BACKOFF_MULTIPLIER',
    default: 2,
    min: 1,
    max: 100,
    doc: 'leased groups: default growth of the redelivery delay per attempt',
  },
  deadLetter: {
    type: 'bool',
    env: 'DAFTKA_DEAD_LETTER',
    default: true,
    doc: 'leased groups: dead-letter rejected and exhausted records by default (false: discard them)',
  },
  deadLetterRetentionMs: {
    type: 'int',
    env: 'DAFTKA_DEAD_LETTER_RETENTION_MS',
    default: 14 * 24 * 3600 * 1000,
    min: -1,
    unit: 'ms',
    doc: 'purge dead letters older than this (-1 = keep; Topic spec deadLetter.retentionMs)',
  },
  leaseSweepMs: {
    type: 'int',
    env: 'DAFTKA_LEASE_SWEEP_MS',
    default: 250,
    min: 10,
    max: 60_000,
    unit: 'ms',
    doc: 'leader: how often exhausted leases are dead-lettered and replay jobs advance',
  },
  logLevel: {
    type: 'enum',
    env: 'DAFTKA_LOG_LEVEL',
    values: ['error', 'warn', 'info', 'debug'] as const,
    default: 'info',
    doc: 'log level',
  },
});

export type ReplicaConfig = ConfigOf<typeof replicaSchema>;

export interface ReplicaEndpoint {
  ordinal: number;
  host: string;
  peerPort: number;
  clientPort: number;
}

/** The validated config plus derived values; throws ConfigError naming the key on bad input. */
export interface ResolvedReplicaConfig {
  cfg: ReplicaConfig & { topic: string; partition: number; ordinal: number; replicationFactor: number };
  endpoints: ReplicaEndpoint[];
  self: ReplicaEndpoint;
  clusterId: string;
}

export function resolveReplicaConfig(
  env: Record<string, string | undefined>,
  argv: readonly string[],
): ResolvedReplicaConfig {
  const cfg = loadConfig(replicaSchema, env, argv);
  requireKeys(replicaSchema, cfg, ['topic', 'partition', 'ordinal', 'replicationFactor']);
  if (cfg.replicas.length === 0)
    throw new ConfigError(
      'replicas',
      'missing config replicas: set DAFTKA_REPLICAS or --replicas to host:peerPort:clientPort per ordinal',
    );
  const endpoints = cfg.replicas.map((r, ordinal) => {
    const [host, peer, client] = r.split(':');
    return { ordinal, host, peerPort: Number(peer), clientPort: Number(client) };
  });
  const ordinal = cfg.ordinal as number;
  if (ordinal >= endpoints.length)
    throw new ConfigError(
      'ordinal',
      `invalid config ordinal (DAFTKA_ORDINAL): ${ordinal} has no entry in DAFTKA_REPLICAS (${endpoints.length} given)`,
    );
  if (cfg.heartbeatMs >= cfg.electionTimeoutMs)
    throw new ConfigError(
      'heartbeatMs',
      `invalid config heartbeatMs (DAFTKA_HEARTBEAT_MS): ${cfg.heartbeatMs} must be below electionTimeoutMs (${cfg.electionTimeoutMs})`,
    );
  if (cfg.tickMs > cfg.heartbeatMs)
    throw new ConfigError(
      'tickMs',
      `invalid config tickMs (DAFTKA_TICK_MS): ${cfg.tickMs} must not exceed heartbeatMs (${cfg.heartbeatMs})`,
    );
  if (cfg.peerSecret !== '' && cfg.peerSecret.length < MIN_PEER_SECRET_CHARS)
    throw new ConfigError(
      'peerSecret',
      `invalid config peerSecret (DAFTKA_PEER_SECRET): must be at least ${MIN_PEER_SECRET_CHARS} characters (e.g. openssl rand -base64 32)`,
    );
  return {
    cfg: cfg as ResolvedReplicaConfig['cfg'],
    endpoints,
    self: endpoints[ordinal],
    clusterId: `${cfg.topic}/${cfg.partition}`,
  };
}

/** Replica ids are `${ordinal}.${incarnation}`; the incarnation is random per data directory. */
export function replicaId(ordinal: number, incarnation: string): string {
  return `${ordinal}.${incarnation}`;
}

export function ordinalOf(id: string): number | undefined {
  const m = /^(\d+)\./.exec(id);
  return m ? Number(m[1]) : undefined;
}

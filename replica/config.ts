import { ConfigError, loadConfig, requireKeys } from '../common/config';
import type { TlsSource } from '../common/tls';
import { MIN_PEER_SECRET_CHARS } from '../common/peer-secret';
import { replicaSchema, type ReplicaConfig } from '../common/replica-config';

export { replicaSchema, type ReplicaConfig };

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
  /** The TLS material of DAFTKA_TLS_DIR, opened by the process at start (replica/main.ts); absent: plain TCP. */
  tls?: TlsSource;
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
  if (cfg.maxRecordBytes > cfg.maxBatchBytes)
    throw new ConfigError(
      'maxRecordBytes',
      `invalid config maxRecordBytes (DAFTKA_MAX_RECORD_BYTES): ${cfg.maxRecordBytes} must not exceed maxBatchBytes (${cfg.maxBatchBytes})`,
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
  if (cfg.peerSecret === '' && !cfg.insecureNoPeerAuth)
    throw new ConfigError(
      'peerSecret',
      'missing config peerSecret (DAFTKA_PEER_SECRET): without it any process that reaches the peer port can pose as a replica (the operator and local mode set one; DAFTKA_INSECURE_NO_PEER_AUTH=true allows none, for development only)',
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

/**
 * The operator's configuration: environment variables and flags (common/config.ts), plus the
 * replica settings file (JSON, mounted from the chart's ConfigMap) that says what goes into every
 * replica pod. Both are validated at start; a bad value fails with a message naming the key.
 */
import Ajv from 'ajv';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { ConfigError, defineSchema, loadConfig, type ConfigOf } from '../common/config';
import { MIN_ADMIN_SECRET_CHARS } from '../common/topic-credentials';
import type { ReplicaSettings } from './desired';
import { DEFAULT_REBALANCE_SETTINGS, type RebalanceSettings } from './rebalancer';

export const operatorSchema = defineSchema({
  namespace: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_NAMESPACE',
    default: 'daftka',
    doc: "the operator's own namespace: its Lease and the gateway catalog ConfigMap live here",
  },
  podName: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_POD_NAME',
    default: '',
    doc: 'identity in leader election (empty = host name + pid)',
  },
  watchNamespaces: {
    type: 'list',
    env: 'DAFTKA_OPERATOR_WATCH_NAMESPACES',
    default: [],
    pattern: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
    patternDoc: 'namespace names',
    doc: 'namespaces whose Topics are reconciled; empty = every namespace',
  },
  natsUrl: {
    type: 'string',
    env: 'DAFTKA_NATS_URL',
    default: 'nats://nats:4222',
    doc: 'NATS server(s) the operator reads replica reports from and sends control requests to (comma-separated; credentials may be in the URL)',
  },
  replicaNatsUrl: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_REPLICA_NATS_URL',
    default: '',
    doc: 'NATS URL given to replicas (empty = natsUrl); ignored when replicaNatsSecret is set',
  },
  replicaNatsSecret: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_REPLICA_NATS_SECRET',
    default: '',
    pattern: /^$|^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[-._a-zA-Z0-9]+$/,
    patternDoc: 'secret-name/key (the Secret must exist in each Topic namespace)',
    doc: 'replicas read their NATS URL from this Secret key instead of a plain value in the pod spec',
  },
  replicaTlsSecret: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_REPLICA_TLS_SECRET',
    default: '',
    pattern: /^$|^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
    patternDoc: 'a Secret name (the Secret must exist in each Topic namespace)',
    doc: 'a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt; e.g. made by a cert-manager Certificate) that replica pods mount as DAFTKA_TLS_DIR: TLS on the client port, mutual TLS on the peer port; pods stay ContainerCreating until it exists; empty = plain TCP',
  },
  replicaTlsServerName: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_REPLICA_TLS_SERVER_NAME',
    default: '',
    pattern: /^$|^[A-Za-z0-9.*-]{1,253}$/,
    patternDoc: 'a DNS name',
    doc: "with replicaTlsSecret: the name replicas check in each other's certificates (DAFTKA_TLS_SERVER_NAME); empty = each pod's DNS name",
  },
  replicaSettingsFile: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_REPLICA_SETTINGS_FILE',
    default: '',
    doc: 'JSON file with the replica pod settings (image, resources, storage, antiAffinity, …); empty = built-in defaults',
  },
  replicaImage: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_REPLICA_IMAGE',
    default: '',
    doc: 'replica image; overrides the settings file',
  },
  gatewayCatalogConfigMap: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_GATEWAY_CATALOG_CONFIGMAP',
    default: '',
    doc: "ConfigMap (in namespace) the operator keeps the gateway's topics.json in; empty = none",
  },
  gatewayClientKeysSecret: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_GATEWAY_CLIENT_KEYS_SECRET',
    default: '',
    pattern: /^$|^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
    patternDoc: 'a Secret name',
    doc: "Secret (in namespace) the operator keeps every topic's client key in (a data key per topic, hex), for the gateway (DAFTKA_GATEWAY_CLIENT_KEYS_SECRET); a topic enters the catalog once its key is there; empty = none",
  },
  replicaClientKeys: {
    type: 'bool',
    env: 'DAFTKA_OPERATOR_REPLICA_CLIENT_KEYS',
    default: false,
    doc: "each Topic namespace gets a Secret daftka-client-keys with the client keys of that namespace's topics, which its replica pods mount (DAFTKA_CLIENT_KEYS_DIR): dead-letter replay into another topic of the same namespace; never another namespace's keys",
  },
  adminSecret: {
    type: 'string',
    env: 'DAFTKA_ADMIN_SECRET',
    default: '',
    doc: "the installation's admin secret (a chart Secret; at least 32 characters): each topic gets a `<topic>-admin-auth` Secret derived from it, which its replicas check membership and leadership calls with; empty = no admin-auth Secrets (replicas then refuse those calls on the client port)",
  },
  leaseName: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_LEASE_NAME',
    default: 'daftka-operator',
    doc: 'leader-election Lease',
  },
  leaseDurationSeconds: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_LEASE_DURATION_SECONDS',
    default: 15,
    min: 1,
    max: 300,
    unit: 's',
    doc: 'a standby takes over when the leader has not renewed for this long',
  },
  renewDeadlineSeconds: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_RENEW_DEADLINE_SECONDS',
    default: 10,
    min: 0.5,
    max: 300,
    unit: 's',
    doc: 'the leader stops (and exits) when it could not renew for this long; below leaseDurationSeconds',
  },
  retryPeriodSeconds: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_RETRY_PERIOD_SECONDS',
    default: 2,
    min: 0.1,
    max: 60,
    unit: 's',
    doc: 'how often the Lease is renewed or tried',
  },
  listenHost: {
    type: 'string',
    env: 'DAFTKA_OPERATOR_LISTEN_HOST',
    default: '0.0.0.0',
    doc: 'address of /metrics, /healthz, /readyz',
  },
  metricsPort: {
    type: 'int',
    env: 'DAFTKA_OPERATOR_METRICS_PORT',
    default: 9090,
    min: 0,
    max: 65535,
    doc: '/metrics, /healthz, /readyz (0 = any free port)',
  },
  workers: {
    type: 'int',
    env: 'DAFTKA_OPERATOR_WORKERS',
    default: 4,
    min: 1,
    max: 64,
    doc: 'topics reconciled at once',
  },
  resyncSeconds: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_RESYNC_SECONDS',
    default: 300,
    min: 1,
    unit: 's',
    doc: 'every topic is re-applied in full at least this often (drift repair)',
  },
  statusIntervalSeconds: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_STATUS_INTERVAL_SECONDS',
    default: 30,
    min: 0.2,
    unit: 's',
    doc: 'watermarks in status are refreshed this often; role and health changes are written at once',
  },
  reportStaleSeconds: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_REPORT_STALE_SECONDS',
    default: 10,
    min: 0.5,
    unit: 's',
    doc: 'a replica report older than this no longer counts (replicas report every second)',
  },
  maxLagEntries: {
    type: 'int',
    env: 'DAFTKA_OPERATOR_MAX_LAG_ENTRIES',
    default: 1000,
    min: 0,
    unit: 'entries',
    doc: 'a follower further behind the leader is not caught up (under-replicated; blocks moves and rolls)',
  },
  rebalanceIntervalSeconds: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_REBALANCE_INTERVAL_SECONDS',
    default: 10,
    min: 0.2,
    unit: 's',
    doc: 'how often the rebalancer looks at leaders, drains, co-location and rolls',
  },
  maxConcurrentMoves: {
    type: 'int',
    env: 'DAFTKA_OPERATOR_MAX_CONCURRENT_MOVES',
    default: DEFAULT_REBALANCE_SETTINGS.maxConcurrentMoves,
    min: 0,
    max: 100,
    unit: 'partitions',
    doc: 'partitions with a replica move or roll in progress at once (0 = rebalancer moves nothing)',
  },
  maxLeaderTransfers: {
    type: 'int',
    env: 'DAFTKA_OPERATOR_MAX_LEADER_TRANSFERS',
    default: DEFAULT_REBALANCE_SETTINGS.maxLeaderTransfers,
    min: 0,
    max: 100,
    doc: 'leadership transfers started per rebalancer pass (0 = no leader balancing)',
  },
  leaderSkewThreshold: {
    type: 'int',
    env: 'DAFTKA_OPERATOR_LEADER_SKEW_THRESHOLD',
    default: DEFAULT_REBALANCE_SETTINGS.leaderSkewThreshold,
    min: 1,
    unit: 'leaders',
    doc: 'leaders per node may differ by this much before leadership is moved',
  },
  operationTimeoutSeconds: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_OPERATION_TIMEOUT_SECONDS',
    default: DEFAULT_REBALANCE_SETTINGS.operationTimeoutMs / 1000,
    min: 1,
    unit: 's',
    doc: 'a move or roll running longer is reported as stuck (Reconfiguring condition, event, log)',
  },
  transferCooldownSeconds: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_TRANSFER_COOLDOWN_SECONDS',
    default: DEFAULT_REBALANCE_SETTINGS.transferCooldownMs / 1000,
    min: 0,
    unit: 's',
    doc: 'no new leadership transfer for a partition this soon after the last one',
  },
  kubeQps: {
    type: 'number',
    env: 'DAFTKA_OPERATOR_KUBE_QPS',
    default: 50,
    min: 1,
    unit: 'requests/s',
    doc: 'sustained apiserver request rate (watches excluded)',
  },
  kubeBurst: {
    type: 'int',
    env: 'DAFTKA_OPERATOR_KUBE_BURST',
    default: 100,
    min: 1,
    unit: 'requests',
    doc: 'apiserver request burst',
  },
  logLevel: {
    type: 'enum',
    env: 'DAFTKA_LOG_LEVEL',
    values: ['error', 'warn', 'info', 'debug'] as const,
    default: 'info',
    doc: 'log level',
  },
});

export type OperatorConfig = ConfigOf<typeof operatorSchema>;

/** Built-in replica settings, used when no settings file is given (local experiments, tests). */
export const DEFAULT_REPLICA_SETTINGS: Omit<ReplicaSettings, 'natsUrl' | 'namespace'> = {
  image: 'ghcr.io/daftka/daftka:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  imagePullSecrets: [],
  command: ['node', 'dist/replica/main.js'],
  clusterDomain: 'cluster.local',
  resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '1Gi' } },
  storage: { size: '10Gi' },
  antiAffinity: 'required',
  terminationGracePeriodSeconds: 30,
  runAsUser: 10001,
  extraEnv: {},
};

const quantity = { anyOf: [{ type: 'string', maxLength: 64 }, { type: 'number' }] };
const resourceList = { type: 'object', additionalProperties: quantity, maxProperties: 16 };

/** JSON Schema of the settings file (the chart renders it from values.replica). */
export const REPLICA_SETTINGS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    image: { type: 'string', minLength: 1, maxLength: 512 },
    imagePullPolicy: { enum: ['Always', 'IfNotPresent', 'Never'] },
    imagePullSecrets: {
      type: 'array',
      maxItems: 16,
      items: {
        type: 'object',
        required: ['name'],
        additionalProperties: false,
        properties: { name: { type: 'string', minLength: 1 } },
      },
    },
    command: { type: 'array', maxItems: 64, items: { type: 'string' } },
    clusterDomain: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' },
    resources: {
      type: 'object',
      additionalProperties: false,
      properties: { requests: resourceList, limits: resourceList },
    },
    storage: {
      type: 'object',
      additionalProperties: false,
      properties: {
        size: { type: 'string', minLength: 1, maxLength: 64 },
        storageClassName: { type: 'string', maxLength: 253 },
      },
    },
    antiAffinity: { enum: ['required', 'preferred'] },
    terminationGracePeriodSeconds: { type: 'integer', minimum: 6, maximum: 3600 },
    runAsUser: { type: 'integer', minimum: 1, maximum: 2147483647 },
    extraEnv: {
      type: 'object',
      maxProperties: 64,
      propertyNames: { pattern: '^[A-Z_][A-Z0-9_]*$' },
      additionalProperties: { type: ['string', 'number', 'boolean'] },
    },
  },
} as const;

/** Reads and validates the settings file; errors name the file and the JSON pointer. */
export function loadReplicaSettings(
  cfg: OperatorConfig,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): Omit<ReplicaSettings, 'namespace'> {
  let fromFile: Record<string, unknown> = {};
  if (cfg.replicaSettingsFile !== '') {
    let raw: unknown;
    try {
      raw = JSON.parse(readFile(cfg.replicaSettingsFile));
    } catch (err) {
      throw new ConfigError(
        'replicaSettingsFile',
        `invalid config replicaSettingsFile (DAFTKA_OPERATOR_REPLICA_SETTINGS_FILE): cannot read ${cfg.replicaSettingsFile} as JSON: ${(err as Error).message}`,
      );
    }
    const ajv = new Ajv({ allErrors: false, strict: false });
    const validate = ajv.compile(REPLICA_SETTINGS_SCHEMA);
    if (!validate(raw)) {
      const e = validate.errors![0];
      throw new ConfigError(
        'replicaSettingsFile',
        `invalid config replicaSettingsFile (${cfg.replicaSettingsFile}): ${e.instancePath || '/'} ${e.message}`,
      );
    }
    fromFile = raw as Record<string, unknown>;
  }
  const merged = { ...DEFAULT_REPLICA_SETTINGS, ...fromFile } as Omit<ReplicaSettings, 'natsUrl' | 'namespace'>;
  // An empty command (the chart's default) runs the image's entrypoint.
  const extraEnv = Object.fromEntries(Object.entries(merged.extraEnv ?? {}).map(([k, v]) => [k, String(v)]));
  if (merged.terminationGracePeriodSeconds <= 5)
    throw new ConfigError('replicaSettingsFile', 'terminationGracePeriodSeconds must exceed 5 s (shutdown margin)');
  return {
    ...merged,
    extraEnv,
    ...(cfg.replicaImage !== '' ? { image: cfg.replicaImage } : {}),
    natsUrl: cfg.replicaNatsUrl !== '' ? cfg.replicaNatsUrl : cfg.natsUrl,
    ...(cfg.replicaTlsSecret !== ''
      ? {
          tls: {
            secretName: cfg.replicaTlsSecret,
            ...(cfg.replicaTlsServerName !== '' ? { serverName: cfg.replicaTlsServerName } : {}),
          },
        }
      : {}),
    ...(cfg.replicaNatsSecret !== ''
      ? {
          natsUrlSecret: {
            name: cfg.replicaNatsSecret.split('/')[0],
            key: cfg.replicaNatsSecret.split('/').slice(1).join('/'),
          },
        }
      : {}),
  };
}

export function loadOperatorConfig(env: Record<string, string | undefined>, argv: readonly string[]): OperatorConfig {
  const cfg = loadConfig(operatorSchema, env, argv);
  // Checked here, not by the schema, so that the error never echoes the secret.
  if (cfg.adminSecret !== '' && cfg.adminSecret.length < MIN_ADMIN_SECRET_CHARS)
    throw new ConfigError(
      'adminSecret',
      `invalid config adminSecret (DAFTKA_ADMIN_SECRET): must be at least ${MIN_ADMIN_SECRET_CHARS} characters (e.g. openssl rand -hex 32)`,
    );
  if (cfg.renewDeadlineSeconds >= cfg.leaseDurationSeconds)
    throw new ConfigError(
      'renewDeadlineSeconds',
      `invalid config renewDeadlineSeconds (DAFTKA_OPERATOR_RENEW_DEADLINE_SECONDS): ${cfg.renewDeadlineSeconds} must be below leaseDurationSeconds (${cfg.leaseDurationSeconds})`,
    );
  if (cfg.retryPeriodSeconds >= cfg.renewDeadlineSeconds)
    throw new ConfigError(
      'retryPeriodSeconds',
      `invalid config retryPeriodSeconds (DAFTKA_OPERATOR_RETRY_PERIOD_SECONDS): ${cfg.retryPeriodSeconds} must be below renewDeadlineSeconds (${cfg.renewDeadlineSeconds})`,
    );
  return cfg;
}

export function identityOf(cfg: OperatorConfig): string {
  return cfg.podName !== '' ? cfg.podName : `${hostname()}-${process.pid}`;
}

export function rebalanceSettingsOf(cfg: OperatorConfig): RebalanceSettings {
  return {
    maxConcurrentMoves: cfg.maxConcurrentMoves,
    maxLeaderTransfers: cfg.maxLeaderTransfers,
    leaderSkewThreshold: cfg.leaderSkewThreshold,
    operationTimeoutMs: cfg.operationTimeoutSeconds * 1000,
    transferCooldownMs: cfg.transferCooldownSeconds * 1000,
    moveCooldownMs: DEFAULT_REBALANCE_SETTINGS.moveCooldownMs,
  };
}

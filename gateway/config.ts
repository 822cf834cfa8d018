import { boundsSummary, defineSchema, loadConfig, ConfigError, type ConfigOf } from '../common/config';
import { MAX_FETCH_BYTES, MAX_FETCH_RECORDS } from './api-spec';

/**
 * The gateway's configuration: environment variables and flags, validated at start
 * (common/config.ts). Rendered into docs/configuration.md and docs/gateway.md.
 */
export const gatewaySchema = defineSchema({
  host: {
    type: 'string',
    env: 'DAFTKA_GATEWAY_HOST',
    flag: 'host',
    default: '0.0.0.0',
    doc: 'address the HTTP API binds to',
  },
  port: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_PORT',
    flag: 'port',
    default: 8080,
    min: 0,
    max: 65535,
    doc: 'HTTP API port (0 = any free port)',
  },
  natsUrl: {
    type: 'string',
    env: 'DAFTKA_NATS_URL',
    default: 'nats://127.0.0.1:4222',
    pattern: /^(off|(nats|tls):\/\/[^\s,]+(,(nats|tls):\/\/[^\s,]+)*)$/,
    patternDoc: 'off, or nats:// URLs separated by commas',
    doc: 'NATS server(s) for leader announcements and discovery; off = run on replica redirects alone',
  },
  topicsFile: {
    type: 'string',
    env: 'DAFTKA_GATEWAY_TOPICS_FILE',
    flag: 'topics-file',
    default: '',
    doc: 'JSON file of topics (partitions, replica endpoints, limits, quotas, access); local mode writes it. Set this or catalogConfigMap',
  },
  catalogConfigMap: {
    type: 'string',
    env: 'DAFTKA_GATEWAY_CATALOG_CONFIGMAP',
    flag: 'catalog-configmap',
    default: '',
    pattern: /^$|^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/,
    patternDoc: 'namespace/name',
    doc: 'namespace/name of the ConfigMap the operator keeps the topics in (key topics.json), watched through the Kubernetes API (in-cluster service account or kubeconfig). Set this or topicsFile',
  },
  auth: {
    type: 'enum',
    env: 'DAFTKA_GATEWAY_AUTH',
    flag: 'auth',
    values: ['off', 'tokens'] as const,
    default: 'off',
    doc: 'off: every request is principal "anonymous" with all rights (local mode); tokens: bearer tokens from the tokens file',
  },
  tokensFile: {
    type: 'string',
    env: 'DAFTKA_GATEWAY_TOKENS_FILE',
    flag: 'tokens-file',
    default: '',
    doc: 'JSON file {"tokens": {"<token>": "<principal>"}} (a mounted Secret); required with auth=tokens',
  },
  requestTimeoutMs: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_REQUEST_TIMEOUT_MS',
    flag: 'request-timeout-ms',
    default: 5000,
    min: 100,
    max: 120_000,
    unit: 'ms',
    doc: 'produce commit deadline (then 504 COMMIT_UNKNOWN) and deadline of other replica calls (fetch: wait_ms + this)',
  },
  maxBodyBytes: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_MAX_BODY_BYTES',
    flag: 'max-body-bytes',
    default: 8 * 1_048_576,
    min: 1024,
    max: 256 * 1_048_576,
    unit: 'bytes',
    doc: 'largest request body after decompression (413 above)',
  },
  maxBodyBytesInFlight: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_MAX_BODY_BYTES_IN_FLIGHT',
    flag: 'max-body-bytes-in-flight',
    default: 32 * 1_048_576,
    min: 1024,
    max: 16 * 1024 * 1_048_576,
    unit: 'bytes',
    doc: 'request bodies held at once, reserved before reading (Content-Length, else maxBodyBytes) until the answer; a body that does not fit is answered 503 OVERLOADED unread',
  },
  maxRecordsPerRequest: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_MAX_RECORDS_PER_REQUEST',
    flag: 'max-records-per-request',
    default: 1000,
    min: 1,
    max: 100_000,
    unit: 'records',
    doc: 'most records in one produce request (413 above)',
  },
  fetchMaxRecords: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_FETCH_MAX_RECORDS',
    flag: 'fetch-max-records',
    default: 1000,
    min: 1,
    max: MAX_FETCH_RECORDS,
    unit: 'records',
    doc: 'fetch max_records above this is lowered to it',
  },
  fetchMaxBytes: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_FETCH_MAX_BYTES',
    flag: 'fetch-max-bytes',
    default: 8 * 1_048_576,
    min: 1024,
    max: MAX_FETCH_BYTES,
    unit: 'bytes',
    doc: 'fetch max_bytes above this is lowered to it',
  },
  maxInflightPerEndpoint: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_MAX_INFLIGHT_PER_ENDPOINT',
    flag: 'max-inflight-per-endpoint',
    default: 512,
    min: 1,
    max: 100_000,
    unit: 'requests',
    doc: 'produce/commit/status calls in flight to one replica; more are answered 503 OVERLOADED',
  },
  maxInflightFetchesPerEndpoint: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_MAX_INFLIGHT_FETCHES_PER_ENDPOINT',
    flag: 'max-inflight-fetches-per-endpoint',
    default: 1024,
    min: 1,
    max: 100_000,
    unit: 'requests',
    doc: 'fetches (long-polls) in flight to one replica; more are answered 503 OVERLOADED',
  },
  maxRedirects: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_MAX_REDIRECTS',
    flag: 'max-redirects',
    default: 5,
    min: 0,
    max: 50,
    unit: 'hops',
    doc: 'NOT_LEADER redirects followed per call',
  },
  quotaMaxBuckets: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_QUOTA_MAX_BUCKETS',
    flag: 'quota-max-buckets',
    default: 10_000,
    min: 1,
    max: 10_000_000,
    unit: 'buckets',
    doc: 'quota buckets kept, least recently used evicted (3 per topic and principal with quotas)',
  },
  quotaBurstSeconds: {
    type: 'number',
    env: 'DAFTKA_GATEWAY_QUOTA_BURST_SECONDS',
    flag: 'quota-burst-seconds',
    default: 1,
    min: 0.01,
    max: 3600,
    unit: 's',
    doc: 'a quota bucket holds this many seconds of its rate',
  },
  discoverTimeoutMs: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_DISCOVER_TIMEOUT_MS',
    flag: 'discover-timeout-ms',
    default: 2000,
    min: 10,
    max: 60_000,
    unit: 'ms',
    doc: 'timeout of one NATS discovery request',
  },
  natsReconnectWaitMs: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_NATS_RECONNECT_WAIT_MS',
    flag: 'nats-reconnect-wait-ms',
    default: 1000,
    min: 10,
    max: 60_000,
    unit: 'ms',
    doc: 'pause between NATS reconnection attempts',
  },
  shutdownGraceMs: {
    type: 'int',
    env: 'DAFTKA_GATEWAY_SHUTDOWN_GRACE_MS',
    flag: 'shutdown-grace-ms',
    default: 10_000,
    min: 0,
    max: 600_000,
    unit: 'ms',
    doc: 'SIGTERM: time for requests in flight (long-polls included) before connections are closed',
  },
  leaseSecret: {
    type: 'string',
    env: 'DAFTKA_GATEWAY_LEASE_SECRET',
    default: '',
    doc: 'HMAC key of lease tokens, at least 32 characters, the same on every gateway pod (from a Secret; local mode generates one); empty: leased fetch and acks answer 501',
  },
  logLevel: {
    type: 'enum',
    env: 'DAFTKA_LOG_LEVEL',
    values: ['error', 'warn', 'info', 'debug'] as const,
    default: 'info',
    doc: 'log level (info logs one line per request)',
  },
});

export type GatewayConfig = ConfigOf<typeof gatewaySchema>;

/** The keys logged in the start-up line: every bound the gateway runs with. */
export const BOUND_KEYS = [
  'requestTimeoutMs',
  'maxBodyBytes',
  'maxBodyBytesInFlight',
  'maxRecordsPerRequest',
  'fetchMaxRecords',
  'fetchMaxBytes',
  'maxInflightPerEndpoint',
  'maxInflightFetchesPerEndpoint',
  'maxRedirects',
  'quotaMaxBuckets',
  'quotaBurstSeconds',
  'shutdownGraceMs',
] as const;

/** Load and check the gateway config; throws ConfigError naming the key. */
export function loadGatewayConfig(
  env: Record<string, string | undefined> = process.env,
  argv: readonly string[] = [],
): GatewayConfig {
  const cfg = loadConfig(gatewaySchema, env, argv);
  if ((cfg.topicsFile === '') === (cfg.catalogConfigMap === ''))
    throw new ConfigError(
      cfg.topicsFile === '' ? 'topicsFile' : 'catalogConfigMap',
      `${cfg.topicsFile === '' ? 'missing' : 'conflicting'} config topicsFile / catalogConfigMap: set exactly one of ${gatewaySchema.topicsFile.env} (a topics file) and ${gatewaySchema.catalogConfigMap.env} (the operator's ConfigMap, watched)`,
    );
  if (cfg.auth === 'tokens' && cfg.tokensFile === '')
    throw new ConfigError(
      'tokensFile',
      `missing config tokensFile: auth=tokens needs ${gatewaySchema.tokensFile.env} or --${gatewaySchema.tokensFile.flag}`,
    );
  return cfg as GatewayConfig;
}

export function gatewayBounds(cfg: GatewayConfig): Record<string, unknown> {
  return boundsSummary(cfg, BOUND_KEYS);
}

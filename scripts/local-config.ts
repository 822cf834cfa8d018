import { defineSchema } from '../common/config';

/** `npm run local` settings (environment variables or flags). */
export const localSchema = defineSchema({
  dataDir: {
    type: 'string',
    env: 'DAFTKA_LOCAL_DATA_DIR',
    default: 'data',
    doc: 'where replica data, logs and generated config live',
  },
  topics: {
    type: 'list',
    env: 'DAFTKA_LOCAL_TOPICS',
    default: ['events:3:3'],
    pattern: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?:\d{1,4}:[1357]$/,
    patternDoc: 'name:partitions:replicationFactor (RF 1, 3, 5 or 7)',
    doc: 'topics to run (ignored when topicsJson is set)',
  },
  topicsJson: {
    type: 'string',
    env: 'DAFTKA_LOCAL_TOPICS_JSON',
    default: '',
    doc: 'topics as a JSON list of Topic specs with a name, e.g. [{"name":"orders","partitions":2,"replicationFactor":3,"maxRecordBytes":65536,"quotas":{"recordsPerSecond":100}}] (partitions/replicationFactor default to 3; quotas: produceBytesPerSecond, fetchBytesPerSecond, recordsPerSecond; cleanup: delete, compact or compact,delete with compaction: {deleteRetentionMs, minLagMs, minDirtyPercent}, docs/compaction.md); replaces topics when set',
  },
  gatewayPort: {
    type: 'int',
    env: 'DAFTKA_LOCAL_GATEWAY_PORT',
    default: 8080,
    min: 1,
    max: 65535,
    doc: 'gateway HTTP port',
  },
  natsPort: { type: 'int', env: 'DAFTKA_LOCAL_NATS_PORT', default: 4222, min: 1, max: 65535, doc: 'nats-server port' },
  basePort: {
    type: 'int',
    env: 'DAFTKA_LOCAL_BASE_PORT',
    default: 19000,
    min: 1024,
    max: 60000,
    doc: 'first replica port; each replica uses three (peer, client, http)',
  },
  fsync: {
    type: 'enum',
    env: 'DAFTKA_FSYNC',
    values: ['always', 'interval'] as const,
    default: 'always',
    doc: 'replica fsync policy',
  },
  auth: {
    type: 'enum',
    env: 'DAFTKA_LOCAL_AUTH',
    values: ['none', 'tokens'] as const,
    default: 'none',
    doc: 'none: every request is the anonymous principal with every right; tokens: the gateway asks for bearer tokens, and local mode makes one for the principal local-admin (admin of every topic) and prints it',
  },
  exitAfterReady: {
    type: 'bool',
    env: 'DAFTKA_LOCAL_EXIT_AFTER_READY',
    default: false,
    doc: 'start, report ready, stop (for tests)',
  },
});

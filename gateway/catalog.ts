import { readFileSync } from 'node:fs';
import { ENDPOINT_PATTERN, GROUP_NAME_PATTERN, TOPIC_NAME_PATTERN } from '../common/names';
import { CLEANUP_POLICIES, type CleanupPolicy, type GroupGrant } from '../common/topic-spec';
import { createAjv, pointerOf, type JsonSchema } from './validation';

/**
 * What the gateway knows about topics: partition counts, limits, quotas, access lists and where
 * each partition's replicas listen. The static implementation reads a JSON file (local mode
 * writes it); the Kubernetes-watch implementation comes with the operator. Keep it small.
 */

export interface TopicQuotas {
  /** Per principal; undefined = unlimited. */
  produceBytesPerSecond?: number;
  fetchBytesPerSecond?: number;
  recordsPerSecond?: number;
}

export interface TopicAccess {
  /** Principal names; `*` means every authenticated principal. */
  producers: string[];
  consumers: string[];
  admins: string[];
  /** Which principals may use which consumer groups (by name or prefix); absent = none but the admins. */
  groups?: GroupGrant[];
}

export interface TopicInfo {
  name: string;
  partitions: number;
  /** Largest record (key + value + header names and values), in bytes. */
  maxRecordBytes: number;
  /** The Topic's cleanup policy (docs/compaction.md); absent: delete. Compacted topics need a key on every record. */
  cleanup?: CleanupPolicy;
  quotas: TopicQuotas;
  access: TopicAccess;
  /** Per partition, the client `host:port` of each replica (the seeds when no leader is known). */
  replicaEndpoints: string[][];
  /**
   * Voters each partition should have. The endpoints may list more (the operator's spare slot,
   * docs/operator.md "Replica moves"); absent: each partition's endpoint count.
   */
  replicationFactor?: number;
}

/** The voters a partition of this topic should have. */
export const replicationFactorOf = (t: TopicInfo, partition: number): number =>
  t.replicationFactor ?? t.replicaEndpoints[partition]?.length ?? 0;

export interface TopicCatalog {
  /** Every topic, in name order. */
  list(): TopicInfo[];
  get(name: string): TopicInfo | undefined;
  /** True once metadata is loaded (the static catalog always is). */
  ready(): boolean;
}

export const DEFAULT_MAX_RECORD_BYTES = 1_048_576;

const nameList: JsonSchema = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 253 } };
const GROUP_OR_STAR = `(${GROUP_NAME_PATTERN})|^[*]$`;
/** A group grant: principals and exactly one of `name` (`*` = every group) or `prefix`. */
export const GROUP_GRANT_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['principals'],
  additionalProperties: false,
  properties: {
    principals: { ...nameList, minItems: 1, maxItems: 256 },
    name: { type: 'string', pattern: GROUP_OR_STAR },
    prefix: { type: 'string', pattern: GROUP_NAME_PATTERN },
  },
  oneOf: [{ required: ['name'] }, { required: ['prefix'] }],
};

/** The topics file: `{"topics":[{name, partitions, replicaEndpoints, maxRecordBytes?, quotas?, access?}]}`. */
export const TOPICS_FILE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['topics'],
  additionalProperties: false,
  properties: {
    topics: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'partitions', 'replicaEndpoints'],
        additionalProperties: false,
        properties: {
          name: { type: 'string', pattern: TOPIC_NAME_PATTERN },
          partitions: { type: 'integer', minimum: 1, maximum: 10_000 },
          replicationFactor: { type: 'integer', minimum: 1, maximum: 7 },
          maxRecordBytes: { type: 'integer', minimum: 1, maximum: 64 * 1_048_576 },
          cleanup: { enum: [...CLEANUP_POLICIES] },
          quotas: {
            type: 'object',
            additionalProperties: false,
            properties: {
              produceBytesPerSecond: { type: 'number', exclusiveMinimum: 0 },
              fetchBytesPerSecond: { type: 'number', exclusiveMinimum: 0 },
              recordsPerSecond: { type: 'number', exclusiveMinimum: 0 },
            },
          },
          access: {
            type: 'object',
            additionalProperties: false,
            properties: {
              producers: nameList,
              consumers: nameList,
              admins: nameList,
              groups: { type: 'array', maxItems: 256, items: GROUP_GRANT_SCHEMA },
            },
          },
          replicaEndpoints: {
            type: 'array',
            items: {
              type: 'array',
              minItems: 1,
              items: { type: 'string', pattern: ENDPOINT_PATTERN },
            },
          },
        },
      },
    },
  },
};

export class CatalogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CatalogError';
  }
}

interface TopicSpecIn {
  name: string;
  partitions: number;
  maxRecordBytes?: number;
  cleanup?: CleanupPolicy;
  quotas?: TopicQuotas;
  access?: Partial<TopicAccess>;
  replicaEndpoints: string[][];
  replicationFactor?: number;
}

let validateTopicsFile: ReturnType<ReturnType<typeof createAjv>['compile']> | undefined;

/** Validate a parsed topics document into TopicInfo values; throws CatalogError naming the field. */
export function parseTopics(doc: unknown, source = 'topics'): TopicInfo[] {
  validateTopicsFile ??= createAjv().compile(TOPICS_FILE_SCHEMA);
  if (!validateTopicsFile(doc)) {
    const e = validateTopicsFile.errors![0];
    throw new CatalogError(`${source}: ${pointerOf(e) || '/'} ${e.message ?? 'is invalid'}`);
  }
  const specs = (doc as { topics: TopicSpecIn[] }).topics;
  const seen = new Set<string>();
  return specs.map((t, i) => {
    if (seen.has(t.name)) throw new CatalogError(`${source}: /topics/${i}/name ${t.name} is listed twice`);
    seen.add(t.name);
    if (t.replicaEndpoints.length !== t.partitions)
      throw new CatalogError(
        `${source}: /topics/${i}/replicaEndpoints has ${t.replicaEndpoints.length} entries, expected one per partition (${t.partitions})`,
      );
    return {
      name: t.name,
      partitions: t.partitions,
      maxRecordBytes: t.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
      ...(t.cleanup !== undefined ? { cleanup: t.cleanup } : {}),
      quotas: { ...(t.quotas ?? {}) },
      // No access list means nobody (but the anonymous principal when auth is off).
      access: {
        producers: t.access?.producers ?? [],
        consumers: t.access?.consumers ?? [],
        admins: t.access?.admins ?? [],
        groups: t.access?.groups ?? [],
      },
      replicaEndpoints: t.replicaEndpoints.map((r) => [...r]),
      ...(t.replicationFactor !== undefined ? { replicationFactor: t.replicationFactor } : {}),
    };
  });
}

/** A catalog from a fixed list of topics (a JSON file in local mode; tests). */
export class StaticCatalog implements TopicCatalog {
  private byName = new Map<string, TopicInfo>();
  private sorted: TopicInfo[] = [];

  constructor(topics: TopicInfo[]) {
    this.replace(topics);
  }

  static fromFile(path: string): StaticCatalog {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new CatalogError(`cannot read topics file ${path}: ${(err as Error).message}`);
    }
    return new StaticCatalog(parseTopics(doc, path));
  }

  /** Swap the whole topic list (local mode rewrites the file when topics change). */
  replace(topics: TopicInfo[]): void {
    this.byName = new Map(topics.map((t) => [t.name, t]));
    this.sorted = [...topics].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  list(): TopicInfo[] {
    return this.sorted;
  }

  get(name: string): TopicInfo | undefined {
    return this.byName.get(name);
  }

  ready(): boolean {
    return true;
  }
}

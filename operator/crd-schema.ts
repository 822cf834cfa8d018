/**
 * The custom resources (DESIGN §7): Topic and Partition in group daftka.io, version v1alpha1.
 * One source: the OpenAPI schemas below produce both the CRDs in crds/ (operator/generate.ts, with a
 * unit test that the committed YAML is what this file generates) and the TS types the operator uses.
 *
 * Admission-time rules (CEL `x-kubernetes-validations`) refuse what cannot be applied, with a message
 * saying why and what to do instead. CEL does not see deletes, so deletion protection is a
 * ValidatingAdmissionPolicy shipped next to the CRDs.
 */
import { TOPIC_RESOURCE_NAME_MAX, TOPIC_RESOURCE_NAME_PATTERN } from '../common/names';
import type { TopicSpec } from '../common/topic-spec';
import {
  array,
  bool,
  conditions,
  int,
  intOneOf,
  map,
  object,
  quantity,
  string,
  stringEnum,
  type AnySchema,
  type Infer,
} from './schema';

export const GROUP = 'daftka.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Topic names: common/names.ts TOPIC_RESOURCE_NAME_PATTERN and TOPIC_RESOURCE_NAME_MAX. */
export const MAX_PARTITIONS = 1000;

export const TOPIC_CONDITIONS = ['Ready', 'QuorumHealthy', 'LeaderElected', 'Reconfiguring', 'Degraded'] as const;
export type ConditionType = (typeof TOPIC_CONDITIONS)[number];

const immutable = (what: string, instead: string) => ({
  rule: 'self == oldSelf',
  message: `${what} cannot change after the topic is created; ${instead}`,
});

// ---- Topic ----------------------------------------------------------------------------------------

const resourceList = map(quantity({}), { maxProperties: 16 });

export const topicSpecSchema = object(
  {
    partitions: int({
      description: 'Number of partitions (Raft groups). Can be increased, never decreased.',
      min: 1,
      max: MAX_PARTITIONS,
      default: 3,
    }),
    replicationFactor: intOneOf([1, 3, 5, 7] as const, {
      description: 'Replicas per partition (Raft voters): 1, 3, 5 or 7. Fixed at creation.',
      default: 3,
      message:
        'replicationFactor must be 1, 3, 5 or 7: an odd number of voters, so that a majority exists (use 3 for production)',
    }),
    retention: object(
      {
        ms: int({
          description: 'Delete records older than this (ms); -1 keeps them forever.',
          min: -1,
          format: 'int64',
        }),
        bytes: int({
          description: 'Delete the oldest records beyond this log size per partition; -1 = unbounded.',
          min: -1,
          format: 'int64',
        }),
      },
      { description: 'Retention per partition; the defaults are 7 days and unbounded bytes.' },
    ),
    cleanup: stringEnum(['delete', 'compact', 'compact,delete'] as const, {
      description:
        "How old records go (Kafka's cleanup.policy): delete = time and size retention; compact = keep the latest record of each key, drop tombstones (null values) after compaction.deleteRetentionMs, no retention (docs/compaction.md); compact,delete = both. On a compacted topic every record needs a key. Absent: delete.",
    }),
    compaction: object(
      {
        deleteRetentionMs: int({
          description:
            "How long a tombstone stays readable after the compaction pass that first covered it (Kafka's delete.retention.ms); default 86400000 (1 day).",
          min: 0,
          format: 'int64',
        }),
        minLagMs: int({
          description:
            "A record is compacted only once its batch is this old (Kafka's min.compaction.lag.ms); default 0.",
          min: 0,
          format: 'int64',
        }),
        minDirtyPercent: int({
          description:
            "A pass is requested once uncompacted bytes are this share of the log (Kafka's min.cleanable.dirty.ratio × 100); default 50.",
          min: 0,
          max: 100,
        }),
      },
      { description: 'Key compaction settings, used when cleanup includes compact.' },
    ),
    maxRecordBytes: int({
      description:
        'Largest record (key + value + headers), bytes. At most 8 MiB: a produce batch is bounded by 8 MiB so its Raft entry fits the 16 MiB frame.',
      min: 1,
      max: 8 * 1024 * 1024,
    }),
    quotas: object(
      {
        produceBytesPerSecond: int({ min: 1, format: 'int64' }),
        fetchBytesPerSecond: int({ min: 1, format: 'int64' }),
        recordsPerSecond: int({ min: 1, format: 'int64' }),
      },
      { description: 'Per-principal rate limits enforced by the gateway (429 QUOTA_EXCEEDED beyond them).' },
    ),
    storage: object(
      {
        size: string({
          description: 'PersistentVolumeClaim size of each replica (a quantity such as 10Gi).',
          maxLength: 64,
          validations: [
            {
              rule: "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
              message: 'storage.size must be a positive quantity such as 10Gi',
            },
          ],
        }),
        storageClassName: string({
          description: 'StorageClass of the PVCs; empty uses the cluster default.',
          maxLength: 253,
        }),
      },
      {
        description:
          "Volume of each replica; absent uses the operator's default. Fixed at creation (StatefulSet volume claim templates are immutable).",
      },
    ),
    resources: object(
      { requests: resourceList, limits: resourceList },
      {
        description:
          "Container resources of each replica; absent uses the operator's defaults. A change rolls the pods one at a time.",
      },
    ),
    access: object(
      {
        producers: array(string({ maxLength: 253 }), { maxItems: 256, listType: 'set' }),
        consumers: array(string({ maxLength: 253 }), { maxItems: 256, listType: 'set' }),
        admins: array(string({ maxLength: 253 }), { maxItems: 256, listType: 'set' }),
        groups: array(
          object(
            {
              principals: array(string({ maxLength: 253 }), { maxItems: 256, listType: 'set' }),
              name: string({
                description: 'An exact group name, or "*" for every group.',
                maxLength: 249,
                pattern: '^([A-Za-z0-9._-]{1,249}|[*])$',
              }),
              prefix: string({
                description: 'Every group whose name starts with this (a prefixed group ACL, as in Kafka).',
                maxLength: 249,
                pattern: '^[A-Za-z0-9._-]{1,249}$',
              }),
            },
            {
              required: ['principals'],
              description: 'Principals that may use the consumer groups matched by name or prefix.',
              validations: [
                {
                  rule: 'has(self.name) != has(self.prefix)',
                  message: 'a group grant names exactly one of name or prefix',
                },
              ],
            },
          ),
          {
            maxItems: 256,
            description:
              "Who may use which consumer groups (commit, reset, lease fetch and ack, read the policy); changing a group's policy needs admin. Admins hold every group.",
          },
        ),
      },
      {
        description:
          'Principals allowed to produce, consume and administer ("*" = any authenticated principal). Closed by default: an absent list grants nothing.',
      },
    ),
    deadLetter: object(
      {
        maxAttempts: int({
          description: 'Deliveries of a record in leased mode before it is dead-lettered.',
          min: 1,
          max: 1000,
        }),
        retentionMs: int({
          description: 'How long dead letters are kept (ms); -1 = forever.',
          min: -1,
          format: 'int64',
        }),
      },
      { description: 'Dead-letter handling for leased consumer groups.' },
    ),
    deletionPolicy: stringEnum(['Retain', 'Delete'] as const, {
      description:
        "What happens to the replicas' volumes when the Topic is deleted: Retain keeps the PVCs, Delete removes them.",
      default: 'Retain',
    }),
    deletionProtection: bool({
      description: 'While true, deleting the Topic is refused at admission (ValidatingAdmissionPolicy).',
      default: false,
    }),
  },
  {
    description: 'Desired state of a topic.',
    validations: [
      {
        rule: 'self.partitions >= oldSelf.partitions',
        message:
          'spec.partitions cannot decrease: records are placed by key hash, and removing a partition would drop its records; to have fewer partitions, create a new topic with the wanted count and migrate producers and consumers to it',
        reason: 'FieldValueForbidden',
      },
      {
        rule: 'has(self.storage) == has(oldSelf.storage) && (!has(self.storage) || self.storage == oldSelf.storage)',
        message:
          'spec.storage cannot change after the topic is created (StatefulSet volume claim templates are immutable); expand the PVCs directly if the StorageClass allows volume expansion, or create a new topic with the wanted storage and migrate to it',
        reason: 'FieldValueForbidden',
      },
      {
        rule: 'self.replicationFactor == oldSelf.replicationFactor',
        message:
          'spec.replicationFactor cannot change after creation; create a new topic with the wanted replication factor and migrate producers and consumers to it',
        reason: 'FieldValueForbidden',
      },
    ],
  },
);

export const topicStatusSchema = object(
  {
    observedGeneration: int({ min: 0, format: 'int64', description: 'The spec generation this status describes.' }),
    topicId: string({
      description: 'UUID assigned once, when the operator first sees the topic.',
      maxLength: 36,
      validations: [{ rule: 'self == oldSelf', message: 'status.topicId is set once and never changes' }],
    }),
    partitions: int({ min: 0, description: 'Partitions that exist (Partition objects).' }),
    readyPartitions: int({ min: 0, description: 'Partitions with an elected leader and a healthy quorum.' }),
    leaderlessPartitions: int({ min: 0, description: 'Partitions with no leader reported.' }),
    underReplicatedPartitions: int({
      min: 0,
      description: 'Partitions with fewer healthy, caught-up voters than replicationFactor.',
    }),
    conditions: conditions(TOPIC_CONDITIONS),
  },
  { description: 'Observed state, written by the operator.' },
);

// ---- Partition ------------------------------------------------------------------------------------

export const partitionSpecSchema = object(
  {
    topic: string({
      description: 'The owning Topic.',
      maxLength: TOPIC_RESOURCE_NAME_MAX,
      validations: [immutable('spec.topic', 'the operator owns Partition objects; edit the Topic instead')],
    }),
    index: int({
      description: 'Partition number within the topic.',
      min: 0,
      max: MAX_PARTITIONS - 1,
      validations: [immutable('spec.index', 'the operator owns Partition objects; edit the Topic instead')],
    }),
    replicas: int({
      description: 'Replicas (voters) of this partition: the topic replication factor.',
      min: 1,
      max: 7,
    }),
    preferredLeader: int({ description: 'Ordinal that should lead when leadership is balanced.', min: 0, max: 6 }),
  },
  {
    required: ['topic', 'index', 'replicas'],
    validations: [
      {
        rule: '!has(self.preferredLeader) || self.preferredLeader < self.replicas',
        message: 'spec.preferredLeader must be an ordinal below spec.replicas',
      },
    ],
  },
);

export const partitionReplicaSchema = object(
  {
    ordinal: int({ min: 0, max: 6 }),
    id: string({ description: 'Replica id `<ordinal>.<incarnation>` as reported.', maxLength: 128 }),
    incarnation: string({ maxLength: 128 }),
    pod: string({ maxLength: 253 }),
    node: string({ maxLength: 253 }),
    zone: string({ maxLength: 253 }),
    role: string({ description: 'leader, follower, learner, candidate, or unknown (no fresh report).', maxLength: 32 }),
    lag: int({ min: 0, format: 'int64', description: 'Entries behind the leader (from the leader report).' }),
    healthy: bool({ description: 'Fresh report, ready, a voter, and caught up.' }),
    lastReportTime: string({ format: 'date-time' }),
  },
  { required: ['ordinal', 'pod', 'role', 'healthy'] },
);

export const partitionOperationSchema = object(
  {
    kind: stringEnum(['move', 'roll'] as const, {
      description:
        'move: add a replica in the spare slot, then remove this one (its volume is dropped); roll: restart it on the new template.',
    }),
    reason: string({ maxLength: 64 }),
    ordinal: int({ min: 0, max: 7 }),
    target: int({
      min: 0,
      max: 7,
      description: 'move: the spare slot (StatefulSet ordinal) the new replica is added in.',
    }),
    pod: string({ maxLength: 253 }),
    podUid: string({
      maxLength: 64,
      description: 'UID of the pod being replaced: a pod with another UID is its successor.',
    }),
    node: string({ maxLength: 253, description: 'The node the replica is moved off (move).' }),
    startedAt: string({ format: 'date-time' }),
    message: string({ maxLength: 4096 }),
  },
  {
    required: ['kind', 'reason', 'ordinal', 'pod', 'startedAt'],
    description: 'The rebalancer operation in progress, if any.',
  },
);

export const partitionStatusSchema = object(
  {
    observedGeneration: int({ min: 0, format: 'int64' }),
    leader: string({ description: 'Replica id of the leader.', maxLength: 128 }),
    leaderPod: string({ maxLength: 253 }),
    term: int({ min: 0, format: 'int64' }),
    highWatermark: int({ min: 0, format: 'int64' }),
    logStartOffset: int({ min: 0, format: 'int64' }),
    replicas: array(partitionReplicaSchema, { maxItems: 16 }),
    operation: partitionOperationSchema,
    conditions: conditions(TOPIC_CONDITIONS),
  },
  {},
);

// ---- Types ----------------------------------------------------------------------------------------

export type TopicCrSpec = Infer<typeof topicSpecSchema>;
export type TopicCrStatus = Infer<typeof topicStatusSchema>;
export type PartitionCrSpec = Infer<typeof partitionSpecSchema>;
export type PartitionCrStatus = Infer<typeof partitionStatusSchema>;
export type PartitionReplicaStatus = Infer<typeof partitionReplicaSchema>;
export type PartitionOperation = Infer<typeof partitionOperationSchema>;
export type Condition = NonNullable<TopicCrStatus['conditions']>[number];

/** Compile-time check: the CRD spec is what local mode and desiredReplicas take (common/topic-spec.ts). */
type Assignable<A extends B, B> = A;
export type TopicSpecAgreesWithCommon = Assignable<TopicCrSpec, TopicSpec>;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface Topic {
  apiVersion: typeof API_VERSION;
  kind: 'Topic';
  metadata: ObjectMeta;
  spec: TopicCrSpec;
  status?: TopicCrStatus;
}

export interface Partition {
  apiVersion: typeof API_VERSION;
  kind: 'Partition';
  metadata: ObjectMeta;
  spec: PartitionCrSpec;
  status?: PartitionCrStatus;
}

// ---- CRDs and the admission policy ----------------------------------------------------------------

interface PrinterColumn {
  name: string;
  type: 'integer' | 'string' | 'date' | 'boolean' | 'number';
  jsonPath: string;
  description?: string;
  priority?: number;
}

function crd(o: {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: AnySchema;
  status: AnySchema;
  rootValidations: unknown[];
  columns: PrinterColumn[];
}) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${o.plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/name': 'daftka', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: o.kind,
        listKind: `${o.kind}List`,
        plural: o.plural,
        singular: o.singular,
        shortNames: o.shortNames,
        categories: ['daftka'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: o.columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: o.description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: o.spec,
                status: o.status,
              },
              ...(o.rootValidations.length > 0 ? { 'x-kubernetes-validations': o.rootValidations } : {}),
            },
          },
        },
      ],
    },
  };
}

export function topicCrd() {
  return crd({
    kind: 'Topic',
    plural: 'topics',
    singular: 'topic',
    shortNames: ['dtopic'],
    description:
      'A Daftka topic: a named, partitioned, Raft-replicated log. The operator runs one StatefulSet per partition.',
    spec: topicSpecSchema,
    status: topicStatusSchema,
    rootValidations: [
      {
        rule: `self.metadata.name.matches('${TOPIC_RESOURCE_NAME_PATTERN}') && size(self.metadata.name) <= ${TOPIC_RESOURCE_NAME_MAX}`,
        messageExpression: `'topic name ' + self.metadata.name + ' is not allowed: use lowercase letters, digits and -, start with a letter, end with a letter or digit, at most ${TOPIC_RESOURCE_NAME_MAX} characters (it becomes part of StatefulSet, Service and pod names)'`,
        message: `topic names use lowercase letters, digits and -, start with a letter, end with a letter or digit, at most ${TOPIC_RESOURCE_NAME_MAX} characters`,
        reason: 'FieldValueInvalid',
      },
    ],
    columns: [
      { name: 'Partitions', type: 'integer', jsonPath: '.spec.partitions' },
      { name: 'RF', type: 'integer', jsonPath: '.spec.replicationFactor' },
      { name: 'Ready', type: 'integer', jsonPath: '.status.readyPartitions' },
      { name: 'Leaderless', type: 'integer', jsonPath: '.status.leaderlessPartitions' },
      {
        name: 'URP',
        type: 'integer',
        jsonPath: '.status.underReplicatedPartitions',
        description: 'Under-replicated partitions',
      },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  });
}

export function partitionCrd() {
  return crd({
    kind: 'Partition',
    plural: 'partitions',
    singular: 'partition',
    shortNames: ['dpart'],
    description: 'One partition (Raft group) of a Topic; created and owned by the operator.',
    spec: partitionSpecSchema,
    status: partitionStatusSchema,
    rootValidations: [],
    columns: [
      { name: 'Topic', type: 'string', jsonPath: '.spec.topic' },
      { name: 'Index', type: 'integer', jsonPath: '.spec.index' },
      { name: 'Leader', type: 'string', jsonPath: '.status.leaderPod' },
      { name: 'Term', type: 'integer', jsonPath: '.status.term' },
      { name: 'HW', type: 'integer', jsonPath: '.status.highWatermark', description: 'High watermark' },
      { name: 'Ready', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  });
}

export const DELETION_PROTECTION_POLICY = 'daftka-topic-deletion-protection';

/** CEL in CRDs does not see DELETE; this policy refuses deleting a Topic whose spec.deletionProtection is true. */
export function deletionProtectionPolicy() {
  return [
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: DELETION_PROTECTION_POLICY, labels: { 'app.kubernetes.io/name': 'daftka' } },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [{ apiGroups: [GROUP], apiVersions: ['*'], operations: ['DELETE'], resources: ['topics'] }],
        },
        validations: [
          {
            expression: '!(has(oldObject.spec.deletionProtection) && oldObject.spec.deletionProtection == true)',
            messageExpression: String.raw`"topic " + oldObject.metadata.name + " has spec.deletionProtection: true; set it to false first (kubectl patch topic " + oldObject.metadata.name + " -n " + oldObject.metadata.namespace + " --type=merge -p '{\"spec\":{\"deletionProtection\":false}}'), then delete it"`,
            message: 'the topic has spec.deletionProtection: true; set it to false before deleting the topic',
            reason: 'Forbidden',
          },
        ],
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: DELETION_PROTECTION_POLICY, labels: { 'app.kubernetes.io/name': 'daftka' } },
      spec: { policyName: DELETION_PROTECTION_POLICY, validationActions: ['Deny'] },
    },
  ];
}

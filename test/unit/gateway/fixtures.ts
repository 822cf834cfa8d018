import type { TopicInfo } from '../../../gateway/catalog';

/** A topic description for tests; everything overridable. */
export function topic(name: string, over: Partial<TopicInfo> = {}): TopicInfo {
  const partitions = over.partitions ?? 3;
  return {
    name,
    partitions,
    maxRecordBytes: 1024,
    quotas: {},
    access: { producers: ['*'], consumers: ['*'], admins: [], groups: [{ principals: ['*'], name: '*' }] },
    replicaEndpoints: Array.from({ length: partitions }, (_, p) => [
      `r0-${name}-${p}:9000`,
      `r1-${name}-${p}:9000`,
      `r2-${name}-${p}:9000`,
    ]),
    ...over,
  };
}

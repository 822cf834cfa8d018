import { MAX_WAIT_MS } from '../../common/limits';
import { MAX_OFFSETS_PER_COMMIT } from '../api-spec';
import { can, canSee } from '../auth';
import { replicationFactorOf, type TopicInfo, type TopicQuotas } from '../catalog';
import { errorEntry, mapPool, topicFromPath, type Call, type GatewayContext, type Reply } from './context';

/** Introspection: only topics the caller holds a right on are ever named. */

function quotasJson(q: TopicQuotas) {
  return {
    ...(q.produceBytesPerSecond !== undefined ? { produce_bytes_per_second: q.produceBytesPerSecond } : {}),
    ...(q.fetchBytesPerSecond !== undefined ? { fetch_bytes_per_second: q.fetchBytesPerSecond } : {}),
    ...(q.recordsPerSecond !== undefined ? { records_per_second: q.recordsPerSecond } : {}),
  };
}

function visible(g: GatewayContext, c: Call): TopicInfo[] {
  return g.catalog.list().filter((t) => canSee(c.principal, t));
}

export async function listTopicsHandler(g: GatewayContext, c: Call): Promise<Reply> {
  return { body: { topics: visible(g, c).map((t) => ({ name: t.name, partition_count: t.partitions })) } };
}

export async function getTopicHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const t = topicFromPath(g, c, 'see');
  const partitions = await mapPool(
    Array.from({ length: t.partitions }, (_, p) => p),
    32,
    async (p) => {
      try {
        const s = await g.router.status({ topic: t.name, partition: p, requestId: c.requestId });
        return {
          partition: p,
          leader: s.leaderId,
          term: s.term,
          high_watermark: s.highWatermark,
          log_start_offset: s.logStartOffset,
          voters: s.voters.length,
          replicas: replicationFactorOf(t, p),
          // Fewer voters than the replication factor, or a learner still catching up.
          under_replicated: s.voters.length < replicationFactorOf(t, p) || s.learners.length > 0,
        };
      } catch (err) {
        return { partition: p, leader: null, error: errorEntry(err) };
      }
    },
  );
  return {
    body: {
      name: t.name,
      partition_count: t.partitions,
      max_record_bytes: t.maxRecordBytes,
      cleanup: t.cleanup ?? 'delete',
      quotas: quotasJson(t.quotas),
      rights: (['produce', 'consume', 'admin'] as const).filter((r) => can(c.principal, t, r)),
      partitions,
    },
  };
}

export async function limitsHandler(g: GatewayContext, c: Call): Promise<Reply> {
  return {
    body: {
      max_body_bytes: g.limits.maxBodyBytes,
      max_records_per_request: g.limits.maxRecordsPerRequest,
      max_offsets_per_commit: MAX_OFFSETS_PER_COMMIT,
      fetch_max_records: g.limits.fetchMaxRecords,
      fetch_max_bytes: g.limits.fetchMaxBytes,
      fetch_max_wait_ms: MAX_WAIT_MS,
      request_timeout_ms: g.limits.requestTimeoutMs,
      topics: visible(g, c).map((t) => ({
        name: t.name,
        max_record_bytes: t.maxRecordBytes,
        quotas: quotasJson(t.quotas),
      })),
    },
  };
}

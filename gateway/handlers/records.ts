import { DaftkaError, isDaftkaError } from '../../common/errors';
import type { ProducerIdentity, ProduceResult, RecordIn } from '../../common/partition-api';
import { decodeRecord, type RecordJson } from '../codec';
import { partitionForKey, StickyPartitioner } from '../../common/partitioner';
import { isCompacted } from '../../common/topic-spec';
import { invalidField } from '../validation';
import { idempotencyKeyOf, topicFromPath, type Call, type GatewayContext, type Reply } from './context';
import { withPartialResults } from './partial';
import type { TopicInfo } from '../catalog';

/**
 * POST /v1/topics/{topic}/records.
 *
 * Everything is checked before anything is written: rights, body shape, every record (base64,
 * sizes, partitions), then the quotas for the whole request. Then the records are grouped per
 * partition (request order kept inside each group) and each group is one replica batch; groups
 * are written in parallel, and the answer waits for all of them.
 *
 * Not atomic across partitions. When a group fails, the answer is the problem of the first
 * failed group (in order of first appearance in the request) plus `partial_results`, one entry
 * per partition: written / duplicate (with base_offset), failed / unknown (with code). With an
 * Idempotency-Key each partition's batch is deduplicated under `${key}#p${partition}` (and the
 * partition of keyless records is derived from the key), so resending the same request
 * rewrites nothing: written partitions answer duplicate with their original offsets.
 */

interface ProduceBody {
  records: RecordJson[];
  producer_id?: string;
  producer_epoch?: number;
  producer_seq?: number;
}

interface Group {
  partition: number;
  indices: number[];
  records: RecordIn[];
  bytes: number;
}

const sticky = new StickyPartitioner();

/**
 * The record count of a produce body, checked on the parsed document before the schema walks
 * every record: ~600k tiny records fit in an 8 MiB body, and validating each before refusing
 * the request is the work the bound exists to avoid. 413 with the limit, as after validation.
 */
export function checkRecordCount(doc: unknown, limit: number): void {
  const records = (doc as { records?: unknown } | null)?.records;
  if (Array.isArray(records) && records.length > limit)
    throw new DaftkaError(
      'PAYLOAD_TOO_LARGE',
      `${records.length} records in one request; at most ${limit} are allowed`,
      {
        extra: { limit, pointer: '/records' },
      },
    );
}

/** A record of a produce: decoded, its size checked against the topic, its partition chosen. */
export interface PlacedRecord {
  record: RecordIn;
  bytes: number;
  partition: number;
}

/**
 * Decode `r` (already schema-valid) and place it: an explicit `partition` (404 past the topic's),
 * else Kafka's murmur2 of the key, else `keyless()` (one partition per request or stream).
 * `pointer` prefixes the JSON pointers of errors, `name` names the record in their text.
 */
export function placeRecord(
  t: TopicInfo,
  r: RecordJson,
  pointer: string,
  name: string,
  nowMs: number,
  keyless: () => number,
): PlacedRecord {
  const { record, bytes } = decodeRecord(r, pointer, nowMs);
  if (bytes > t.maxRecordBytes)
    throw new DaftkaError(
      'RECORD_TOO_LARGE',
      `${name} is ${bytes} bytes (key + value + headers); topic ${t.name} allows ${t.maxRecordBytes}`,
      { extra: { limit: t.maxRecordBytes, ...(pointer !== '' ? { pointer } : {}) } },
    );
  // A compacted topic keeps the latest record per key: a keyless record could never be superseded
  // or deleted, so it is refused (as Kafka refuses it on a compacted topic).
  if (record.key === null && isCompacted(t.cleanup))
    throw new DaftkaError(
      'INVALID_REQUEST',
      `${name} has no key; topic ${t.name} is compacted (cleanup ${t.cleanup}) and every record needs a key`,
      { extra: { reason: 'key_required', ...(pointer !== '' ? { pointer: `${pointer}/key` } : {}) } },
    );
  if (r.partition !== undefined) {
    if (r.partition >= t.partitions)
      throw new DaftkaError(
        'PARTITION_NOT_FOUND',
        `topic ${t.name} has ${t.partitions} partitions (0–${t.partitions - 1})`,
        {
          extra: { pointer: `${pointer}/partition` },
        },
      );
    return { record, bytes, partition: r.partition };
  }
  return { record, bytes, partition: record.key !== null ? partitionForKey(record.key, t.partitions) : keyless() };
}

export async function produceHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const t = topicFromPath(g, c, 'produce');
  const idempotencyKey = idempotencyKeyOf(c);
  const body = await c.body<ProduceBody>();
  const n = body.records.length;
  if (n > g.limits.maxRecordsPerRequest)
    throw new DaftkaError(
      'PAYLOAD_TOO_LARGE',
      `${n} records in one request; at most ${g.limits.maxRecordsPerRequest} are allowed`,
      { extra: { limit: g.limits.maxRecordsPerRequest, pointer: '/records' } },
    );

  const now = g.nowMs();
  const groups = new Map<number, Group>();
  let stickyPartition: number | undefined;
  let totalBytes = 0;
  const keyless = () => (stickyPartition ??= sticky.choose(t.name, t.partitions, idempotencyKey));
  for (let i = 0; i < n; i++) {
    const {
      record,
      bytes,
      partition: p,
    } = placeRecord(t, body.records[i], `/records/${i}`, `record ${i}`, now, keyless);
    let grp = groups.get(p);
    if (grp === undefined) {
      grp = { partition: p, indices: [], records: [], bytes: 0 };
      groups.set(p, grp);
    }
    grp.indices.push(i);
    grp.records.push(record);
    grp.bytes += bytes;
    totalBytes += bytes;
  }

  let producer: ProducerIdentity | undefined;
  if (body.producer_id !== undefined) {
    // Producer sequences are per partition (as in Kafka): one request, one partition.
    if (groups.size > 1)
      throw invalidField('/producer_id', 'requires all records of the request to go to one partition');
    producer = { producerId: body.producer_id, epoch: body.producer_epoch!, seq: body.producer_seq! };
  }

  g.quotas.admitProduce(t, c.principal.name, totalBytes, n);

  const list = [...groups.values()];
  const settled = await Promise.allSettled(
    list.map((grp) =>
      g.produce(
        {
          topic: t.name,
          partition: grp.partition,
          records: grp.records,
          ...(idempotencyKey !== undefined ? { idempotencyKey: `${idempotencyKey}#p${grp.partition}` } : {}),
          ...(producer !== undefined ? { producer } : {}),
          requestId: c.requestId,
          timeoutMs: g.limits.requestTimeoutMs,
        },
        grp.bytes,
      ),
    ),
  );

  const byPartition = new Map<number, ProduceResult>();
  let firstError: unknown;
  settled.forEach((s, k) => {
    const grp = list[k];
    if (s.status === 'fulfilled') {
      byPartition.set(grp.partition, s.value);
      if (!s.value.duplicate) {
        g.metrics.produceRecords.inc({ topic: t.name }, grp.records.length);
        g.metrics.produceBytes.inc({ topic: t.name }, grp.bytes);
      }
    } else if (firstError === undefined) firstError = clientKeyed(s.reason, idempotencyKey, grp.partition);
  });

  if (firstError !== undefined) {
    const partial = settled.map((s, k) => {
      const grp = list[k];
      if (s.status === 'fulfilled')
        return {
          partition: grp.partition,
          records: grp.records.length,
          status: s.value.duplicate ? 'duplicate' : 'written',
          base_offset: s.value.baseOffset,
        };
      const code = isDaftkaError(s.reason) ? s.reason.code : 'INTERNAL';
      return {
        partition: grp.partition,
        records: grp.records.length,
        status: code === 'COMMIT_UNKNOWN' ? 'unknown' : 'failed',
        code,
      };
    });
    if (list.length === 1) throw firstError;
    throw withPartialResults(firstError, partial);
  }

  const results = new Array<{ partition: number; offset: number; status: 'written' | 'duplicate' }>(n);
  for (const grp of list) {
    const r = byPartition.get(grp.partition)!;
    const status = r.duplicate ? 'duplicate' : 'written';
    grp.indices.forEach((i, j) => {
      results[i] = { partition: grp.partition, offset: r.baseOffset + j, status };
    });
  }
  return { body: { results } };
}

/**
 * A replica's IDEMPOTENCY_CONFLICT names the per-partition key (`<key>#p<n>`): say it with the
 * key the client sent, and the partition, instead of leaking the internal form.
 */
function clientKeyed(err: unknown, key: string | undefined, partition: number): unknown {
  if (key === undefined || !isDaftkaError(err) || err.code !== 'IDEMPOTENCY_CONFLICT') return err;
  return new DaftkaError(
    'IDEMPOTENCY_CONFLICT',
    `Idempotency-Key ${JSON.stringify(key)} was already used with a different payload (partition ${partition}); use a new key for new data`,
    { extra: { ...(err.extra ?? {}), partition }, cause: err },
  );
}

import { DEFAULT_FETCH_BYTES, DEFAULT_FETCH_RECORDS } from '../api-spec';
import { encodeRecord, recordBytes, type OutputEncoding } from '../codec';
import { partitionFromPath, topicFromPath, type Call, type GatewayContext, type Reply } from './context';

/**
 * GET /v1/topics/{topic}/partitions/{partition}/records — stateless fetch with long-poll.
 * max_records / max_bytes above the configured limits are lowered to them (see GET /v1/limits);
 * the fetch quota admits the request while the caller's bucket is not in debt and is charged
 * with the bytes returned.
 */

interface FetchQuery {
  offset: number;
  max_records?: number;
  max_bytes?: number;
  wait_ms?: number;
  encoding?: OutputEncoding;
}

export async function fetchHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const t = topicFromPath(g, c, 'consume');
  const partition = partitionFromPath(c, t);
  const q = c.query as unknown as FetchQuery;
  g.quotas.admitFetch(t, c.principal.name);
  const r = await g.router.fetch({
    topic: t.name,
    partition,
    offset: q.offset,
    maxRecords: Math.min(q.max_records ?? DEFAULT_FETCH_RECORDS, g.limits.fetchMaxRecords),
    maxBytes: Math.min(q.max_bytes ?? DEFAULT_FETCH_BYTES, g.limits.fetchMaxBytes),
    waitMs: q.wait_ms ?? 0,
    requestId: c.requestId,
  });
  const enc = q.encoding ?? 'base64';
  let bytes = 0;
  const records = r.records.map((rec) => {
    bytes += recordBytes(rec);
    return encodeRecord(rec, enc);
  });
  g.quotas.chargeFetch(t, c.principal.name, bytes);
  if (records.length > 0) {
    g.metrics.fetchRecords.inc({ topic: t.name }, records.length);
    g.metrics.fetchBytes.inc({ topic: t.name }, bytes);
  }
  return {
    body: {
      records,
      next_offset: r.nextOffset,
      high_watermark: r.highWatermark,
      log_start_offset: r.logStartOffset,
    },
  };
}

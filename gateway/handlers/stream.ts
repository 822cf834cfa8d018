import { DaftkaError, toProblem } from '../../common/errors';
import { StickyPartitioner } from '../../common/partitioner';
import type { RecordJson } from '../codec';
import { placeRecord } from './records';
import { topicFromPath, type Call, type GatewayContext, type Reply } from './context';

/**
 * POST /v1/topics/{topic}/records:stream — streaming produce (Confluent REST v3's streaming
 * mode is the anchor): NDJSON in, one record per line; one result line per request line out, in
 * request order, as each record is written or refused.
 *
 * Each line is produced on its own through the coalescer (gateway/produce-coalescer.ts): while
 * a partition's call is in flight the lines that arrive meanwhile ride on its next call, so one
 * connection sending one record per line reaches batch throughput. Results are written in line
 * order (a partition's records keep the stream's order: one call in flight per partition).
 *
 * Bounds: at most `STREAM_WINDOW` lines and maxBodyBytes of line bytes are in flight per stream
 * — past either the stream stops reading its body (TCP backpressure to the client) until half
 * have been answered; a stream's lines are not subject to the coalescer's per-partition waiting
 * bound (this window bounds them); a line
 * longer than maxBodyBytes is refused on its own (413 in its result line) and skipped. The body
 * budget holds one maxBodyBytes reservation per stream. A client that goes away stops the
 * reading; lines already taken may still be written (at-least-once).
 */

/** Lines in flight per stream (read, not yet answered). */
export const STREAM_WINDOW = 1024;

const NEWLINE = 0x0a;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const sticky = new StickyPartitioner();

function isNdjson(contentType: string | undefined): boolean {
  const mt = (contentType ?? '').split(';')[0].trim().toLowerCase();
  return mt === 'application/x-ndjson' || mt === 'application/jsonl';
}

export async function produceStreamHandler(g: GatewayContext, c: Call): Promise<Reply> {
  const t = topicFromPath(g, c, 'produce');
  const s = c.stream!;
  const { req, res } = s;
  if (!isNdjson(req.headers['content-type']))
    throw new DaftkaError(
      'UNSUPPORTED_MEDIA_TYPE',
      'send the stream as NDJSON with Content-Type: application/x-ndjson',
    );
  const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity' && encoding !== '')
    throw new DaftkaError('UNSUPPORTED_MEDIA_TYPE', 'a record stream is sent without Content-Encoding');
  if (c.headers['idempotency-key'] !== undefined)
    throw new DaftkaError(
      'INVALID_REQUEST',
      'a record stream takes no Idempotency-Key: retry the lines not answered "written"',
      { extra: { pointer: 'Idempotency-Key' } },
    );
  s.reserve();
  const streamPartition = sticky.choose(t.name, t.partitions, undefined);
  const maxLineBytes = g.limits.maxBodyBytes;

  const one = async (line: number, bytes: Buffer): Promise<string> => {
    try {
      let doc: unknown;
      try {
        doc = JSON.parse(utf8.decode(bytes));
      } catch (err) {
        throw new DaftkaError('MALFORMED_JSON', `line ${line} is not valid JSON: ${(err as Error).message}`);
      }
      s.validateItem(doc);
      const {
        record,
        bytes: size,
        partition,
      } = placeRecord(t, doc as RecordJson, '', 'the record', g.nowMs(), () => streamPartition);
      g.quotas.admitProduce(t, c.principal.name, size, 1);
      const out = await g.produce(
        {
          topic: t.name,
          partition,
          records: [record],
          requestId: c.requestId,
          timeoutMs: g.limits.requestTimeoutMs,
        },
        size,
        true, // bounded by this stream's window
      );
      g.metrics.produceRecords.inc({ topic: t.name }, 1);
      g.metrics.produceBytes.inc({ topic: t.name }, size);
      return JSON.stringify({ line, partition, offset: out.baseOffset, status: 'written' });
    } catch (err) {
      const p = toProblem(err, c.requestId);
      return JSON.stringify({ line, error: p });
    }
  };

  // Results in line order; the reader waits (and so the client) while the window is full: by
  // lines, and by the bytes of the lines in flight (at most the stream's body reservation).
  const results: Array<Promise<string>> = [];
  const sizes: number[] = [];
  let bytesInFlight = 0;
  const windowFull = () => results.length >= STREAM_WINDOW || bytesInFlight >= maxLineBytes;
  let readerDone = false;
  // Who waits for whom (set by the waiting side, called and cleared by the other).
  const wake: { writer: (() => void) | null; reader: (() => void) | null } = { writer: null, reader: null };
  const wakeWriter = () => {
    const w = wake.writer;
    wake.writer = null;
    w?.();
  };
  const push = (p: Promise<string>, bytes: number) => {
    results.push(p);
    sizes.push(bytes);
    bytesInFlight += bytes;
    wakeWriter();
  };
  const writer = (async () => {
    let headed = false;
    for (;;) {
      if (results.length === 0) {
        if (readerDone) break;
        await new Promise<void>((r) => (wake.writer = r));
        continue;
      }
      const text = await results[0];
      results.shift();
      bytesInFlight -= sizes.shift()!;
      if (wake.reader !== null && results.length <= STREAM_WINDOW / 2 && bytesInFlight <= maxLineBytes / 2) {
        const r = wake.reader;
        wake.reader = null;
        r();
      }
      if (res.destroyed) continue; // the client left: the rest settle unseen
      if (!headed) {
        headed = true;
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      }
      if (!res.write(`${text}\n`))
        await new Promise<void>((r) => {
          res.once('drain', r);
          res.once('close', r);
        });
    }
    if (!res.destroyed) {
      if (!headed) res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      res.end();
    }
  })();

  let line = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let skipping = false; // inside a line longer than the limit: drop bytes up to its end
  const endLine = () => {
    line++;
    if (skipping) {
      const n = line;
      push(
        Promise.resolve(
          JSON.stringify({
            line: n,
            error: toProblem(
              new DaftkaError('PAYLOAD_TOO_LARGE', `line ${n} is longer than ${maxLineBytes} bytes`, {
                extra: { limit: maxLineBytes },
              }),
              c.requestId,
            ),
          }),
        ),
        0,
      );
    } else {
      const bytes = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
      // Blank lines (keep-alives, a trailing newline) are counted but not answered.
      if (bytes.some((b) => b !== 0x20 && b !== 0x09 && b !== 0x0d)) push(one(line, bytes), bytes.length);
    }
    pending = [];
    pendingBytes = 0;
    skipping = false;
  };
  const take = (chunk: Buffer) => {
    if (skipping) return;
    if (pendingBytes + chunk.length > maxLineBytes) {
      skipping = true;
      pending = [];
      pendingBytes = 0;
      return;
    }
    pending.push(chunk);
    pendingBytes += chunk.length;
  };
  try {
    for await (const data of req as AsyncIterable<Buffer>) {
      let from = 0;
      for (let nl = data.indexOf(NEWLINE); nl >= 0; nl = data.indexOf(NEWLINE, from)) {
        take(data.subarray(from, nl));
        endLine();
        from = nl + 1;
      }
      if (from < data.length) take(data.subarray(from));
      if (windowFull()) await new Promise<void>((r) => (wake.reader = r));
    }
    if (pendingBytes > 0 || skipping) endLine(); // a last line without its newline
  } catch {
    // The client went away mid-stream: nothing more is read; what was taken still settles.
  } finally {
    readerDone = true;
    wakeWriter();
  }
  await writer;
  return { body: null };
}

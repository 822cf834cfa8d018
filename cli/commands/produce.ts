import { randomUUID } from 'node:crypto';
import { createReadStream, statSync, type ReadStream } from 'node:fs';
import { Option, type Command } from 'commander';
import { collectHeaders, intArg, numberArg, parseDurationMs, type Header } from '../args';
import type { ProduceAnswer, ProduceRecord } from '../api';
import { contextFor, sleep, type Ctx } from '../context';
import { UsageError } from '../errors';
import { renderData } from '../output';
import { Pacer } from '../pacer';
import {
  INPUT_FORMATS,
  readLines,
  recordFromBytes,
  recordFromJsonLine,
  recordFromLine,
  recordSize,
  type InputFormat,
  type RecordDefaults,
} from '../produce-input';
import { ProgressBar } from '../progress';
import { withRetries } from '../retry';
import { getTopic, topicPath } from './topics';

/**
 * `daftka produce <topic>`: records from stdin or a file, in batches (one POST
 * /v1/topics/{topic}/records per batch, one batch in flight so that order is kept), each batch
 * with its own Idempotency-Key `<prefix>-<n>`: a batch whose outcome is unknown (504, a lost
 * connection) is retried with the same key, which the gateway deduplicates.
 */

export interface ProduceOpts {
  file?: string;
  format: InputFormat;
  key?: string;
  keySeparator?: string;
  header?: Header[];
  partition?: number;
  idempotencyKey?: string;
  batchSize: number;
  batchBytes: number;
  lingerMs: number;
  rate?: number;
  retries: number;
  progress: boolean;
  verbose?: boolean;
  quiet?: boolean;
}

interface Tally {
  records: number;
  written: number;
  duplicate: number;
  batches: number;
  partitions: Map<number, { first: number; last: number; records: number }>;
}

export async function produce(ctx: Ctx, topic: string, o: ProduceOpts): Promise<void> {
  await getTopic(ctx, topic); // a missing topic or a bad token fails before any input is read
  const prefix = o.idempotencyKey ?? `cli-${randomUUID()}`;
  if (!/^[\x21-\x7e]{1,110}$/.test(prefix))
    throw new UsageError('--idempotency-key: 1–110 printable ASCII characters without spaces');
  const defaults: RecordDefaults = {
    key: o.key,
    keySeparator: o.keySeparator,
    headers: o.header,
    partition: o.partition,
  };
  const pacer = o.rate !== undefined ? new Pacer(o.rate) : null;
  const maxBatch = pacer ? pacer.maxBatch(o.batchSize) : o.batchSize;

  let input: ReadStream | NodeJS.ReadStream;
  let totalBytes = 0;
  if (o.file !== undefined && o.file !== '-') {
    try {
      totalBytes = statSync(o.file).size;
    } catch (err) {
      throw new UsageError(`--file ${o.file}: ${(err as Error).message}`);
    }
    input = createReadStream(o.file);
  } else {
    input = process.stdin;
    if (process.stdin.isTTY && !o.quiet)
      ctx.err(`reading records for ${topic} from stdin, one per line; Ctrl-D ends\n`);
  }
  const bar = new ProgressBar(ctx.err, totalBytes, o.progress && o.file !== undefined && ctx.errIsTty && !o.quiet);

  const tally: Tally = { records: 0, written: 0, duplicate: 0, batches: 0, partitions: new Map() };
  const t0 = performance.now();
  let readBytes = 0;
  let batch: ProduceRecord[] = [];
  let batchBytes = 0;
  let batchNo = 0;
  let failure: Error | null = null;
  let chain: Promise<void> = Promise.resolve();
  let linger: NodeJS.Timeout | null = null;

  const send = async (records: ProduceRecord[], n: number) => {
    if (pacer) await sleep(pacer.delayFor(records.length), ctx.signal);
    const key = `${prefix}-${n}`;
    const { body } = await withRetries(
      () =>
        ctx.client.post<ProduceAnswer>(
          `${topicPath(topic)}/records`,
          { records },
          { headers: { 'Idempotency-Key': key } },
        ),
      {
        retries: o.retries,
        signal: ctx.signal,
        onRetry: (err, attempt, ms) =>
          ctx.err(`batch ${n}: ${err.message.split(';')[0]}; retry ${attempt}/${o.retries} in ${ms} ms (same key)\n`),
      },
    );
    tally.batches++;
    body.results.forEach((r) => {
      tally.records++;
      if (r.status === 'duplicate') tally.duplicate++;
      else tally.written++;
      const p = tally.partitions.get(r.partition);
      if (p === undefined) tally.partitions.set(r.partition, { first: r.offset, last: r.offset, records: 1 });
      else {
        p.first = Math.min(p.first, r.offset);
        p.last = Math.max(p.last, r.offset);
        p.records++;
      }
      if (o.verbose)
        ctx.out(ctx.output === 'table' ? `${r.partition}\t${r.offset}\t${r.status}\n` : JSON.stringify(r) + '\n');
    });
    bar.update(readBytes, tally.records);
  };

  const flush = (): Promise<void> => {
    if (linger !== null) {
      clearTimeout(linger);
      linger = null;
    }
    if (batch.length === 0) return chain;
    const b = batch;
    const n = batchNo++;
    batch = [];
    batchBytes = 0;
    chain = chain
      .then(() => (failure === null ? send(b, n) : undefined))
      .catch((err: Error) => {
        failure ??= err;
      });
    return chain;
  };

  const add = async (r: ProduceRecord) => {
    const size = recordSize(r);
    if (batch.length > 0 && batchBytes + size > o.batchBytes) await flush();
    batch.push(r);
    batchBytes += size;
    if (batch.length >= maxBatch) await flush();
    else if (linger === null) linger = setTimeout(() => void flush(), o.lingerMs);
  };

  const stop = () => input.destroy();
  ctx.signal.addEventListener('abort', stop, { once: true });
  try {
    if (o.format === 'raw') {
      const chunks: Buffer[] = [];
      for await (const c of input) {
        chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
        readBytes += chunks[chunks.length - 1].length;
      }
      await add(recordFromBytes(Buffer.concat(chunks), defaults));
    } else {
      let lineNo = 0;
      for await (const line of readLines(input as AsyncIterable<Buffer>, (n) => (readBytes += n))) {
        lineNo++;
        const r = o.format === 'ndjson' ? recordFromJsonLine(line, lineNo, defaults) : recordFromLine(line, defaults);
        if (r !== null) await add(r);
        if (failure !== null) break;
      }
    }
  } catch (err) {
    if (!ctx.signal.aborted) throw err;
  } finally {
    ctx.signal.removeEventListener('abort', stop);
  }
  await flush();
  bar.finish(readBytes, tally.records);
  if (failure !== null) {
    if (tally.records > 0 && !o.quiet)
      ctx.err(`${tally.records} record(s) were produced before the failure (batches 0–${tally.batches - 1})\n`);
    throw failure;
  }
  if (!o.quiet) printSummary(ctx, topic, tally, prefix, performance.now() - t0);
}

function printSummary(ctx: Ctx, topic: string, t: Tally, prefix: string, ms: number): void {
  const partitions = [...t.partitions.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([p, v]) => ({ partition: p, first_offset: v.first, last_offset: v.last, records: v.records }));
  if (ctx.output !== 'table') {
    ctx.out(
      renderData(ctx.output, {
        topic,
        records: t.records,
        written: t.written,
        duplicate: t.duplicate,
        batches: t.batches,
        idempotency_key_prefix: prefix,
        elapsed_ms: Math.round(ms),
        partitions,
      }),
    );
    return;
  }
  const where = partitions
    .map(
      (p) =>
        `partition ${p.partition} offsets ${p.first_offset}${p.last_offset > p.first_offset ? `–${p.last_offset}` : ''}`,
    )
    .join(', ');
  ctx.out(
    `produced ${t.records} record(s) to ${topic}: ${t.written} written, ${t.duplicate} duplicate` +
      (where ? ` (${where})` : '') +
      ` in ${(ms / 1000).toFixed(2)} s\n`,
  );
}

export function registerProduce(program: Command): void {
  program
    .command('produce')
    .argument('<topic>', 'topic to write to')
    .description('write records from stdin or a file: lines, NDJSON or raw bytes, in batches')
    .option('-f, --file <path>', 'read from this file instead of stdin (shows a progress bar on a terminal)')
    .addOption(
      new Option(
        '--format <format>',
        'lines: a line is a value; ndjson: a line is {key?, value, headers?, …}; raw: all input is one value',
      )
        .choices(INPUT_FORMATS as string[])
        .default('lines'),
    )
    .option('-k, --key <key>', 'key of every record (records with a key go to murmur2(key) % partitions)')
    .option('-K, --key-separator <sep>', 'lines: the text before the first <sep> is the key (kcat -K)')
    .option('-H, --header <name=value>', 'header on every record (repeatable)', collectHeaders)
    .option('-p, --partition <n>', 'write every record to this partition', intArg(0, 9999))
    .option(
      '--idempotency-key <prefix>',
      'batch n is sent with Idempotency-Key <prefix>-<n>; re-running the same input with the same prefix writes nothing twice (default: random per run)',
    )
    .option(
      '-b, --batch-size <n>',
      'records per request (at most the gateway max_records_per_request)',
      intArg(1, 100_000),
      500,
    )
    .option('--batch-bytes <n>', 'bytes per request, about', intArg(1024, 256 * 1_048_576), 1_048_576)
    .addOption(
      new Option('--linger <duration>', 'send a partial batch after this long without input (stdin)')
        .argParser(parseDurationMs)
        .default(100, '100ms'),
    )
    .option('-r, --rate <records/s>', 'at most this many records per second', numberArg(0, 10_000_000))
    .option('--retries <n>', 'retries of a batch on 429/503/504 or no answer (same key, so safe)', intArg(0, 100), 5)
    .option('--no-progress', 'no progress bar')
    .option('-v, --verbose', 'print partition, offset and status of every record')
    .option('-q, --quiet', 'print nothing on success')
    .addHelpText(
      'after',
      `
Output: a summary (records, written, duplicate, offsets per partition); -o json for a JSON summary.

Examples:
  $ echo hello | daftka produce events
  $ daftka produce events -k user-1 -H source=cli <<< '{"id":1}'
  $ printf 'user-1:hello\\nuser-2:bye\\n' | daftka produce events -K :
  $ daftka produce events --format ndjson -f records.ndjson     # {"key":"k","value":{"a":1},"headers":{"h":"v"}}
  $ daftka produce events -f big.txt --rate 1000 --idempotency-key load-2026-01-04
  $ daftka produce images --format raw -f photo.jpg -k photo-1`,
    )
    .action(async (topic: string, opts: ProduceOpts, cmd: Command) => produce(contextFor(cmd), topic, opts));
}

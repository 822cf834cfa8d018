import { Option, type Command } from 'commander';
import { collectInts, intArg, parseDurationMs, parseOffsetSpec, timestampArg, type OffsetSpec } from '../args';
import type { AckAnswer, FetchAnswer, GroupOffsetsAnswer, TopicAnswer } from '../api';
import { contextFor, type Ctx } from '../context';
import { ApiError, CliError, EXIT, UsageError } from '../errors';
import { recordFormatter, type ApiRecord, type RecordFormat, type RecordFormatter } from '../output';
import { withRetries } from '../retry';
import { getTopic, topicPath } from './topics';

/**
 * `daftka consume <topic>`, three ways:
 *  - by offset (stateless fetch, GET …/partitions/{p}/records): from earliest, latest, an offset or
 *    a timestamp, every partition or the ones named, each partition read in offset order;
 *  - as a cumulative group (--group): from the group's committed offsets (--offset/--timestamp only
 *    for partitions it never committed), committing next_offset after each batch is printed;
 *  - leased (--group --leased, POST /v1/groups/{g}/fetch): each record handed out under a lease and
 *    acknowledged after it is printed with --ack accept | release | reject | none.
 * Without --follow it stops at the end (the high watermark seen at start; leased: when a fetch
 * hands out nothing); with --follow it long-polls until Ctrl-C or -n records.
 */

export type AckAction = 'accept' | 'release' | 'reject' | 'none';

export interface ConsumeOpts {
  partition?: number[];
  offset?: OffsetSpec;
  timestamp?: number;
  follow?: boolean;
  count?: number;
  group?: string;
  commit: boolean;
  leased?: boolean;
  ack: AckAction;
  ackError?: string;
  delay?: number;
  leaseMs?: number;
  format?: RecordFormat;
  encoding: 'utf8' | 'json' | 'base64';
  template?: string;
  wait: number;
  fetchSize: number;
  quiet?: boolean;
}

/** What consume checks before it sends anything. */
export function checkConsumeOpts(o: ConsumeOpts): void {
  if (o.offset !== undefined && o.timestamp !== undefined)
    throw new UsageError('--offset and --timestamp exclude each other');
  if (o.leased) {
    if (o.group === undefined) throw new UsageError('--leased needs --group <group>');
    if (o.partition !== undefined || o.offset !== undefined || o.timestamp !== undefined)
      throw new UsageError(
        '--leased hands out records of every partition: --partition, --offset and --timestamp do not apply',
      );
  } else {
    if (o.ack !== 'accept') throw new UsageError('--ack applies to --leased only');
    if (o.leaseMs !== undefined) throw new UsageError('--lease applies to --leased only');
  }
  if (o.ackError !== undefined && o.ack !== 'release' && o.ack !== 'reject')
    throw new UsageError('--ack-error goes with --ack release or --ack reject');
  if (o.delay !== undefined && o.ack !== 'release') throw new UsageError('--delay goes with --ack release');
  if (o.template !== undefined && o.format !== undefined && o.format !== 'template')
    throw new UsageError(`--template goes with --format template (not ${o.format})`);
}

/** Write with backpressure: a slow pipe slows the fetching instead of filling memory. */
function writer(): (s: string) => Promise<void> {
  return (s) =>
    new Promise((resolve) => {
      if (process.stdout.write(s)) resolve();
      else process.stdout.once('drain', resolve);
    });
}

/** First offset whose record timestamp is ≥ ts, by binary search over [lo, hi) with single-record fetches. */
export async function offsetForTimestamp(
  fetchOne: (offset: number) => Promise<ApiRecord | undefined>,
  ts: number,
  lo: number,
  hi: number,
): Promise<number> {
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const r = await fetchOne(mid);
    if (r === undefined || r.timestamp >= ts) hi = mid;
    else lo = Math.max(mid, r.offset) + 1;
  }
  return lo;
}

class Budget {
  constructor(private left: number) {}
  take(): boolean {
    if (this.left <= 0) return false;
    this.left--;
    return true;
  }
  get exhausted(): boolean {
    return this.left <= 0;
  }
}

export async function consume(ctx: Ctx, topic: string, o: ConsumeOpts): Promise<void> {
  checkConsumeOpts(o);
  const format: RecordFormat =
    o.format ?? (o.template !== undefined ? 'template' : ctx.outputGiven && ctx.output === 'json' ? 'json' : 'value');
  const fmt = recordFormatter(format, o.template);
  const t = await getTopic(ctx, topic);
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const budget = new Budget(o.count ?? Number.POSITIVE_INFINITY);
  const stats = { records: 0, commits: 0, acks: 0 };
  try {
    if (o.leased) await consumeLeased(ctx, t, o, fmt, budget, stop, stats);
    else await consumeByOffset(ctx, t, o, fmt, budget, stop, stats);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
  if (!o.quiet) {
    const extra = o.leased
      ? `, ${stats.acks} ack(s) ${o.ack === 'none' ? 'not sent' : o.ack}`
      : o.group !== undefined && o.commit
        ? `, ${stats.commits} commit(s) for group ${o.group}`
        : '';
    ctx.err(`${stats.records} record(s) from ${topic}${extra}\n`);
  }
}

function fetchPath(topic: string, p: number): string {
  return `${topicPath(topic)}/partitions/${p}/records`;
}

async function consumeByOffset(
  ctx: Ctx,
  t: TopicAnswer,
  o: ConsumeOpts,
  fmt: RecordFormatter,
  budget: Budget,
  stop: AbortController,
  stats: { records: number; commits: number },
): Promise<void> {
  const parts = o.partition ?? t.partitions.map((p) => p.partition);
  for (const p of parts)
    if (p >= t.partition_count)
      throw new CliError(
        `topic ${t.name} has ${t.partition_count} partition(s) (0–${t.partition_count - 1}); no partition ${p}`,
        EXIT.NOT_FOUND,
      );
  const info = (p: number) => {
    const x = t.partitions.find((q) => q.partition === p);
    if (x === undefined || x.error !== undefined || x.high_watermark === undefined || x.log_start_offset === undefined)
      throw new CliError(
        `partition ${p} of ${t.name} cannot be read now: ${x?.error ? `${x.error.code}: ${x.error.detail}` : 'no watermarks'}`,
        EXIT.UNAVAILABLE,
      );
    return { hwm: x.high_watermark, logStart: x.log_start_offset };
  };
  let committed = new Map<number, number | null>();
  if (o.group !== undefined) {
    const { body } = await ctx.client.get<GroupOffsetsAnswer>(`/v1/groups/${encodeURIComponent(o.group)}/offsets`, {
      query: { topic: t.name },
    });
    committed = new Map(body.partitions.map((x) => [x.partition, x.offset ?? null]));
  }
  const fetchOpts = (offset: number, maxRecords: number, waitMs: number) => ({
    query: { offset, max_records: maxRecords, wait_ms: waitMs, encoding: o.encoding },
    timeoutMs: waitMs + ctx.settings.timeoutMs,
    signal: stop.signal,
  });
  const startOf = async (p: number): Promise<number> => {
    const c = committed.get(p);
    if (c !== undefined && c !== null) return c;
    if (o.timestamp !== undefined) {
      const { hwm, logStart } = info(p);
      return offsetForTimestamp(
        async (off) =>
          (await ctx.client.get<FetchAnswer<ApiRecord>>(fetchPath(t.name, p), fetchOpts(off, 1, 0))).body.records[0],
        o.timestamp,
        logStart,
        hwm,
      );
    }
    const spec = o.offset ?? { kind: 'earliest' };
    if (spec.kind === 'offset') return spec.offset;
    const { hwm, logStart } = info(p);
    return spec.kind === 'earliest' ? logStart : hwm;
  };
  const out = writer();

  const run = async (p: number) => {
    let offset = await startOf(p);
    const end = o.follow ? Number.POSITIVE_INFINITY : info(p).hwm;
    while (!stop.signal.aborted && !budget.exhausted) {
      if (offset >= end) return;
      let res: FetchAnswer<ApiRecord>;
      try {
        res = (
          await withRetries(
            () =>
              ctx.client.get<FetchAnswer<ApiRecord>>(
                fetchPath(t.name, p),
                fetchOpts(offset, o.fetchSize, o.follow ? o.wait : 0),
              ),
            {
              retries: o.follow ? 1_000_000 : 3,
              signal: stop.signal,
              onRetry: (err, n, ms) =>
                ctx.err(`partition ${p}: ${err.message.split(';')[0]}; retry ${n} in ${ms} ms\n`),
            },
          )
        ).body;
      } catch (err) {
        if (stop.signal.aborted) return;
        if (err instanceof ApiError && err.code === 'OFFSET_OUT_OF_RANGE') {
          // Retention moved the log start past us: go on from there, as Kafka's auto.offset.reset=earliest.
          const fresh = (await getTopic(ctx, t.name)).partitions.find((x) => x.partition === p);
          if (fresh?.log_start_offset !== undefined && offset < fresh.log_start_offset) {
            ctx.err(
              `partition ${p}: offset ${offset} is gone (log starts at ${fresh.log_start_offset}); continuing there\n`,
            );
            offset = fresh.log_start_offset;
            continue;
          }
        }
        throw err;
      }
      let next = res.next_offset;
      let printed = 0;
      for (const r of res.records) {
        if (r.offset >= end) {
          next = r.offset;
          break;
        }
        if (!budget.take()) {
          next = r.offset;
          break;
        }
        await out(fmt(r, t.name, p));
        printed++;
        stats.records++;
        next = r.offset + 1;
      }
      if (printed > 0 && o.group !== undefined && o.commit) {
        await withRetries(
          () =>
            ctx.client.post(`/v1/groups/${encodeURIComponent(o.group!)}/offsets`, {
              offsets: [{ topic: t.name, partition: p, offset: next }],
            }),
          { retries: 5 },
        );
        stats.commits++;
      }
      // An empty page ends a read that does not follow only when it made no progress: on a
      // compacted topic a page can come back empty with next_offset past removed records.
      const moved = next > offset;
      offset = next;
      if (res.records.length === 0 && !o.follow && !moved) return;
    }
  };
  try {
    await Promise.all(
      parts.map((p) =>
        run(p).catch((err) => {
          stop.abort();
          throw err;
        }),
      ),
    );
  } finally {
    if (budget.exhausted) stop.abort();
  }
}

async function consumeLeased(
  ctx: Ctx,
  t: TopicAnswer,
  o: ConsumeOpts,
  fmt: RecordFormatter,
  budget: Budget,
  stop: AbortController,
  stats: { records: number; acks: number },
): Promise<void> {
  const group = encodeURIComponent(o.group!);
  const out = writer();
  while (!stop.signal.aborted && !budget.exhausted) {
    const want = Math.min(o.fetchSize, o.count ?? o.fetchSize);
    const waitMs = o.follow ? o.wait : 0;
    let records: ApiRecord[];
    try {
      // A grant whose answer was lost is not lost work: its records come back when their leases end.
      records = (
        await withRetries(
          () =>
            ctx.client.post<{ records: ApiRecord[] }>(
              `/v1/groups/${group}/fetch`,
              {
                topics: [t.name],
                max_records: Math.max(1, Math.min(want, 10_000)),
                wait_ms: waitMs,
                encoding: o.encoding,
                ...(o.leaseMs !== undefined ? { lease_ms: o.leaseMs } : {}),
              },
              { timeoutMs: waitMs + ctx.settings.timeoutMs, signal: stop.signal },
            ),
          {
            retries: o.follow ? 1_000_000 : 3,
            signal: stop.signal,
            onRetry: (err, n, ms) => ctx.err(`leased fetch: ${err.message.split(';')[0]}; retry ${n} in ${ms} ms\n`),
          },
        )
      ).body.records;
    } catch (err) {
      if (stop.signal.aborted) return;
      throw err;
    }
    if (records.length === 0) {
      if (!o.follow) return;
      continue;
    }
    const printed: ApiRecord[] = [];
    for (const r of records) {
      if (!budget.take()) break; // the rest are left to their leases (they come back when those expire)
      await out(fmt(r, t.name, r.partition ?? -1));
      printed.push(r);
      stats.records++;
    }
    if (o.ack === 'none' || printed.length === 0) continue;
    const acks = printed.map((r) => ({
      token: r.lease_token!,
      action: o.ack,
      ...(o.delay !== undefined ? { delay_ms: o.delay } : {}),
      ...(o.ackError !== undefined ? { error: o.ackError } : {}),
    }));
    let results: AckAnswer['results'];
    try {
      results = (
        await withRetries(() => ctx.client.post<AckAnswer>(`/v1/groups/${group}/acks`, { acks }), { retries: 5 })
      ).body.results;
    } catch (err) {
      // 400 INVALID_TOKEN / 409 CONFLICT: no ack applied; the problem carries the per-ack results.
      if (err instanceof ApiError && Array.isArray(err.problem.results))
        results = err.problem.results as AckAnswer['results'];
      else throw err;
    }
    results.forEach((r, i) => {
      if (r.status === 'ok') stats.acks++;
      else
        ctx.err(
          `ack ${o.ack} of ${t.name}/${printed[i].partition}@${printed[i].offset}: ${r.status}${r.detail ? ` (${r.detail})` : ''}\n`,
        );
    });
  }
}

export function registerConsume(program: Command): void {
  program
    .command('consume')
    .argument('<topic>', 'topic to read')
    .description('read records: by offset or timestamp, as a cumulative group with commits, or leased with acks')
    .option('-p, --partition <n>', 'only these partitions (repeatable, or 0,2)', collectInts(0, 9999))
    .option('--offset <where>', 'start: earliest (default), latest or an offset', parseOffsetSpec)
    .option('-t, --timestamp <time>', 'start at the first record at or after: ms, ISO 8601 or now-15m', timestampArg)
    .option('-f, --follow', 'keep waiting for new records (long-poll) until Ctrl-C or -n')
    .option('-n, --count <n>', 'stop after this many records', intArg(1))
    .option('-g, --group <group>', 'cumulative group: start from its committed offsets and commit after each batch')
    .option('--no-commit', 'with --group: read from its offsets but commit nothing')
    .option('--leased', 'with --group: leased mode, per-record leases and acks')
    .addOption(
      new Option('--ack <action>', 'leased: what to do with each printed record')
        .choices(['accept', 'release', 'reject', 'none'])
        .default('accept'),
    )
    .option(
      '--ack-error <text>',
      'leased: error text kept with a released or rejected record (e.g. "SchemaError: no id")',
    )
    .option('--delay <duration>', 'leased: with --ack release, redeliver after this long', parseDurationMs)
    .option('--lease <duration>', 'leased: lease length (default: the group policy)', parseDurationMs)
    .addOption(
      new Option('-F, --format <format>', 'print each record as its value, as a JSON line, or with --template').choices(
        ['value', 'json', 'template'],
      ),
    )
    .option('-T, --template <text>', 'e.g. "{{partition}}/{{offset}} {{key}}={{value}}" (implies --format template)')
    .addOption(
      new Option(
        '-E, --encoding <encoding>',
        'how the gateway sends byte fields: utf8 (text when valid UTF-8, else base64), json (values as JSON), base64',
      )
        .choices(['utf8', 'json', 'base64'])
        .default('utf8'),
    )
    .addOption(
      new Option('--wait <duration>', 'long-poll wait per request with --follow')
        .argParser(parseDurationMs)
        .default(5000, '5s'),
    )
    .option('--fetch-size <n>', 'records per request', intArg(1, 10_000), 500)
    .option('-q, --quiet', 'no summary line on stderr')
    .addHelpText(
      'after',
      `
Records go to stdout, one per line (value by default); a summary line goes to stderr.
Template fields: topic partition offset timestamp time key value key_b64 value_b64 headers
header.NAME delivery_attempt; \\n and \\t are escapes.

Examples:
  $ daftka consume events                              # everything up to now, then exit
  $ daftka consume events -f --offset latest           # new records as they come
  $ daftka consume events -p 0 --offset 42 -n 10 -F json
  $ daftka consume events -t now-15m -T '{{time}} {{key}} {{value}}'
  $ daftka consume events -g billing -f                # cumulative group, commits after each batch
  $ daftka consume events -g workers --leased -n 1 --ack reject --ack-error 'SchemaError: no id'`,
    )
    .action(async (topic: string, opts: ConsumeOpts, cmd: Command) => consume(contextFor(cmd), topic, opts));
}

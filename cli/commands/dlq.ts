import { Option, type Command } from 'commander';
import { collect, intArg, numberArg, parseDurationMs, timestampArg } from '../args';
import type { DeadLetter, DeadLettersAnswer, JobAnswer } from '../api';
import { contextFor, sleep, type Ctx } from '../context';
import { EXIT, UsageError } from '../errors';
import { isoTime, renderData, renderFields, renderTable, truncate } from '../output';
import { withRetries } from '../retry';
import { topicPath } from './topics';

/**
 * `daftka dlq list | show | replay | job | archive | purge` over a topic's dead letters
 * (GET/POST /v1/topics/{topic}/deadletters…, GET /v1/jobs/{id}); docs/consumers.md has the model.
 */

interface FilterOpts {
  group?: string;
  errorClass?: string;
  from?: number;
  to?: number;
  id?: string[];
}

export function filterBody(o: FilterOpts): Record<string, unknown> {
  return {
    ...(o.from !== undefined ? { from: o.from } : {}),
    ...(o.to !== undefined ? { to: o.to } : {}),
    ...(o.group !== undefined ? { group: o.group } : {}),
    ...(o.errorClass !== undefined ? { error_class: o.errorClass } : {}),
    ...(o.id !== undefined ? { ids: o.id.flatMap((x) => x.split(',')) } : {}),
  };
}

function withFilters(cmd: Command, ids: boolean): Command {
  cmd
    .option('-g, --group <group>', 'only dead letters of this group')
    .option('-e, --error-class <class>', 'only this error class (e.g. SchemaError, lease_expired)')
    .option('--from <time>', 'dead-lettered at or after: ms, ISO 8601 or now-1h', timestampArg)
    .option('--to <time>', 'dead-lettered before', timestampArg);
  if (ids) cmd.option('--id <id>', 'only these ids (<partition>-<seq>; repeatable or comma-separated)', collect);
  return cmd;
}

const deadPath = (t: string) => `${topicPath(t)}/deadletters`;

interface ListOpts extends FilterOpts {
  state?: string;
  partition?: number;
  limit: number;
  cursor?: string;
  all?: boolean;
}

export async function listDeadLetters(ctx: Ctx, topic: string, o: ListOpts): Promise<void> {
  const items: DeadLetter[] = [];
  let cursor = o.cursor;
  let next: string | null = null;
  do {
    const { body } = await ctx.client.get<DeadLettersAnswer>(deadPath(topic), {
      query: {
        group: o.group,
        error_class: o.errorClass,
        from: o.from,
        to: o.to,
        state: o.state,
        partition: o.partition,
        limit: o.limit,
        cursor,
        encoding: 'utf8',
      },
    });
    items.push(...body.deadletters);
    next = body.next_cursor;
    cursor = next ?? undefined;
  } while (o.all && next !== null);
  if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, { deadletters: items, next_cursor: next }));
  if (items.length === 0) ctx.err(`no dead letters on ${topic} match\n`);
  else
    ctx.out(
      renderTable(
        ['id', 'group', 'origin', 'attempts', 'state', 'error class', 'dead-lettered', 'last error'],
        items.map((d) => [
          d.id,
          d.group,
          `${d.partition}@${d.offset}`,
          d.attempts,
          d.state,
          d.error_class,
          isoTime(d.dead_lettered_at),
          truncate(d.last_error, 60),
        ]),
      ),
    );
  if (next !== null) ctx.err(`more: daftka dlq list ${topic} --cursor ${next} (or --all)\n`);
}

export async function showDeadLetter(ctx: Ctx, topic: string, id: string): Promise<void> {
  const { body: d } = await ctx.client.get<DeadLetter>(`${deadPath(topic)}/${encodeURIComponent(id)}`, {
    query: { encoding: 'utf8' },
  });
  if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, d));
  ctx.out(
    renderFields([
      ['id', d.id],
      ['origin', `${d.topic}/${d.partition}@${d.offset}`],
      ['group', d.group],
      ['state', d.state],
      ['attempts', d.attempts],
      ['error class', d.error_class],
      ['last error', d.last_error],
      ['first delivery', isoTime(d.first_delivery_at)],
      ['last delivery', isoTime(d.last_delivery_at)],
      ['dead-lettered', isoTime(d.dead_lettered_at)],
      ['timestamp', isoTime(d.timestamp)],
      ['key', d.key ?? d.key_b64 ?? null],
      ['headers', (d.headers ?? []).map((h) => `${h.name}=${h.value ?? h.value_b64 ?? ''}`).join(', ')],
      ...(d.replay
        ? ([
            [
              'replayed',
              `job ${d.replay.job_id} → ${d.replay.topic ?? d.topic}/${d.replay.partition ?? d.partition}@${d.replay.offset}`,
            ],
          ] as Array<[string, string]>)
        : []),
      [d.value !== undefined ? 'value' : 'value (base64)', d.value ?? d.value_b64 ?? ''],
    ]),
  );
}

interface ReplayOpts extends FilterOpts {
  targetTopic?: string;
  rate?: number;
  dryRun?: boolean;
  idempotencyKey?: string;
  wait: boolean;
  poll: number;
}

export function replayBody(o: ReplayOpts): Record<string, unknown> {
  return {
    filter: filterBody(o),
    ...(o.targetTopic !== undefined ? { target: 'topic', target_topic: o.targetTopic } : { target: 'origin' }),
    ...(o.rate !== undefined ? { rate_per_sec: o.rate } : {}),
    dry_run: o.dryRun === true,
  };
}

export function jobLine(j: JobAnswer): string {
  return (
    `job ${j.job_id}: ${j.state}${j.dry_run ? ' (dry run)' : ''}, matched ${j.matched}, written ${j.written}, ` +
    `skipped ${j.skipped}${j.last_error ? `, last error: ${truncate(j.last_error, 80)}` : ''}`
  );
}

export async function replay(ctx: Ctx, topic: string, o: ReplayOpts): Promise<number> {
  const { body: started } = await ctx.client.post<JobAnswer>(`${deadPath(topic)}:replay`, replayBody(o), {
    headers: o.idempotencyKey !== undefined ? { 'Idempotency-Key': o.idempotencyKey } : {},
  });
  let job = started;
  const tty = ctx.errIsTty && ctx.output === 'table';
  let last = '';
  const show = (j: JobAnswer) => {
    const line = jobLine(j);
    if (line === last) return;
    last = line;
    if (ctx.output !== 'table') return;
    if (tty) ctx.err(`\r${line}\x1b[K`);
    else ctx.out(line + '\n');
  };
  show(job);
  if (o.wait) {
    while (job.state === 'running' && !ctx.signal.aborted) {
      await sleep(o.poll, ctx.signal);
      if (ctx.signal.aborted) break;
      job = (
        await withRetries(() => ctx.client.get<JobAnswer>(`/v1/jobs/${encodeURIComponent(job.job_id)}`), {
          retries: 5,
          signal: ctx.signal,
        })
      ).body;
      show(job);
    }
  }
  if (tty) ctx.err('\n');
  if (ctx.output !== 'table') ctx.out(renderData(ctx.output, job));
  else if (job.state === 'running') ctx.err(`still running; follow it with: daftka dlq job ${job.job_id}\n`);
  else if (job.state === 'incomplete')
    ctx.err(`some partitions have no record of the job: send the same request again with --idempotency-key\n`);
  return job.state === 'incomplete' ? EXIT.UNHEALTHY : EXIT.OK;
}

export async function showJob(ctx: Ctx, id: string): Promise<number> {
  const { body } = await ctx.client.get<JobAnswer>(`/v1/jobs/${encodeURIComponent(id)}`);
  if (ctx.output !== 'table') ctx.out(renderData(ctx.output, body));
  else
    ctx.out(
      jobLine(body) +
        '\n\n' +
        renderTable(
          ['partition', 'state', 'matched', 'written', 'skipped', 'error'],
          body.partitions.map((p) => [
            p.partition as number,
            p.state as string,
            p.matched as number,
            p.written as number,
            p.skipped as number,
            (p.last_error as string | undefined) ??
              (p.error
                ? `${(p.error as { code: string }).code}: ${(p.error as { detail: string }).detail}`
                : undefined),
          ]),
        ),
    );
  return body.state === 'incomplete' ? EXIT.UNHEALTHY : EXIT.OK;
}

interface AdminOpts extends FilterOpts {
  all?: boolean;
}

export async function adminDeadLetters(
  ctx: Ctx,
  topic: string,
  action: 'archive' | 'purge',
  o: AdminOpts,
): Promise<void> {
  const filter = filterBody(o);
  if (Object.keys(filter).length === 0 && !o.all)
    throw new UsageError(`${action} without a filter applies to every dead letter of ${topic}: add --all to mean it`);
  const { body } = await ctx.client.post<{ archived?: number; purged?: number }>(`${deadPath(topic)}:${action}`, {
    filter,
  });
  if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, body));
  ctx.out(
    `${action === 'archive' ? 'archived' : 'purged'} ${body.archived ?? body.purged ?? 0} dead letter(s) of ${topic}\n`,
  );
}

export function registerDlq(program: Command): void {
  const dlq = program
    .command('dlq')
    .description('dead letters: list, show, replay (with dry run and progress), archive, purge')
    .addHelpText(
      'after',
      `
Examples:
  $ daftka dlq list events --group billing --error-class SchemaError
  $ daftka dlq show events 1-0
  $ daftka dlq replay events --group billing --dry-run
  $ daftka dlq replay events --error-class SchemaError --rate 50 --idempotency-key fix-2026-01-04
  $ daftka dlq archive events --error-class SchemaError
  $ daftka dlq purge events --to 2026-01-01`,
    );

  withFilters(
    dlq
      .command('list')
      .alias('ls')
      .argument('<topic>', 'topic')
      .description('dead letters of a topic, oldest first per partition'),
    false,
  )
    .option('--state <state>', 'active, archived or replayed (default: all)')
    .option('-p, --partition <n>', 'only this origin partition', intArg(0, 9999))
    .option('--limit <n>', 'entries per page', intArg(1, 1000), 100)
    .option('--cursor <cursor>', 'the page after this next_cursor')
    .option('--all', 'every page')
    .addHelpText(
      'after',
      '\nExamples:\n  $ daftka dlq list events\n  $ daftka dlq list events --state active --group billing --all -o json',
    )
    .action(async (topic: string, o: ListOpts, cmd: Command) => {
      if (o.state !== undefined && !['active', 'archived', 'replayed'].includes(o.state))
        throw new UsageError(`--state: "${o.state}" is not active, archived or replayed`);
      return listDeadLetters(contextFor(cmd), topic, o);
    });

  dlq
    .command('show')
    .alias('get')
    .argument('<topic>', 'topic')
    .argument('<id>', 'dead-letter id, <partition>-<seq>')
    .description('one dead letter: origin, attempts, errors, times, key, headers, value')
    .addHelpText(
      'after',
      '\nExamples:\n  $ daftka dlq show events 1-0\n  $ daftka dlq show events 1-0 -o json | jq -r .value',
    )
    .action(async (topic: string, id: string, _o, cmd: Command) => showDeadLetter(contextFor(cmd), topic, id));

  withFilters(
    dlq
      .command('replay')
      .argument('<topic>', 'topic')
      .description('write matching active dead letters back (a job), then follow its progress'),
    true,
  )
    .option('--target-topic <topic>', 'write to this topic instead of the origin partitions')
    .option('-r, --rate <records/s>', 'replay rate across the topic (gateway default 100)', numberArg(0, 100_000))
    .option('--dry-run', 'count what would be replayed, write nothing')
    .option('--idempotency-key <key>', 'the same key is the same job: sending it again never replays twice')
    .option('--no-wait', 'start the job and return its id')
    .addOption(
      new Option('--poll <duration>', 'progress poll interval').argParser(parseDurationMs).default(500, '500ms'),
    )
    .addHelpText(
      'after',
      `
Exit status 7 when the job is incomplete (a partition has no record of it; send it again with the
same --idempotency-key).

Examples:
  $ daftka dlq replay events --group billing --dry-run
  $ daftka dlq replay events --error-class SchemaError --rate 50 --idempotency-key fix-2026-01-04
  $ daftka dlq replay events --id 0-3,1-7 --target-topic events-parked`,
    )
    .action(async (topic: string, o: ReplayOpts, cmd: Command) => {
      process.exitCode = await replay(contextFor(cmd), topic, o);
    });

  dlq
    .command('job')
    .argument('<job-id>', 'job id from dlq replay')
    .description('progress of a replay job, per partition')
    .addHelpText('after', '\nExamples:\n  $ daftka dlq job events.Qm9xY2tz…')
    .action(async (id: string, _o, cmd: Command) => {
      process.exitCode = await showJob(contextFor(cmd), id);
    });

  for (const action of ['archive', 'purge'] as const)
    withFilters(
      dlq
        .command(action)
        .argument('<topic>', 'topic')
        .description(
          action === 'archive'
            ? 'keep matching dead letters but take them out of replay'
            : 'delete matching dead letters for good',
        ),
      true,
    )
      .option('--all', 'every dead letter of the topic (needed when no filter is given)')
      .addHelpText(
        'after',
        `\nExamples:\n  $ daftka dlq ${action} events --error-class SchemaError\n  $ daftka dlq ${action} events --to now-7d\n  $ daftka dlq ${action} events --all`,
      )
      .action(async (topic: string, o: AdminOpts, cmd: Command) => adminDeadLetters(contextFor(cmd), topic, action, o));
}

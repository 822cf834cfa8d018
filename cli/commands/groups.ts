import type { Command } from 'commander';
import { collect, collectInts, intArg, timestampArg } from '../args';
import type { GroupAnswer, PolicyAnswer, ResetAnswer } from '../api';
import { contextFor, type Ctx } from '../context';
import { UsageError } from '../errors';
import { renderData, renderFields, renderTable } from '../output';

/**
 * `daftka groups list | describe | reset`. List is GET /v1/groups (the groups the caller may use,
 * with their topic); describe is GET /v1/groups/{group} (lag per partition); reset is POST
 * /v1/groups/{group}/offsets:reset.
 */

const groupPath = (g: string) => `/v1/groups/${encodeURIComponent(g)}`;

interface GroupListAnswer {
  groups: Array<{ group: string; topic: string }>;
  truncated: boolean;
  errors?: Array<{ topic: string; partition: number; code: string }>;
}

export async function listGroups(ctx: Ctx, topics: string[], prefix: string | undefined): Promise<void> {
  const { body } = await ctx.client.get<GroupListAnswer>('/v1/groups', {
    query: { ...(topics.length > 0 ? { topic: topics } : {}), ...(prefix !== undefined ? { prefix } : {}) },
  });
  if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, body));
  ctx.out(
    renderTable(
      ['group', 'topic'],
      body.groups.map((g) => [g.group, g.topic]),
    ),
  );
  if (body.truncated) ctx.err('some partitions hold more groups than they list: narrow with --prefix or --topic\n');
  for (const e of body.errors ?? [])
    ctx.err(`${e.topic}/${e.partition}: not asked (${e.code}); its groups may be missing\n`);
}

export async function describeGroup(ctx: Ctx, group: string, topics: string[]): Promise<void> {
  const { body } = await ctx.client.get<GroupAnswer>(groupPath(group), {
    query: topics.length > 0 ? { topic: topics } : {},
  });
  if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, body));
  const rows = body.topics.flatMap((t) =>
    t.partitions.map((p) => [
      t.topic,
      p.partition,
      p.offset,
      p.log_start_offset,
      p.high_watermark,
      p.lag,
      p.error ? `${p.error.code}: ${p.error.detail}` : undefined,
    ]),
  );
  ctx.out(
    renderTable(['topic', 'partition', 'committed', 'log start', 'high watermark', 'lag', 'error'], rows) +
      `\ngroup ${body.group}: total lag ${body.lag}\n`,
  );
}

export async function describeLeased(ctx: Ctx, group: string, topic: string): Promise<void> {
  const { body } = await ctx.client.get<PolicyAnswer>(`${groupPath(group)}/policy`, { query: { topic } });
  if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, body));
  const pol = body.policy as Record<string, unknown>;
  ctx.out(
    renderFields([
      ['group', body.group],
      ['topic', body.topic],
      ['max attempts', pol.max_attempts as number],
      ['lease', `${String(pol.lease_ms)} ms`],
      ['backoff', JSON.stringify(pol.backoff)],
      ['dead letter', String(pol.dead_letter)],
      ['ordered', String(pol.ordered)],
      ['ordering key', String(pol.ordering_key ?? false)],
      ['expired', String(pol.expired ?? 'dead_letter')],
      ['override', JSON.stringify(body.override)],
    ]) +
      '\n' +
      renderTable(
        ['partition', 'committed', 'high watermark', 'leased', 'waiting', 'done', 'error'],
        body.partitions.map((p) => [
          p.partition,
          p.committed_offset,
          p.high_watermark,
          p.leased,
          p.waiting,
          p.done,
          p.error ? `${p.error.code}: ${p.error.detail}` : undefined,
        ]),
      ),
  );
}

export interface ResetOpts {
  topic: string;
  toEarliest?: boolean;
  toLatest?: boolean;
  toOffset?: number;
  toTimestamp?: number;
  partition?: number[];
  dryRun?: boolean;
}

/** The request body from the flags: exactly one --to-… */
export function resetBody(o: ResetOpts): Record<string, unknown> {
  const chosen = [
    o.toEarliest ? 'earliest' : null,
    o.toLatest ? 'latest' : null,
    o.toOffset !== undefined ? 'offset' : null,
    o.toTimestamp !== undefined ? 'timestamp' : null,
  ].filter((x): x is string => x !== null);
  if (chosen.length !== 1)
    throw new UsageError('give exactly one of --to-earliest, --to-latest, --to-offset <n>, --to-timestamp <time>');
  return {
    topic: o.topic,
    to: chosen[0],
    ...(o.toOffset !== undefined ? { offset: o.toOffset } : {}),
    ...(o.toTimestamp !== undefined ? { timestamp: o.toTimestamp } : {}),
    ...(o.partition !== undefined ? { partitions: [...new Set(o.partition)] } : {}),
    dry_run: o.dryRun === true,
  };
}

export async function resetGroup(ctx: Ctx, group: string, o: ResetOpts): Promise<void> {
  const { body } = await ctx.client.post<ResetAnswer>(`${groupPath(group)}/offsets:reset`, resetBody(o));
  if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, body));
  ctx.out(
    renderTable(
      ['partition', 'previous', 'new', 'log start', 'high watermark'],
      body.partitions.map((p) => [p.partition, p.previous_offset, p.new_offset, p.log_start_offset, p.high_watermark]),
    ) +
      (body.dry_run
        ? `\ndry run: nothing committed; run again without --dry-run to reset group ${body.group} on ${body.topic}\n`
        : `\ngroup ${body.group} reset to ${body.to} on ${body.topic}\n`),
  );
}

export function registerGroups(program: Command): void {
  const groups = program
    .command('groups')
    .description('consumer groups: list, describe (lag per partition), reset offsets')
    .addHelpText(
      'after',
      `
Examples:
  $ daftka groups describe billing
  $ daftka groups describe billing --topic events -o json
  $ daftka groups reset billing --topic events --to-earliest --dry-run
  $ daftka groups reset billing --topic events --to-timestamp 2026-01-04T10:00:00Z`,
    );

  groups
    .command('list')
    .alias('ls')
    .description('list the groups you may use, with their topic')
    .option('-t, --topic <topic>', 'only groups on this topic (repeatable)', collect, [] as string[])
    .option('--prefix <prefix>', 'only groups whose name starts with this')
    .addHelpText(
      'after',
      '\nExamples:\n  $ daftka groups list\n  $ daftka groups list --topic orders --prefix billing- -o json',
    )
    .action(async (o: { topic: string[]; prefix?: string }, cmd: Command) =>
      listGroups(contextFor(cmd), o.topic, o.prefix),
    );

  groups
    .command('describe')
    .alias('get')
    .argument('<group>', 'group name')
    .option('--topic <topic>', 'only this topic (repeatable); default: every topic the group committed on', collect)
    .option('--leased', "leased mode: the group's policy and lease counts on --topic")
    .description('committed offsets, watermarks and lag per partition')
    .addHelpText(
      'after',
      `
Examples:
  $ daftka groups describe billing
  $ daftka groups describe billing --topic events --topic orders
  $ daftka groups describe workers --topic events --leased`,
    )
    .action(async (group: string, o: { topic?: string[]; leased?: boolean }, cmd: Command) => {
      const ctx = contextFor(cmd);
      if (o.leased) {
        if (o.topic?.length !== 1) throw new UsageError('--leased needs exactly one --topic');
        return describeLeased(ctx, group, o.topic[0]);
      }
      return describeGroup(ctx, group, o.topic ?? []);
    });

  groups
    .command('reset')
    .argument('<group>', 'group name')
    .requiredOption('--topic <topic>', 'topic whose offsets to reset')
    .option('--to-earliest', 'to the log start offset')
    .option('--to-latest', 'to the high watermark (skip everything so far)')
    .option('--to-offset <n>', 'to this offset (clamped to [log start, high watermark])', intArg(0))
    .option('--to-timestamp <time>', 'to the first record at or after: ms, ISO 8601 or now-1h', timestampArg)
    .option('-p, --partition <n>', 'only these partitions (repeatable, or 0,2); default all', collectInts(0, 9999))
    .option('--dry-run', 'show the new offsets, commit nothing')
    .description("reset a group's committed offsets on a topic (stop its consumers first)")
    .addHelpText(
      'after',
      `
Consumers of the group that commit afterwards overwrite a reset: stop them first.

Examples:
  $ daftka groups reset billing --topic events --to-earliest --dry-run
  $ daftka groups reset billing --topic events --to-offset 1000 -p 0,1
  $ daftka groups reset billing --topic events --to-timestamp now-1h`,
    )
    .action(async (group: string, o: ResetOpts, cmd: Command) => resetGroup(contextFor(cmd), group, o));
}

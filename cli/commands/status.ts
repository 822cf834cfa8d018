import type { Command } from 'commander';
import type { TopicAnswer, TopicsAnswer } from '../api';
import { contextFor, type Ctx } from '../context';
import { EXIT } from '../errors';
import { renderData, renderTable } from '../output';
import { getTopic } from './topics';

/**
 * `daftka status [topic…]`: per topic and partition, who leads and whether it answers — derived
 * from GET /v1/topics/{topic}. A partition without a leader, or that could not be asked, is
 * leaderless. Under-replication is not in the API's answer (the gateway does not report replica
 * counts or lag), so it is shown as unknown rather than guessed.
 */

export interface PartitionHealth {
  topic: string;
  partition: number;
  leader: string | null;
  term: number | null;
  high_watermark: number | null;
  state: 'ok' | 'leaderless';
  error?: string;
}

export interface StatusReport {
  healthy: boolean;
  topics: number;
  partitions: number;
  leaderless: number;
  /** null: the gateway API does not report it. */
  under_replicated: number | null;
  details: PartitionHealth[];
}

export function statusOf(topics: TopicAnswer[]): StatusReport {
  const details: PartitionHealth[] = topics.flatMap((t) =>
    t.partitions.map((p) => {
      const leaderless = p.error !== undefined || p.leader === null || p.leader === undefined;
      return {
        topic: t.name,
        partition: p.partition,
        leader: p.leader ?? null,
        term: p.term ?? null,
        high_watermark: p.high_watermark ?? null,
        state: leaderless ? ('leaderless' as const) : ('ok' as const),
        ...(p.error ? { error: `${p.error.code}: ${p.error.detail}` } : {}),
      };
    }),
  );
  const leaderless = details.filter((d) => d.state === 'leaderless').length;
  return {
    healthy: leaderless === 0,
    topics: topics.length,
    partitions: details.length,
    leaderless,
    under_replicated: null,
    details,
  };
}

export async function status(ctx: Ctx, names: string[], onlyProblems: boolean): Promise<number> {
  const list =
    names.length > 0 ? names : (await ctx.client.get<TopicsAnswer>('/v1/topics')).body.topics.map((t) => t.name);
  const topics: TopicAnswer[] = [];
  for (const n of list) topics.push(await getTopic(ctx, n));
  const report = statusOf(topics);
  if (ctx.output !== 'table') ctx.out(renderData(ctx.output, report));
  else {
    const rows = report.details.filter((d) => !onlyProblems || d.state !== 'ok');
    if (rows.length > 0)
      ctx.out(
        renderTable(
          ['topic', 'partition', 'leader', 'term', 'high watermark', 'state', 'error'],
          rows.map((d) => [d.topic, d.partition, d.leader, d.term, d.high_watermark, d.state, d.error]),
        ) + '\n',
      );
    ctx.out(
      `${report.healthy ? 'healthy' : 'UNHEALTHY'}: ${report.topics} topic(s), ${report.partitions} partition(s), ` +
        `${report.leaderless} leaderless, under-replicated unknown (not reported by the gateway API)\n`,
    );
  }
  return report.healthy ? EXIT.OK : EXIT.UNHEALTHY;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .argument('[topics...]', 'topics to check (default: every topic you may see)')
    .option('--problems', 'list only partitions that are not ok')
    .description('partitions, leaders and leaderless partitions; exit 7 when any partition has no leader')
    .addHelpText(
      'after',
      `
Exit status: 0 every partition has a leader; 7 some partition is leaderless or could not be asked.

Examples:
  $ daftka status
  $ daftka status events orders --problems
  $ daftka status -o json | jq .leaderless`,
    )
    .action(async (topics: string[], opts: { problems?: boolean }, cmd: Command) => {
      process.exitCode = await status(contextFor(cmd), topics, opts.problems === true);
    });
}

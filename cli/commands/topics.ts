import type { Command } from 'commander';
import type { TopicAnswer, TopicsAnswer } from '../api';
import { contextFor, type Ctx } from '../context';
import { renderData, renderFields, renderTable } from '../output';

/** `daftka topics list | describe <topic>`: GET /v1/topics and GET /v1/topics/{topic}. */

export const topicPath = (t: string) => `/v1/topics/${encodeURIComponent(t)}`;

export async function listTopics(ctx: Ctx): Promise<void> {
  const { body } = await ctx.client.get<TopicsAnswer>('/v1/topics');
  if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, body));
  if (body.topics.length === 0) return ctx.err('no topics visible to this principal\n');
  ctx.out(
    renderTable(
      ['name', 'partitions'],
      body.topics.map((t) => [t.name, t.partition_count]),
    ),
  );
}

export async function getTopic(ctx: Ctx, topic: string): Promise<TopicAnswer> {
  return (await ctx.client.get<TopicAnswer>(topicPath(topic))).body;
}

export function partitionsTable(t: TopicAnswer): string {
  return renderTable(
    ['partition', 'leader', 'term', 'log start', 'high watermark', 'records', 'error'],
    t.partitions.map((p) => [
      p.partition,
      p.leader,
      p.term,
      p.log_start_offset,
      p.high_watermark,
      p.high_watermark !== undefined && p.log_start_offset !== undefined
        ? p.high_watermark - p.log_start_offset
        : undefined,
      p.error ? `${p.error.code}: ${p.error.detail}` : undefined,
    ]),
  );
}

export async function describeTopic(ctx: Ctx, topic: string): Promise<void> {
  const t = await getTopic(ctx, topic);
  if (ctx.output !== 'table') return ctx.out(renderData(ctx.output, t));
  const quotas = Object.entries(t.quotas)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  ctx.out(
    renderFields([
      ['name', t.name],
      ['partitions', t.partition_count],
      ['max record bytes', t.max_record_bytes],
      ['quotas', quotas || 'unlimited'],
      ['your rights', t.rights.join(', ') || 'none'],
    ]) +
      '\n' +
      partitionsTable(t),
  );
}

export function registerTopics(program: Command): void {
  const topics = program
    .command('topics')
    .description('list topics, or describe one: partitions, leaders, terms, watermarks')
    .addHelpText(
      'after',
      `
Examples:
  $ daftka topics                      # list the topics you may see
  $ daftka topics describe events      # partitions with leader, term, log start, high watermark
  $ daftka topics describe events -o json | jq '.partitions[].high_watermark'`,
    )
    .action(async (_opts, cmd: Command) => listTopics(contextFor(cmd)));

  topics
    .command('list')
    .alias('ls')
    .description('list the topics the caller holds a right on (name, partition count)')
    .addHelpText('after', '\nExamples:\n  $ daftka topics list\n  $ daftka topics ls -o yaml')
    .action(async (_opts, cmd: Command) => listTopics(contextFor(cmd)));

  topics
    .command('describe')
    .alias('get')
    .argument('<topic>', 'topic name')
    .description("a topic's partitions with leader, term, log start offset and high watermark")
    .addHelpText('after', '\nExamples:\n  $ daftka topics describe events\n  $ daftka topics get events -o json')
    .action(async (topic: string, _opts, cmd: Command) => describeTopic(contextFor(cmd), topic));
}

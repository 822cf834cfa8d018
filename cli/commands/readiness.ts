import type { Command } from 'commander';
import { contextFor, type Ctx } from '../context';
import { ApiError, CliError, EXIT } from '../errors';
import { renderData, renderTable, type Cell } from '../output';

/**
 * `daftka readiness`: GET /v1/readiness (DESIGN §6, issue 18 part 3) — overall ready | warning |
 * not_ready and every check. Exit 0 ready or warning, 7 not_ready. A gateway without the report
 * answers 404 NOT_FOUND (no such route): one clear line, exit 2.
 */

interface Check {
  name?: string;
  id?: string;
  status?: string;
  value?: unknown;
  threshold?: unknown;
  reason?: string;
}

interface ReadinessAnswer {
  status: string;
  checks?: Check[];
  [k: string]: unknown;
}

const show = (v: unknown): Cell =>
  v === undefined || v === null ? undefined : typeof v === 'object' ? JSON.stringify(v) : (v as Cell);

export async function readiness(ctx: Ctx): Promise<number> {
  let body: ReadinessAnswer;
  try {
    body = (await ctx.client.get<ReadinessAnswer>('/v1/readiness')).body;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404 && err.code === 'NOT_FOUND')
      throw new CliError(
        `the gateway at ${ctx.settings.url} has no readiness report yet (GET /v1/readiness answered 404)`,
        EXIT.NOT_FOUND,
      );
    throw err;
  }
  if (ctx.output !== 'table') ctx.out(renderData(ctx.output, body));
  else {
    const checks = body.checks ?? [];
    if (checks.length > 0)
      ctx.out(
        renderTable(
          ['check', 'status', 'value', 'threshold', 'reason'],
          checks.map((c) => [c.name ?? c.id, c.status, show(c.value), show(c.threshold), c.reason]),
        ) + '\n',
      );
    ctx.out(`readiness: ${body.status}\n`);
  }
  return body.status === 'not_ready' ? EXIT.UNHEALTHY : EXIT.OK;
}

interface HistoryAnswer {
  interval_ms: number;
  capacity: number;
  snapshots: Array<{ at: number; status: string; checks: Record<string, { status: string; value: unknown }> }>;
}

/** `daftka readiness --history [n]`: the periodic snapshots, oldest first (GET /v1/readiness/history). */
export async function readinessHistory(ctx: Ctx, limit: number | undefined): Promise<number> {
  const path = `/v1/readiness/history${limit !== undefined ? `?limit=${limit}` : ''}`;
  const body = (await ctx.client.get<HistoryAnswer>(path)).body;
  if (ctx.output !== 'table') ctx.out(renderData(ctx.output, body));
  else {
    const notOk = (s: HistoryAnswer['snapshots'][number]) =>
      Object.entries(s.checks)
        .filter(([, c]) => c.status === 'warning' || c.status === 'not_ready')
        .map(([id, c]) => `${id}=${c.status}`)
        .join(' ');
    ctx.out(
      renderTable(
        ['time', 'status', 'checks not ok'],
        body.snapshots.map((s) => [new Date(s.at).toISOString(), s.status, notOk(s)]),
      ) + '\n',
    );
    ctx.out(
      `${body.snapshots.length} snapshots, one every ${body.interval_ms / 1000} s (at most ${body.capacity} kept)\n`,
    );
  }
  const last = body.snapshots[body.snapshots.length - 1];
  return last?.status === 'not_ready' ? EXIT.UNHEALTHY : EXIT.OK;
}

export function registerReadiness(program: Command): void {
  program
    .command('readiness')
    .description('the launch-readiness report: ready, warning or not_ready, with every check')
    .option('--history [n]', 'the periodic snapshots instead (the newest n; default all kept), oldest first')
    .addHelpText(
      'after',
      `
Exit status: 0 ready or warning; 7 not_ready; 2 when the gateway has no readiness report.

Examples:
  $ daftka readiness
  $ daftka readiness -o json | jq '.checks[] | select(.status != "ok")'
  $ daftka readiness --history 20`,
    )
    .action(async (o: { history?: string | boolean }, cmd: Command) => {
      if (o.history !== undefined) {
        const n = typeof o.history === 'string' ? Number(o.history) : undefined;
        if (n !== undefined && !(Number.isInteger(n) && n >= 1))
          throw new CliError(`--history takes a positive integer, got ${String(o.history)}`, EXIT.USAGE);
        process.exitCode = await readinessHistory(contextFor(cmd), n);
        return;
      }
      process.exitCode = await readiness(contextFor(cmd));
    });
}

/**
 * docs/metrics.md's table from the programs themselves: local mode (nats-server, 3 replicas, the
 * gateway; test/helpers/local-stack.ts) under a small workload that touches every code path with a
 * labelled metric (produce, fetch, group offsets, a refused request), scraped over HTTP; plus the
 * operator's registry, built in this process (the operator does not run in local mode).
 *
 *   npx tsx sre/metrics-doc.ts      rewrite the table in docs/metrics.md (prose around it is kept)
 *
 * test/e2e/helm-metrics.test.ts runs the same collection and holds the doc, the dashboards and the
 * alert rules to it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { promClient } from '../common/metrics';
import { LocalStack } from '../test/helpers/local-stack';
import { catalogFromRegistry, parseExposition, parseTable, replaceTable, type Catalog } from './metrics-catalog';

export const METRICS_DOC = path.resolve(__dirname, '..', 'docs', 'metrics.md');
export const LIVE_TOPIC = 'metrics';

/** Starts the small stack used for the scrape: one topic, one partition, three replicas. */
export function startMetricsStack(): Promise<LocalStack> {
  return LocalStack.start({ topics: [{ name: LIVE_TOPIC, partitions: 1, replicationFactor: 3 }] });
}

/** Traffic that makes the labelled series exist, then a scrape of every replica and the gateway. */
export async function collectLiveCatalog(
  stack: LocalStack,
): Promise<{ catalog: Catalog; texts: Record<string, string> }> {
  const t = LIVE_TOPIC;
  for (let i = 0; i < 5; i++) {
    const res = await stack.http('POST', `/v1/topics/${t}/records`, {
      body: { records: [{ key: `k${i}`, value: `v${i}` }] },
    });
    if (res.status !== 200) throw new Error(`produce: ${res.status} ${JSON.stringify(res.body)}`);
  }
  await stack.http('GET', `/v1/topics/${t}/partitions/0/records?offset=0&max_records=10`);
  await stack.http('POST', `/v1/groups/g1/offsets`, { body: { offsets: [{ topic: t, partition: 0, offset: 2 }] } });
  await stack.http('GET', `/v1/groups/g1/offsets?topic=${t}`);
  await stack.http('GET', `/v1/groups/g1`);
  await stack.http('GET', `/v1/topics/no-such-topic`);
  await stack.http('POST', `/v1/topics/${t}/records`, { body: { nope: true } });
  // One announcement interval, so that the leader reports follower lag and NATS gauges are set.
  await new Promise((r) => setTimeout(r, 1500));

  const texts: Record<string, string> = {};
  const catalog: Catalog = new Map();
  for (const r of stack.replicas()) {
    const text = await (await fetch(`http://127.0.0.1:${r.httpPort}/metrics`)).text();
    texts[r.name] = text;
    parseExposition(text, 'replica', catalog);
  }
  texts.gateway = await (await fetch(`${stack.url}/metrics`)).text();
  parseExposition(texts.gateway, 'gateway', catalog);
  await operatorCatalog(catalog);
  return { catalog, texts };
}

export const OPERATOR_METRICS_MODULE = path.resolve(__dirname, '..', 'operator', 'metrics.ts');

/**
 * The operator's metrics, from its registry (operator/metrics.ts). That module was written at the
 * same time as this one; where it is not in the checkout yet, the operator rows of docs/metrics.md
 * (generated from it) stand in, so the rest of the checks still run.
 */
async function operatorCatalog(into: Catalog): Promise<'registry' | 'docs'> {
  if (fs.existsSync(OPERATOR_METRICS_MODULE)) {
    // Loaded by path: a checkout without it must still compile.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(OPERATOR_METRICS_MODULE) as { operatorMetrics: () => { registry: promClient.Registry } };
    await catalogFromRegistry(mod.operatorMetrics().registry, 'operator', into);
    return 'registry';
  }
  for (const m of parseTable(fs.readFileSync(METRICS_DOC, 'utf8')).values())
    if (m.programs.has('operator')) {
      const existing = into.get(m.name);
      if (existing) existing.programs.add('operator');
      else into.set(m.name, { ...m, programs: new Set(['operator']) });
    }
  return 'docs';
}

async function main(): Promise<void> {
  const stack = await startMetricsStack();
  try {
    const { catalog } = await collectLiveCatalog(stack);
    const before = fs.readFileSync(METRICS_DOC, 'utf8');
    // A label shows in a scrape only once a series with it exists, and some exist only by chance
    // in this small run (a redirect happens when the first request meets a follower): labels the
    // doc already lists for a metric that is still exported are kept, so one run does not drop them.
    for (const [name, documented] of parseTable(before)) {
      const live = catalog.get(name);
      if (live) for (const l of documented.labels) live.labels.add(l);
    }
    const doc = replaceTable(before, catalog);
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(METRICS_DOC)) ?? {};
    fs.writeFileSync(METRICS_DOC, await prettier.format(doc, { ...config, filepath: METRICS_DOC }));
    process.stdout.write(`wrote ${catalog.size} metrics to ${path.relative(process.cwd(), METRICS_DOC)}\n`);
  } finally {
    await stack.stop(true);
  }
}

if (require.main === module)
  main().catch((err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });

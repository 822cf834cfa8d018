import { DaftkaError } from '../../common/errors';
import { can, type Principal } from '../auth';
import type { TopicCatalog } from '../catalog';
import type { Call, GatewayContext, Reply } from './context';

/**
 * GET /v1/readiness and /v1/readiness/history (docs/readiness.md). The report covers every topic
 * (partition names, dead-letter counts), so it needs the admin right on every topic of the
 * catalog — with auth off, `anonymous` holds it. A principal without it learns nothing (403).
 */

function requireClusterAdmin(catalog: TopicCatalog, p: Principal): void {
  if (p.superuser) return;
  const topics = catalog.list();
  if (topics.length === 0 || topics.some((t) => !can(p, t, 'admin')))
    throw new DaftkaError('FORBIDDEN', `principal ${p.name} may not read the readiness report (admin on every topic)`, {
      extra: { right: 'admin' },
    });
}

function source(g: GatewayContext) {
  if (g.readiness === undefined) throw new DaftkaError('NOT_IMPLEMENTED', 'this gateway has no readiness report');
  return g.readiness;
}

export async function getReadinessHandler(g: GatewayContext, c: Call): Promise<Reply> {
  requireClusterAdmin(g.catalog, c.principal);
  return { body: await source(g).report() };
}

export async function getReadinessHistoryHandler(g: GatewayContext, c: Call): Promise<Reply> {
  requireClusterAdmin(g.catalog, c.principal);
  const r = source(g);
  const limit = c.query.limit as number | undefined;
  return { body: { interval_ms: r.intervalMs, capacity: r.historyCapacity, snapshots: r.historyEntries(limit) } };
}

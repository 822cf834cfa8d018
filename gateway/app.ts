import type { LeasedPartitionClient, PartitionClient } from '../protocol/methods';
import { randomUUID } from 'node:crypto';
import { join as pathJoin } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Request, type Response } from 'express';
import type client from 'prom-client';
import { DaftkaError } from '../common/errors';
import type { Logger } from '../common/log';

import { MAX_FETCH_BYTES, MAX_FETCH_RECORDS } from './api-spec';
import type { RouteId } from './route-spec';
import { ROUTES } from './routes';
import type { Authenticator } from './auth';
import { Dispatcher, sendJson, type CompiledRoute, type RequestState } from './dispatch';
import { fastLane } from './fast-lane';
import { DEFAULT_COALESCER, ProduceCoalescer, type CoalescerOptions } from './produce-coalescer';
import type { TopicCatalog } from './catalog';
import { DEFAULT_LIMITS, type GatewayContext, type GatewayLimits, type Handler } from './handlers/context';
import { createGatewayMetrics, leasedMetrics } from './metrics';
import { buildOpenApiDocument } from './openapi';
import type { QuotaManager } from './quotas';
import { createAjv } from './validation';
import { produceHandler } from './handlers/records';
import { produceStreamHandler } from './handlers/stream';
import { fetchHandler } from './handlers/fetch';
import {
  commitOffsetsHandler,
  getGroupHandler,
  getOffsetsHandler,
  listGroupsHandler,
  resetOffsetsHandler,
} from './handlers/groups';
import { getTopicHandler, limitsHandler, listTopicsHandler } from './handlers/topics';
import { LEASED_HANDLERS } from './handlers/leased-routes';
import { getReadinessHandler, getReadinessHistoryHandler } from './handlers/readiness';
import { ReadinessService } from './readiness-service';
import type { ReadinessSource } from './readiness';

import type { LeaseTokens } from './lease-token';

/**
 * The gateway's HTTP application: the route table (gateway/routes.ts) mounted on Express, each
 * route compiled once by the dispatcher (dispatch.ts: request id and access log,
 * authentication, validation, the handler, errors as problems), and the fast lane
 * (fast-lane.ts) that serves produce and fetch by the same compiled routes ahead of Express's
 * router. No body is read before authentication, and only POST routes read one.
 */

export { DEFAULT_LIMITS, type GatewayLimits };

export interface GatewayDeps {
  catalog: TopicCatalog;
  /** Where partition calls go: a PartitionRouter in production, a fake in unit tests. */
  router: PartitionClient;
  auth: Authenticator;
  quotas: QuotaManager;
  logger: Logger;
  registry: client.Registry;
  limits?: Partial<GatewayLimits>;
  /** The NATS leader feed; absent when NATS is not configured (readiness then ignores it). */
  nats?: { connected(): boolean };
  /** Wall clock for default record timestamps. Default Date.now. */
  nowMs?: () => number;
  newRequestId?: () => string;
  /** Leased groups and dead letters: where those calls go, and the lease-token signer (null: no secret). */
  leased?: { client: LeasedPartitionClient; tokens: LeaseTokens | null };
  /** The launch-readiness report; default: one built from these deps, without periodic snapshots. */
  readiness?: ReadinessSource;
  /** Produce coalescing bounds (gateway/produce-coalescer.ts); default DEFAULT_COALESCER. */
  coalesce?: Partial<Omit<CoalescerOptions, 'onBatch'>>;
  /** Serve the web console's static files (gateway/console/) at /console. Default true. */
  console?: boolean;
  /** Serve /metrics on this app. Default true; gateway/main.ts serves it on its own port instead. */
  serveMetrics?: boolean;
}

const HANDLERS: Record<Exclude<RouteId, 'openapi' | 'healthz' | 'readyz' | 'metrics'>, Handler> = {
  produce: produceHandler,
  produce_stream: produceStreamHandler,
  fetch: fetchHandler,
  commit_offsets: commitOffsetsHandler,
  get_offsets: getOffsetsHandler,
  reset_offsets: resetOffsetsHandler,
  get_group: getGroupHandler,
  list_groups: listGroupsHandler,
  list_topics: listTopicsHandler,
  get_topic: getTopicHandler,
  get_limits: limitsHandler,
  ...LEASED_HANDLERS,
  get_readiness: getReadinessHandler,
  get_readiness_history: getReadinessHistoryHandler,
};

/** The console's static files (HTML, CSS, JS; nothing is fetched from elsewhere). */
const CONSOLE_DIR = pathJoin(__dirname, 'console');
const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** `/v1/groups/{group}/offsets:reset` → `/v1/groups/:group/offsets\\:reset` (path-to-regexp v8). */
function expressPath(openApiPath: string): string {
  return openApiPath.replace(/:/g, '\\:').replace(/\{(\w+)\}/g, ':$1');
}

/** The routes served by the fast lane ahead of Express (fast-lane.ts): the data path. */
const FAST_ROUTES: ReadonlySet<RouteId> = new Set<RouteId>(['produce', 'produce_stream', 'fetch']);

/** The gateway as node:http's request listener: the fast lane first, then Express. */
export type GatewayApp = (req: IncomingMessage, res: ServerResponse) => void;

export function createGatewayApp(deps: GatewayDeps): GatewayApp {
  const limits: GatewayLimits = { ...DEFAULT_LIMITS, ...(deps.limits ?? {}) };
  if (limits.fetchMaxRecords > MAX_FETCH_RECORDS || limits.fetchMaxBytes > MAX_FETCH_BYTES)
    throw new RangeError(
      `fetch limits may not exceed the API bounds (${MAX_FETCH_RECORDS} records, ${MAX_FETCH_BYTES} bytes)`,
    );
  const metrics = createGatewayMetrics(deps.registry);
  const coalescer = new ProduceCoalescer(deps.router, {
    ...DEFAULT_COALESCER,
    ...(deps.coalesce ?? {}),
    onBatch: (requests) => metrics.produceBatchRequests.observe(requests),
    onShed: () => metrics.shed.inc({ reason: 'produce_queue', kind: 'produce' }),
  });
  const g: GatewayContext = {
    catalog: deps.catalog,
    router: deps.router,
    produce: (req, bytes, boundedElsewhere) => coalescer.produce(req, bytes, boundedElsewhere),
    quotas: deps.quotas,
    logger: deps.logger,
    limits,
    metrics,
    nowMs: deps.nowMs ?? Date.now,
    ...(deps.leased ? { leased: { ...deps.leased, metrics: leasedMetrics(deps.registry) } } : {}),
    readiness:
      deps.readiness ??
      new ReadinessService({
        catalog: deps.catalog,
        router: deps.router,
        ...(deps.leased ? { leased: deps.leased.client } : {}),
        registry: deps.registry,
        logger: deps.logger,
        ...(deps.nats ? { nats: deps.nats } : {}),
      }),
  };
  const dispatcher = new Dispatcher({
    g,
    auth: deps.auth,
    logger: deps.logger,
    registry: deps.registry,
    newRequestId: deps.newRequestId ?? randomUUID,
    ajv: createAjv(),
  });
  // Each request's state, from dispatcher.begin (whichever door it came by) to its answer.
  const states = new WeakMap<ServerResponse, RequestState>();
  const stateOf = (res: ServerResponse): RequestState => states.get(res)!;
  const begin = (req: IncomingMessage, res: ServerResponse) => states.set(res, dispatcher.begin(req, res));
  const problem = (req: IncomingMessage, res: ServerResponse, err: unknown) =>
    dispatcher.sendProblem(req, res, stateOf(res), err);
  let openapi: string | undefined;

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  // Request id, the access log line and the request metrics (requests the fast lane did not take).
  app.use((req, res, next) => {
    if (!states.has(res)) begin(req, res);
    next();
  });

  // The web console (docs/console.md): static files only; it calls the API above with the
  // signed-in principal's token, so it shows only what that principal may see.
  if (deps.console !== false) {
    const serveConsole = express.static(CONSOLE_DIR, {
      index: 'index.html',
      etag: false,
      setHeaders: (res) => {
        res.setHeader('Cache-Control', 'no-cache');
        res.setHeader('Content-Security-Policy', CONSOLE_CSP);
        res.setHeader('X-Content-Type-Options', 'nosniff');
        res.setHeader('Referrer-Policy', 'no-referrer');
      },
    });
    app.use('/console', (req, res, next) => {
      stateOf(res).route = 'console';
      if (req.method !== 'GET' && req.method !== 'HEAD') return next();
      serveConsole(req, res, next);
    });
  }

  const fast: CompiledRoute[] = [];
  for (const spec of ROUTES) {
    const path = expressPath(spec.path);

    if (spec.id === 'healthz') {
      app.get(path, (_req, res) => {
        stateOf(res).route = spec.id;
        sendJson(res, 200, { status: 'ok' });
      });
      continue;
    }
    if (spec.id === 'readyz') {
      app.get(path, (_req, res) => {
        stateOf(res).route = spec.id;
        if (!deps.catalog.ready()) {
          sendJson(res, 503, { status: 'not_ready', reason: 'topic metadata not loaded yet' });
          return;
        }
        if (deps.nats === undefined) sendJson(res, 200, { status: 'ready', nats: 'disabled' });
        else if (deps.nats.connected()) sendJson(res, 200, { status: 'ready', nats: 'connected' });
        // Still serving from the leader table and replica redirects: ready, but say so.
        else
          sendJson(res, 200, {
            status: 'degraded',
            nats: 'disconnected',
            reason: 'NATS unreachable; leader updates paused',
          });
      });
      continue;
    }
    if (spec.id === 'metrics') {
      if (deps.serveMetrics === false) continue;
      app.get(path, async (req, res) => {
        stateOf(res).route = spec.id;
        try {
          const text = await deps.registry.metrics();
          res.type(deps.registry.contentType).send(text);
        } catch (err) {
          problem(req, res, err);
        }
      });
      continue;
    }
    if (spec.id === 'openapi') {
      app.get(path, (_req, res) => {
        stateOf(res).route = spec.id;
        openapi ??= JSON.stringify(buildOpenApiDocument());
        res.type('application/json').send(openapi);
      });
      continue;
    }

    const route = dispatcher.compile(spec, HANDLERS[spec.id], stateOf);
    if (FAST_ROUTES.has(spec.id)) fast.push(route);
    app[spec.method](path, (req: Request, res: Response) =>
      route.serve(req, res, req.params as Record<string, string>, req.query),
    );
  }

  app.use((req: Request, res: Response) => {
    problem(req, res, new DaftkaError('NOT_FOUND', 'no such route; see /v1/openapi.json'));
  });
  // Errors raised by Express itself (e.g. a path that is not valid percent-encoding).
  app.use((err: unknown, req: Request, res: Response, _next: express.NextFunction) => {
    problem(req, res, err);
  });

  const lane = fastLane(fast);
  return (req, res) => {
    if (lane(req, res, () => begin(req, res))) return;
    app(req, res);
  };
}

import type { LeasedPartitionClient, PartitionClient } from '../protocol/methods';
import { randomUUID } from 'node:crypto';
import { join as pathJoin } from 'node:path';
import express, { type Request, type Response } from 'express';
import type client from 'prom-client';
import { DaftkaError, isDaftkaError, problemHeaders, toProblem } from '../common/errors';
import { REQUEST_ID_HEADER, requestIdFrom, type Logger } from '../common/log';

import { MAX_FETCH_BYTES, MAX_FETCH_RECORDS } from './api-spec';
import type { RouteId, RouteSpec } from './route-spec';
import { ROUTES } from './routes';
import { ANONYMOUS, type Authenticator } from './auth';
import type { TopicCatalog } from './catalog';
import { DEFAULT_LIMITS, type Call, type GatewayContext, type GatewayLimits, type Handler } from './handlers/context';
import { createGatewayMetrics, leasedMetrics } from './metrics';
import { gauge } from '../common/metrics';
import { buildOpenApiDocument } from './openapi';
import type { QuotaManager } from './quotas';
import { bodyError, createAjv, paramError, type JsonSchema } from './validation';
import { checkRecordCount, produceHandler } from './handlers/records';
import { fetchHandler } from './handlers/fetch';
import { commitOffsetsHandler, getGroupHandler, getOffsetsHandler, resetOffsetsHandler } from './handlers/groups';
import { getTopicHandler, limitsHandler, listTopicsHandler } from './handlers/topics';
import { LEASED_HANDLERS } from './handlers/leased-routes';
import { getReadinessHandler, getReadinessHistoryHandler } from './handlers/readiness';
import { ReadinessService } from './readiness-service';
import type { ReadinessSource } from './readiness';

import type { LeaseTokens } from './lease-token';

/**
 * The gateway's HTTP application: request id, authentication, validation against the route
 * specs (gateway/routes.ts), the handlers, and the one place where errors become problems.
 * The hot path is one middleware (request id + the access log line) and the route's own handler:
 * no body parser runs before authentication, and only POST routes read a body.
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
  /** Serve the web console's static files (gateway/console/) at /console. Default true. */
  console?: boolean;
  /** Serve /metrics on this app. Default true; gateway/main.ts serves it on its own port instead. */
  serveMetrics?: boolean;
}

/** Per request, in res.locals: what the access log line and the metrics need. */
interface RequestState {
  requestId: string;
  route: RouteId | 'unmatched' | 'console';
  startMs: number;
  principal?: string;
  topic?: string;
  code?: string;
}

const HANDLERS: Record<Exclude<RouteId, 'openapi' | 'healthz' | 'readyz' | 'metrics'>, Handler> = {
  produce: produceHandler,
  fetch: fetchHandler,
  commit_offsets: commitOffsetsHandler,
  get_offsets: getOffsetsHandler,
  reset_offsets: resetOffsetsHandler,
  get_group: getGroupHandler,
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

/** `/v1/groups/{group}/offsets:reset` → `/v1/groups/:group/offsets\:reset` (path-to-regexp v8). */
function expressPath(openApiPath: string): string {
  return openApiPath.replace(/:/g, '\\:').replace(/\{(\w+)\}/g, ':$1');
}

/** A JSON Schema object for a route's query parameters (unknown parameters are refused). */
function querySchema(r: RouteSpec): JsonSchema {
  const q = r.params.filter((p) => p.in === 'query');
  return {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(q.map((p) => [p.name, p.schema])),
    required: q.filter((p) => p.required).map((p) => p.name),
  };
}

/** Query strings carry strings: turn declared integers into numbers and single values into lists. */
function coerceQuery(r: RouteSpec, raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  for (const p of r.params) {
    if (p.in !== 'query' || !(p.name in out)) continue;
    const v = out[p.name];
    if (p.schema.type === 'integer' && typeof v === 'string' && /^-?\d{1,20}$/.test(v)) out[p.name] = Number(v);
    if (p.schema.type === 'array' && typeof v === 'string') out[p.name] = [v];
  }
  return out;
}

function mediaTypeIsJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const mt = contentType.split(';')[0].trim().toLowerCase();
  return mt === 'application/json' || (mt.startsWith('application/') && mt.endsWith('+json'));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Read and discard what is left of a request body; true when it ended within `timeoutMs`. */
function drainBody(req: Request, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (req.complete) return resolve(true);
    const done = (complete: boolean) => {
      clearTimeout(timer);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onError);
      resolve(complete);
    };
    const onEnd = () => done(true);
    const onClose = () => done(req.complete);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    req.on('end', onEnd);
    req.on('close', onClose);
    req.on('error', onError);
    req.resume();
  });
}

/** body-parser / express errors → DaftkaError (they carry `type`, `status`, `limit`). */
function fromHttpError(err: unknown, limits: GatewayLimits): DaftkaError | undefined {
  const e = err as { type?: unknown; status?: unknown; limit?: unknown } | null;
  if (e === null || typeof e !== 'object') return undefined;
  switch (e.type) {
    case 'entity.too.large':
      return new DaftkaError('PAYLOAD_TOO_LARGE', `request body is larger than ${limits.maxBodyBytes} bytes`, {
        extra: { limit: limits.maxBodyBytes },
      });
    case 'encoding.unsupported':
      return new DaftkaError('UNSUPPORTED_MEDIA_TYPE', 'Content-Encoding must be identity, gzip, deflate or br');
    case 'request.aborted':
      return new DaftkaError('INVALID_REQUEST', 'request body was cut short by the client');
    case 'request.size.invalid':
      return new DaftkaError('INVALID_REQUEST', 'request body length does not match Content-Length');
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500)
    return new DaftkaError('INVALID_REQUEST', 'malformed HTTP request');
  return undefined;
}

export function createGatewayApp(deps: GatewayDeps): express.Application {
  const limits: GatewayLimits = { ...DEFAULT_LIMITS, ...(deps.limits ?? {}) };
  if (limits.fetchMaxRecords > MAX_FETCH_RECORDS || limits.fetchMaxBytes > MAX_FETCH_BYTES)
    throw new RangeError(
      `fetch limits may not exceed the API bounds (${MAX_FETCH_RECORDS} records, ${MAX_FETCH_BYTES} bytes)`,
    );
  const metrics = createGatewayMetrics(deps.registry);
  const g: GatewayContext = {
    catalog: deps.catalog,
    router: deps.router,
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
  const newRequestId = deps.newRequestId ?? randomUUID;
  const log = deps.logger;
  const ajv = createAjv();
  const rawBody = express.raw({ type: () => true, limit: limits.maxBodyBytes });
  let openapi: string | undefined;

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  // Request id, the access log line and the request metrics: the only middleware on every request.
  app.use((req, res, next) => {
    const state: RequestState = {
      requestId: requestIdFrom(req.headers[REQUEST_ID_HEADER] as string | undefined, newRequestId),
      route: 'unmatched',
      startMs: performance.now(),
    };
    res.locals.state = state;
    res.setHeader('X-Request-Id', state.requestId);
    res.once('close', () => {
      const seconds = (performance.now() - state.startMs) / 1000;
      // 499: the client closed the connection before the answer was complete.
      const status = res.writableFinished ? res.statusCode : 499;
      metrics.requests.inc({ route: state.route, code: String(status) });
      metrics.duration.observe({ route: state.route }, seconds);
      if (state.code !== undefined) metrics.errors.inc({ route: state.route, code: state.code });
      log.info('http_request', {
        request_id: state.requestId,
        route: state.route,
        method: req.method,
        status,
        duration_ms: Math.round(seconds * 1e6) / 1000,
        ...(state.principal !== undefined ? { principal: state.principal } : {}),
        ...(state.topic !== undefined ? { topic: state.topic } : {}),
        ...(state.code !== undefined ? { code: state.code } : {}),
      });
    });
    next();
  });

  const sendProblem = (res: Response, state: RequestState, err: unknown): void => {
    const e = isDaftkaError(err) ? err : (fromHttpError(err, limits) ?? err);
    if (!isDaftkaError(e) || e.status >= 500) {
      const cause = (isDaftkaError(e) ? (e.cause ?? e) : e) as { message?: unknown; stack?: unknown; code?: unknown };
      const fields = {
        request_id: state.requestId,
        route: state.route,
        code: isDaftkaError(e) ? e.code : 'INTERNAL',
        error: String(cause?.message ?? cause),
      };
      if (!isDaftkaError(e)) log.error('request_failed', { ...fields, stack: String(cause?.stack ?? '') });
      else log.warn('request_failed', fields);
    }
    const p = toProblem(e, state.requestId);
    state.code = p.code;
    if (p.code === 'QUOTA_EXCEEDED' && typeof p.topic === 'string' && typeof p.reason === 'string')
      metrics.throttled.inc({ topic: p.topic, reason: p.reason });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers = problemHeaders(p);
    if (p.status === 401) headers['www-authenticate'] = 'Bearer realm="daftka"';
    const send = () => res.status(p.status).set(headers).send(JSON.stringify(p));
    // The rest of an oversized body is not worth reading: end the connection after the answer.
    if (p.status === 413) {
      headers.connection = 'close';
      send();
      return;
    }
    // Refused before its body was read (401, 404, 415, 503 OVERLOADED, …): read and discard the
    // body first (nothing is kept), so the client gets this answer instead of a broken pipe while
    // it is still sending. Bounded by the request timeout; past it the connection is closed.
    const req = res.req;
    if (req !== undefined && !req.complete && !req.destroyed) {
      void drainBody(req, limits.requestTimeoutMs).then((complete) => {
        if (res.writableEnded || res.destroyed) return;
        if (!complete) headers.connection = 'close';
        send();
      });
      return;
    }
    send();
  };

  // Request bodies in memory are bounded as a whole, not only per request: each body's size is
  // reserved before it is read (Content-Length; maxBodyBytes when unknown or compressed) and
  // released when its answer is finished. Without this, N concurrent clients hold N × maxBodyBytes
  // (about 5× that in memory: buffer, text, parsed records, record bytes, replica frame) before
  // any in-flight bound is reached. One body is always admitted when none is held, so nothing starves.
  let bodyBytesHeld = 0;
  const heldBySocket = new WeakMap<object, number>();
  gauge(deps.registry, {
    name: 'daftka_gateway_body_bytes_in_flight',
    help: 'Request body bytes reserved by requests being read or served (bounded by maxBodyBytesInFlight)',
    collect() {
      this.set(bodyBytesHeld);
    },
  });
  const reserveBody = (req: Request, res: Response, state: RequestState): void => {
    const declared = Number(req.headers['content-length']);
    const known = req.headers['content-length'] !== undefined && Number.isSafeInteger(declared) && declared >= 0;
    const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
    const plain = encoding === 'identity' || encoding === '';
    // A declared length over the limit is answered 413 by the body reader without reading it.
    if (known && plain && declared > limits.maxBodyBytes) return;
    const cost = known && plain ? declared : limits.maxBodyBytes;
    if (bodyBytesHeld > 0 && bodyBytesHeld + cost > limits.maxBodyBytesInFlight) {
      metrics.shed.inc({ reason: 'body_bytes', kind: state.route });
      throw new DaftkaError('OVERLOADED', 'the gateway is holding too many request bodies; retry later', {
        retryAfterMs: 1000,
      });
    }
    // One body at a time per connection: pipelined requests cannot multiply the reservation.
    const socket = req.socket;
    if ((heldBySocket.get(socket) ?? 0) > 0) {
      metrics.shed.inc({ reason: 'body_per_connection', kind: state.route });
      throw new DaftkaError('OVERLOADED', 'one request body at a time per connection; retry later', {
        retryAfterMs: 1000,
      });
    }
    bodyBytesHeld += cost;
    heldBySocket.set(socket, cost);
    // Minimum upload rate: a body trickling in would hold its reservation (maxBodyBytes when
    // chunked) for as long as the client likes; past the grace, too slow on average = cut.
    const minRate = limits.minUploadBytesPerSecond ?? 0;
    let watchdog: NodeJS.Timeout | undefined;
    if (minRate > 0) {
      const started = Date.now();
      const readAtStart = socket.bytesRead;
      const grace = limits.uploadGraceMs ?? 5000;
      watchdog = setInterval(() => {
        if (req.complete) return clearInterval(watchdog);
        const elapsedMs = Date.now() - started;
        if (elapsedMs < grace) return;
        if (socket.bytesRead - readAtStart < (minRate * elapsedMs) / 1000) {
          clearInterval(watchdog);
          metrics.shed.inc({ reason: 'slow_upload', kind: state.route });
          socket.destroy();
        }
      }, 250);
      watchdog.unref();
    }
    res.once('close', () => {
      if (watchdog) clearInterval(watchdog);
      bodyBytesHeld -= cost;
      heldBySocket.delete(socket);
    });
  };

  const readBody = async (req: Request, res: Response, state: RequestState): Promise<unknown> => {
    if (!mediaTypeIsJson(req.headers['content-type']))
      throw new DaftkaError('UNSUPPORTED_MEDIA_TYPE', 'send the body as JSON with Content-Type: application/json');
    reserveBody(req, res, state);
    await new Promise<void>((resolve, reject) => rawBody(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
    const buf: unknown = req.body;
    if (!Buffer.isBuffer(buf) || buf.length === 0)
      throw new DaftkaError('MALFORMED_JSON', 'request body is empty; expected a JSON object');
    let text: string;
    try {
      text = utf8.decode(buf);
    } catch {
      throw new DaftkaError('MALFORMED_JSON', 'request body is not valid UTF-8');
    }
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new DaftkaError('MALFORMED_JSON', `request body is not valid JSON: ${(err as Error).message}`);
    }
  };

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
      (res.locals.state as RequestState).route = 'console';
      if (req.method !== 'GET' && req.method !== 'HEAD') return next();
      serveConsole(req, res, next);
    });
  }

  for (const spec of ROUTES) {
    const path = expressPath(spec.path);
    const validateQuery = ajv.compile(querySchema(spec));
    const validateBody = spec.body ? ajv.compile(spec.body) : undefined;

    if (spec.id === 'healthz') {
      app.get(path, (_req, res) => {
        (res.locals.state as RequestState).route = spec.id;
        res.json({ status: 'ok' });
      });
      continue;
    }
    if (spec.id === 'readyz') {
      app.get(path, (_req, res) => {
        (res.locals.state as RequestState).route = spec.id;
        if (!deps.catalog.ready()) {
          res.status(503).json({ status: 'not_ready', reason: 'topic metadata not loaded yet' });
          return;
        }
        if (deps.nats === undefined) res.json({ status: 'ready', nats: 'disabled' });
        else if (deps.nats.connected()) res.json({ status: 'ready', nats: 'connected' });
        // Still serving from the leader table and replica redirects: ready, but say so.
        else res.json({ status: 'degraded', nats: 'disconnected', reason: 'NATS unreachable; leader updates paused' });
      });
      continue;
    }
    if (spec.id === 'metrics') {
      if (deps.serveMetrics === false) continue;
      app.get(path, async (_req, res) => {
        const state = res.locals.state as RequestState;
        state.route = spec.id;
        try {
          const text = await deps.registry.metrics();
          res.type(deps.registry.contentType).send(text);
        } catch (err) {
          sendProblem(res, state, err);
        }
      });
      continue;
    }
    if (spec.id === 'openapi') {
      app.get(path, (_req, res) => {
        (res.locals.state as RequestState).route = spec.id;
        openapi ??= JSON.stringify(buildOpenApiDocument());
        res.type('application/json').send(openapi);
      });
      continue;
    }

    const handler = HANDLERS[spec.id];
    app[spec.method](path, async (req: Request, res: Response) => {
      const state = res.locals.state as RequestState;
      state.route = spec.id;
      try {
        const principal = spec.auth ? deps.auth.authenticate(req.headers.authorization) : ANONYMOUS;
        state.principal = principal.name;
        const query = coerceQuery(spec, req.query as Record<string, unknown>);
        if (!validateQuery(query)) throw paramError(validateQuery.errors);
        const call: Call = {
          req,
          res,
          requestId: state.requestId,
          principal,
          query,
          body: async <T>() => {
            const doc = await readBody(req, res, state);
            if (spec.id === 'produce') checkRecordCount(doc, g.limits.maxRecordsPerRequest);
            if (validateBody && !validateBody(doc)) throw bodyError(validateBody.errors);
            return doc as T;
          },
          noteTopic: (name) => {
            state.topic = name;
          },
        };
        const out = await handler(g, call);
        res.status(out.status ?? 200).json(out.body);
      } catch (err) {
        sendProblem(res, state, err);
      }
    });
  }

  app.use((_req: Request, res: Response) => {
    sendProblem(
      res,
      res.locals.state as RequestState,
      new DaftkaError('NOT_FOUND', 'no such route; see /v1/openapi.json'),
    );
  });
  // Errors raised by Express itself (e.g. a path that is not valid percent-encoding).
  app.use((err: unknown, _req: Request, res: Response, _next: express.NextFunction) => {
    sendProblem(res, res.locals.state as RequestState, err);
  });
  return app;
}

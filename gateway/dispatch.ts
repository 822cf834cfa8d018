import type { IncomingMessage, ServerResponse } from 'node:http';
import type client from 'prom-client';
import { DaftkaError, isDaftkaError, problemHeaders, toProblem } from '../common/errors';
import { REQUEST_ID_HEADER, requestIdFrom, type Logger } from '../common/log';
import { gauge } from '../common/metrics';
import { ANONYMOUS, type Authenticator } from './auth';
import type { Call, GatewayContext, GatewayLimits, Handler } from './handlers/context';
import { checkRecordCount } from './handlers/records';
import type { RouteId, RouteSpec } from './route-spec';
import { readRequestBody } from './body';
import { bodyError, paramError, type createAjv, type JsonSchema } from './validation';

/**
 * One request's way through a route, on node:http's own request and response: the request id,
 * the access log line and the request metrics, authentication, query and body validation from
 * the route spec, the handler, the answer, and the one place where errors become problems.
 *
 * Two doors lead here and nothing else differs between them: Express's router (every route)
 * and the fast lane ahead of it (gateway/fast-lane.ts: produce and fetch, where Express's
 * per-request cost was most of the gateway's CPU). Neither door adds a step of its own.
 */

/** Per request: what the access log line and the metrics need. */
export interface RequestState {
  requestId: string;
  route: RouteId | 'unmatched' | 'console';
  startMs: number;
  principal?: string;
  topic?: string;
  code?: string;
}

export interface DispatchDeps {
  g: GatewayContext;
  auth: Authenticator;
  logger: Logger;
  registry: client.Registry;
  newRequestId: () => string;
  ajv: ReturnType<typeof createAjv>;
}

/** A route's compiled validators and handler. */
export interface CompiledRoute {
  spec: RouteSpec;
  serve(req: IncomingMessage, res: ServerResponse, params: Readonly<Record<string, string>>, query: unknown): void;
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

/** Read and discard what is left of a request body; true when it ended within `timeoutMs`. */
function drainBody(req: IncomingMessage, timeoutMs: number): Promise<boolean> {
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

/** Express's own errors (a path that is not valid percent-encoding, …) → DaftkaError. */
function fromHttpError(err: unknown): DaftkaError | undefined {
  const e = err as { status?: unknown } | null;
  if (e === null || typeof e !== 'object') return undefined;
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500)
    return new DaftkaError('INVALID_REQUEST', 'malformed HTTP request');
  return undefined;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Answer `body` as JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class Dispatcher {
  private readonly limits: GatewayLimits;
  private readonly log: Logger;
  /**
   * Request bodies in memory are bounded as a whole, not only per request: each body's size is
   * reserved before it is read (Content-Length; maxBodyBytes when unknown or compressed) and
   * released when its answer is finished. Without this, N concurrent clients hold N ×
   * maxBodyBytes (about 5× that in memory: buffer, text, parsed records, record bytes, replica
   * frame) before any in-flight bound is reached. One body is always admitted when none is
   * held, so nothing starves.
   */
  private bodyBytesHeld = 0;
  private readonly heldBySocket = new WeakMap<object, number>();

  constructor(private readonly d: DispatchDeps) {
    this.limits = d.g.limits;
    this.log = d.logger;
    const held = () => this.bodyBytesHeld;
    gauge(d.registry, {
      name: 'daftka_gateway_body_bytes_in_flight',
      help: 'Request body bytes reserved by requests being read or served (bounded by maxBodyBytesInFlight)',
      collect() {
        this.set(held());
      },
    });
  }

  /**
   * Start a request: its id (taken from X-Request-Id or made), and at its end the access log
   * line and the request metrics. Every request passes here once, whichever door it came by.
   */
  begin(req: IncomingMessage, res: ServerResponse): RequestState {
    const state: RequestState = {
      requestId: requestIdFrom(req.headers[REQUEST_ID_HEADER] as string | undefined, this.d.newRequestId),
      route: 'unmatched',
      startMs: performance.now(),
    };
    res.setHeader('X-Request-Id', state.requestId);
    const metrics = this.d.g.metrics;
    res.once('close', () => {
      const seconds = (performance.now() - state.startMs) / 1000;
      // 499: the client closed the connection before the answer was complete.
      const status = res.writableFinished ? res.statusCode : 499;
      metrics.requests.inc({ route: state.route, code: String(status) });
      metrics.duration.observe({ route: state.route }, seconds);
      if (state.code !== undefined) metrics.errors.inc({ route: state.route, code: state.code });
      this.log.info('http_request', {
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
    return state;
  }

  /** The answer to a failed request: a problem document (RFC 9457), logged when it is ours to fix. */
  sendProblem(req: IncomingMessage, res: ServerResponse, state: RequestState, err: unknown): void {
    const e = isDaftkaError(err) ? err : (fromHttpError(err) ?? err);
    if (!isDaftkaError(e) || e.status >= 500) {
      const cause = (isDaftkaError(e) ? (e.cause ?? e) : e) as { message?: unknown; stack?: unknown; code?: unknown };
      const fields = {
        request_id: state.requestId,
        route: state.route,
        code: isDaftkaError(e) ? e.code : 'INTERNAL',
        error: String(cause?.message ?? cause),
      };
      if (!isDaftkaError(e)) this.log.error('request_failed', { ...fields, stack: String(cause?.stack ?? '') });
      else this.log.warn('request_failed', fields);
    }
    const p = toProblem(e, state.requestId);
    state.code = p.code;
    if (p.code === 'QUOTA_EXCEEDED' && typeof p.topic === 'string' && typeof p.reason === 'string')
      this.d.g.metrics.throttled.inc({ topic: p.topic, reason: p.reason });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string | number> = problemHeaders(p);
    if (p.status === 401) headers['www-authenticate'] = 'Bearer realm="daftka"';
    const text = JSON.stringify(p);
    headers['content-length'] = Buffer.byteLength(text);
    const send = () => {
      res.writeHead(p.status, headers);
      res.end(text);
    };
    // The rest of an oversized body is not worth reading: end the connection after the answer.
    if (p.status === 413) {
      headers.connection = 'close';
      send();
      return;
    }
    // Refused before its body was read (401, 404, 415, 503 OVERLOADED, …): read and discard the
    // body first (nothing is kept), so the client gets this answer instead of a broken pipe while
    // it is still sending. Bounded by the request timeout; past it the connection is closed.
    if (!req.complete && !req.destroyed) {
      void drainBody(req, this.limits.requestTimeoutMs).then((complete) => {
        if (res.writableEnded || res.destroyed) return;
        if (!complete) headers.connection = 'close';
        send();
      });
      return;
    }
    send();
  }

  /** Reserve a body's bytes in the gateway-wide budget (503 OVERLOADED when over it). */
  private reserveBody(req: IncomingMessage, res: ServerResponse, state: RequestState, watchRate = true): void {
    const limits = this.limits;
    const metrics = this.d.g.metrics;
    const declared = Number(req.headers['content-length']);
    const known = req.headers['content-length'] !== undefined && Number.isSafeInteger(declared) && declared >= 0;
    const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
    const plain = encoding === 'identity' || encoding === '';
    // A declared length over the limit is answered 413 by the body reader without reading it.
    if (known && plain && declared > limits.maxBodyBytes) return;
    const cost = known && plain ? declared : limits.maxBodyBytes;
    if (this.bodyBytesHeld > 0 && this.bodyBytesHeld + cost > limits.maxBodyBytesInFlight) {
      metrics.shed.inc({ reason: 'body_bytes', kind: state.route });
      throw new DaftkaError('OVERLOADED', 'the gateway is holding too many request bodies; retry later', {
        retryAfterMs: 1000,
      });
    }
    // One body at a time per connection: pipelined requests cannot multiply the reservation.
    const socket = req.socket;
    if ((this.heldBySocket.get(socket) ?? 0) > 0) {
      metrics.shed.inc({ reason: 'body_per_connection', kind: state.route });
      throw new DaftkaError('OVERLOADED', 'one request body at a time per connection; retry later', {
        retryAfterMs: 1000,
      });
    }
    this.bodyBytesHeld += cost;
    this.heldBySocket.set(socket, cost);
    // Minimum upload rate: a body trickling in would hold its reservation (maxBodyBytes when
    // chunked) for as long as the client likes; past the grace, too slow on average = cut.
    const minRate = limits.minUploadBytesPerSecond ?? 0;
    let watchdog: NodeJS.Timeout | undefined;
    if (watchRate && minRate > 0 && !req.complete) {
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
      this.bodyBytesHeld -= cost;
      this.heldBySocket.delete(socket);
    });
  }

  /** The parsed JSON body of a request (bounded, reserved in the body budget). */
  private async readJson(req: IncomingMessage, res: ServerResponse, state: RequestState): Promise<unknown> {
    if (!mediaTypeIsJson(req.headers['content-type']))
      throw new DaftkaError('UNSUPPORTED_MEDIA_TYPE', 'send the body as JSON with Content-Type: application/json');
    this.reserveBody(req, res, state);
    const buf = await readRequestBody(req, this.limits.maxBodyBytes);
    if (buf.length === 0) throw new DaftkaError('MALFORMED_JSON', 'request body is empty; expected a JSON object');
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
  }

  /** A route served by `handler`: validators compiled once, here. */
  compile(spec: RouteSpec, handler: Handler, stateOf: (res: ServerResponse) => RequestState): CompiledRoute {
    const validateQuery = this.d.ajv.compile(querySchema(spec));
    const validateBody = spec.body ? this.d.ajv.compile(spec.body) : undefined;
    const { g, auth } = this.d;
    const serveAsync = async (
      req: IncomingMessage,
      res: ServerResponse,
      params: Readonly<Record<string, string>>,
      rawQuery: unknown,
    ): Promise<void> => {
      const state = stateOf(res);
      state.route = spec.id;
      try {
        const principal = spec.auth ? auth.authenticate(req.headers.authorization) : ANONYMOUS;
        state.principal = principal.name;
        const query = coerceQuery(spec, (rawQuery ?? {}) as Record<string, unknown>);
        if (!validateQuery(query)) throw paramError(validateQuery.errors);
        const call: Call = {
          params,
          headers: req.headers,
          setHeader: (name, value) => res.setHeader(name, value),
          requestId: state.requestId,
          principal,
          query,
          body: async <T>() => {
            const doc = await this.readJson(req, res, state);
            if (spec.id === 'produce') checkRecordCount(doc, g.limits.maxRecordsPerRequest);
            if (validateBody && !validateBody(doc)) throw bodyError(validateBody.errors);
            return doc as T;
          },
          noteTopic: (name) => {
            state.topic = name;
          },
        };
        if (spec.streaming) {
          // A stream's memory is bounded by its own window, not by its length: no upload-rate
          // watchdog (a producer may be slow), only the whole-request timeout.
          call.stream = {
            req,
            res,
            validateItem: (doc) => {
              if (validateBody && !validateBody(doc)) throw bodyError(validateBody.errors);
            },
            reserve: () => this.reserveBody(req, res, state, false),
          };
          await handler(g, call);
          return;
        }
        const out = await handler(g, call);
        sendJson(res, out.status ?? 200, out.body);
      } catch (err) {
        this.sendProblem(req, res, state, err);
      }
    };
    return {
      spec,
      serve: (req, res, params, query) => void serveAsync(req, res, params, query),
    };
  }
}

function mediaTypeIsJson(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const mt = contentType.split(';')[0].trim().toLowerCase();
  return mt === 'application/json' || (mt.startsWith('application/') && mt.endsWith('+json'));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

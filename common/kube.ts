/**
 * A thin Kubernetes API client (the operator's, and the gateway's catalog watch): JSON over one keep-alive HTTPS agent, server-side
 * apply, list with pagination, watch streams, a client-side rate limit (QPS + burst, as client-go)
 * and a hook per request for metrics. Authentication comes from @kubernetes/client-node's
 * KubeConfig (kubeconfig file or in-cluster service account), refreshed periodically so rotated
 * tokens are picked up. Objects travel as plain JSON: no model classes, no key renaming.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import * as http from 'node:http';
import * as https from 'node:https';

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

const rt = (group: string, version: string, plural: string, kind: string, namespaced = true): ResourceType => ({
  group,
  version,
  plural,
  kind,
  namespaced,
});

export const RESOURCES = {
  topics: rt('daftka.io', 'v1alpha1', 'topics', 'Topic'),
  partitions: rt('daftka.io', 'v1alpha1', 'partitions', 'Partition'),
  statefulsets: rt('apps', 'v1', 'statefulsets', 'StatefulSet'),
  services: rt('', 'v1', 'services', 'Service'),
  pdbs: rt('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget'),
  pods: rt('', 'v1', 'pods', 'Pod'),
  pvcs: rt('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim'),
  events: rt('', 'v1', 'events', 'Event'),
  leases: rt('coordination.k8s.io', 'v1', 'leases', 'Lease'),
  nodes: rt('', 'v1', 'nodes', 'Node', false),
  namespaces: rt('', 'v1', 'namespaces', 'Namespace', false),
  configmaps: rt('', 'v1', 'configmaps', 'ConfigMap'),
  secrets: rt('', 'v1', 'secrets', 'Secret'),
  crds: rt('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false),
} as const;

export function resourcePath(
  r: ResourceType,
  o: { namespace?: string; name?: string; subresource?: string } = {},
): string {
  let p = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  if (r.namespaced && o.namespace) p += `/namespaces/${encodeURIComponent(o.namespace)}`;
  p += `/${r.plural}`;
  if (o.name) p += `/${encodeURIComponent(o.name)}`;
  if (o.subresource) p += `/${o.subresource}`;
  return p;
}

/** A failed API call, with the apiserver's Status (reason, message, details) when there is one. */
export class KubeApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly statusCode: number,
    readonly reason: string,
    readonly body: unknown,
  ) {
    super(`${method} ${path}: ${statusCode} ${reason}`);
    this.name = 'KubeApiError';
  }
  /** The apiserver's message (e.g. the CEL validation text), or the HTTP reason. */
  get apiMessage(): string {
    const b = this.body as { message?: string } | undefined;
    return b?.message ?? this.message;
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeApiError && e.statusCode === 404;
export const isConflict = (e: unknown): boolean => e instanceof KubeApiError && e.statusCode === 409;

export interface RequestInfo {
  method: string;
  /** Resource plural (bounded label), e.g. statefulsets. */
  resource: string;
  code: number;
  durationMs: number;
}

export interface KubeClientOptions {
  kubeConfig: KubeConfig;
  /** Sustained requests per second (watches excluded). */
  qps?: number;
  burst?: number;
  /** Act as this user (tests check the operator's RBAC with it). */
  impersonate?: { user: string; groups?: string[] };
  userAgent?: string;
  requestTimeoutMs?: number;
  onRequest?: (info: RequestInfo) => void;
}

interface Auth {
  server: URL;
  tls: https.AgentOptions;
  headers: Record<string, string>;
  loadedAtMs: number;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

const AUTH_REFRESH_MS = 60_000;

/** Token bucket: `take()` resolves when a request may go. */
class RateLimiter {
  private tokens: number;
  private last = Date.now();
  private queue: Array<() => void> = [];
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly qps: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }
  take(): Promise<void> {
    this.refill();
    if (this.queue.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.queue.push(resolve);
      this.schedule();
    });
  }
  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
  }
  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(1, Math.ceil(((1 - this.tokens) / this.qps) * 1000));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refill();
      while (this.queue.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        this.queue.shift()!();
      }
      if (this.queue.length > 0) this.schedule();
    }, wait);
  }
}

export class KubeClient {
  private auth: Auth | null = null;
  private authLoading: Promise<Auth> | null = null;
  private agent: https.Agent | http.Agent | null = null;
  private readonly limiter: RateLimiter;
  private readonly timeoutMs: number;

  constructor(private readonly opts: KubeClientOptions) {
    this.limiter = new RateLimiter(opts.qps ?? 50, opts.burst ?? 100);
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
  }

  private async loadAuth(): Promise<Auth> {
    const kc = this.opts.kubeConfig;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    const o: https.RequestOptions & { headers?: Record<string, string> } = { headers: {} };
    await kc.applyToHTTPSOptions(o);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.headers ?? {})) if (v !== undefined) headers[k] = String(v);
    if (o.auth) headers.Authorization = `Basic ${Buffer.from(o.auth).toString('base64')}`;
    if (this.opts.impersonate) {
      headers['Impersonate-User'] = this.opts.impersonate.user;
    }
    headers['User-Agent'] = this.opts.userAgent ?? 'daftka-operator';
    const tls: https.AgentOptions = {
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      ...(o.rejectUnauthorized !== undefined ? { rejectUnauthorized: o.rejectUnauthorized } : {}),
      ...(o.servername ? { servername: o.servername } : {}),
    };
    const server = new URL(cluster.server);
    if (!this.agent) {
      this.agent =
        server.protocol === 'https:'
          ? new https.Agent({ keepAlive: true, maxSockets: 64, ...tls })
          : new http.Agent({ keepAlive: true, maxSockets: 64 });
    }
    return { server, tls, headers, loadedAtMs: Date.now() };
  }

  private async getAuth(): Promise<Auth> {
    if (this.auth && Date.now() - this.auth.loadedAtMs < AUTH_REFRESH_MS) return this.auth;
    if (!this.authLoading)
      this.authLoading = this.loadAuth().then(
        (a) => {
          this.auth = a;
          this.authLoading = null;
          return a;
        },
        (err) => {
          this.authLoading = null;
          throw err;
        },
      );
    return this.authLoading;
  }

  private headersFor(auth: Auth, extra: Record<string, string>): Record<string, string | string[]> {
    const h: Record<string, string | string[]> = { ...auth.headers, Accept: 'application/json', ...extra };
    if (this.opts.impersonate?.groups?.length) h['Impersonate-Group'] = this.opts.impersonate.groups;
    return h;
  }

  /** One JSON request. Non-2xx answers throw KubeApiError with the apiserver's Status body. */
  async request<T>(
    method: string,
    path: string,
    o: { query?: Record<string, string | number | boolean | undefined>; body?: unknown; contentType?: string } = {},
  ): Promise<T> {
    await this.limiter.take();
    const auth = await this.getAuth();
    const url = new URL(path, auth.server);
    for (const [k, v] of Object.entries(o.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const started = Date.now();
    const resource = resourceOf(path);
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise<T>((resolve, reject) => {
      const req = lib.request(
        url,
        {
          method,
          agent: this.agent!,
          headers: this.headersFor(auth, {
            ...(payload
              ? { 'Content-Type': o.contentType ?? 'application/json', 'Content-Length': String(payload.length) }
              : {}),
          }),
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const code = res.statusCode ?? 0;
            this.opts.onRequest?.({ method, resource, code, durationMs: Date.now() - started });
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = undefined;
            try {
              body = text === '' ? undefined : JSON.parse(text);
            } catch {
              body = { message: text };
            }
            if (code >= 200 && code < 300) resolve(body as T);
            else reject(new KubeApiError(method, url.pathname, code, res.statusMessage ?? '', body));
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`${method} ${url.pathname}: timed out after ${this.timeoutMs} ms`)),
      );
      req.on('error', (err) => {
        this.opts.onRequest?.({ method, resource, code: 0, durationMs: Date.now() - started });
        reject(err);
      });
      req.end(payload);
    });
  }

  /** A non-JSON GET (e.g. the apiserver's /metrics). */
  async getText(path: string): Promise<string> {
    const r = await this.request<{ message?: string } | string>('GET', path);
    return typeof r === 'string' ? r : (r?.message ?? '');
  }

  async get<T>(path: string): Promise<T | null> {
    try {
      return await this.request<T>('GET', path);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** All items (following `continue`), with the list's resourceVersion (to start a watch from). */
  async list<T>(
    path: string,
    o: { labelSelector?: string; fieldSelector?: string; pageSize?: number } = {},
  ): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.request<{ items: T[]; metadata: { resourceVersion: string; continue?: string } }>(
        'GET',
        path,
        {
          query: {
            labelSelector: o.labelSelector,
            fieldSelector: o.fieldSelector,
            limit: o.pageSize ?? 500,
            continue: cont,
          },
        },
      );
      items.push(...(page.items ?? []));
      resourceVersion = page.metadata.resourceVersion;
      cont = page.metadata.continue || undefined;
    } while (cont);
    return { items, resourceVersion };
  }

  /** Server-side apply (force: the operator owns the fields it sets). */
  apply<T>(path: string, obj: unknown, fieldManager: string): Promise<T> {
    return this.request<T>('PATCH', path, {
      query: { fieldManager, force: true },
      body: obj,
      contentType: 'application/apply-patch+yaml',
    });
  }

  patch<T>(path: string, body: unknown, type: 'merge' | 'json' | 'strategic' = 'merge'): Promise<T> {
    const contentType =
      type === 'merge'
        ? 'application/merge-patch+json'
        : type === 'json'
          ? 'application/json-patch+json'
          : 'application/strategic-merge-patch+json';
    return this.request<T>('PATCH', path, { body, contentType });
  }

  create<T>(path: string, obj: unknown): Promise<T> {
    return this.request<T>('POST', path, { body: obj });
  }

  replace<T>(path: string, obj: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body: obj });
  }

  /** Deletes; false when it was already gone. */
  async delete(
    path: string,
    o: { propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'; preconditions?: { uid?: string } } = {},
  ): Promise<boolean> {
    try {
      await this.request('DELETE', path, {
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          ...(o.propagationPolicy ? { propagationPolicy: o.propagationPolicy } : {}),
          ...(o.preconditions ? { preconditions: o.preconditions } : {}),
        },
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Streams watch events until the server ends the watch, the signal aborts, or an error occurs.
   * Resolves normally on a clean end; the caller restarts from the last resourceVersion it saw.
   */
  async watch<T>(
    path: string,
    o: { resourceVersion: string; labelSelector?: string; fieldSelector?: string; timeoutSeconds?: number },
    onEvent: (e: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const auth = await this.getAuth();
    const url = new URL(path, auth.server);
    url.searchParams.set('watch', 'true');
    url.searchParams.set('allowWatchBookmarks', 'true');
    url.searchParams.set('resourceVersion', o.resourceVersion);
    url.searchParams.set('timeoutSeconds', String(o.timeoutSeconds ?? 300));
    if (o.labelSelector) url.searchParams.set('labelSelector', o.labelSelector);
    if (o.fieldSelector) url.searchParams.set('fieldSelector', o.fieldSelector);
    const lib = url.protocol === 'https:' ? https : http;
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      if (signal.aborted) return resolve();
      let settled = false;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (err && !signal.aborted) reject(err);
        else resolve();
      };
      // Stopping must not wait for the server: destroy the stream and return at once.
      const onAbort = () => {
        req.destroy();
        finish();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const req = lib.request(url, { method: 'GET', agent: this.agent!, headers: this.headersFor(auth, {}) });
      req.on('response', (res) => {
        const code = res.statusCode ?? 0;
        this.opts.onRequest?.({ method: 'WATCH', resource: resourceOf(path), code, durationMs: Date.now() - started });
        if (code !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let body: unknown;
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              body = undefined;
            }
            finish(new KubeApiError('WATCH', url.pathname, code, res.statusMessage ?? '', body));
          });
          res.on('error', (err) => finish(err));
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line === '') continue;
            try {
              onEvent(JSON.parse(line) as WatchEvent<T>);
            } catch (err) {
              req.destroy();
              finish(err as Error);
              return;
            }
          }
        });
        res.on('end', () => finish());
        res.on('close', () => finish());
        res.on('error', (err) => finish(err));
      });
      req.on('error', (err) => finish(err));
      req.end();
    });
  }

  close(): void {
    this.agent?.destroy();
  }
}

function resourceOf(path: string): string {
  // /api/v1/namespaces/ns/pods/name/status → pods; /apis/g/v/plural → plural
  const parts = path.split('?')[0].split('/').filter(Boolean);
  const start = parts[0] === 'api' ? 2 : 3;
  let i = start;
  if (parts[i] === 'namespaces' && parts.length > i + 2) i += 2;
  return parts[i] ?? 'unknown';
}

import { ApiError, ConnectionError, type Problem } from './errors';

/**
 * The CLI's only way out: HTTP/JSON to the gateway with Node's fetch. Every non-2xx answer
 * becomes an ApiError carrying the problem (or a synthetic one when the answer is not
 * problem+json, e.g. a proxy's HTML page); every failure to get an answer a ConnectionError.
 */

export type Query = Record<string, string | number | boolean | undefined | Array<string | number>>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface Answer<T> {
  status: number;
  headers: Headers;
  body: T;
}

export const USER_AGENT = 'daftka-cli/0.1';

export class GatewayClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    private readonly timeoutMs: number,
  ) {}

  urlFor(path: string, query?: Query): string {
    const u = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) u.searchParams.append(k, String(x));
      else u.searchParams.set(k, String(v));
    }
    return u.toString();
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<Answer<T>> {
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': USER_AGENT };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    Object.assign(headers, opts.headers ?? {});
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
    const url = this.urlFor(path, opts.query);
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { method, headers, body, signal });
      text = await res.text();
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw connectionError(err, this.baseUrl, opts.timeoutMs ?? this.timeoutMs);
    }
    const type = res.headers.get('content-type') ?? '';
    let parsed: unknown = text;
    if (type.includes('json') && text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (res.status >= 400) throw new ApiError(asProblem(res, parsed, type, url), method, path);
    if (typeof parsed === 'string' && text !== '' && !type.includes('json'))
      throw new ApiError(
        {
          status: res.status,
          code: 'NOT_A_GATEWAY',
          detail: `${method} ${url} answered ${type || 'no content type'}, not JSON: is ${this.baseUrl} a Daftka gateway?`,
        },
        method,
        path,
      );
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  get<T>(path: string, opts: RequestOptions = {}): Promise<Answer<T>> {
    return this.request<T>('GET', path, opts);
  }
  post<T>(path: string, body: unknown, opts: RequestOptions = {}): Promise<Answer<T>> {
    return this.request<T>('POST', path, { ...opts, body });
  }
}

function asProblem(res: Response, parsed: unknown, type: string, url: string): Problem {
  if (typeof parsed === 'object' && parsed !== null && typeof (parsed as Problem).status === 'number')
    return {
      ...(parsed as Problem),
      request_id: (parsed as Problem).request_id ?? res.headers.get('x-request-id') ?? undefined,
    };
  const retryAfter = Number(res.headers.get('retry-after'));
  return {
    status: res.status,
    code: `HTTP_${res.status}`,
    detail: `${url} answered ${res.status} ${res.statusText} (${type || 'no content type'}), not a problem+json: is this a Daftka gateway?`,
    ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retry_after_ms: retryAfter * 1000 } : {}),
  };
}

/** Why no answer came, in words: connection refused, unknown host, timeout, TLS. */
export function connectionError(err: unknown, baseUrl: string, timeoutMs: number): ConnectionError {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError')
    return new ConnectionError(`no answer from the gateway at ${baseUrl} within ${timeoutMs} ms (--timeout)`);
  const code = e?.cause?.code;
  const what =
    code === 'ECONNREFUSED'
      ? 'connection refused'
      : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? 'host not found'
        : code === 'ECONNRESET' || code === 'UND_ERR_SOCKET'
          ? 'connection reset'
          : code === 'UND_ERR_CONNECT_TIMEOUT'
            ? 'connect timed out'
            : (e?.cause?.message ?? e?.message ?? String(err));
  return new ConnectionError(
    `cannot reach the gateway at ${baseUrl}: ${what}${code ? ` (${code})` : ''}; check --url, DAFTKA_URL or the profile`,
  );
}

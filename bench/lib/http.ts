/**
 * A small HTTP/1.1 client for the load generator: node:http with a keep-alive agent (one socket
 * per request in flight, like a client's connection pool), bodies as strings, answers parsed as
 * JSON. Lighter per request than fetch(), which matters when the client shares 2 cores with the
 * system under test.
 */
import { Agent, request } from 'node:http';

export interface HttpAnswer {
  status: number;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
}

const defaultAgent = new Agent({ keepAlive: true, maxSockets: 16 });

export function newAgent(sockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets, scheduling: 'lifo' });
}

export function httpRaw(
  method: string,
  url: string,
  body: string | undefined,
  timeoutMs: number,
  headers: Record<string, string> = {},
  agent: Agent = defaultAgent,
): Promise<{ status: number; text: string; headers: HttpAnswer['headers'] }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const h: Record<string, string | number> = { ...headers };
    if (body !== undefined) {
      h['content-type'] = 'application/json';
      h['content-length'] = Buffer.byteLength(body);
    }
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(t);
          resolve({
            status: res.statusCode ?? 0,
            text: chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8'),
            headers: res.headers,
          });
        });
        res.on('error', (e) => {
          clearTimeout(t);
          reject(e);
        });
      },
    );
    const t = setTimeout(() => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url}`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

export async function httpJson(
  method: string,
  url: string,
  body: unknown,
  timeoutMs: number,
  headers: Record<string, string> = {},
  agent?: Agent,
): Promise<HttpAnswer> {
  const r = await httpRaw(
    method,
    url,
    body === undefined ? undefined : JSON.stringify(body),
    timeoutMs,
    headers,
    agent,
  );
  let parsed: unknown = null;
  try {
    parsed = r.text ? JSON.parse(r.text) : null;
  } catch {
    parsed = r.text;
  }
  return { status: r.status, body: parsed, headers: r.headers };
}

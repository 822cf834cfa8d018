import type { PartitionClient } from '../../../protocol/methods';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../../common/log';
import { createRegistry } from '../../../common/metrics';

import { createGatewayApp, type GatewayDeps, type GatewayLimits } from '../../../gateway/app';
import { NoAuthenticator, TokenAuthenticator, type Authenticator } from '../../../gateway/auth';
import { StaticCatalog, type TopicCatalog, type TopicInfo } from '../../../gateway/catalog';
import { QuotaManager } from '../../../gateway/quotas';
import { FakePartitions } from './fake-partition';

/** Parsed answer bodies are loosely typed: tests assert on their shape. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface Harness {
  url: string;
  fake: FakePartitions;
  logs: () => Array<Record<string, unknown>>;
  registry: ReturnType<typeof createRegistry>;
  natsUp: { value: boolean };
  close(): Promise<void>;
  req(
    method: string,
    path: string,
    opts?: { body?: unknown; raw?: string | Buffer; headers?: Record<string, string>; token?: string },
  ): Promise<{ status: number; headers: Headers; json: Json; text: string }>;
}

export async function startGateway(opts: {
  topics: TopicInfo[];
  tokens?: Record<string, string>;
  limits?: Partial<GatewayLimits>;
  router?: PartitionClient;
  quotas?: QuotaManager;
  nats?: boolean;
  catalog?: TopicCatalog;
  /** Leased groups and dead letters (test/unit/gateway/fake-leased.ts). */
  leased?: GatewayDeps['leased'];
}): Promise<Harness> {
  const fake = new FakePartitions();
  const stream = new PassThrough();
  const lines: string[] = [];
  stream.on('data', (d: Buffer) =>
    lines.push(
      ...d
        .toString()
        .split('\n')
        .filter((l) => l !== ''),
    ),
  );
  const logger = createLogger('gateway', { stream, level: 'debug' });
  const registry = createRegistry('gateway', { defaultMetrics: false });
  const auth: Authenticator = opts.tokens ? new TokenAuthenticator(opts.tokens) : new NoAuthenticator();
  const natsUp = { value: true };
  const app = createGatewayApp({
    catalog: opts.catalog ?? new StaticCatalog(opts.topics),
    router: opts.router ?? fake,
    auth,
    quotas: opts.quotas ?? new QuotaManager(),
    logger,
    registry,
    limits: opts.limits,
    ...(opts.nats ? { nats: { connected: () => natsUp.value } } : {}),
    ...(opts.leased ? { leased: opts.leased } : {}),
  });
  const server: Server = await new Promise((resolve) => {
    const s = createServer(app).listen(0, '127.0.0.1', () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    fake,
    registry,
    natsUp,
    logs: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    async req(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      let body: string | Buffer | undefined = o.raw;
      if (o.body !== undefined) {
        body = JSON.stringify(o.body);
        headers['content-type'] ??= 'application/json';
      }
      const r = await fetch(url + path, { method, headers, body });
      const text = await r.text();
      let json: Json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: r.status, headers: r.headers, json, text };
    },
  };
}

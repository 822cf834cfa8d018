import net from 'node:net';
import { DaftkaError } from '../../../common/errors';
import type { promClient } from '../../../common/metrics';
import { encodeHello } from '../../../protocol/rpc-auth';
import { RpcClient, deliveryOf, type RpcClientOptions } from '../../../protocol/rpc-client';
import { RpcServer, type RpcServerOptions } from '../../../protocol/rpc-server';
import { encodeRequestHeader } from '../../../protocol/wire';
import { encodeFrame, FrameType } from '../../../protocol/frame';
import { metricValue, quietLogger, sleepMs, testRegistry, waitFor } from '../../helpers/observe';

// Real sockets on a shared CI machine: allow for a slow scheduler.
jest.setTimeout(20_000);

let server: RpcServer;
let reg: promClient.Registry;
let port: number;
const clients: RpcClient[] = [];

async function startServer(extra: Partial<RpcServerOptions> = {}) {
  reg = testRegistry();
  server = new RpcServer({ host: '127.0.0.1', port: 0, logger: quietLogger('rpc'), registry: reg, ...extra });
  server.register('echo', (body) => body);
  server.register('sleep', async (body) => {
    await sleepMs(body.readUInt32BE(0));
    return body;
  });
  server.register('fail', () => {
    throw new DaftkaError('NOT_LEADER', 'follower', { leaderHint: 'orders-0-2.orders:9093', retryAfterMs: 25 });
  });
  server.register('boom', async () => {
    throw new Error('secret internal detail');
  });
  server.register('wait-abort', (_b, ctx) => {
    return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
  });
  port = (await server.start()).port;
}

function client(extra: Partial<RpcClientOptions> = {}): RpcClient {
  const c = new RpcClient({ host: '127.0.0.1', port, connectTimeoutMs: 1000, ...extra });
  clients.push(c);
  return c;
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

async function rejection(p: Promise<unknown>): Promise<DaftkaError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DaftkaError);
    return e as DaftkaError;
  }
  throw new Error('expected a rejection');
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await server?.close();
});

describe('RPC over the client port', () => {
  it('pipelines many calls on one connection and matches out-of-order answers by correlation id', async () => {
    await startServer();
    // Each call parks on the server until the test releases it, so the answer order is ours to choose.
    const parked = new Map<number, () => void>();
    server.register('park', (body) => {
      const n = body.readUInt32BE(0);
      return new Promise((resolve) => parked.set(n, () => resolve(body)));
    });
    const c = client();
    const order: number[] = [];
    const calls = Array.from({ length: 8 }, (_, i) =>
      c.call('park', u32(i), { requestId: `req-${i}` }).then((b) => {
        order.push(b.readUInt32BE(0));
        return b.readUInt32BE(0);
      }),
    );
    await waitFor(() => parked.size === 8, 5000, 'all 8 calls in flight at once');
    const releaseOrder = [5, 2, 7, 0, 3, 6, 1, 4];
    for (const n of releaseOrder) {
      parked.get(n)!();
      await waitFor(() => order.length > releaseOrder.indexOf(n), 5000, `answer ${n}`);
    }
    expect(await Promise.all(calls)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(order).toEqual(releaseOrder);
    expect(server.connectionCount).toBe(1);
  });

  it('carries bodies given in parts, and empty bodies', async () => {
    await startServer();
    const c = client();
    expect((await c.call('echo', [Buffer.from('ab'), Buffer.from(''), Buffer.from('cd')])).toString()).toBe('abcd');
    expect(await c.call('echo', new Uint8Array(0))).toHaveLength(0);
  });

  it('rethrows the server DaftkaError with code, detail, leaderHint and retryAfterMs', async () => {
    await startServer();
    const e = await rejection(client().call('fail', u32(0)));
    expect(e.code).toBe('NOT_LEADER');
    expect(e.message).toBe('follower');
    expect(e.leaderHint).toBe('orders-0-2.orders:9093');
    expect(e.retryAfterMs).toBe(25);
    expect(e.retryable).toBe(true);
    expect(await metricValue(reg, 'daftka_rpc_server_requests_total', { method: 'fail', code: 'NOT_LEADER' })).toBe(1);
  });

  it('turns an unexpected handler error into INTERNAL without leaking its message', async () => {
    await startServer();
    const e = await rejection(client().call('boom', u32(0)));
    expect(e.code).toBe('INTERNAL');
    expect(e.message).not.toContain('secret');
  });

  it('answers an unknown method INVALID_REQUEST and labels it "other"', async () => {
    await startServer();
    const e = await rejection(client().call('no-such-method', u32(0)));
    expect(e.code).toBe('INVALID_REQUEST');
    expect(
      await metricValue(reg, 'daftka_rpc_server_requests_total', { method: 'other', code: 'INVALID_REQUEST' }),
    ).toBe(1);
  });

  it('times out a slow call with TIMEOUT, cancels it on the server, and keeps the connection usable', async () => {
    await startServer();
    const c = client();
    const t0 = Date.now();
    const e = await rejection(c.call('wait-abort', u32(0), { timeoutMs: 50 }));
    expect(e.code).toBe('TIMEOUT');
    expect(deliveryOf(e)).toBe('maybe_sent');
    expect(Date.now() - t0).toBeLessThan(1000);
    await waitFor(
      async () => (await metricValue(reg, 'daftka_rpc_server_inflight_requests')) === 0,
      2000,
      'server-side abort',
    );
    expect((await c.call('echo', Buffer.from('ok'))).toString()).toBe('ok');
  });

  it('aborts the handler signal at the deadline the client sent', async () => {
    await startServer();
    let aborted: unknown = null;
    server.register('deadline', (_b, ctx) => {
      return new Promise((resolve) =>
        ctx.signal.addEventListener('abort', () => {
          aborted = ctx.signal.reason;
          resolve(Buffer.from('late'));
        }),
      );
    });
    await rejection(client().call('deadline', u32(0), { timeoutMs: 40 }));
    await waitFor(() => aborted !== null);
    expect((aborted as DaftkaError).code).toBe('TIMEOUT');
  });

  it('fails fast with OVERLOADED beyond the client in-flight bound, nothing sent', async () => {
    await startServer();
    const c = client({ maxInflight: 4 });
    const running = Array.from({ length: 4 }, () => c.call('sleep', u32(50)));
    const e = await rejection(c.call('echo', u32(1)));
    expect(e.code).toBe('OVERLOADED');
    expect(deliveryOf(e)).toBe('not_sent');
    await Promise.all(running);
    expect(c.inflight).toBe(0);
    await c.call('echo', u32(1));
  });

  it('answers OVERLOADED with retryAfterMs beyond the server per-connection bound', async () => {
    await startServer({ maxInflightPerConn: 3, overloadRetryAfterMs: 20 });
    const c = client({ maxInflight: 10 });
    const calls = Array.from({ length: 5 }, () =>
      c.call('sleep', u32(50)).then(
        () => 'ok',
        (e: DaftkaError) => e,
      ),
    );
    const outcomes = await Promise.all(calls);
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(3);
    const over = outcomes.filter((o): o is DaftkaError => o instanceof DaftkaError);
    expect(over.map((e) => [e.code, e.retryAfterMs])).toEqual([
      ['OVERLOADED', 20],
      ['OVERLOADED', 20],
    ]);
    expect(await metricValue(reg, 'daftka_rpc_server_rejected_total', { reason: 'inflight' })).toBe(2);
  });

  it('rejects in-flight calls UNAVAILABLE (maybe_sent) when the connection drops, and reconnects on the next call', async () => {
    await startServer();
    const c = client();
    const inflight = c.call('sleep', u32(1000));
    await waitFor(async () => (await metricValue(reg, 'daftka_rpc_server_inflight_requests')) === 1);
    await server.close();
    const e = await rejection(inflight);
    expect(e.code).toBe('UNAVAILABLE');
    expect(e.retryable).toBe(true);
    expect(deliveryOf(e)).toBe('maybe_sent');

    const down = await rejection(c.call('echo', u32(1)));
    expect(down.code).toBe('UNAVAILABLE');
    expect(deliveryOf(down)).toBe('not_sent');

    // A new server on the same port: the client reconnects lazily.
    reg = testRegistry();
    server = new RpcServer({ host: '127.0.0.1', port, logger: quietLogger(), registry: reg });
    server.register('echo', (b) => b);
    await server.start();
    expect((await c.call('echo', Buffer.from('back'))).toString()).toBe('back');
  });

  it('fails a call UNAVAILABLE (not_sent) when nothing listens at the endpoint', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const c = new RpcClient({ host: '127.0.0.1', port: closedPort, connectTimeoutMs: 500 });
    clients.push(c);
    const e = await rejection(c.call('echo', u32(1), { timeoutMs: 2000 }));
    expect(e.code).toBe('UNAVAILABLE');
    expect(deliveryOf(e)).toBe('not_sent');
    expect(e.message).toContain('ECONNREFUSED');
  });

  /** Read the server's challenge, answer with a hello of role none (no secrets), read the welcome. */
  async function handshake(s: net.Socket): Promise<void> {
    await new Promise((r) => s.once('data', r));
    s.write(
      encodeFrame(FrameType.RPC_HELLO, encodeHello({ role: 'none', nonce: Buffer.alloc(32), tag: Buffer.alloc(0) })),
    );
    await new Promise((r) => s.once('data', r));
  }

  it('closes a connection that sends garbage, counts it, and keeps serving others', async () => {
    await startServer();
    const good = client();
    await good.call('echo', u32(1));

    const junk = net.connect(port, '127.0.0.1');
    junk.on('error', () => {});
    junk.resume(); // read (and drop) the server's challenge, so the close is seen
    junk.write('\x16\x03\x01 this is a TLS hello, or something like it .........');
    await new Promise((r) => junk.on('close', r));
    expect(await metricValue(reg, 'daftka_rpc_server_bad_frames_total', { reason: 'bad_version' })).toBe(1);

    // A call before the hello: refused unread.
    const early = net.connect(port, '127.0.0.1');
    early.on('error', () => {});
    early.resume();
    early.write(encodeFrame(FrameType.RPC_REQUEST, Buffer.from([0, 0, 0, 1, 0])));
    await new Promise((r) => early.on('close', r));
    expect(await metricValue(reg, 'daftka_rpc_server_bad_frames_total', { reason: 'unexpected_type' })).toBe(1);

    // A valid frame whose RPC header is cut short.
    const short = net.connect(port, '127.0.0.1');
    short.on('error', () => {});
    await handshake(short);
    short.write(encodeFrame(FrameType.RPC_REQUEST, Buffer.from([0, 0, 0, 1, 0])));
    await new Promise((r) => short.on('close', r));
    expect(await metricValue(reg, 'daftka_rpc_server_bad_frames_total', { reason: 'bad_payload' })).toBe(1);

    // A response frame sent to the server.
    const wrong = net.connect(port, '127.0.0.1');
    wrong.on('error', () => {});
    await handshake(wrong);
    wrong.write(encodeFrame(FrameType.RPC_RESPONSE, Buffer.from([0, 0, 0, 1])));
    await new Promise((r) => wrong.on('close', r));
    expect(await metricValue(reg, 'daftka_rpc_server_bad_frames_total', { reason: 'unexpected_type' })).toBe(2);

    // Truncated: a request header that promises more than arrives before the stream ends.
    const cut = net.connect(port, '127.0.0.1');
    cut.on('error', () => {});
    await handshake(cut);
    const req = encodeFrame(
      FrameType.RPC_REQUEST,
      Buffer.concat([encodeRequestHeader({ correlationId: 1, timeoutMs: 100, method: 'echo', requestId: '' }), u32(5)]),
    );
    cut.end(req.subarray(0, req.length - 2));
    await new Promise((r) => cut.on('close', r));
    expect(await metricValue(reg, 'daftka_rpc_server_bad_frames_total', { reason: 'truncated' })).toBe(1);

    expect((await good.call('echo', Buffer.from('alive'))).toString()).toBe('alive');
    expect(server.connectionCount).toBe(1);
  });

  it('a client replaces a connection quiet for longer than idleReconnectMs before its next call (never racing the server idle close)', async () => {
    await startServer({ idleTimeoutMs: 60_000 });
    const creg = testRegistry();
    const c = client({ idleReconnectMs: 100, registry: creg });
    await c.call('echo', u32(1));
    await sleepMs(200);
    expect((await c.call('echo', Buffer.from('again'))).toString()).toBe('again');
    expect(await metricValue(creg, 'daftka_rpc_client_connects_total', { outcome: 'ok' })).toBe(2);
    await waitFor(() => server.connectionCount === 1);
  });

  it('the server closes an admitted connection that stays idle', async () => {
    await startServer({ idleTimeoutMs: 200 });
    const c = client();
    await c.call('echo', u32(1));
    await waitFor(() => server.connectionCount === 0);
    expect(await metricValue(reg, 'daftka_rpc_server_rejected_total', { reason: 'idle' })).toBe(1);
    // The client reconnects on its next call.
    expect((await c.call('echo', Buffer.from('back'))).toString()).toBe('back');
  });

  it('client closes a connection whose server answers garbage, failing its calls UNAVAILABLE', async () => {
    const garbage = net.createServer((s) => {
      s.on('error', () => {});
      s.write(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
    });
    await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
    const creg = testRegistry();
    const c = new RpcClient({ host: '127.0.0.1', port: (garbage.address() as net.AddressInfo).port, registry: creg });
    clients.push(c);
    try {
      const e = await rejection(c.call('echo', u32(1)));
      expect(e.code).toBe('UNAVAILABLE');
      expect(await metricValue(creg, 'daftka_rpc_client_bad_frames_total', { reason: 'bad_version' })).toBe(1);
    } finally {
      await new Promise((r) => garbage.close(r));
    }
  });

  it('refuses connections beyond maxConnections', async () => {
    await startServer({ maxConnections: 1 });
    await client().call('echo', u32(1));
    const e = await rejection(client().call('echo', u32(1)));
    expect(e.code).toBe('UNAVAILABLE');
    expect(await metricValue(reg, 'daftka_rpc_server_rejected_total', { reason: 'connections' })).toBe(1);
  });

  it('refuses a request id that is not printable ASCII before sending', async () => {
    await startServer();
    const e = await rejection(client().call('echo', u32(1), { requestId: 'bad\nid' }));
    expect(e.code).toBe('INVALID_REQUEST');
  });

  it('a closed client fails calls at once', async () => {
    await startServer();
    const c = client();
    c.close();
    expect((await rejection(c.call('echo', u32(1)))).code).toBe('UNAVAILABLE');
  });

  it('sends methods it has no registration for to the fallback handler', async () => {
    await startServer({ handler: (method, body) => Buffer.concat([Buffer.from(`${method}:`), body]) });
    expect((await client().call('custom.thing', Buffer.from('x'))).toString()).toBe('custom.thing:x');
    expect(await metricValue(reg, 'daftka_rpc_server_requests_total', { method: 'other', code: 'OK' })).toBe(1);
  });

  it('close(graceMs) lets running calls answer before the connections close', async () => {
    await startServer();
    const c = client();
    const running = c.call('sleep', u32(50));
    await waitFor(async () => (await metricValue(reg, 'daftka_rpc_server_inflight_requests')) === 1);
    await server.close(2000);
    expect((await running).readUInt32BE(0)).toBe(50);
  });
});

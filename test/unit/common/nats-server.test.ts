import { connect, StringCodec } from 'nats';
import { startNatsServer, type NatsServerHandle } from '../../helpers/nats-server';

describe('nats-server test helper (a real server)', () => {
  let server: NatsServerHandle;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('publishes and subscribes through the real server', async () => {
    const sc = StringCodec();
    const a = await connect({ servers: server.url });
    const b = await connect({ servers: server.url });
    const sub = b.subscribe('daftka.v1.test.>', { max: 1 });
    await b.flush();
    a.publish('daftka.v1.test.x', sc.encode(JSON.stringify({ v: 1, hello: 'world' })));
    for await (const m of sub) expect(JSON.parse(sc.decode(m.data))).toEqual({ v: 1, hello: 'world' });
    await a.close();
    await b.close();
  });

  it('request/reply works (the control channel pattern)', async () => {
    const nc = await connect({ servers: server.url });
    const sub = nc.subscribe('daftka.v1.ctl.t.0');
    (async () => {
      for await (const m of sub) m.respond(new TextEncoder().encode('pong'));
    })();
    const r = await nc.request('daftka.v1.ctl.t.0', new TextEncoder().encode('ping'), { timeout: 2000 });
    expect(new TextDecoder().decode(r.data)).toBe('pong');
    await nc.close();
  });

  it('can be restarted on the same port and clients reconnect', async () => {
    const nc = await connect({ servers: server.url, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    const reconnected = (async () => {
      for await (const s of nc.status()) if (s.type === 'reconnect') return true;
      return false;
    })();
    await server.restart();
    expect(await reconnected).toBe(true);
    const sub = nc.subscribe('after.restart', { max: 1 });
    await nc.flush();
    nc.publish('after.restart', new TextEncoder().encode('ok'));
    for await (const m of sub) expect(new TextDecoder().decode(m.data)).toBe('ok');
    await nc.close();
  });
});

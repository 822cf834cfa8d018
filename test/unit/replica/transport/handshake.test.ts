import { randomBytes } from 'node:crypto';
import {
  checkHelloAuth,
  decodeAck,
  decodeHello,
  encodeAck,
  encodeHello,
  negotiateVersion,
  NonceCache,
  PEER_AUTH_SKEW_MS,
  signHello,
} from '../../../../replica/transport/handshake';

/** The peer hello: versions and authentication (pure codec and checks; sockets in test/integration/replica/transport). */

const secret = randomBytes(32);
const h = { from: '1.aa', to: '0.bb', clusterId: 'orders/0', versions: { min: 1, max: 2 } };

describe('peer hello', () => {
  test('round-trips with and without authentication; an old hello (ids only) means versions 1..1', () => {
    expect(decodeHello(encodeHello(h))).toEqual(h);
    const signed = signHello(h, secret, 1_000_000);
    expect(decodeHello(encodeHello(signed))).toEqual(signed);
    const old = Buffer.concat(
      ['1.aa', '0.bb', 'orders/0'].map((x) => Buffer.concat([Buffer.from([x.length]), Buffer.from(x)])),
    );
    expect(decodeHello(old)).toEqual({ from: '1.aa', to: '0.bb', clusterId: 'orders/0', versions: { min: 1, max: 1 } });
    expect(() => decodeHello(encodeHello(h).subarray(0, -1))).toThrow();
    expect(() => decodeHello(Buffer.concat([encodeHello(signed), Buffer.from([0])]))).toThrow();
    expect(() => decodeHello(encodeHello({ ...h, versions: { min: 2, max: 1 } }))).toThrow(/version range/);
  });

  test('versions: the highest both know, or none', () => {
    expect(negotiateVersion({ min: 1, max: 3 }, { min: 2, max: 5 })).toBe(3);
    expect(negotiateVersion({ min: 4, max: 4 }, { min: 1, max: 3 })).toBeNull();
    expect(decodeAck(encodeAck(7))).toBe(7);
    expect(decodeAck(Buffer.alloc(0))).toBe(1);
  });

  test('authentication: the right secret passes once; anything else says why', () => {
    const now = 5_000_000;
    const nonces = new NonceCache();
    const good = decodeHello(encodeHello(signHello(h, secret, now)));
    expect(checkHelloAuth(good, secret, now + 1000, nonces)).toBeNull();
    expect(checkHelloAuth(good, secret, now + 2000, nonces)).toMatch(/replayed/);
    expect(checkHelloAuth(decodeHello(encodeHello(h)), secret, now, nonces)).toMatch(/no authentication/);
    expect(checkHelloAuth(signHello(h, randomBytes(32), now), secret, now, nonces)).toMatch(/different peer secret/);
    expect(checkHelloAuth(signHello(h, secret, now - PEER_AUTH_SKEW_MS - 1), secret, now, nonces)).toMatch(/clock/);
    // The tag covers every field: a hello re-addressed, or claiming other versions, fails.
    const s = signHello(h, secret, now);
    expect(checkHelloAuth({ ...s, to: '2.cc' }, secret, now, nonces)).toMatch(/different peer secret/);
    expect(checkHelloAuth({ ...s, versions: { min: 1, max: 9 } }, secret, now, nonces)).toMatch(
      /different peer secret/,
    );
    expect(checkHelloAuth(s, secret, now, nonces)).toBeNull();
  });

  test('the nonce cache forgets after twice the skew and stays bounded', () => {
    const c = new NonceCache(3);
    const n = randomBytes(16);
    expect(c.add(n, 0)).toBe(true);
    expect(c.add(n, 1)).toBe(false);
    expect(c.add(n, 2 * PEER_AUTH_SKEW_MS + 1)).toBe(true);
    for (let i = 0; i < 10; i++) expect(c.add(randomBytes(16), 10)).toBe(true);
    expect((c as unknown as { seen: Map<string, number> }).seen.size).toBeLessThanOrEqual(3);
  });
});

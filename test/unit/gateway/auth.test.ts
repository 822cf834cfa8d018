import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaftkaError } from '../../../common/errors';
import {
  ANONYMOUS,
  AuthConfigError,
  authorize,
  can,
  canSee,
  NoAuthenticator,
  TokenAuthenticator,
} from '../../../gateway/auth';
import { StaticCatalog } from '../../../gateway/catalog';
import { topic } from './fixtures';

const TOKEN = 'tok-alice-0123456789abcdef';

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as DaftkaError).code;
  }
  return 'none';
}

describe('TokenAuthenticator', () => {
  const auth = new TokenAuthenticator({ [TOKEN]: 'alice' });

  test('maps a bearer token to its principal', () => {
    expect(auth.authenticate(`Bearer ${TOKEN}`)).toEqual({ name: 'alice', superuser: false });
    expect(auth.authenticate(`bearer ${TOKEN}`).name).toBe('alice');
  });

  test('refuses missing, malformed and unknown tokens with UNAUTHENTICATED', () => {
    expect(code(() => auth.authenticate(undefined))).toBe('UNAUTHENTICATED');
    expect(code(() => auth.authenticate('Basic abc'))).toBe('UNAUTHENTICATED');
    expect(code(() => auth.authenticate('Bearer'))).toBe('UNAUTHENTICATED');
    expect(code(() => auth.authenticate(`Bearer ${TOKEN}x`))).toBe('UNAUTHENTICATED');
  });

  test('loads a tokens file and names the bad entry without echoing the token', () => {
    const dir = mkdtempSync(join(tmpdir(), 'daftka-auth-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ tokens: { [TOKEN]: 'alice' } }));
    expect(TokenAuthenticator.fromFile(good).authenticate(`Bearer ${TOKEN}`).name).toBe('alice');
    const short = join(dir, 'short.json');
    writeFileSync(short, JSON.stringify({ tokens: { abc: 'alice' } }));
    expect(() => TokenAuthenticator.fromFile(short)).toThrow(AuthConfigError);
    expect(() => TokenAuthenticator.fromFile(short)).toThrow(/at least 16 characters/);
    const badPrincipal = join(dir, 'bad.json');
    writeFileSync(badPrincipal, JSON.stringify({ tokens: { [TOKEN]: 'a b' } }));
    expect(() => TokenAuthenticator.fromFile(badPrincipal)).toThrow(/tokens \(a principal\)/);
    try {
      TokenAuthenticator.fromFile(badPrincipal);
    } catch (e) {
      expect((e as Error).message).not.toContain(TOKEN);
    }
  });
});

describe('authorisation', () => {
  const alice = { name: 'alice', superuser: false };
  const t = topic('orders', { access: { producers: ['alice'], consumers: ['bob', 'alice'], admins: ['carol'] } });
  const open = topic('public', { access: { producers: [], consumers: ['*'], admins: [] } });
  const hidden = topic('secret', { access: { producers: ['zed'], consumers: [], admins: [] } });
  const catalog = new StaticCatalog([t, open, hidden]);

  test('rights follow the access lists; admins hold every right; * is everyone', () => {
    expect(can(alice, t, 'produce')).toBe(true);
    expect(can({ name: 'bob', superuser: false }, t, 'produce')).toBe(false);
    expect(can({ name: 'carol', superuser: false }, t, 'produce')).toBe(true);
    expect(can(alice, open, 'consume')).toBe(true);
    expect(can(alice, open, 'produce')).toBe(false);
    expect(canSee(alice, hidden)).toBe(false);
  });

  test('auth off: anonymous may do everything', () => {
    const p = new NoAuthenticator().authenticate();
    expect(p).toBe(ANONYMOUS);
    expect(can(p, hidden, 'admin')).toBe(true);
  });

  test('invisible topics are 404 like missing ones; visible but not allowed is 403', () => {
    expect(code(() => authorize(catalog, alice, 'secret', 'consume'))).toBe('TOPIC_NOT_FOUND');
    expect(code(() => authorize(catalog, alice, 'nope', 'consume'))).toBe('TOPIC_NOT_FOUND');
    expect(code(() => authorize(catalog, alice, 'public', 'produce'))).toBe('FORBIDDEN');
    expect(authorize(catalog, alice, 'orders', 'produce').name).toBe('orders');
  });
});

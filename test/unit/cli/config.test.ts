import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configPath, DEFAULT_URL, parseConfig, resolveSettings } from '../../../cli/config';

const file = parseConfig(
  `current_profile: local
profiles:
  local: { url: "http://127.0.0.1:9000/" }
  prod: { url: https://daftka.example.com, token: prod-token, timeout_ms: 5000 }
`,
  'cfg',
);

describe('CLI settings', () => {
  it('the config file lives under XDG_CONFIG_HOME, else ~/.config; DAFTKA_CONFIG overrides', () => {
    expect(configPath({ XDG_CONFIG_HOME: '/x', HOME: '/h' })).toBe('/x/daftka/config.yaml');
    expect(configPath({ HOME: '/h' })).toBe('/h/.config/daftka/config.yaml');
    expect(configPath({ DAFTKA_CONFIG: '/c.yaml', XDG_CONFIG_HOME: '/x' })).toBe('/c.yaml');
  });

  it('without flags, env or file: the local-mode URL and no token', () => {
    const s = resolveSettings({}, {}, { profiles: {} }, 'cfg');
    expect(s).toMatchObject({ url: DEFAULT_URL, token: undefined, sources: { url: 'default', token: 'none' } });
  });

  it('the current profile applies; a trailing slash is dropped', () => {
    expect(resolveSettings({}, {}, file, 'cfg')).toMatchObject({ url: 'http://127.0.0.1:9000', profile: 'local' });
  });

  it('flags beat env, env beats the profile', () => {
    const env = { DAFTKA_URL: 'http://env:1', DAFTKA_TOKEN: 'env-token', DAFTKA_PROFILE: 'prod' };
    expect(resolveSettings({}, env, file, 'cfg')).toMatchObject({
      url: 'http://env:1',
      token: 'env-token',
      timeoutMs: 5000,
      sources: { url: 'env', token: 'env' },
    });
    expect(resolveSettings({ url: 'http://flag:2', token: 'f' }, env, file, 'cfg')).toMatchObject({
      url: 'http://flag:2',
      token: 'f',
      sources: { url: 'flag', token: 'flag' },
    });
    expect(resolveSettings({ profile: 'prod' }, {}, file, 'cfg')).toMatchObject({
      url: 'https://daftka.example.com',
      token: 'prod-token',
    });
  });

  it('a token_file holds the token on its first line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'daftka-cli-'));
    writeFileSync(join(dir, 'tok'), 'secret-token\n');
    const f = parseConfig(`profiles:\n  a: { url: "http://a:1", token_file: ${join(dir, 'tok')} }\n`, 'cfg');
    expect(resolveSettings({ profile: 'a' }, {}, f, 'cfg').token).toBe('secret-token');
  });

  it('names what is wrong: unknown profile, unknown key, bad URL, bad YAML', () => {
    expect(() => resolveSettings({ profile: 'nope' }, {}, file, 'cfg')).toThrow(
      'profile "nope" is not in cfg (profiles: local, prod)',
    );
    expect(() => parseConfig('profiles:\n  a: { urll: x }\n', 'cfg')).toThrow(/unknown key profiles.a.urll/);
    expect(() => parseConfig('current: a\n', 'cfg')).toThrow(/unknown key "current"/);
    expect(() => parseConfig('profiles: [1', 'cfg')).toThrow(/not valid YAML/);
    expect(() => resolveSettings({ url: 'ftp://x' }, {}, { profiles: {} }, 'cfg')).toThrow(/http:\/\/ or https:\/\//);
    expect(() => resolveSettings({}, { DAFTKA_URL: 'nonsense' }, { profiles: {} }, 'cfg')).toThrow(/DAFTKA_URL/);
  });
});

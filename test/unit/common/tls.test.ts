import { copyFileSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../../common/config';
import { createRegistry } from '../../../common/metrics';
import { loadTlsMaterial, TlsSource, tlsDirFiles } from '../../../common/tls';
import { issue, makeCa, type TestCa } from '../../helpers/tls-certs';

/** common/tls.ts on real files and real openssl-made certificates: start-up checks and rotation. */

const FROM = { key: 'tlsDir', env: 'DAFTKA_TLS_DIR' };
let base: string;
let ca: TestCa;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'daftka-tls-unit-'));
  ca = makeCa(base, 'unit-ca');
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function freshDir(name: string): string {
  const dir = join(base, name);
  issue(ca, dir, ['IP:127.0.0.1']);
  return dir;
}

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('no ConfigError');
}

test('a complete folder loads: certificate, key, CA, expiry and fingerprint', () => {
  const m = loadTlsMaterial(tlsDirFiles(freshDir('ok')), FROM);
  expect(m.cert?.toString()).toContain('BEGIN CERTIFICATE');
  expect(m.ca?.toString()).toContain('BEGIN CERTIFICATE');
  expect(m.notAfterMs).toBeGreaterThan(Date.now());
  expect(m.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
});

test('a missing file is a config error naming the key and the file', () => {
  const dir = freshDir('missing');
  unlinkSync(join(dir, 'tls.key'));
  const e = configErrorOf(() => loadTlsMaterial(tlsDirFiles(dir), FROM));
  expect(e.key).toBe('tlsDir');
  expect(e.message).toContain('DAFTKA_TLS_DIR');
  expect(e.message).toContain(join(dir, 'tls.key'));
  expect(e.message).toContain('ENOENT');
});

test("a key that is not the certificate's is a config error", () => {
  const dir = freshDir('mismatch');
  copyFileSync(join(freshDir('other'), 'tls.key'), join(dir, 'tls.key'));
  const e = configErrorOf(() => loadTlsMaterial(tlsDirFiles(dir), FROM));
  expect(e.key).toBe('tlsDir');
  expect(e.message).toMatch(/tls\.key does not match the certificate/);
});

test('a file that is not PEM is a config error', () => {
  const dir = freshDir('garbage');
  writeFileSync(join(dir, 'ca.crt'), 'not a certificate\n');
  expect(configErrorOf(() => loadTlsMaterial(tlsDirFiles(dir), FROM)).message).toMatch(
    /ca\.crt is not a PEM certificate/,
  );
});

test('a rotation is taken; a half-written one is refused and counted, the last good material stays', async () => {
  const dir = freshDir('rotate');
  const registry = createRegistry('test', { defaultMetrics: false });
  const src = TlsSource.open(tlsDirFiles(dir), FROM, { kind: 'replica', reloadIntervalMs: 0, registry });
  const seen: string[] = [];
  src.onReload((m) => seen.push(m.fingerprint256!));
  const first = src.current.fingerprint256;
  expect(src.check()).toBe(false); // nothing changed

  issue(ca, dir, ['IP:127.0.0.1']);
  expect(src.check()).toBe(true);
  const second = src.current.fingerprint256;
  expect(second).not.toBe(first);
  expect(seen).toEqual([second]);

  // The new certificate arrives before its key: refused, the second pair stays in use.
  const next = freshDir('next');
  copyFileSync(join(next, 'tls.crt'), join(dir, 'tls.crt'));
  expect(src.check()).toBe(false);
  expect(src.current.fingerprint256).toBe(second);
  // Its key follows: taken.
  copyFileSync(join(next, 'tls.key'), join(dir, 'tls.key'));
  expect(src.check()).toBe(true);
  expect(src.current.fingerprint256).not.toBe(second);

  const reloads = await registry.getSingleMetric('daftka_tls_reloads_total')!.get();
  const count = (result: string) => reloads.values.find((v) => v.labels.result === result)?.value;
  expect(count('ok')).toBe(2);
  expect(count('invalid')).toBe(1);
  const expiry = await registry.getSingleMetric('daftka_tls_certificate_expiry_timestamp_seconds')!.get();
  expect(expiry.values[0].value).toBe(Math.floor(src.current.notAfterMs! / 1000));
  src.close();
});

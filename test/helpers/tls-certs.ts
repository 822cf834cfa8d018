/**
 * Throw-away TLS material for tests, made with the openssl CLI (P-256 keys): a CA, and
 * certificates it signs written in the layout of a cert-manager Secret mounted as a folder
 * (`tls.crt`, `tls.key`, `ca.crt`). `issue` into an existing folder replaces each file by a rename,
 * one file after the other, as a rotation does.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Runs the openssl CLI in `cwd`; a failure throws with openssl's own message. */
export function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() || e.message}`);
  }
}

/** A P-256 private key into `file` (relative to `cwd`). */
export function ecKey(file: string, cwd: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], cwd);
}

/** A self-signed CA in `dir`: ca.key and ca.crt with common name `cn`. */
export function writeCa(dir: string, cn: string, days: number): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  ecKey('ca.key', dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-subj',
      `/CN=${cn}`,
      '-days',
      String(days),
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      '-out',
      'ca.crt',
    ],
    dir,
  );
}

/**
 * A new key `<name>.key` and certificate `<name>.crt` in `cwd`, signed by the CA's files, with
 * the given subject and x509v3 extensions (one per line of an openssl extfile).
 */
export function signWithCa(
  ca: { caCert: string; caKey: string },
  name: string,
  subject: string,
  extensions: string[],
  cwd: string,
  days: number,
): void {
  ecKey(`${name}.key`, cwd);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], cwd);
  writeFileSync(join(cwd, `${name}.ext`), extensions.join('\n') + '\n');
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      ca.caCert,
      '-CAkey',
      ca.caKey,
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      String(days),
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    cwd,
  );
}

export interface TestCa {
  /** Folder holding ca.crt and ca.key. */
  dir: string;
  caCert: string;
  caKey: string;
}

export function makeCa(parent: string, name: string, days = 2): TestCa {
  const dir = join(parent, name);
  writeCa(dir, name, days);
  return { dir, caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key') };
}

/**
 * Sign a certificate for `sans` (e.g. `IP:127.0.0.1`, `DNS:localhost`) usable by servers and
 * clients, and write it into `outDir` as tls.crt / tls.key / ca.crt (each by a rename).
 */
export function issue(ca: TestCa, outDir: string, sans: string[], cn = 'daftka-test', days = 1): void {
  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(ca.dir, 'issue-'));
  signWithCa(
    ca,
    'tls',
    `/CN=${cn}`,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=${sans.join(',')}`,
    ],
    work,
    days,
  );
  copyFileSync(ca.caCert, join(work, 'ca.crt'));
  for (const f of ['ca.crt', 'tls.key', 'tls.crt']) renameSync(join(work, f), join(outDir, f));
}

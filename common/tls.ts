import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { ConfigError } from './config';
import type { Logger } from './log';
import { sharedCounter, sharedGauge, type promClient } from './metrics';

/**
 * TLS material from files, in the layout of a cert-manager Secret mounted as a folder: `tls.crt`
 * (the certificate, chain after it), `tls.key` (its private key) and `ca.crt` (the CA that signs
 * the peers' and servers' certificates). Checked at start — a missing or unreadable file, a file
 * that is not PEM, a key that does not belong to the certificate is a ConfigError naming the
 * config key — and polled afterwards: Kubernetes updates a mounted Secret by swapping a symlink
 * (`..data`), which fs.watch does not report reliably, so every `reloadIntervalMs` the files are
 * read and, when their content changed, checked and taken for new connections (servers through
 * `setSecureContext`, clients by reading `clientOptions()` at each connect). Material that fails
 * the checks (a half-written rotation: a new certificate, the old key) is logged, counted and
 * ignored; the last good one stays in use. Node's `tls` does every piece of cryptography.
 */

export const TLS_CERT_FILE = 'tls.crt';
export const TLS_KEY_FILE = 'tls.key';
export const TLS_CA_FILE = 'ca.crt';
/** TLS 1.2 is the floor; Node negotiates 1.3 whenever both ends have it. */
export const TLS_MIN_VERSION = 'TLSv1.2' as const;
export const DEFAULT_TLS_RELOAD_INTERVAL_MS = 10_000;

/** Which files make up one identity; a CA-only set (a client that verifies servers) has just `caFile`. */
export interface TlsFiles {
  certFile?: string;
  keyFile?: string;
  caFile?: string;
}

/** The three files of a mounted cert-manager Secret. */
export function tlsDirFiles(dir: string): Required<TlsFiles> {
  return { certFile: join(dir, TLS_CERT_FILE), keyFile: join(dir, TLS_KEY_FILE), caFile: join(dir, TLS_CA_FILE) };
}

/** The config key the files came from: named in every error. */
export interface TlsConfigKey {
  key: string;
  env: string;
}

export interface TlsMaterial {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  /** The certificate's notAfter, ms since the epoch (undefined for a CA-only set). */
  notAfterMs?: number;
  /** SHA-256 fingerprint of the certificate (logs; tests compare it with what a connection saw). */
  fingerprint256?: string;
}

function configError(from: TlsConfigKey, what: string): ConfigError {
  return new ConfigError(from.key, `invalid config ${from.key} (${from.env}): ${what}`);
}

function readPem(file: string, from: TlsConfigKey): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw configError(
      from,
      `${file} cannot be read (${code}); the folder must hold ${TLS_CERT_FILE}, ${TLS_KEY_FILE} and ${TLS_CA_FILE}, as a cert-manager Secret does`,
    );
  }
}

function parseCert(pem: Buffer, file: string, from: TlsConfigKey): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw configError(from, `${file} is not a PEM certificate (${(e as Error).message})`);
  }
}

/**
 * Read and check a file set: every file named exists and parses; the key belongs to the
 * certificate; Node accepts the whole as a secure context. Throws ConfigError naming `from`.
 */
export function loadTlsMaterial(files: TlsFiles, from: TlsConfigKey): TlsMaterial {
  if ((files.certFile === undefined) !== (files.keyFile === undefined))
    throw configError(from, 'a certificate needs its key and a key its certificate');
  const m: TlsMaterial = {};
  if (files.certFile !== undefined && files.keyFile !== undefined) {
    m.cert = readPem(files.certFile, from);
    m.key = readPem(files.keyFile, from);
    const x509 = parseCert(m.cert, files.certFile, from);
    let key;
    try {
      key = createPrivateKey(m.key);
    } catch (e) {
      throw configError(from, `${files.keyFile} is not a PEM private key (${(e as Error).message})`);
    }
    if (!x509.checkPrivateKey(key))
      throw configError(from, `${files.keyFile} does not match the certificate ${files.certFile}`);
    m.notAfterMs = Date.parse(x509.validTo);
    m.fingerprint256 = x509.fingerprint256;
  }
  if (files.caFile !== undefined) {
    m.ca = readPem(files.caFile, from);
    parseCert(m.ca, files.caFile, from);
  }
  try {
    tls.createSecureContext({ cert: m.cert, key: m.key, ca: m.ca, minVersion: TLS_MIN_VERSION });
  } catch (e) {
    throw configError(from, `the TLS files are not accepted (${(e as Error).message})`);
  }
  return m;
}

export interface TlsSourceOptions {
  /** What this material is for, a bounded metric label: gateway_api, replica, replica_ca, ... */
  kind: string;
  /** How often the files are checked for a rotation; 0 = never. Default 10 000 ms. */
  reloadIntervalMs?: number;
  logger?: Logger;
  registry?: promClient.Registry;
}

function tlsMetrics(reg: promClient.Registry) {
  return {
    reloads: sharedCounter(reg, {
      name: 'daftka_tls_reloads_total',
      help: 'TLS files that changed on disk, by kind and result (ok: taken for new connections; invalid: refused, the last good ones stay in use).',
      labelNames: ['kind', 'result'] as const,
    }),
    notAfter: sharedGauge(reg, {
      name: 'daftka_tls_certificate_expiry_timestamp_seconds',
      help: 'The notAfter of the certificate in use, by kind (unix seconds): alert well before it, since cert-manager renews at two thirds of the lifetime.',
      labelNames: ['kind'] as const,
    }),
    handshakeFailures: sharedCounter(reg, {
      name: 'daftka_tls_handshake_failures_total',
      help: 'Connections refused during the TLS handshake (plain TCP on a TLS port, a certificate another CA signed, a timeout), by kind of port.',
      labelNames: ['kind'] as const,
    }),
  };
}

/** Loaded, checked TLS material that follows its files on disk. */
export class TlsSource {
  private material: TlsMaterial;
  private signature: string;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners: Array<(m: TlsMaterial) => void> = [];
  private readonly metrics: ReturnType<typeof tlsMetrics> | null;

  private constructor(
    readonly files: TlsFiles,
    private readonly from: TlsConfigKey,
    private readonly opts: TlsSourceOptions,
  ) {
    this.signature = this.fingerprintFiles();
    this.material = loadTlsMaterial(files, from);
    this.metrics = opts.registry ? tlsMetrics(opts.registry) : null;
    this.exportExpiry();
  }

  /** Load and check the files (ConfigError naming `from` when they are not usable) and start polling them. */
  static open(files: TlsFiles, from: TlsConfigKey, opts: TlsSourceOptions): TlsSource {
    const s = new TlsSource(files, from, opts);
    const every = opts.reloadIntervalMs ?? DEFAULT_TLS_RELOAD_INTERVAL_MS;
    if (!(Number.isInteger(every) && every >= 0)) throw new RangeError(`reloadIntervalMs must be ≥ 0, got ${every}`);
    if (every > 0) {
      s.timer = setInterval(() => s.check(), every);
      s.timer.unref();
    }
    return s;
  }

  get current(): TlsMaterial {
    return this.material;
  }

  /** Options for a server's secure context (also what `setSecureContext` takes). */
  serverOptions(): tls.SecureContextOptions {
    const m = this.material;
    return { cert: m.cert, key: m.key, ca: m.ca, minVersion: TLS_MIN_VERSION };
  }

  /** Options for a client connection: the CA, and the certificate for mutual TLS when there is one. */
  clientOptions(): tls.ConnectionOptions {
    const m = this.material;
    return { ca: m.ca, cert: m.cert, key: m.key, minVersion: TLS_MIN_VERSION };
  }

  /** Called with the new material after every successful reload. */
  onReload(fn: (m: TlsMaterial) => void): void {
    this.listeners.push(fn);
  }

  /** Take the files if they changed since last looked at; true when new material was taken. */
  check(): boolean {
    const sig = this.fingerprintFiles();
    if (sig === this.signature) return false;
    this.signature = sig;
    let next: TlsMaterial;
    try {
      next = loadTlsMaterial(this.files, this.from);
    } catch (e) {
      // A rotation caught half-way (new certificate, old key) lands here; its second half changes
      // the files again and is retried then. Until a good set appears the old one stays in use.
      this.metrics?.reloads.inc({ kind: this.opts.kind, result: 'invalid' });
      this.opts.logger?.warn('tls_reload_refused', { kind: this.opts.kind, error: (e as Error).message });
      return false;
    }
    if (digest(next) === digest(this.material)) return false; // touched, same content
    this.material = next;
    this.metrics?.reloads.inc({ kind: this.opts.kind, result: 'ok' });
    this.exportExpiry();
    this.opts.logger?.info('tls_reloaded', {
      kind: this.opts.kind,
      fingerprint256: next.fingerprint256,
      not_after: next.notAfterMs === undefined ? undefined : new Date(next.notAfterMs).toISOString(),
    });
    for (const fn of this.listeners) fn(next);
    return true;
  }

  /** Count a refused handshake on a server that uses this material. */
  handshakeFailed(kind: string): void {
    this.metrics?.handshakeFailures.inc({ kind });
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * What the files hold now, hashed: a symlink swap, a rename or a rewrite within the same
   * millisecond all show (an mtime can repeat; the files are a few KiB, so reading is cheap).
   */
  private fingerprintFiles(): string {
    const h = createHash('sha256');
    for (const f of [this.files.certFile, this.files.keyFile, this.files.caFile]) {
      if (f === undefined) h.update('-');
      else
        try {
          h.update(readFileSync(f));
        } catch {
          h.update('missing');
        }
      h.update('\0');
    }
    return h.digest('hex');
  }

  private exportExpiry(): void {
    if (this.material.notAfterMs !== undefined)
      this.metrics?.notAfter.set({ kind: this.opts.kind }, Math.floor(this.material.notAfterMs / 1000));
  }
}

function digest(m: TlsMaterial): string {
  const h = createHash('sha256');
  for (const b of [m.cert, m.key, m.ca]) h.update(b ?? '-').update('\0');
  return h.digest('hex');
}

/**
 * A TLS server on `src`'s material: new connections get the newest certificate after a reload
 * (connections already open keep theirs). `mutual`: the client must present a certificate the
 * CA signed (the peer port). Refused handshakes are counted under `kind`.
 */
export function createTlsServer(
  src: TlsSource,
  o: { kind: string; mutual: boolean; handshakeTimeoutMs: number } & Pick<
    tls.TlsOptions,
    'noDelay' | 'keepAlive' | 'keepAliveInitialDelay'
  >,
  onConnection: (socket: tls.TLSSocket) => void,
): tls.Server {
  const server = tls.createServer(
    {
      ...src.serverOptions(),
      requestCert: o.mutual,
      rejectUnauthorized: o.mutual,
      handshakeTimeout: o.handshakeTimeoutMs,
      noDelay: o.noDelay,
      keepAlive: o.keepAlive,
      keepAliveInitialDelay: o.keepAliveInitialDelay,
    },
    onConnection,
  );
  src.onReload(() => server.setSecureContext(src.serverOptions()));
  server.on('tlsClientError', (_err, socket) => {
    src.handshakeFailed(o.kind);
    socket.destroy();
  });
  return server;
}

/** What a client needs to open TLS connections: the CA (and certificate) to use, the name to expect. */
export interface ClientTls {
  /** CA, and certificate and key for mutual TLS: read at each new connection, so rotations apply. */
  options(): tls.ConnectionOptions;
  /** The name the server's certificate must carry; default: the host dialled (an IP needs an IP SAN). */
  serverName?: string;
}

export function clientTlsOf(src: TlsSource, serverName?: string): ClientTls {
  return { options: () => src.clientOptions(), ...(serverName ? { serverName } : {}) };
}

/**
 * Open a TLS connection to host:port, checking the server's certificate against the CA and the
 * expected name. SNI is sent only for a DNS name (never for an IP address, RFC 6066).
 */
export function connectTls(
  t: ClientTls,
  o: { host: string; port: number; noDelay?: boolean; keepAlive?: boolean; keepAliveInitialDelay?: number },
): tls.TLSSocket {
  const name = t.serverName ?? o.host;
  const socket = tls.connect({
    ...t.options(),
    host: o.host,
    port: o.port,
    rejectUnauthorized: true,
    ...(isIP(name) === 0 ? { servername: name } : {}),
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
  });
  if (o.noDelay) socket.setNoDelay(true);
  if (o.keepAlive) socket.setKeepAlive(true, o.keepAliveInitialDelay ?? 0);
  return socket;
}

/** Error codes of a failed certificate check (the server is not who it should be), as opposed to a network error. */
export function isCertificateError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code ?? '';
  return (
    code === 'ERR_TLS_CERT_ALTNAME_INVALID' ||
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code) ||
    /certificate/i.test((err as Error | null)?.message ?? '')
  );
}

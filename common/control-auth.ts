import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Signed control requests (`daftka.v1.ctl.<topic>.<partition>`, docs/security.md): the operator's
 * membership and leadership requests carry an HMAC with the topic's admin key — the key a replica
 * checks admin calls on its client port with (protocol/rpc-auth.ts `adminKeyOf` of its
 * DAFTKA_ADMIN_SECRET; on Kubernetes the per-topic value, common/topic-credentials.ts). A NATS
 * user that may publish control subjects but lacks the key cannot move leadership or change
 * membership; a signed request for one topic or partition is worthless for another.
 *
 *   sig = HMAC(admin key, "daftka-ctl-v1\0" ‖ topic ‖ "\0" ‖ partition ‖ "\0" ‖ op ‖ "\0" ‖ target
 *              ‖ "\0" ‖ endpoint ‖ "\0" ‖ ts ‖ "\0" ‖ nonce)
 *
 * Replay: a request is taken only within `maxSkewMs` of the replica's clock (30 s), and its nonce
 * only once in that window (a bounded cache per replica). What remains: a recorded request may be
 * replayed once to another replica that becomes leader within the window. `status` (read-only)
 * is never signed.
 */
export interface ControlAuth {
  /** Milliseconds since the epoch, on the operator's clock. */
  ts: number;
  /** 16 random bytes, base64url. */
  nonce: string;
  /** base64url HMAC-SHA256. */
  sig: string;
}

export const CONTROL_MAX_SKEW_MS = 30_000;
/** Nonces remembered at once; beyond it (more than this many requests within the window) requests are refused. */
export const CONTROL_MAX_NONCES = 4096;

/** What a control request says (common/control-subjects.ts ControlRequest, structurally: no import cycle). */
export interface ControlFields {
  v?: number;
  op: string;
  to?: string;
  id?: string;
  endpoint?: string;
}

function target(req: ControlFields): string {
  return (req.op === 'transferLeadership' ? req.to : req.id) ?? '';
}

export function controlSig(
  adminKey: Buffer,
  topic: string,
  partition: number,
  req: ControlFields,
  ts: number,
  nonce: string,
): string {
  const endpoint = req.op === 'addLearner' ? (req.endpoint ?? '') : '';
  return createHmac('sha256', adminKey)
    .update(`daftka-ctl-v1\0${topic}\0${partition}\0${req.op}\0${target(req)}\0${endpoint}\0${ts}\0${nonce}`)
    .digest('base64url');
}

/** The request with its signature (status requests are returned as they are). */
export function signControl<R extends ControlFields>(
  adminKey: Buffer,
  topic: string,
  partition: number,
  req: R,
  nowMs: number,
): R & { auth?: ControlAuth } {
  if (req.op === 'status') return req;
  const nonce = randomBytes(16).toString('base64url');
  return { ...req, auth: { ts: nowMs, nonce, sig: controlSig(adminKey, topic, partition, req, nowMs, nonce) } };
}

/** Validates the shape of an `auth` field at the boundary: the value, or an error message. */
export function parseControlAuth(raw: unknown): ControlAuth | string {
  if (typeof raw !== 'object' || raw === null) return '"auth" must be an object {ts, nonce, sig}';
  const a = raw as Record<string, unknown>;
  if (typeof a.ts !== 'number' || !Number.isSafeInteger(a.ts) || a.ts < 0) return '"auth.ts" must be milliseconds';
  if (typeof a.nonce !== 'string' || !/^[A-Za-z0-9_-]{22}$/.test(a.nonce))
    return '"auth.nonce" must be 16 bytes, base64url';
  if (typeof a.sig !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(a.sig)) return '"auth.sig" must be 32 bytes, base64url';
  return { ts: a.ts, nonce: a.nonce, sig: a.sig };
}

/**
 * A replica's check of control requests. Without an admin key (a development replica with no
 * DAFTKA_ADMIN_SECRET) every request is taken, as before signing existed.
 */
export class ControlVerifier {
  /** nonce → when it may be forgotten (ms); insertion order is arrival order. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly adminKey: Buffer | null,
    private readonly o: { maxSkewMs?: number; maxNonces?: number } = {},
  ) {}

  /** null when the request may be acted on; otherwise why not (never echoes the signature). */
  check(topic: string, partition: number, req: ControlFields & { auth?: ControlAuth }, nowMs: number): string | null {
    if (req.op === 'status' || this.adminKey === null) return null;
    const auth = req.auth;
    if (!auth) return `${req.op} needs a request signed with the topic's admin key`;
    const skew = this.o.maxSkewMs ?? CONTROL_MAX_SKEW_MS;
    if (Math.abs(nowMs - auth.ts) > skew)
      return `signed ${Math.round((nowMs - auth.ts) / 1000)} s from this replica's clock (more than ${skew / 1000} s)`;
    const want = Buffer.from(controlSig(this.adminKey, topic, partition, req, auth.ts, auth.nonce), 'base64url');
    const got = Buffer.from(auth.sig, 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return 'bad signature';
    for (const [n, until] of this.seen) {
      if (until > nowMs) break;
      this.seen.delete(n);
    }
    if (this.seen.has(auth.nonce)) return 'this request was already taken (replayed)';
    if (this.seen.size >= (this.o.maxNonces ?? CONTROL_MAX_NONCES)) return 'too many control requests; retry later';
    this.seen.set(auth.nonce, Math.max(nowMs, auth.ts) + skew);
    return null;
  }
}

/** JSON with object keys sorted at every level: the same text for the same value, whatever the key order. */
export function canonicalJson(x: unknown): string {
  return JSON.stringify(x, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

/**
 * The signature of a replica's status report: HMAC with the topic's client key over the report
 * (every field but `sig`, canonical JSON). The operator drops reports of a topic whose key it holds
 * when they are unsigned or badly signed, so a NATS user that may publish status subjects (every
 * replica shares one NATS user) cannot feed it another topic's health, roles or lag.
 */
export function reportSig(key: Buffer, report: object): string {
  const { sig: _sig, ...rest } = report as Record<string, unknown>;
  return createHmac('sha256', key)
    .update(`daftka-status-v1\0${canonicalJson(rest)}`)
    .digest('base64url');
}

export function checkReportSig(key: Buffer, report: object): boolean {
  const sig = (report as Record<string, unknown>).sig;
  if (typeof sig !== 'string' || sig.length !== 43) return false;
  const want = Buffer.from(reportSig(key, report), 'base64url');
  const got = Buffer.from(sig, 'base64url');
  return got.length === want.length && timingSafeEqual(got, want);
}

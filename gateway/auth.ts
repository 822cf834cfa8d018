import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DaftkaError } from '../common/errors';
import type { TopicCatalog, TopicInfo } from './catalog';
import { createAjv, pointerOf, type JsonSchema } from './validation';

/**
 * Authentication (bearer token → principal) and per-topic authorisation.
 *
 * Rights on a topic: `produce` (producers), `consume` (consumers: fetch, group offsets), `admin`
 * (admins; an admin also holds produce and consume). `*` in a list means every principal.
 * A principal that holds no right on a topic cannot see it at all: it is answered 404 like a
 * topic that does not exist, and `GET /v1/topics` leaves it out (tenants never learn each
 * other's topic names). A principal that sees a topic but lacks the right asked for gets 403.
 *
 * Closed by default: an absent list grants nothing. Consumer groups have owners: using a group on
 * a topic (offsets, leased fetch and acks, reading its policy) needs the consume right and a
 * group grant of the topic (`access.groups`, by name or prefix, as Kafka's prefixed group ACLs);
 * changing a group's leased policy needs the topic's admin right. Admins hold every group.
 */

export interface Principal {
  name: string;
  /** Auth disabled: every right on every topic. */
  superuser: boolean;
}

export interface Authenticator {
  readonly enabled: boolean;
  /** The principal for an `Authorization` header value; throws 401 UNAUTHENTICATED. */
  authenticate(authorization: string | undefined): Principal;
}

export const ANONYMOUS: Principal = Object.freeze({ name: 'anonymous', superuser: true });

/** Auth off (local mode default): every request is `anonymous` with all rights. */
export class NoAuthenticator implements Authenticator {
  readonly enabled = false;
  authenticate(): Principal {
    return ANONYMOUS;
  }
}

export const PRINCIPAL_PATTERN = '^[A-Za-z0-9._@:-]{1,253}$';
/** RFC 6750 b64token. */
const BEARER_RE = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;
export const MIN_TOKEN_CHARS = 16;

export const TOKENS_FILE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['tokens'],
  additionalProperties: false,
  properties: {
    tokens: {
      type: 'object',
      propertyNames: { pattern: `^[A-Za-z0-9\\-._~+/]{${MIN_TOKEN_CHARS},4096}=*$` },
      additionalProperties: { type: 'string', pattern: PRINCIPAL_PATTERN },
    },
  },
};

export class AuthConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthConfigError';
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * Bearer tokens from a file `{"tokens": {"<token>": "<principal>"}}` (a mounted Kubernetes Secret).
 * Only SHA-256 digests are kept. A presented token is digested and looked up by digest: the
 * lookup's timing can only reveal something about a digest, never about a token's characters,
 * and the final comparison is constant-time.
 */
export class TokenAuthenticator implements Authenticator {
  readonly enabled = true;
  private readonly byDigest = new Map<string, { digest: Buffer; principal: Principal }>();

  constructor(tokens: Record<string, string>) {
    for (const [token, name] of Object.entries(tokens)) {
      const d = digest(token);
      this.byDigest.set(d.toString('hex'), { digest: d, principal: Object.freeze({ name, superuser: false }) });
    }
  }

  static fromFile(path: string): TokenAuthenticator {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new AuthConfigError(`cannot read tokens file ${path}: ${(err as Error).message}`);
    }
    const validate = createAjv().compile(TOKENS_FILE_SCHEMA);
    if (!validate(doc)) {
      const e = validate.errors![0];
      // Never echo a token: a pointer below /tokens would contain one.
      const aboutToken = e.keyword === 'propertyNames' || e.propertyName !== undefined;
      const underTokens = e.instancePath.startsWith('/tokens/');
      const where = aboutToken ? '/tokens (a token)' : underTokens ? '/tokens (a principal)' : pointerOf(e) || '/';
      const why = aboutToken
        ? `must be at least ${MIN_TOKEN_CHARS} characters of [A-Za-z0-9-._~+/]`
        : underTokens
          ? 'must be 1 to 253 characters of [A-Za-z0-9._@:-]'
          : (e.message ?? 'is invalid');
      throw new AuthConfigError(`tokens file ${path}: ${where} ${why}`);
    }
    return new TokenAuthenticator((doc as { tokens: Record<string, string> }).tokens);
  }

  get size(): number {
    return this.byDigest.size;
  }

  authenticate(authorization: string | undefined): Principal {
    if (authorization === undefined || authorization === '')
      throw new DaftkaError('UNAUTHENTICATED', 'missing bearer token: send Authorization: Bearer <token>');
    const m = BEARER_RE.exec(authorization);
    if (!m) throw new DaftkaError('UNAUTHENTICATED', 'malformed Authorization header: expected Bearer <token>');
    const d = digest(m[1]);
    const entry = this.byDigest.get(d.toString('hex'));
    if (!entry || !timingSafeEqual(entry.digest, d)) throw new DaftkaError('UNAUTHENTICATED', 'invalid bearer token');
    return entry.principal;
  }
}

export type Right = 'produce' | 'consume' | 'admin';

function listed(list: readonly string[], name: string): boolean {
  for (const n of list) if (n === name || n === '*') return true;
  return false;
}

export function can(p: Principal, topic: TopicInfo, right: Right): boolean {
  if (p.superuser || listed(topic.access.admins, p.name)) return true;
  if (right === 'produce') return listed(topic.access.producers, p.name);
  if (right === 'consume') return listed(topic.access.consumers, p.name);
  return false;
}

/** A principal sees a topic when it holds any right on it. */
export function canSee(p: Principal, topic: TopicInfo): boolean {
  return (
    p.superuser ||
    listed(topic.access.admins, p.name) ||
    listed(topic.access.producers, p.name) ||
    listed(topic.access.consumers, p.name)
  );
}

/** The topic if it exists and `p` may see it (else 404, the same answer as for no such topic). */
export function visibleTopic(catalog: TopicCatalog, p: Principal, name: string): TopicInfo {
  const t = catalog.get(name);
  if (t === undefined || !canSee(p, t)) throw new DaftkaError('TOPIC_NOT_FOUND', `topic ${name} does not exist`);
  return t;
}

/** The topic if `p` holds `right` on it: 404 when invisible, 403 when visible but not allowed. */
export function authorize(catalog: TopicCatalog, p: Principal, name: string, right: Right): TopicInfo {
  const t = visibleTopic(catalog, p, name);
  if (!can(p, t, right))
    throw new DaftkaError('FORBIDDEN', `principal ${p.name} may not ${right} on topic ${name}`, {
      extra: { right },
    });
  return t;
}

/** Whether `grantName` / `grantPrefix` matches `group` (`*` as a name = every group). */
function groupMatches(grant: { name?: string; prefix?: string }, group: string): boolean {
  if (grant.name !== undefined) return grant.name === '*' || grant.name === group;
  return grant.prefix !== undefined && group.startsWith(grant.prefix);
}

/** Whether `p` may use consumer group `group` on topic `t` (beyond the consume right itself). */
export function canUseGroup(p: Principal, t: TopicInfo, group: string): boolean {
  if (p.superuser || listed(t.access.admins, p.name)) return true;
  for (const g of t.access.groups ?? []) if (listed(g.principals, p.name) && groupMatches(g, group)) return true;
  return false;
}

/**
 * The topic if `p` may use `group` on it: the consume right (404 / 403 as `authorize`) and a group
 * grant (403 FORBIDDEN naming the group, which the caller chose, never another tenant's name).
 */
export function authorizeGroup(catalog: TopicCatalog, p: Principal, name: string, group: string): TopicInfo {
  const t = authorize(catalog, p, name, 'consume');
  if (!canUseGroup(p, t, group))
    throw new DaftkaError('FORBIDDEN', `principal ${p.name} may not use group ${group} on topic ${name}`, {
      extra: { right: 'group' },
    });
  return t;
}

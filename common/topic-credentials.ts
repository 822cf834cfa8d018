import { createHmac } from 'node:crypto';
import { TOPIC_NAME_RE } from './names';

/**
 * The credentials of a topic's client port on Kubernetes (docs/security.md), shared by the
 * operator that writes them and the gateway that reads them.
 *
 * - The installation's admin secret (`DAFTKA_ADMIN_SECRET` of the operator; a chart Secret) never
 *   leaves the operator's namespace. Each topic's replicas get a **topic admin secret** derived
 *   from it (`topicAdminSecret`): a replica checks admin calls with it, and a pod that reads it
 *   (e.g. a tenant who can read the Secrets of the topic's namespace) holds admin rights on that
 *   topic only, never on another tenant's. The replica takes it as its DAFTKA_ADMIN_SECRET as it
 *   is (replica/main.ts `adminKeyOf`), so the client-port protocol is unchanged.
 * - Each topic's client key is `clientKeyOf(peer secret, topic)` (protocol/rpc-auth.ts, as local
 *   mode writes it). The gateway gets every topic's key from one Secret in the operator's
 *   namespace, one data key per topic holding the key in hex — the format of local mode's
 *   client-keys folder (`dirKeyring`), so the same Secret could also be mounted as that folder.
 */

/** The replica's environment variable for the admin secret (common/replica-config.ts). */
export const ADMIN_SECRET_ENV = 'DAFTKA_ADMIN_SECRET';
/** The replica's switch for client-port admission; the operator never sets it (default required). */
export const CLIENT_AUTH_ENV = 'DAFTKA_CLIENT_AUTH';
/** Shortest installation admin secret accepted (characters). */
export const MIN_ADMIN_SECRET_CHARS = 32;

/** The admin secret of one topic's replicas: hex(HMAC-SHA256(install admin secret, label ‖ topic)), 64 characters. */
export function topicAdminSecret(installAdminSecret: string, topic: string): string {
  if (installAdminSecret.length < MIN_ADMIN_SECRET_CHARS)
    throw new RangeError(`admin secret: at least ${MIN_ADMIN_SECRET_CHARS} characters needed`);
  return createHmac('sha256', Buffer.from(installAdminSecret, 'utf8'))
    .update(`daftka-topic-admin-v1\0${topic}`)
    .digest('hex');
}

/** A topic's client key as the gateway's keys Secret and local mode's folder hold it (hex, 64 characters). */
export const CLIENT_KEY_PATTERN = /^[0-9a-f]{64}$/;

/**
 * The keys from a keys Secret's `data` (base64 values, as the API returns them): topic → key.
 * Entries that are not a topic name with a 32-byte hex key are left out (a broken entry is "no key").
 */
export function clientKeysFromSecretData(data: Record<string, string> | undefined): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [topic, b64] of Object.entries(data ?? {})) {
    if (!TOPIC_NAME_RE.test(topic)) continue;
    const hex = Buffer.from(b64, 'base64').toString('utf8').trim();
    if (CLIENT_KEY_PATTERN.test(hex)) out.set(topic, Buffer.from(hex, 'hex'));
  }
  return out;
}

/**
 * Bounds that more than one program enforces, each chosen once: the gateway's HTTP schema
 * declares them (and so the OpenAPI document), the replica checks them again at its own edge.
 */

/** Longest long-poll a fetch may ask for (plain and leased fetch, HTTP and replica RPC). */
export const MAX_WAIT_MS = 30_000;

const HOUR_MS = 3600 * 1000;

/**
 * A leased group's policy fields (DESIGN §6), inclusive bounds. The replica refuses an override
 * outside them (replica/leased/service.ts checkPolicyOverride); the HTTP schema declares them.
 */
export const LEASE_POLICY_BOUNDS = {
  /** Deliveries before a record is dead-lettered. */
  maxAttempts: { min: 1, max: 1000 },
  leaseMs: { min: 100, max: 12 * HOUR_MS },
  backoffInitialMs: { min: 0, max: 24 * HOUR_MS },
  backoffMaxMs: { min: 0, max: 24 * HOUR_MS },
  /** Growth of the redelivery delay per attempt (a number, not an integer). */
  backoffMultiplier: { min: 1, max: 100 },
} as const;

/** Longest redelivery delay an ack's `release` may ask for: the same ceiling as the backoff's. */
export const MAX_RELEASE_DELAY_MS = LEASE_POLICY_BOUNDS.backoffMaxMs.max;

/**
 * Highest partition index the HTTP API (and the CLI) accept as syntax; a topic's actual count is
 * smaller (the CRD allows at most 1000 partitions) and is checked against the catalog.
 */
export const MAX_PARTITION_INDEX = 9999;

/** Most group names one partition returns to GET /v1/groups (sorted; the answer says when there were more). */
export const MAX_GROUP_LIST = 1000;

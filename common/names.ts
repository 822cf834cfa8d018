/**
 * Names and addresses that more than one program checks, each written once: as a pattern string
 * (for JSON Schemas: the HTTP API, the topics file, NATS payloads, the CRDs) and as a RegExp.
 */

/**
 * A topic name as the data plane accepts it: a DNS-1123 label (at most 63 characters), which
 * also keeps it safe as a NATS subject token and inside Kubernetes object names.
 */
export const TOPIC_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
export const TOPIC_NAME_RE = new RegExp(TOPIC_NAME_PATTERN);

/**
 * A Topic resource's name (the CRD), stricter than TOPIC_NAME_PATTERN (every such name is also a
 * valid TOPIC_NAME_PATTERN name). It becomes StatefulSet, Service and pod names
 * (`<topic>-<partition>-<ordinal>`): a DNS-1035 label (starts with a letter: Service names must),
 * and short enough that `<topic>-<partition>` stays within 52 characters, the StatefulSet limit
 * (its controller-revision-hash label adds 11).
 */
export const TOPIC_RESOURCE_NAME_PATTERN = '^[a-z]([-a-z0-9]*[a-z0-9])?$';
export const TOPIC_RESOURCE_NAME_MAX = 48;

/** A consumer group name (offsets, leased groups, dead-letter filters). */
export const GROUP_NAME_MAX_CHARS = 249;
export const GROUP_NAME_PATTERN = `^[A-Za-z0-9._-]{1,${GROUP_NAME_MAX_CHARS}}$`;
export const GROUP_NAME_RE = new RegExp(GROUP_NAME_PATTERN);

/**
 * `host:port` of a replica's client port, as announced on NATS, listed in the topics file and
 * sent back in NOT_LEADER hints: a DNS name or IPv4 address, or an IPv6 address in brackets
 * (dots allowed for the IPv4-mapped form).
 */
export const ENDPOINT_PATTERN = '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]{1,253}):([0-9]{1,5})$';
export const ENDPOINT_RE = new RegExp(ENDPOINT_PATTERN);

export interface Endpoint {
  /** Host name or address, IPv6 without its brackets. */
  host: string;
  port: number;
}

/** The host and port of `endpoint`; undefined exactly when ENDPOINT_RE refuses it. */
export function parseEndpoint(endpoint: string): Endpoint | undefined {
  const m = ENDPOINT_RE.exec(endpoint);
  if (m === null) return undefined;
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) };
}

import winston from 'winston';

/**
 * Structured logging: one JSON object per line, fields not sentences, no payloads or secrets.
 * Usage: `log.info('produce_committed', { request_id, topic, partition, records })`.
 * The message is an event name in snake_case; everything variable goes in fields.
 */
export type Logger = winston.Logger;

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Field names that must never reach a log line (payloads and secrets). */
const REDACTED_FIELDS = new Set([
  'value',
  'value_b64',
  'key',
  'headers',
  'token',
  'authorization',
  'password',
  'secret',
  'records',
]);

const redact = winston.format((info) => {
  for (const k of Object.keys(info)) if (REDACTED_FIELDS.has(k.toLowerCase())) info[k] = '[redacted]';
  return info;
});

export interface LoggerOptions {
  level?: LogLevel;
  /** Extra constant fields (e.g. replica id, topic, partition). */
  fields?: Record<string, unknown>;
  /** Where lines go; defaults to stdout. Tests pass a stream to capture. */
  stream?: NodeJS.WritableStream;
}

export function createLogger(component: string, opts: LoggerOptions = {}): Logger {
  const transport = opts.stream
    ? new winston.transports.Stream({ stream: opts.stream })
    : new winston.transports.Console({ stderrLevels: [] });
  return winston.createLogger({
    level: opts.level ?? (process.env.DAFTKA_LOG_LEVEL as LogLevel | undefined) ?? 'info',
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    defaultMeta: { component, pid: process.pid, ...(opts.fields ?? {}) },
    format: winston.format.combine(redact(), winston.format.timestamp(), winston.format.json()),
    transports: [transport],
  });
}

/** The request id travels from the gateway to the replica in the `x-request-id` header / frame field. */
export const REQUEST_ID_HEADER = 'x-request-id';
const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** Accept a caller's request id only if it is short and printable; otherwise make one. */
export function requestIdFrom(incoming: string | undefined, make: () => string): string {
  return incoming !== undefined && REQUEST_ID_RE.test(incoming) ? incoming : make();
}

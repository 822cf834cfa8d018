/**
 * One schema per program: each key has an environment variable, an optional flag, a type, a
 * default, a unit and a line of documentation. `loadConfig` validates everything at start and
 * fails with a message naming the key, the value and what is allowed; `configDocs` renders the
 * schema as the table in docs/configuration.md, so code and docs have one source.
 */

interface FieldBase {
  /** Environment variable, e.g. `DAFTKA_ELECTION_TIMEOUT_MS`. */
  env: string;
  /** Command-line flag without dashes, e.g. `election-timeout-ms`; defaults to env-derived. */
  flag?: string;
  doc: string;
  /** Unit for numbers (ms, bytes, records, …), shown in docs and errors. */
  unit?: string;
}
export interface IntField extends FieldBase {
  type: 'int';
  default?: number;
  min?: number;
  max?: number;
}
export interface NumberField extends FieldBase {
  type: 'number';
  default?: number;
  min?: number;
  max?: number;
}
export interface StringField extends FieldBase {
  type: 'string';
  default?: string;
  pattern?: RegExp;
  /** What the pattern means, for the error message. */
  patternDoc?: string;
}
export interface BoolField extends FieldBase {
  type: 'bool';
  default?: boolean;
}
export interface EnumField<V extends string = string> extends FieldBase {
  type: 'enum';
  values: readonly V[];
  default?: V;
}
export interface ListField extends FieldBase {
  type: 'list';
  default?: readonly string[];
  /** Each item must match this. */
  pattern?: RegExp;
  patternDoc?: string;
}
export type Field = IntField | NumberField | StringField | BoolField | EnumField | ListField;
export type Schema = Record<string, Field>;

type ValueOf<F> = F extends IntField | NumberField
  ? number
  : F extends BoolField
    ? boolean
    : F extends EnumField<infer V>
      ? V
      : F extends ListField
        ? string[]
        : string;
type Optional<F> = F extends { default: unknown } ? never : undefined;
export type ConfigOf<S extends Schema> = { readonly [K in keyof S]: ValueOf<S[K]> | Optional<S[K]> };

/** Declare a schema with its literal types kept (for `ConfigOf`). */
export function defineSchema<const S extends Schema>(s: S): S {
  return s;
}

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

function flagOf(f: Field): string {
  return (
    f.flag ??
    f.env
      .replace(/^DAFTKA_/, '')
      .toLowerCase()
      .replace(/_/g, '-')
  );
}

function allowed(f: Field): string {
  switch (f.type) {
    case 'int':
    case 'number': {
      const kind = f.type === 'int' ? 'an integer' : 'a number';
      const lo = f.min ?? -Infinity;
      const hi = f.max ?? Infinity;
      const range =
        lo > -Infinity && hi < Infinity
          ? ` from ${lo} to ${hi}`
          : lo > -Infinity
            ? ` ≥ ${lo}`
            : hi < Infinity
              ? ` ≤ ${hi}`
              : '';
      return `${kind}${range}${f.unit ? ` (${f.unit})` : ''}`;
    }
    case 'bool':
      return 'true or false';
    case 'enum':
      return `one of ${f.values.join(', ')}`;
    case 'string':
      return f.patternDoc ?? (f.pattern ? `a string matching ${f.pattern}` : 'a string');
    case 'list':
      return `a comma-separated list${f.patternDoc ? ` of ${f.patternDoc}` : ''}`;
  }
}

function parseValue(key: string, f: Field, raw: string, source: string): unknown {
  const bad = () =>
    new ConfigError(
      key,
      `invalid config ${key} (${source}): ${JSON.stringify(raw)} is not valid; allowed: ${allowed(f)}`,
    );
  switch (f.type) {
    case 'int':
    case 'number': {
      const t = raw.trim();
      if (t === '' || !/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(t)) throw bad();
      const n = Number(t);
      if (!Number.isFinite(n) || (f.type === 'int' && !Number.isSafeInteger(n))) throw bad();
      if ((f.min !== undefined && n < f.min) || (f.max !== undefined && n > f.max)) throw bad();
      return n;
    }
    case 'bool':
      if (/^(true|1|yes)$/i.test(raw)) return true;
      if (/^(false|0|no)$/i.test(raw)) return false;
      throw bad();
    case 'enum':
      if (!(f.values as readonly string[]).includes(raw)) throw bad();
      return raw;
    case 'string':
      if (f.pattern && !f.pattern.test(raw)) throw bad();
      return raw;
    case 'list': {
      const items = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      if (f.pattern && items.some((i) => !f.pattern!.test(i))) throw bad();
      return items;
    }
  }
}

/** Parse `--flag value` and `--flag=value` pairs; unknown flags are an error (typos must not pass silently). */
function parseArgv(schema: Schema, argv: readonly string[]): Map<string, string> {
  const byFlag = new Map(Object.entries(schema).map(([k, f]) => [flagOf(f), k]));
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--'))
      throw new ConfigError(a, `unexpected argument ${JSON.stringify(a)}; flags look like --name=value`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq === -1 ? undefined : eq);
    const key = byFlag.get(name);
    if (key === undefined)
      throw new ConfigError(
        name,
        `unknown flag --${name}; known flags: ${[...byFlag.keys()].map((f) => '--' + f).join(', ')}`,
      );
    let value: string;
    if (eq !== -1) value = a.slice(eq + 1);
    else if (schema[key].type === 'bool' && (i + 1 >= argv.length || argv[i + 1].startsWith('--'))) value = 'true';
    else if (i + 1 < argv.length) value = argv[++i];
    else throw new ConfigError(key, `flag --${name} needs a value; allowed: ${allowed(schema[key])}`);
    out.set(key, value);
  }
  return out;
}

/**
 * Build the typed config from flags (highest), environment, then defaults. Throws ConfigError
 * for the first problem found, naming the key, the value and what is allowed.
 */
export function loadConfig<S extends Schema>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
  argv: readonly string[] = [],
): ConfigOf<S> {
  const flags = parseArgv(schema, argv);
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(schema)) {
    const fromFlag = flags.get(key);
    const fromEnv = env[f.env];
    if (fromFlag !== undefined) out[key] = parseValue(key, f, fromFlag, `--${flagOf(f)}`);
    else if (fromEnv !== undefined && fromEnv !== '') out[key] = parseValue(key, f, fromEnv, f.env);
    else out[key] = f.default;
  }
  return out as ConfigOf<S>;
}

/** Require keys that have no default; the message says how to set them. */
export function requireKeys<S extends Schema>(schema: S, cfg: ConfigOf<S>, keys: readonly (keyof S & string)[]): void {
  for (const k of keys)
    if (cfg[k] === undefined)
      throw new ConfigError(
        k,
        `missing config ${k}: set ${schema[k].env} or --${flagOf(schema[k])}; allowed: ${allowed(schema[k])}`,
      );
}

/** Markdown table of a schema for docs/configuration.md. */
export function configDocs(schema: Schema): string {
  const rows = Object.entries(schema).map(([k, f]) => {
    const def =
      f.default === undefined
        ? '(required)'
        : Array.isArray(f.default)
          ? f.default.join(',') || '(empty)'
          : String(f.default);
    return `| \`${k}\` | \`${f.env}\` | \`--${flagOf(f)}\` | ${def} | ${allowed(f)} | ${f.doc} |`;
  });
  return ['| key | env | flag | default | allowed | meaning |', '| --- | --- | --- | --- | --- | --- |', ...rows].join(
    '\n',
  );
}

/** The one start-up line each program logs: its configured bounds (queues, timeouts, restart intensity). */
export function boundsSummary<S extends Schema>(
  cfg: ConfigOf<S>,
  keys: readonly (keyof S & string)[],
): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, cfg[k]]));
}

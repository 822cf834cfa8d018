import { ConfigError, configDocs, defineSchema, loadConfig, requireKeys } from '../../../common/config';

const schema = defineSchema({
  port: { type: 'int', env: 'DAFTKA_PORT', default: 8080, min: 1, max: 65535, doc: 'HTTP port' },
  electionTimeoutMs: {
    type: 'int',
    env: 'DAFTKA_ELECTION_TIMEOUT_MS',
    default: 150,
    min: 10,
    unit: 'ms',
    doc: 'election timeout',
  },
  ratio: { type: 'number', env: 'DAFTKA_RATIO', default: 0.5, min: 0, max: 1, doc: 'a ratio' },
  fsync: {
    type: 'enum',
    env: 'DAFTKA_FSYNC',
    values: ['always', 'interval'] as const,
    default: 'always',
    doc: 'fsync policy',
  },
  debug: { type: 'bool', env: 'DAFTKA_DEBUG', default: false, doc: 'debug' },
  peers: {
    type: 'list',
    env: 'DAFTKA_PEERS',
    default: [],
    pattern: /^[a-z0-9.-]+:\d+$/,
    patternDoc: 'host:port',
    doc: 'peers',
  },
  name: { type: 'string', env: 'DAFTKA_NAME', pattern: /^[a-z][a-z0-9-]*$/, patternDoc: 'a DNS label', doc: 'name' },
});

describe('config', () => {
  it('uses defaults when nothing is set', () => {
    const c = loadConfig(schema, {}, []);
    expect(c).toEqual({
      port: 8080,
      electionTimeoutMs: 150,
      ratio: 0.5,
      fsync: 'always',
      debug: false,
      peers: [],
      name: undefined,
    });
  });

  it('takes environment values and lets flags override them', () => {
    const c = loadConfig(
      schema,
      { DAFTKA_PORT: '9000', DAFTKA_FSYNC: 'interval', DAFTKA_PEERS: 'a:1, b.c:2', DAFTKA_DEBUG: 'yes' },
      ['--port=9100', '--ratio', '0.25', '--name', 'orders'],
    );
    expect(c.port).toBe(9100);
    expect(c.ratio).toBe(0.25);
    expect(c.fsync).toBe('interval');
    expect(c.peers).toEqual(['a:1', 'b.c:2']);
    expect(c.debug).toBe(true);
    expect(c.name).toBe('orders');
  });

  it('a bare boolean flag means true', () => {
    expect(loadConfig(schema, {}, ['--debug']).debug).toBe(true);
  });

  it.each([
    [
      { DAFTKA_PORT: 'abc' },
      'invalid config port (DAFTKA_PORT): "abc" is not valid; allowed: an integer from 1 to 65535',
    ],
    [
      { DAFTKA_PORT: '70000' },
      'invalid config port (DAFTKA_PORT): "70000" is not valid; allowed: an integer from 1 to 65535',
    ],
    [
      { DAFTKA_PORT: '80.5' },
      'invalid config port (DAFTKA_PORT): "80.5" is not valid; allowed: an integer from 1 to 65535',
    ],
    [
      { DAFTKA_ELECTION_TIMEOUT_MS: '5' },
      'invalid config electionTimeoutMs (DAFTKA_ELECTION_TIMEOUT_MS): "5" is not valid; allowed: an integer ≥ 10 (ms)',
    ],
    [{ DAFTKA_RATIO: '1.5' }, 'invalid config ratio (DAFTKA_RATIO): "1.5" is not valid; allowed: a number from 0 to 1'],
    [
      { DAFTKA_FSYNC: 'never' },
      'invalid config fsync (DAFTKA_FSYNC): "never" is not valid; allowed: one of always, interval',
    ],
    [{ DAFTKA_DEBUG: 'maybe' }, 'invalid config debug (DAFTKA_DEBUG): "maybe" is not valid; allowed: true or false'],
    [
      { DAFTKA_PEERS: 'a:1,bad' },
      'invalid config peers (DAFTKA_PEERS): "a:1,bad" is not valid; allowed: a comma-separated list of host:port',
    ],
    [{ DAFTKA_NAME: 'Orders!' }, 'invalid config name (DAFTKA_NAME): "Orders!" is not valid; allowed: a DNS label'],
  ])('refuses %j with a message naming key, value and what is allowed', (env, message) => {
    expect(() => loadConfig(schema, env, [])).toThrow(new ConfigError('x', message));
  });

  it('names the flag when a flag is wrong', () => {
    expect(() => loadConfig(schema, {}, ['--port=0'])).toThrow(
      'invalid config port (--port): "0" is not valid; allowed: an integer from 1 to 65535',
    );
  });

  it('refuses unknown flags and lists the known ones', () => {
    expect(() => loadConfig(schema, {}, ['--prot=1'])).toThrow(/unknown flag --prot; known flags: --port, /);
  });

  it('refuses a flag without a value', () => {
    expect(() => loadConfig(schema, {}, ['--port'])).toThrow(
      'flag --port needs a value; allowed: an integer from 1 to 65535',
    );
  });

  it('reports required keys that are missing with how to set them', () => {
    const c = loadConfig(schema, {}, []);
    expect(() => requireKeys(schema, c, ['name'])).toThrow(
      'missing config name: set DAFTKA_NAME or --name; allowed: a DNS label',
    );
  });

  it('renders documentation from the same schema', () => {
    const doc = configDocs(schema);
    expect(doc).toContain(
      '| `electionTimeoutMs` | `DAFTKA_ELECTION_TIMEOUT_MS` | `--election-timeout-ms` | 150 | an integer ≥ 10 (ms) | election timeout |',
    );
    expect(doc.split('\n')).toHaveLength(2 + Object.keys(schema).length);
  });
});

import { checkMetricName, counter, createRegistry, gauge, histogram } from '../../../common/metrics';

describe('metric naming rules (DESIGN §9)', () => {
  it.each([
    ['daftka_produce_records_total', 'counter', ['topic']],
    ['daftka_fsync_duration_seconds', 'histogram', []],
    ['daftka_log_bytes', 'gauge', ['topic', 'partition']],
    ['daftka_raft_term', 'gauge', []],
  ] as const)('accepts %s', (name, type, labels) => {
    expect(() => checkMetricName(name, type, labels)).not.toThrow();
  });

  it.each([
    ['produce_records_total', 'counter', [], 'must start with "daftka_"'],
    ['daftka_ProduceRecords_total', 'counter', [], 'must be snake_case'],
    ['daftka_produce_records', 'counter', [], 'a counter must end in "_total"'],
    ['daftka_log_bytes_total', 'gauge', [], 'only counters may end in "_total"'],
    ['daftka_fsync_duration_ms', 'histogram', [], 'must use base units (_seconds, _bytes)'],
    ['daftka_fsync_latency', 'histogram', [], 'a histogram must end in a unit suffix'],
    ['daftka_produce_records_total', 'counter', ['key'], 'label "key" is not in the bounded allow-list'],
    ['daftka_produce_records_total', 'counter', ['request_id'], 'label "request_id" is not in the bounded allow-list'],
  ] as const)('refuses %s (%s, labels %j): %s', (name, type, labels, why) => {
    expect(() => checkMetricName(name, type, labels)).toThrow(why);
  });

  it('helpers register valid metrics and refuse invalid ones before registering', async () => {
    const reg = createRegistry('test', { defaultMetrics: false });
    counter(reg, { name: 'daftka_test_events_total', help: 'events', labelNames: ['topic'] }).inc({ topic: 't' }, 2);
    gauge(reg, { name: 'daftka_test_depth', help: 'depth' }).set(3);
    histogram(reg, { name: 'daftka_test_duration_seconds', help: 'duration' }).observe(0.001);
    expect(() => counter(reg, { name: 'daftka_bad', help: 'x' })).toThrow('a counter must end in "_total"');
    const text = await reg.metrics();
    expect(text).toContain('daftka_test_events_total{topic="t",component="test"} 2');
    expect(text).toContain('daftka_test_depth{component="test"} 3');
    expect(text).not.toContain('daftka_bad');
  });

  it('default process metrics carry the prefix (event-loop lag is one of them)', async () => {
    const reg = createRegistry('test2');
    const text = await reg.metrics();
    expect(text).toContain('daftka_nodejs_eventloop_lag_seconds');
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#')))
      expect(line.startsWith('daftka_')).toBe(true);
  });
});

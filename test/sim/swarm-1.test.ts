import { runSwarm } from './swarm';

// Swarm testing, part 1 of 4 (split so jest can run the parts in parallel): every seed draws
// its own fault profile, runs chaos with the oracle checking every event, then must recover.
const FROM = 0;
const COUNT = 2500;

test(`seeds [${FROM}, ${FROM + COUNT}) keep every safety invariant and recover after healing`, () => {
  const report = runSwarm(FROM, COUNT, { budget: 'quick' });
  if (report.failures.length > 0) throw new Error(`${report.failures.length} seeds failed:\n${report.summary}`);
  expect(report.seeds).toBe(COUNT);
}, 600_000);

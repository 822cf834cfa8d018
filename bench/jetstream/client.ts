/**
 * JetStream as the comparison's client sees it: `js.publish` with acks (one message per publish;
 * the window is the number of publishes awaiting their PubAck), an ordered consumer for
 * end-to-end latency, and the reader the verifier uses (every acknowledged stream sequence must
 * hold the message acknowledged for it).
 */
import { AckPolicy, DeliverPolicy, nanos, type JetStreamClient, type NatsConnection } from 'nats';
import type { Position, Target } from '../lib/load';
import { nowUs, parseValue } from '../lib/payload';
import { newHistogram, type Histogram } from '../lib/stats';

function text(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1');
}

export class JetStreamTarget implements Target {
  readonly label = 'jetstream publish';
  readonly recordsPerRequest = 1;
  private readonly js: JetStreamClient;

  constructor(
    nc: NatsConnection,
    private readonly subject: string,
    private readonly timeoutMs = 30_000,
  ) {
    this.js = nc.jetstream();
  }

  async send(values: string[], idempotencyKey?: string): Promise<Position[]> {
    const ack = await this.js.publish(this.subject, Buffer.from(values[0], 'latin1'), {
      timeout: this.timeoutMs,
      ...(idempotencyKey ? { msgID: idempotencyKey } : {}),
    });
    return [{ partition: 0, offset: ack.seq }];
  }
}

/** An ordered push-style consumer from "new" messages; end-to-end latency of this run's messages. */
export class JetStreamConsumer {
  readonly e2e: Histogram = newHistogram();
  received = 0;
  fromUs = 0;
  toUs = Infinity;
  private stopFn: (() => void) | null = null;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly nc: NatsConnection,
    private readonly stream: string,
    private readonly run: number,
  ) {}

  async start(): Promise<void> {
    const c = await this.nc.jetstream().consumers.get(this.stream, { deliver_policy: DeliverPolicy.New });
    const msgs = await c.consume({ max_messages: 1000 });
    this.stopFn = () => void msgs.stop();
    this.loop = (async () => {
      for await (const m of msgs) {
        const now = nowUs();
        const h = parseValue(text(m.data));
        if (h && h.run === this.run) {
          this.received++;
          if (h.sentUs >= this.fromUs && h.sentUs <= this.toUs) this.e2e.recordValue(Math.max(1, now - h.sentUs));
        }
      }
    })();
  }

  async stop(expected: number, graceMs = 10_000): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.received < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    this.stopFn?.();
    await this.loop;
  }
}

/**
 * Reads stream sequences [from, to] (the verifier's `read`) with an ephemeral pull consumer and
 * bounded fetches, so a stream without a leader makes the read fail instead of hang.
 */
export function jetStreamReader(nc: NatsConnection, stream: string) {
  return async (_partition: number, from: number, to: number, each: (seq: number, value: string | null) => void) => {
    const jsm = await nc.jetstreamManager();
    const deadline = Date.now() + 300_000;
    let last = from - 1;
    let empty = 0;
    // After a leader kill the JetStream API may time out for seconds (meta and stream elections):
    // (re)create the consumer from where reading stopped, until the deadline.
    while (last < to && empty < 3) {
      if (Date.now() > deadline) throw new Error(`reading ${stream} ${from}..${to}: stuck at ${last}`);
      let name = '';
      try {
        const ci = await jsm.consumers.add(stream, {
          ack_policy: AckPolicy.None,
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: last + 1,
          inactive_threshold: nanos(60_000),
          mem_storage: true,
          num_replicas: 1,
        });
        name = ci.name;
        const c = await nc.jetstream().consumers.get(stream, name);
        while (last < to && empty < 3) {
          let got = 0;
          const batch = await c.fetch({ max_messages: 1000, expires: 2000 });
          for await (const m of batch) {
            got++;
            last = m.seq;
            if (m.seq <= to) each(m.seq, text(m.data));
          }
          empty = got === 0 ? empty + 1 : 0;
        }
      } catch {
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        if (name) await jsm.consumers.delete(stream, name).catch(() => undefined);
      }
    }
  };
}

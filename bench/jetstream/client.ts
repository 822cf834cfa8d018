/**
 * JetStream as the comparison's client sees it: `js.publish` with acks (one message per publish;
 * the window is the number of publishes awaiting their PubAck), an ordered consumer for
 * end-to-end latency, and the reader the verifier uses (every acknowledged stream sequence must
 * hold the message acknowledged for it).
 */
import { DeliverPolicy, type JetStreamClient, type NatsConnection } from 'nats';
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

/** Reads stream sequences [from, to] (the verifier's `read`). */
export function jetStreamReader(nc: NatsConnection, stream: string) {
  return async (_partition: number, from: number, to: number, each: (seq: number, value: string | null) => void) => {
    const c = await nc
      .jetstream()
      .consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from });
    const msgs = await c.consume({ max_messages: 1000 });
    const guard = setTimeout(() => void msgs.stop(), 120_000);
    for await (const m of msgs) {
      if (m.seq <= to) each(m.seq, text(m.data));
      if (m.seq >= to || m.info.pending === 0) break;
    }
    clearTimeout(guard);
    await msgs.stop();
  };
}

import { DaftkaError, isDaftkaError } from '../common/errors';
import { CodecError } from './bytes';
import {
  METHOD_NAMES,
  METHODS,
  type MethodName,
  type PartitionService,
  type RequestOf,
  type ResponseOf,
} from './methods';
import { deliveryOf, type RpcClient } from './rpc-client';

export interface RemotePartitionClientOptions {
  /** RPC budget for calls that carry no timeout of their own (offsets, status, admin). Default 5000 ms. */
  defaultTimeoutMs?: number;
  /**
   * Extra time a produce's RPC waits beyond the request's own `timeoutMs`, so the replica's
   * COMMIT_UNKNOWN answer arrives before the client gives up. Default 1000 ms.
   */
  produceGraceMs?: number;
}

export const REMOTE_CLIENT_DEFAULTS = { defaultTimeoutMs: 5000, produceGraceMs: 1000 } as const;

/**
 * The partition API of one replica, over its client port: one method per entry of the method
 * table (protocol/methods.ts), each encoding its request, calling, and decoding the answer.
 * The gateway keeps one per leader endpoint.
 *
 * Errors are DaftkaErrors. For a `produce`-kind call, any failure after the request may have
 * reached the replica — TIMEOUT, or UNAVAILABLE with the connection lost mid-call, or an answer
 * that does not decode — becomes COMMIT_UNKNOWN (DESIGN §3): the batch may or may not be
 * committed, and a retry with the same idempotency key is safe. Failures before sending (client
 * OVERLOADED, connection refused) keep their code: nothing was written.
 */
// The class declares the call machinery; its interface half lists the methods the constructor
// derives from the table (a class cannot declare methods it builds from data).
// eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-unsafe-declaration-merging
export interface RemotePartitionClient extends PartitionService {}
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class RemotePartitionClient {
  private readonly defaultTimeoutMs: number;
  private readonly produceGraceMs: number;

  constructor(
    readonly rpc: RpcClient,
    opts: RemotePartitionClientOptions = {},
  ) {
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? REMOTE_CLIENT_DEFAULTS.defaultTimeoutMs;
    this.produceGraceMs = opts.produceGraceMs ?? REMOTE_CLIENT_DEFAULTS.produceGraceMs;
    const self = this as unknown as Record<MethodName, (req: never) => Promise<unknown>>;
    for (const name of METHOD_NAMES) self[name] = (req: never) => this.call(name, req);
  }

  /** Call `name` with `req`: the one path every method takes. */
  async call<K extends MethodName>(name: K, req: RequestOf<K>): Promise<ResponseOf<K>> {
    const spec = METHODS[name];
    let body: Buffer;
    try {
      body = (spec.encodeRequest as unknown as (r: RequestOf<K>) => Buffer)(req);
    } catch (e) {
      // Encoding failures are the caller's input (a value out of range): nothing was sent.
      if (e instanceof CodecError) throw new DaftkaError('INVALID_REQUEST', e.message);
      throw e;
    }
    const produce = spec.kind === 'produce';
    try {
      const res = await this.rpc.call(spec.wire, body, {
        timeoutMs: this.budgetMs(name, req),
        requestId: req.requestId,
      });
      try {
        return spec.decodeResponse(res) as ResponseOf<K>;
      } catch (e) {
        if (e instanceof CodecError && !produce)
          throw new DaftkaError('INTERNAL', `malformed ${spec.wire} answer from ${this.rpc.endpoint}: ${e.message}`);
        throw e;
      }
    } catch (e) {
      throw produce ? produceFailure(e, this.rpc.endpoint) : e;
    }
  }

  /** RPC timeout for one call, from its kind (protocol/methods.ts). */
  private budgetMs<K extends MethodName>(name: K, req: RequestOf<K>): number {
    switch (METHODS[name].kind) {
      case 'produce':
        return (req as unknown as { timeoutMs: number }).timeoutMs + this.produceGraceMs;
      case 'poll':
        return (req as unknown as { waitMs: number }).waitMs + this.defaultTimeoutMs;
      default:
        return this.defaultTimeoutMs;
    }
  }
}

function produceFailure(e: unknown, endpoint: string): unknown {
  if (!isDaftkaError(e)) {
    if (e instanceof CodecError)
      return new DaftkaError('COMMIT_UNKNOWN', `malformed produce answer from ${endpoint}: ${e.message}`, { cause: e });
    return e;
  }
  if (e.code === 'TIMEOUT' || (e.code === 'UNAVAILABLE' && deliveryOf(e) === 'maybe_sent'))
    return new DaftkaError(
      'COMMIT_UNKNOWN',
      `produce to ${endpoint}: ${e.message}; the batch may or may not be committed`,
      {
        cause: e,
      },
    );
  return e;
}

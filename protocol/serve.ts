import { METHOD_NAMES, METHODS, type MethodName, type PartitionService } from './methods';
import type { RpcServer } from './rpc-server';

/**
 * Serve the methods of the table (protocol/methods.ts) that `impl` implements on an RpcServer:
 * each body is decoded by its entry (malformed → INVALID_REQUEST, answered by the server), the
 * request id comes from the RPC header, and whatever DaftkaError the implementation throws
 * travels back unchanged (NOT_LEADER with its leader hint, NO_QUORUM, OVERLOADED, ...). A method
 * `impl` lacks is unknown on this server (INVALID_REQUEST).
 */
export function servePartition(server: RpcServer, impl: Partial<PartitionService>): void {
  for (const name of METHOD_NAMES) {
    const fn = impl[name] as ((req: unknown) => Promise<unknown>) | undefined;
    if (fn === undefined) continue;
    register(server, name, fn.bind(impl));
  }
}

function register(server: RpcServer, name: MethodName, fn: (req: unknown) => Promise<unknown>): void {
  const spec = METHODS[name] as unknown as {
    wire: string;
    access: 'topic' | 'admin';
    decodeRequest(body: Buffer, requestId: string): unknown;
    encodeResponse(res: unknown): Buffer;
  };
  server.register(
    spec.wire,
    async (body, ctx) => spec.encodeResponse(await fn(spec.decodeRequest(body, ctx.requestId))),
    spec.access,
  );
}

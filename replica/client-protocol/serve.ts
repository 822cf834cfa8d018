import type { LeasedPartitionClient } from '../../common/leased-api';
import type { PartitionAdmin, PartitionClient } from '../../common/partition-api';
import { serveLeasedApi } from './leased-codec';
import * as codec from './partition-api-codec';
import { PARTITION_METHODS as M } from './partition-api-codec';
import type { RpcServer } from './rpc-server';

/**
 * Serve a PartitionClient (the replica's implementation) on an RpcServer, and, when given, a
 * PartitionAdmin. Bodies are decoded here (malformed → INVALID_REQUEST, answered by the server),
 * the request id comes from the RPC header, and whatever DaftkaError the implementation throws
 * travels back unchanged (NOT_LEADER with its leader hint, NO_QUORUM, OVERLOADED, ...).
 */
export function servePartitionApi(
  server: RpcServer,
  impl: PartitionClient,
  admin?: PartitionAdmin,
  leased?: LeasedPartitionClient,
): void {
  if (leased) serveLeasedApi(server, leased);
  server.register(M.produce, async (body, ctx) =>
    codec.encodeProduceResult(await impl.produce(codec.decodeProduceRequest(body, ctx.requestId))),
  );
  server.register(M.fetch, async (body, ctx) =>
    codec.encodeFetchResult(await impl.fetch(codec.decodeFetchRequest(body, ctx.requestId))),
  );
  server.register(M.commitOffset, async (body, ctx) => {
    await impl.commitOffset(codec.decodeGroupOffsetCommit(body, ctx.requestId));
    return codec.EMPTY_BODY;
  });
  server.register(M.getOffset, async (body, ctx) =>
    codec.encodeGroupOffset(await impl.getOffset(codec.decodeGroupOffsetQuery(body, ctx.requestId))),
  );
  server.register(M.status, async (body, ctx) => {
    const { topic, partition } = codec.decodePartitionRef(body);
    return codec.encodeStatus(await impl.status(topic, partition, ctx.requestId));
  });
  if (!admin) return;
  server.register(M.transferLeadership, async (body, ctx) => {
    await admin.transferLeadership(codec.decodeTransferLeadership(body, ctx.requestId));
    return codec.EMPTY_BODY;
  });
  server.register(M.addLearner, async (body, ctx) => {
    await admin.addLearner(codec.decodeAddLearner(body, ctx.requestId));
    return codec.EMPTY_BODY;
  });
  server.register(M.promote, async (body, ctx) => {
    await admin.promote(codec.decodeMemberRequest(body, ctx.requestId));
    return codec.EMPTY_BODY;
  });
  server.register(M.removeMember, async (body, ctx) => {
    await admin.removeMember(codec.decodeMemberRequest(body, ctx.requestId));
    return codec.EMPTY_BODY;
  });
}

import type { Logger } from '../../common/log';
import type { promClient } from '../../common/metrics';
import { ordinalOf, type ResolvedReplicaConfig } from '../config';
import { MESSAGE_CODEC_VERSION } from '../raft';
import { PeerTransport } from '../transport/peer';

/**
 * The peer transport of one replica: peers are the configured ordinals of its StatefulSet,
 * reached by their stable names; any configured ordinal may connect (a fresh learner must hear
 * the leader that added it); hellos are signed with the group's secret when one is set; with
 * DAFTKA_TLS_DIR the connections are mutual TLS.
 */
export function peerTransport(
  rc: ResolvedReplicaConfig,
  id: string,
  peers: string[],
  logger: Logger,
  registry: promClient.Registry,
): PeerTransport {
  const { cfg, self, endpoints } = rc;
  return new PeerTransport({
    selfId: id,
    clusterId: rc.clusterId,
    listenHost: cfg.listenHost,
    listenPort: self.peerPort,
    resolve: (peer) => {
      const o = ordinalOf(peer);
      const ep = o === undefined ? undefined : endpoints[o];
      return ep ? { host: ep.host, port: ep.peerPort } : undefined;
    },
    peers,
    // Any configured ordinal may connect: a fresh learner must hear the leader that added it.
    acceptPeer: (peer) => {
      const o = ordinalOf(peer);
      return o !== undefined && o < endpoints.length && o !== self.ordinal;
    },
    logger,
    registry,
    maxFrameBytes: Math.max(16 * 1024 * 1024, cfg.maxSizePerMsgBytes * 2),
    // One Raft message codec today; a second one would widen this range and encode per
    // connection with transport.versionFor(peer) (docs/wire-protocol.md, Versions).
    versions: { min: MESSAGE_CODEC_VERSION, max: MESSAGE_CODEC_VERSION },
    ...(cfg.peerSecret !== '' ? { secret: cfg.peerSecret } : {}),
    ...(rc.tls ? { tls: { source: rc.tls, ...(cfg.tlsServerName ? { serverName: cfg.tlsServerName } : {}) } } : {}),
  });
}

import type { promClient } from '../../common/metrics';
import { sharedCounter, sharedGauge } from '../../common/metrics';

/** The peer transport's metrics (docs/metrics.md); per-peer series are removed with the peer. */
export function makeMetrics(reg: promClient.Registry) {
  return {
    framesSent: sharedCounter(reg, {
      name: 'daftka_peer_frames_sent_total',
      help: 'Raft message frames written to a peer connection.',
      labelNames: ['peer'] as const,
    }),
    bytesSent: sharedCounter(reg, {
      name: 'daftka_peer_sent_bytes_total',
      help: 'Bytes written to peer connections, frame headers included.',
      labelNames: ['peer'] as const,
    }),
    framesReceived: sharedCounter(reg, {
      name: 'daftka_peer_frames_received_total',
      help: 'Raft message frames received from a peer.',
      labelNames: ['peer'] as const,
    }),
    bytesReceived: sharedCounter(reg, {
      name: 'daftka_peer_received_bytes_total',
      help: 'Bytes of Raft message frames received from a peer, frame headers included.',
      labelNames: ['peer'] as const,
    }),
    dropped: sharedCounter(reg, {
      name: 'daftka_peer_queue_dropped_messages_total',
      help: 'Outbound Raft messages discarded: oldest shed from a full queue, too large, unknown or removed peer, closed.',
      labelNames: ['peer', 'reason'] as const,
    }),
    reconnects: sharedCounter(reg, {
      name: 'daftka_peer_reconnects_total',
      help: 'Outbound connection attempts scheduled after a failure or disconnect.',
      labelNames: ['peer'] as const,
    }),
    connectFailures: sharedCounter(reg, {
      name: 'daftka_peer_connect_failures_total',
      help: 'Outbound connections that failed or were lost, by reason (error, timeout, closed, bad_frame, rejected reasons).',
      labelNames: ['peer', 'reason'] as const,
    }),
    connected: sharedGauge(reg, {
      name: 'daftka_peer_connected_peers',
      help: 'Peers with an outbound connection whose handshake completed.',
    }),
    queueMessages: sharedGauge(reg, {
      name: 'daftka_peer_queue_messages',
      help: 'Raft messages waiting in the send queue of a peer.',
      labelNames: ['peer'] as const,
    }),
    queueBytes: sharedGauge(reg, {
      name: 'daftka_peer_queue_bytes',
      help: 'Payload bytes waiting in the send queue of a peer.',
      labelNames: ['peer'] as const,
    }),
    badFrames: sharedCounter(reg, {
      name: 'daftka_peer_bad_frames_total',
      help: 'Peer connections closed because a frame did not decode, by reason.',
      labelNames: ['reason'] as const,
    }),
    handshakeRejected: sharedCounter(reg, {
      name: 'daftka_peer_handshake_rejected_total',
      help: 'Inbound peer connections refused at the handshake, by reason.',
      labelNames: ['reason'] as const,
    }),
  };
}
export type PeerMetrics = ReturnType<typeof makeMetrics>;

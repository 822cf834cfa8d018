/**
 * The contract of the peer secret shared by the replicas of a partition group: the replica reads
 * it from this variable (replica/config.ts) and signs and checks peer hellos with it
 * (replica/transport/handshake.ts); the operator makes one per Topic (operator/desired.ts); local
 * mode makes one per topic (scripts/local-mode.ts).
 */
export const PEER_SECRET_ENV = 'DAFTKA_PEER_SECRET';

/** Shortest peer secret accepted (characters). */
export const MIN_PEER_SECRET_CHARS = 32;

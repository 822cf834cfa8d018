/** The pure Raft core: the only module the replica imports from replica/raft. */
export * from './types';
export * from './errors';
export { RaftNode } from './node';
export { BOOTSTRAP_INDEX, MemoryStorage, bootstrapSnapshot } from './storage';
export { encodeMessage, decodeMessage, encodeConfChange, decodeConfChange, MESSAGE_CODEC_VERSION } from './codec';
export { applyConfChange, validateConfChange, confEquals, type ConfChange, type ConfChangeType } from './membership';

import type { NodeId } from './types';

/**
 * Error families of the Raft core. Each has a stable `code`.
 *  - RaftRefusal: a request the core declines right now (retry elsewhere or later). Never fatal.
 *  - InvariantViolation: something that must never happen did. Crash-only: do not catch and continue.
 *  - MalformedMessageError: a peer frame that does not decode. Close that connection, count it.
 *  - RaftUsageError: the driver broke the API contract (a programming error).
 */
export abstract class RaftError extends Error {
  abstract readonly code: string;
}

/** A must-never-happen condition (e.g. truncating a committed entry). The process must exit. */
export class InvariantViolation extends RaftError {
  readonly code = 'RAFT_INVARIANT_VIOLATION';
  constructor(message: string) {
    super(message);
    // common/crash-policy.ts classifies by this name: fatal.
    this.name = 'InvariantViolation';
  }
}

export class MalformedMessageError extends RaftError {
  readonly code = 'RAFT_MALFORMED_MESSAGE';
  constructor(message: string) {
    super(message);
    this.name = 'MalformedMessageError';
  }
}

export class RaftUsageError extends RaftError {
  readonly code = 'RAFT_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'RaftUsageError';
  }
}

/** Base of every typed refusal: the request was not accepted and nothing changed. */
export abstract class RaftRefusal extends RaftError {}

export class NotLeaderError extends RaftRefusal {
  readonly code = 'NOT_LEADER';
  constructor(readonly leaderHint: NodeId | null) {
    super(`not the leader${leaderHint === null ? '' : `; leader is ${leaderHint}`}`);
    this.name = 'NotLeaderError';
  }
}

/**
 * Proposals are paused: leadership is being transferred (until it completes or is aborted), or
 * the leader is removing itself (until the removal applies and it steps down).
 */
export class ProposalsPausedError extends RaftRefusal {
  readonly code = 'PROPOSALS_PAUSED';
  constructor(
    readonly reason: 'transfer' | 'removal',
    /** The transfer's target (reason 'transfer'). */
    readonly transferee: NodeId | null,
  ) {
    super(
      reason === 'transfer'
        ? `proposals paused: leadership transfer to ${transferee} in progress`
        : 'proposals paused: this leader is removing itself from the group',
    );
    this.name = 'ProposalsPausedError';
  }
}

/** Backpressure: the leader already holds maxUncommittedBytes of uncommitted payload. */
export class TooManyUncommittedError extends RaftRefusal {
  readonly code = 'TOO_MANY_UNCOMMITTED';
  constructor(
    readonly uncommittedBytes: number,
    readonly maxUncommittedBytes: number,
  ) {
    super(`too many uncommitted bytes: ${uncommittedBytes} of ${maxUncommittedBytes}`);
    this.name = 'TooManyUncommittedError';
  }
}

export type ConfChangeRefusalReason =
  /** A configuration entry is proposed but not yet applied: one change at a time. */
  | 'pending'
  /** The leader has not yet committed an entry of its own term (the single-server-change safety rule). */
  | 'noCurrentTermCommit'
  /** The change does not apply to the current configuration (e.g. promoting a non-learner). */
  | 'invalid'
  /** Removing the only voter would leave a group that can never elect a leader. */
  | 'lastVoter';

export class ConfChangeRefusedError extends RaftRefusal {
  readonly code = 'CONF_CHANGE_REFUSED';
  constructor(
    readonly reason: ConfChangeRefusalReason,
    detail: string,
  ) {
    super(`membership change refused (${reason}): ${detail}`);
    this.name = 'ConfChangeRefusedError';
  }
}

export class TransferRefusedError extends RaftRefusal {
  readonly code = 'TRANSFER_REFUSED';
  constructor(detail: string) {
    super(`leadership transfer refused: ${detail}`);
    this.name = 'TransferRefusedError';
  }
}

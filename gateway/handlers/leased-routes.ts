import type { LeasedRouteId } from '../route-spec';
import type { Handler } from './context';
import {
  archiveDeadLettersHandler,
  getDeadLetterHandler,
  getJobHandler,
  listDeadLettersHandler,
  purgeDeadLettersHandler,
  replayDeadLettersHandler,
} from './deadletters';
import { getPolicyHandler, leasedAcksHandler, leasedFetchHandler, putPolicyHandler } from './leased';

/** The handlers of the leased-group and dead-letter routes (gateway/leased-spec.ts). */
export const LEASED_HANDLERS: Record<LeasedRouteId, Handler> = {
  leased_fetch: leasedFetchHandler,
  leased_acks: leasedAcksHandler,
  put_group_policy: putPolicyHandler,
  get_group_policy: getPolicyHandler,
  list_deadletters: listDeadLettersHandler,
  get_deadletter: getDeadLetterHandler,
  replay_deadletters: replayDeadLettersHandler,
  archive_deadletters: archiveDeadLettersHandler,
  purge_deadletters: purgeDeadLettersHandler,
  get_job: getJobHandler,
};

import { CORE_ROUTES } from './api-spec';
import { LEASED_ROUTES } from './leased-spec';
import { READINESS_ROUTES } from './readiness-spec';
import type { RouteSpec } from './route-spec';

/**
 * The route table, assembled in this one place: every route of the HTTP API in the order of the
 * OpenAPI document. app.ts builds a validator and a dispatch entry per route from it, openapi.ts
 * the document.
 */
export const ROUTES: readonly RouteSpec[] = [...CORE_ROUTES, ...LEASED_ROUTES, ...READINESS_ROUTES];

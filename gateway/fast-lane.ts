import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { CompiledRoute } from './dispatch';

/**
 * The fast lane: the hottest routes (produce and fetch) served ahead of Express's router, by the
 * same compiled route (dispatch.ts) Express would call — one spec, one validation, one error
 * mapping, one OpenAPI document. What it saves is Express's per-request work (the router's walk
 * over every layer, request/response prototypes, its body and reply helpers), measured at about
 * five times the cost of the route's own work for a 1 KB produce (docs/benchmarks.md).
 *
 * It takes only the exact form of a path (`/v1/topics/{topic}/records`, parameters that
 * percent-decode); anything else — a trailing slash, other letter case, HEAD, a bad escape — goes
 * to Express, which answers it as before.
 */

interface LaneRoute {
  method: string;
  re: RegExp;
  names: string[];
  route: CompiledRoute;
}

/** `/v1/topics/{topic}/records` → /^\/v1\/topics\/([^/]+)\/records$/ and ['topic']. */
function pathPattern(template: string): { re: RegExp; names: string[] } {
  const names: string[] = [];
  const source = template
    .split(/(\{\w+\})/)
    .map((part) => {
      const m = /^\{(\w+)\}$/.exec(part);
      if (m) {
        names.push(m[1]);
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    })
    .join('');
  return { re: new RegExp(`^${source}$`), names };
}

export type Lane = (req: IncomingMessage, res: ServerResponse, begin: () => void) => boolean;

/**
 * A lane over `routes`: returns true when it took the request (after calling `begin`, which
 * starts the request's state), false when Express should have it.
 */
export function fastLane(routes: CompiledRoute[]): Lane {
  const lane: LaneRoute[] = routes.map((route) => ({
    method: route.spec.method.toUpperCase(),
    ...pathPattern(route.spec.path),
    route,
  }));
  return (req, res, begin) => {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    for (const r of lane) {
      if (req.method !== r.method) continue;
      const m = r.re.exec(path);
      if (m === null) continue;
      const params: Record<string, string> = {};
      try {
        for (let i = 0; i < r.names.length; i++) params[r.names[i]] = decodeURIComponent(m[i + 1]);
      } catch {
        return false; // not valid percent-encoding: Express answers it
      }
      begin();
      r.route.serve(req, res, params, q < 0 ? {} : parseQuery(url.slice(q + 1)));
      return true;
    }
    return false;
  };
}

/**
 * Reading V8 `.cpuprofile` files (node --cpu-prof): self time per category (our code by
 * directory, the libraries that matter on the hot path, node internals, GC, idle) and the
 * hottest functions. Self time is attributed from the sample timeline (timeDeltas), so the
 * figures are milliseconds of the profiled thread.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  wallMs: number;
  /** Sampled time that was not idle. */
  busyMs: number;
  byCategory: Array<[string, number]>;
  topFunctions: Array<[string, number]>;
}

const CATEGORIES: Array<[RegExp, string]> = [
  [/\/gateway\//, 'gateway code'],
  [/\/replica\/raft\//, 'replica: raft core'],
  [/\/replica\/storage\//, 'replica: storage'],
  [/\/replica\/transport\//, 'replica: peer transport'],
  [/\/replica\/driver\//, 'replica: raft driver'],
  [/\/replica\//, 'replica: partition / state machine'],
  [/\/protocol\//, 'protocol: client RPC and codecs'],
  [/\/common\/log/, 'logging (common/log)'],
  [/\/common\//, 'common'],
  [
    /node_modules\/(winston|logform|triple-beam|readable-stream|@colors|colors|fecha|safe-stable-stringify)\//,
    'logging (winston)',
  ],
  [
    /node_modules\/(express|router|body-parser|raw-body|on-finished|finalhandler|send|serve-static|qs|type-is|mime|mime-types|content-type|accepts|negotiator|cookie|depd|debug|path-to-regexp|parseurl|encodeurl|escape-html|etag|fresh|vary|proxy-addr|forwarded|ipaddr\.js|media-typer|iconv-lite|statuses|http-errors|content-disposition|merge-descriptors|range-parser|setprototypeof|toidentifier|unpipe|ee-first|on-headers)\//,
    'express + its middleware',
  ],
  [/node_modules\/(ajv|ajv-formats|fast-deep-equal|fast-uri|json-schema-traverse)\//, 'validation (ajv)'],
  [/node_modules\/prom-client\//, 'metrics (prom-client)'],
  [/node_modules\/nats\//, 'nats client'],
  [/node_modules\/@nxtedition\/rocksdb\//, 'rocksdb binding'],
  [/node_modules\/tsx\/|esbuild/, 'tsx loader'],
  [/node_modules\//, 'other libraries'],
  [/^node:_http_|^node:http/, 'node: http server / parser'],
  [/^node:net|^node:internal\/stream_base|^node:internal\/streams|^node:stream/, 'node: sockets + streams'],
  [
    /^node:buffer|^node:internal\/buffer|^node:internal\/encoding|^node:string_decoder/,
    'node: buffers + text encoding',
  ],
  [
    /^node:events|^node:internal\/process\/task_queues|^node:internal\/timers|^node:timers/,
    'node: events, timers, ticks',
  ],
  [/^node:zlib/, 'node: zlib (crc32)'],
  [/^node:internal\/modules|^node:internal\/bootstrap/, 'node: module loading'],
  [/^node:worker_threads|^node:internal\/worker/, 'node: worker messaging'],
  [/^node:|^internal\//, 'node: other'],
];

const NATIVE_BY_NAME: Array<[RegExp, string]> = [
  [/^(writev|writeUtf8String|writeBuffer|writeLatin1String|shutdown|close)$/, 'socket writes (syscalls)'],
  [/^(postMessage|receiveMessageOnPort|drainMessagePort)$/, 'node: worker messaging'],
  [/^(crc32)$/, 'node: zlib (crc32)'],
];

function categorize(f: CallFrame): string {
  const n = f.functionName;
  if (n === '(idle)') return '(idle)';
  if (n === '(garbage collector)') return 'GC';
  if (n === '(program)') return '(program: native, unattributed)';
  if (n === '(root)') return '(root)';
  if (f.url === '') {
    for (const [re, name] of NATIVE_BY_NAME) if (re.test(n)) return name;
    return 'native (builtins, bindings)';
  }
  for (const [re, name] of CATEGORIES) if (re.test(f.url)) return name;
  return 'other';
}

/** Monotonic clock in µs — the clock V8 stamps profiles with (CLOCK_MONOTONIC on Linux). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Self time by category and function; with `fromUs`/`toUs` (monotonicUs() of the benchmark
 * process) only samples inside that window count, so start-up and module loading drop out.
 */
export function summarizeProfile(file: string, fromUs = -Infinity, toUs = Infinity): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  // Sample i is taken at startTime + Σ timeDeltas[0..i]; it stands for the interval up to the next one.
  let t = p.startTime;
  let first = Infinity;
  let last = -Infinity;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    first = Math.min(first, t);
    last = Math.max(last, t);
    const d = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + Math.max(0, d));
  }
  const cat = new Map<string, number>();
  const fn = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const c = categorize(n.callFrame);
    cat.set(c, (cat.get(c) ?? 0) + us);
    if (c !== '(idle)') {
      busy += us;
      const short = n.callFrame.url.replace(/^.*\/(node_modules\/|work\/main\/)/, '').replace(/^file:\/\//, '');
      const key = `${n.callFrame.functionName || '(anonymous)'} ${short}${short ? `:${n.callFrame.lineNumber + 1}` : ''}`;
      fn.set(key, (fn.get(key) ?? 0) + us);
    }
  }
  const sorted = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / 1000] as [string, number]);
  return {
    file,
    wallMs: Number.isFinite(first) ? (last - first) / 1000 : 0,
    busyMs: busy / 1000,
    byCategory: sorted(cat).filter(([k]) => k !== '(idle)' && k !== '(root)'),
    topFunctions: sorted(fn).slice(0, 12),
  };
}

/**
 * Kubernetes Events for every action the operator takes (`kubectl describe topic` shows them).
 * Repeats of the same (object, reason, message) within a window are not re-emitted, so a stuck
 * condition produces one event, not one per reconcile. Emitting is best effort: a failure is
 * logged and never fails a reconcile.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../common/log';
import { RESOURCES, resourcePath, type KubeClient } from '../common/kube';
import { FIELD_MANAGER } from './names';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string };
}

const DEDUPE_WINDOW_MS = 10 * 60_000;
const MAX_REMEMBERED = 10_000;

export class EventRecorder {
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly kube: KubeClient,
    private readonly o: { instance: string; logger: Logger; onEmit?: (reason: string, type: string) => void },
  ) {}

  emit(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const ns = target.metadata.namespace;
    if (!ns) return;
    const key = `${target.metadata.uid ?? target.metadata.name}|${reason}|${message}`;
    const now = Date.now();
    const last = this.recent.get(key);
    if (last !== undefined && now - last < DEDUPE_WINDOW_MS) return;
    this.recent.set(key, now);
    if (this.recent.size > MAX_REMEMBERED)
      for (const [k, t] of this.recent)
        if (now - t >= DEDUPE_WINDOW_MS || this.recent.size > MAX_REMEMBERED) this.recent.delete(k);
    this.o.onEmit?.(reason, type);
    const ts = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${target.metadata.name}.${now.toString(16)}${randomBytes(2).toString('hex')}`, namespace: ns },
      involvedObject: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        name: target.metadata.name,
        namespace: ns,
        ...(target.metadata.uid ? { uid: target.metadata.uid } : {}),
      },
      reason,
      message: message.slice(0, 1024),
      type,
      source: { component: FIELD_MANAGER },
      reportingComponent: `daftka.io/${FIELD_MANAGER}`,
      reportingInstance: this.o.instance,
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    };
    this.kube
      .create(resourcePath(RESOURCES.events, { namespace: ns }), body)
      .catch((err: Error) => this.o.logger.warn('event_emit_failed', { reason, error: err.message }));
  }
}

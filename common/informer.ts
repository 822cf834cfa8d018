/**
 * List-then-watch cache of one resource (client-go's reflector + store, small): lists, watches
 * from the list's resourceVersion with bookmarks, re-watches when the server ends a watch, and
 * lists again when the resourceVersion is too old (410 Gone). Every change is handed to `onEvent`;
 * a relist reports objects that vanished meanwhile as deletions. Errors are retried with a capped,
 * jittered backoff (crash-policy: recoverable).
 */
import { Backoff, sleep } from './backoff';
import type { Logger } from './log';
import { KubeApiError, type KubeClient, type WatchEvent } from './kube';

export interface KObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    creationTimestamp?: string;
  };
}

export type InformerEvent = 'add' | 'update' | 'delete';

export const objectKey = (o: { metadata: { name: string; namespace?: string } }): string =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;

export class Informer<T extends KObject> {
  private readonly store = new Map<string, T>();
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;

  constructor(
    private readonly kube: KubeClient,
    private readonly o: {
      name: string;
      /** Collection paths, e.g. one per watched namespace. */
      paths: string[];
      labelSelector?: string;
      /** E.g. `metadata.name=x`: one object (RBAC can then be limited to its name). */
      fieldSelector?: string;
      logger: Logger;
      onEvent: (type: InformerEvent, obj: T, old?: T) => void;
      /** Secondary index (e.g. by topic label): `byIndex(value)` lists the objects with that value. */
      indexBy?: (obj: T) => string | undefined;
    },
  ) {}

  private readonly index = new Map<string, Map<string, T>>();

  /** Objects whose `indexBy` value is `value`. */
  byIndex(value: string): T[] {
    return [...(this.index.get(value)?.values() ?? [])];
  }

  private reindex(key: string, old: T | undefined, obj: T | undefined): void {
    if (!this.o.indexBy) return;
    const before = old ? this.o.indexBy(old) : undefined;
    const after = obj ? this.o.indexBy(obj) : undefined;
    if (before !== undefined && before !== after) {
      const m = this.index.get(before);
      m?.delete(key);
      if (m && m.size === 0) this.index.delete(before);
    }
    if (after !== undefined) {
      let m = this.index.get(after);
      if (!m) this.index.set(after, (m = new Map()));
      m.set(key, obj!);
    }
  }

  start(): void {
    if (this.running) return;
    let pending = this.o.paths.length;
    const oneSynced = () => {
      if (--pending === 0) {
        this.synced = true;
        for (const w of this.syncWaiters) w();
        this.syncWaiters = [];
      }
    };
    this.running = Promise.all(this.o.paths.map((p) => this.run(p, oneSynced))).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  get size(): number {
    return this.store.size;
  }

  private upsert(obj: T): void {
    const key = objectKey(obj);
    const old = this.store.get(key);
    this.store.set(key, obj);
    this.reindex(key, old, obj);
    if (!old) this.o.onEvent('add', obj);
    else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.o.onEvent('update', obj, old);
  }

  private remove(obj: T): void {
    const key = objectKey(obj);
    const old = this.store.get(key);
    this.store.delete(key);
    this.reindex(key, old, undefined);
    this.o.onEvent('delete', old ?? obj);
  }

  private async run(path: string, onSynced: () => void): Promise<void> {
    const signal = this.abort.signal;
    const backoff = new Backoff({ initialMs: 200, maxMs: 10_000 });
    let first = true;
    let rv: string | null = null;
    while (!signal.aborted) {
      try {
        if (rv === null) {
          const list = await this.kube.list<T>(path, {
            labelSelector: this.o.labelSelector,
            fieldSelector: this.o.fieldSelector,
          });
          const seen = new Set<string>();
          for (const item of list.items) {
            seen.add(objectKey(item));
            this.upsert(item);
          }
          // Objects of this path that vanished while we were not watching.
          for (const [key, obj] of [...this.store]) if (!seen.has(key) && this.belongsTo(obj, path)) this.remove(obj);
          rv = list.resourceVersion;
          if (first) {
            first = false;
            onSynced();
          }
        }
        let gone = false;
        await this.kube.watch<T>(
          path,
          {
            resourceVersion: rv,
            labelSelector: this.o.labelSelector,
            fieldSelector: this.o.fieldSelector,
            timeoutSeconds: 240 + Math.floor(Math.random() * 60),
          },
          (e: WatchEvent<T>) => {
            if (e.type === 'ERROR') {
              const status = e.object as unknown as { code?: number; message?: string };
              if (status.code === 410) gone = true;
              else this.o.logger.warn('watch_error_event', { informer: this.o.name, error: status.message });
              return;
            }
            if (e.object?.metadata?.resourceVersion) rv = e.object.metadata.resourceVersion;
            if (e.type === 'BOOKMARK') return;
            if (e.type === 'DELETED') this.remove(e.object);
            else this.upsert(e.object);
          },
          signal,
        );
        if (gone) rv = null;
        backoff.reset();
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof KubeApiError && err.statusCode === 410) rv = null;
        const delay = backoff.next();
        this.o.logger.warn('informer_retry', {
          informer: this.o.name,
          error: err instanceof KubeApiError ? `${err.message}: ${err.apiMessage}` : (err as Error).message,
          retry_in_ms: delay,
        });
        // After errors other than 410, continue watching from the last resourceVersion.
        await sleep(delay, signal);
      }
    }
  }

  private belongsTo(obj: T, path: string): boolean {
    if (this.o.paths.length === 1) return true;
    const m = /\/namespaces\/([^/]+)\//.exec(path);
    return m ? obj.metadata.namespace === m[1] : true;
  }
}

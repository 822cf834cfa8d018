import { Informer, type KObject } from '../common/informer';
import type { KubeClient } from '../common/kube';
import type { Logger } from '../common/log';
import { CatalogError, parseTopics, StaticCatalog, type TopicCatalog, type TopicInfo } from './catalog';

/**
 * The topic catalog watched from the Kubernetes API: the ConfigMap the operator keeps
 * (operator/catalog.ts, key `topics.json`, the same document as the topics file), read with a
 * list + watch of that one object (`fieldSelector=metadata.name=…`, so the gateway's Role can be
 * limited to its name). A change reaches every gateway pod within a watch event — not after the
 * kubelet's ConfigMap-volume sync (up to a minute or more), so a Topic that turns Ready is usable
 * through every gateway at once.
 *
 * A document that does not parse is logged and counted, and the last good catalog stays in use;
 * a deleted ConfigMap also keeps the last catalog (the operator writes it again). Until the first
 * good document arrives the catalog is not ready (/readyz says so) and lists no topics.
 */
export const CATALOG_CONFIGMAP_KEY = 'topics.json';

interface ConfigMapObject extends KObject {
  data?: Record<string, string>;
}

export interface ConfigMapCatalogOptions {
  kube: KubeClient;
  namespace: string;
  name: string;
  logger: Logger;
  /** After every accepted or refused document (metrics, tests). */
  onReload?: (outcome: { ok: true; topics: number } | { ok: false; error: string }) => void;
}

export class ConfigMapCatalog implements TopicCatalog {
  private readonly inner = new StaticCatalog([]);
  private loaded = false;
  private lastText: string | undefined;
  private readonly informer: Informer<ConfigMapObject>;

  constructor(private readonly o: ConfigMapCatalogOptions) {
    this.informer = new Informer<ConfigMapObject>(o.kube, {
      name: 'catalog',
      paths: [`/api/v1/namespaces/${encodeURIComponent(o.namespace)}/configmaps`],
      fieldSelector: `metadata.name=${o.name}`,
      logger: o.logger,
      onEvent: (type, obj) => {
        if (type === 'delete') {
          o.logger.warn('catalog_configmap_deleted', { configmap: `${o.namespace}/${o.name}` });
          return;
        }
        this.accept(obj.data?.[CATALOG_CONFIGMAP_KEY]);
      },
    });
  }

  start(): void {
    this.informer.start();
  }

  /** Resolves once the first list is in (whatever it held). */
  waitForSync(): Promise<void> {
    return this.informer.waitForSync();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  private accept(text: string | undefined): void {
    if (text === this.lastText) return;
    this.lastText = text;
    const where = `ConfigMap ${this.o.namespace}/${this.o.name} key ${CATALOG_CONFIGMAP_KEY}`;
    let topics: TopicInfo[];
    try {
      if (text === undefined) throw new CatalogError(`${where} is missing`);
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch (err) {
        throw new CatalogError(`${where} is not JSON: ${(err as Error).message}`);
      }
      topics = parseTopics(doc, where);
    } catch (err) {
      const error = (err as Error).message;
      this.o.logger.error('catalog_rejected', { error, kept_topics: this.inner.list().length });
      this.o.onReload?.({ ok: false, error });
      return;
    }
    this.inner.replace(topics);
    this.loaded = true;
    this.o.logger.info('topics_reloaded', { topics: topics.length, source: 'configmap' });
    this.o.onReload?.({ ok: true, topics: topics.length });
  }

  list(): TopicInfo[] {
    return this.inner.list();
  }

  get(name: string): TopicInfo | undefined {
    return this.inner.get(name);
  }

  ready(): boolean {
    return this.loaded;
  }
}

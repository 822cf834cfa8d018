/**
 * The gateway's topic catalog (gateway/catalog.ts topics file) kept in a ConfigMap that the gateway
 * mounts: every Topic the operator manages, with its partition count, limits, quotas, access lists
 * and the client endpoints of its replicas (stable pod DNS names). Written with server-side apply,
 * only when the content changes.
 *
 * Next to it, the gateway's client keys Secret: every topic's client key (hex, one data key per
 * topic), which the gateway proves to the topic's replicas (gateway/kube-keyring.ts). Both objects
 * are made empty by the chart; the operator only patches them, by name.
 */
import { catalogEntry } from '../common/topic-spec';
import type { Topic } from './crd-schema';
import { topicReplicas, type KubeObject, type ReplicaSettings } from './desired';
import { RESOURCES, resourcePath, type KubeClient } from '../common/kube';
import { FIELD_MANAGER } from './names';

export const CATALOG_KEY = 'topics.json';

export function renderCatalog(topics: readonly Topic[], settings: Omit<ReplicaSettings, 'namespace'>): string {
  const entries = [...topics]
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map((t) =>
      catalogEntry(t.metadata.name, t.spec, topicReplicas(t, { ...settings, namespace: t.metadata.namespace! })),
    );
  return JSON.stringify({ topics: entries }, null, 1);
}

export class CatalogWriter {
  private last = '';

  constructor(
    private readonly kube: KubeClient,
    private readonly o: { namespace: string; name: string },
  ) {}

  /** Applies the ConfigMap when the content changed; true when it wrote. */
  async write(content: string): Promise<boolean> {
    if (content === this.last) return false;
    await this.kube.apply(
      resourcePath(RESOURCES.configmaps, { namespace: this.o.namespace, name: this.o.name }),
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: this.o.name, namespace: this.o.namespace },
        data: { [CATALOG_KEY]: content },
      },
      FIELD_MANAGER,
    );
    this.last = content;
    return true;
  }
}

/**
 * The gateway's client keys Secret: topic → its client key in hex (common/topic-credentials.ts).
 * Server-side apply owns every data key it wrote, so a topic left out (deleted) loses its key.
 */
export function desiredGatewayClientKeys(
  o: { namespace: string; name: string },
  keys: ReadonlyMap<string, string>,
): KubeObject {
  const data: Record<string, string> = {};
  for (const topic of [...keys.keys()].sort()) data[topic] = Buffer.from(keys.get(topic)!, 'utf8').toString('base64');
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: o.name, namespace: o.namespace },
    type: 'Opaque',
    data,
  };
}

export class ClientKeysWriter {
  private last = '';

  constructor(
    private readonly kube: KubeClient,
    private readonly o: { namespace: string; name: string },
  ) {}

  /** Applies the Secret when the keys changed; true when it wrote. */
  async write(keys: ReadonlyMap<string, string>): Promise<boolean> {
    const obj = desiredGatewayClientKeys(this.o, keys);
    const content = JSON.stringify(obj.data);
    if (content === this.last) return false;
    await this.kube.apply(
      resourcePath(RESOURCES.secrets, { namespace: this.o.namespace, name: this.o.name }),
      obj,
      FIELD_MANAGER,
    );
    this.last = content;
    return true;
  }
}

import { Informer, type KObject } from '../common/informer';
import type { KubeClient } from '../common/kube';
import type { Logger } from '../common/log';
import { clientKeysFromSecretData } from '../common/topic-credentials';

/**
 * Every topic's client key, from the Secret the operator keeps in its namespace (operator/catalog.ts
 * `desiredGatewayClientKeys`: a data key per topic, the key in hex), read with a list + watch of
 * that one object (`fieldSelector=metadata.name=…`), so the gateway's Role is limited to its
 * name: it reads no other Secret — not the topics' peer secrets, nothing of the tenants'. A key
 * reaches every gateway pod within a watch event; the operator publishes it before the topic
 * enters the catalog. Keys are looked up at each new replica connection (protocol/rpc-auth.ts
 * `RpcClientAuth.keyFor`), so a changed key is used without a restart.
 *
 * A deleted Secret keeps the last keys (the operator writes it again); log lines name topics and
 * counts, never key material.
 */
interface SecretObject extends KObject {
  data?: Record<string, string>;
}

export interface SecretKeyringOptions {
  kube: KubeClient;
  namespace: string;
  name: string;
  logger: Logger;
  /** After every change of the key set (metrics, tests). */
  onChange?: (topics: number) => void;
}

export class SecretKeyring {
  private keys = new Map<string, Buffer>();
  private synced = false;
  private readonly informer: Informer<SecretObject>;

  constructor(private readonly o: SecretKeyringOptions) {
    this.informer = new Informer<SecretObject>(o.kube, {
      name: 'client-keys',
      paths: [`/api/v1/namespaces/${encodeURIComponent(o.namespace)}/secrets`],
      fieldSelector: `metadata.name=${o.name}`,
      logger: o.logger,
      onEvent: (type, obj) => {
        if (type === 'delete') {
          o.logger.warn('client_keys_secret_deleted', { secret: `${o.namespace}/${o.name}` });
          return;
        }
        this.accept(obj.data);
      },
    });
  }

  start(): void {
    this.informer.start();
    void this.informer.waitForSync().then(() => (this.synced = true));
  }

  /** True once the first list is in: until then the gateway is not ready (it could prove no key). */
  ready(): boolean {
    return this.synced;
  }

  /** Resolves once the first list is in (whatever it held). */
  waitForSync(): Promise<void> {
    return this.informer.waitForSync();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  private accept(data: Record<string, string> | undefined): void {
    const next = clientKeysFromSecretData(data);
    const same = next.size === this.keys.size && [...next].every(([t, k]) => this.keys.get(t)?.equals(k) === true);
    if (same) return;
    this.keys = next;
    this.o.logger.info('client_keys_reloaded', { topics: next.size });
    this.o.onChange?.(next.size);
  }

  /** The client key of a topic, when the operator published one. */
  readonly keyFor = (topic: string): Buffer | undefined => this.keys.get(topic);
}

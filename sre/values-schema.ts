/**
 * The JSON Schema of the Helm chart's values (helm/daftka/values.schema.json, written by
 * sre/gen.ts). Helm checks values against it on install, upgrade, template and lint, and refuses
 * wrong ones naming the value: an unknown key (typo), a wrong type, a number out of range, a value
 * outside its list, a missing NATS credentials Secret. Generated from code so that the list of
 * alert names that `monitoring.prometheusRule.disabledAlerts` accepts is always the real one.
 */
import { ALERT_NAMES } from './alerts';

type Schema = Record<string, unknown>;

const obj = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({
  type: 'object',
  additionalProperties: false,
  properties,
  ...extra,
});
const str = (description: string, extra: Schema = {}): Schema => ({ type: 'string', description, ...extra });
const int = (description: string, minimum: number, maximum?: number): Schema => ({
  type: 'integer',
  description,
  minimum,
  ...(maximum !== undefined ? { maximum } : {}),
});
const bool = (description: string): Schema => ({ type: 'boolean', description });
const enumOf = (description: string, values: readonly (string | number | boolean)[]): Schema => ({
  description,
  enum: values,
});

/** A Kubernetes quantity (10Gi, 500m, 1.5): what resources and storage sizes take. */
const QUANTITY = '^[0-9]+(\\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$';
const quantity = (description: string): Schema => ({
  description,
  anyOf: [
    { type: 'string', pattern: QUANTITY },
    { type: 'number', minimum: 0 },
  ],
});
const resources = (what: string): Schema =>
  obj(
    {
      requests: { type: 'object', additionalProperties: quantity('a quantity'), description: `${what} requests` },
      limits: { type: 'object', additionalProperties: quantity('a quantity'), description: `${what} limits` },
    },
    { description: `Container resources of ${what}` },
  );
/** Objects passed through to Kubernetes as they are (nodeSelector, affinity, …). */
const passThrough = (description: string): Schema => ({ type: 'object', description });
const list = (description: string, items: Schema = {}): Schema => ({ type: 'array', description, items });
const stringMap = (description: string): Schema => ({
  type: 'object',
  description,
  additionalProperties: { type: ['string', 'number', 'boolean'] },
});
const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
const DNS_LABEL = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';

const podPlacement = (what: string) => ({
  podAnnotations: stringMap(`Annotations of ${what} pods`),
  nodeSelector: stringMap(`nodeSelector of ${what} pods`),
  tolerations: list(`Tolerations of ${what} pods`, { type: 'object' }),
  affinity: passThrough(`Affinity of ${what} pods (default: spread over nodes)`),
  priorityClassName: str(`PriorityClass of ${what} pods`),
});

export function valuesSchema(): Schema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'Daftka Helm chart values',
    ...obj({
      image: obj({
        repository: str('Image repository of all three programs', { minLength: 1 }),
        tag: str('Image tag; empty = the chart appVersion'),
        digest: str('Image digest (sha256:…); used instead of the tag when set', {
          pattern: '^(sha256:[a-f0-9]{64})?$',
        }),
        pullPolicy: enumOf('Image pull policy', ['Always', 'IfNotPresent', 'Never']),
      }),
      imagePullSecrets: list(
        'Image pull Secrets',
        obj({ name: str('Secret name', { minLength: 1 }) }, { required: ['name'] }),
      ),
      nameOverride: str('Replaces the chart name in object names', { pattern: `^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$` }),
      fullnameOverride: str('Replaces <release>-daftka in object names', {
        pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$',
        maxLength: 50,
      }),
      clusterDomain: str('DNS suffix of Services', { pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' }),
      securityContext: obj({ runAsUser: int('UID/GID of every Daftka pod (non-root)', 1, 2147483647) }),
      crds: obj({
        install: bool('Install and upgrade the CRDs and the deletion-protection policy'),
        keep: bool('Keep the CRDs (and every Topic) on helm uninstall'),
      }),
      operator: obj({
        replicas: int('Operator pods (one active, the others stand by)', 1, 5),
        logLevel: enumOf('Log level', LOG_LEVELS),
        watchNamespaces: list(
          'Namespaces whose Topics are reconciled (a Role in each); empty = the release namespace, or every namespace with clusterScope',
          { type: 'string', pattern: DNS_LABEL },
        ),
        clusterScope: bool(
          'true: a ClusterRole (workloads and Secrets in every namespace) instead of a Role per watched namespace',
        ),
        adminSecret: str(
          "Existing Secret with key admin-secret (the installation's admin secret, at least 32 characters); empty = the chart makes one",
          { pattern: `^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$` },
        ),
        leaseDurationSeconds: int('Leader-election Lease duration, in seconds', 5, 300),
        renewDeadlineSeconds: int('Leader-election renew deadline, in seconds (below the Lease duration)', 2, 299),
        metricsPort: int('Port of /metrics, /healthz, /readyz', 1024, 65535),
        resources: resources('the operator'),
        ...podPlacement('operator'),
      }),
      replica: obj({
        resources: resources('replicas (a Topic spec.resources wins)'),
        storage: obj({
          size: {
            type: 'string',
            pattern: QUANTITY,
            description: 'PVC size per replica (a Topic spec.storage.size wins)',
          },
          storageClassName: str('StorageClass of replica PVCs; empty = the default class'),
        }),
        antiAffinity: enumOf('required: replicas of a partition never share a node; preferred: best effort', [
          'required',
          'preferred',
        ]),
        terminationGracePeriodSeconds: int(
          'Time a replica gets on SIGTERM (leadership transfer, flush), in seconds',
          5,
          600,
        ),
        fsync: enumOf('always: fsync before every acknowledgement; interval: weaker (docs/storage.md)', [
          'always',
          'interval',
        ]),
        logLevel: enumOf('Log level', LOG_LEVELS),
        extraEnv: {
          type: 'object',
          description: 'More replica environment: DAFTKA_* keys of replica/config.ts',
          patternProperties: { '^DAFTKA_[A-Z0-9_]+$': { type: ['string', 'number', 'boolean'] } },
          additionalProperties: false,
        },
        natsUrlFromSecret: bool(
          'Replica pods read their NATS URL from the credentials Secret (which must exist in each Topic namespace)',
        ),
        tls: obj({
          secretName: str(
            'kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) in every Topic namespace: TLS on the client port, mutual TLS on the peer port; empty = plain TCP',
            { pattern: `^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$` },
          ),
          serverName: str(
            "Name every replica certificate carries, checked by replicas and the gateway; empty = each pod's DNS name",
            { pattern: `^([A-Za-z0-9.*-]{1,253})?$` },
          ),
          caSecretName: str(
            'Secret in the release namespace whose ca.crt the gateway trusts for replicas; empty = secretName',
            { pattern: `^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$` },
          ),
        }),
      }),
      gateway: obj({
        replicas: int('Gateway pods (ignored with hpa.enabled)', 1, 1000),
        port: int('Container port of the HTTP API', 1024, 65535),
        metricsPort: int('Container port of /metrics (not served on the API port)', 1024, 65535),
        logLevel: enumOf('Log level', LOG_LEVELS),
        auth: obj({
          // YAML 1.1 reads an unquoted `off` as false: that means "off" too.
          mode: enumOf('off: no authentication (every client may do everything); tokens: bearer tokens', [
            'off',
            'tokens',
            false,
          ]),
          tokensSecret: str('Existing Secret with key tokens.json; empty = the chart makes one admin token', {
            pattern: `^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$`,
          }),
        }),
        requestTimeoutMs: int('Produce commit deadline, in ms', 100, 120000),
        maxBodyBytes: int('Largest request body, in bytes', 1024, 268435456),
        extraEnv: {
          type: 'object',
          description: 'More gateway environment: DAFTKA_GATEWAY_* keys of gateway/config.ts',
          patternProperties: { '^DAFTKA_[A-Z0-9_]+$': { type: ['string', 'number', 'boolean'] } },
          additionalProperties: false,
        },
        tls: obj({
          secretName: str(
            'kubernetes.io/tls Secret (tls.crt, tls.key) in the release namespace: HTTPS on the API port; empty = plain HTTP',
            { pattern: `^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$` },
          ),
        }),
        service: obj({
          type: enumOf('Service type', ['ClusterIP', 'NodePort', 'LoadBalancer']),
          port: int('Service port', 1, 65535),
          annotations: stringMap('Service annotations'),
        }),
        pdb: obj({
          enabled: bool('PodDisruptionBudget'),
          minAvailable: int('Gateways kept up during voluntary disruptions', 0, 1000),
        }),
        hpa: obj({
          enabled: bool('HorizontalPodAutoscaler on CPU'),
          minReplicas: int('Fewest gateways', 1, 1000),
          maxReplicas: int('Most gateways', 1, 1000),
          targetCPUUtilizationPercentage: int('Target CPU utilisation, in %', 10, 100),
        }),
        resources: resources('gateways'),
        ...podPlacement('gateway'),
      }),
      nats: obj(
        {
          bundled: obj({
            enabled: bool('Run a minimal NATS in this release'),
            replicas: enumOf('NATS servers: 1, or 3 (clustered)', [1, 3]),
            image: obj({
              repository: str('NATS image repository', { minLength: 1 }),
              tag: str('NATS image tag', { minLength: 1 }),
              pullPolicy: enumOf('Image pull policy', ['Always', 'IfNotPresent', 'Never']),
            }),
            resources: resources('NATS'),
            nodeSelector: stringMap('nodeSelector of NATS pods'),
            tolerations: list('Tolerations of NATS pods', { type: 'object' }),
            affinity: passThrough('Affinity of NATS pods'),
          }),
          external: obj({
            credentialsSecret: str(
              'Secret with keys operator-url, replica-url, gateway-url (nats:// URLs with credentials)',
              {
                pattern: `^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$`,
              },
            ),
          }),
        },
        {
          // An existing NATS needs its credentials Secret.
          if: { properties: { bundled: { properties: { enabled: { const: false } } } } },
          then: {
            properties: {
              external: { required: ['credentialsSecret'], properties: { credentialsSecret: { minLength: 1 } } },
            },
          },
        },
      ),
      networkPolicy: obj({
        enabled: bool('NetworkPolicies for replicas, gateway, operator and NATS'),
        gatewayFrom: list('NetworkPolicyPeers allowed to call the gateway; empty = anyone', { type: 'object' }),
        metricsFrom: list('NetworkPolicyPeers allowed to scrape /metrics; empty = any namespace', { type: 'object' }),
        replicaNamespaces: list('More namespaces to protect replica pods in (with watchNamespaces empty)', {
          type: 'string',
          pattern: DNS_LABEL,
        }),
      }),
      // Helm passes a parent chart's `global` values to a subchart.
      global: { type: 'object', description: 'Values shared with a parent chart (unused)' },
      monitoring: obj({
        podMonitors: obj({
          enabled: bool('Prometheus-operator PodMonitors (jobs daftka-replica, daftka-gateway, daftka-operator)'),
          interval: str('Scrape interval', { pattern: '^[0-9]+(ms|s|m|h)$' }),
          labels: stringMap('Extra labels (your Prometheus selector)'),
        }),
        prometheusRule: obj({
          enabled: bool('Alert and SLO recording rules as a PrometheusRule'),
          labels: stringMap('Extra labels (your Prometheus rule selector)'),
          runbookBaseUrl: str('runbook_url prefix; <runbookBaseUrl><AlertName>.md', { pattern: '^https?://.+/$' }),
          disabledAlerts: list('Alerts to leave out', { enum: [...ALERT_NAMES] }),
          extraAlertLabels: stringMap('Labels added to every alert'),
        }),
        grafanaDashboards: obj({
          enabled: bool('Grafana dashboards as ConfigMaps for the dashboard sidecar'),
          labels: stringMap('Labels the sidecar selects on'),
          annotations: stringMap('Annotations (e.g. the sidecar folder)'),
          namespace: str('Namespace of the ConfigMaps; empty = the release namespace', {
            pattern: `^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`,
          }),
        }),
      }),
    }),
  };
}

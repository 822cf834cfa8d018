/**
 * JSON schemas for kubeconform, made locally (no network): the built-in kinds from a real
 * kube-apiserver's /openapi/v2, and our custom resources from the CRD files in crds/.
 *
 * Layout (kubeconform's own naming, so one -schema-location covers built-ins and CRDs):
 *   <outDir>/standalone/<kind><suffix>.json          lenient
 *   <outDir>/standalone-strict/<kind><suffix>.json   additionalProperties: false (kubeconform -strict)
 * where <suffix> is "-<version>" for the core group and "-<first label of group>-<version>" otherwise,
 * e.g. statefulset-apps-v1.json, configmap-v1.json, topic-daftka-v1alpha1.json.
 *
 *   const { schemaLocation } = await ensureKubeconformSchemas({ outDir, crdDir: 'crds' });
 *   runTool('kubeconform', ['-strict', '-summary', '-schema-location', schemaLocation, 'out.yaml']);
 *
 * CLI: npx tsx test/helpers/k8s-schemas.ts [--crds crds] [--out DIR]  (prints the -schema-location)
 */
import * as k8s from '@kubernetes/client-node';
// Comes with @kubernetes/client-node; its own loadAllYaml would turn CRDs into typed objects whose
// keys (x_kubernetes_validations, ref, _default) are not the JSON Schema ones.
import { loadAll } from 'js-yaml';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { startK8sEnv } from './k8s-env';
import { readToolVersions, REPO_ROOT, toolsCacheDir } from './k8s-tools';

type Schema = Record<string, unknown>;
interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}
interface OpenApiV2 {
  definitions: Record<string, Schema>;
}

const SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';
const REF_PREFIX = '#/definitions/';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';

/** The -schema-location template for a directory written by writeKubeconformSchemas. */
export function kubeconformSchemaLocation(outDir: string): string {
  return path.join(path.resolve(outDir), 'standalone{{ .StrictSuffix }}', '{{ .ResourceKind }}{{ .KindSuffix }}.json');
}

/** The file name kubeconform looks for (its registry.go: ResourceKind + KindSuffix). */
export function schemaFileName({ group, version, kind }: GroupVersionKind): string {
  const suffix = group ? `-${group.split('.')[0]}-${version}` : `-${version}`;
  return `${kind}${suffix}.json`.toLowerCase();
}

const isObject = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Rewrites one OpenAPI (v2 or CRD v3) schema node into JSON Schema as kubeconform validates it:
 * int-or-string and Quantity accept numbers, optional fields accept null (as YAML `key:` and
 * Helm's empty values render), and in strict mode objects refuse unknown fields.
 */
function convert(node: unknown, strict: boolean, required = true): unknown {
  if (Array.isArray(node)) return node.map((n) => convert(n, strict));
  if (!isObject(node)) return node;
  if (node['format'] === 'int-or-string' || node['x-kubernetes-int-or-string'] === true) {
    const { type: _type, format: _format, ...rest } = node;
    return { ...stripExtensions(rest), oneOf: [{ type: 'string' }, { type: 'integer' }] };
  }
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('x-kubernetes-') || key === 'nullable') continue;
    if (key === 'properties' && isObject(value)) {
      const req = new Set(Array.isArray(node['required']) ? (node['required'] as string[]) : []);
      out.properties = Object.fromEntries(
        Object.entries(value).map(([name, prop]) => [name, convert(prop, strict, req.has(name))]),
      );
    } else if (key === 'additionalProperties' || key === 'items' || key === 'not') {
      out[key] = convert(value, strict);
    } else if (key === 'allOf' || key === 'anyOf' || key === 'oneOf') {
      out[key] = convert(value, strict);
    } else {
      out[key] = value;
    }
  }
  const nullable = node['nullable'] === true || !required;
  if (nullable && typeof out.type === 'string') out.type = [out.type, 'null'];
  const preserveUnknown = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (strict && !preserveUnknown && isObject(out.properties) && out.additionalProperties === undefined) {
    out.additionalProperties = false;
  }
  if (node['x-kubernetes-embedded-resource'] === true && isObject(out.properties)) {
    // apiVersion, kind and metadata of an embedded object are implied, not listed in the schema.
    out.properties = {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      ...out.properties,
    };
  }
  return out;
}

function stripExtensions(node: Schema): Schema {
  return Object.fromEntries(Object.entries(node).filter(([k]) => !k.startsWith('x-kubernetes-') && k !== 'nullable'));
}

/** Names of the definitions reachable from `root` through $ref. */
function refClosure(root: string, definitions: Record<string, Schema>): Set<string> {
  const seen = new Set<string>();
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (isObject(node)) {
      const ref = node['$ref'];
      if (typeof ref === 'string' && ref.startsWith(REF_PREFIX)) {
        const name = ref.slice(REF_PREFIX.length);
        if (!seen.has(name) && definitions[name]) {
          seen.add(name);
          visit(definitions[name]);
        }
      }
      Object.values(node).forEach(visit);
    }
  };
  seen.add(root);
  visit(definitions[root]);
  return seen;
}

/** Pins apiVersion and kind of a top-level schema to its one GVK. */
function pinGvk(schema: Schema, gvk: GroupVersionKind): Schema {
  const props = isObject(schema.properties) ? schema.properties : {};
  const apiVersion = gvk.group ? `${gvk.group}/${gvk.version}` : gvk.version;
  return {
    ...schema,
    properties: {
      ...props,
      apiVersion: { ...(isObject(props.apiVersion) ? props.apiVersion : {}), type: 'string', enum: [apiVersion] },
      kind: { ...(isObject(props.kind) ? props.kind : {}), type: 'string', enum: [gvk.kind] },
    },
  };
}

export interface SchemaFile {
  fileName: string;
  /** The OpenAPI definition name, or the CRD file, the schema comes from. */
  source: string;
  lenient: Schema;
  strict: Schema;
}

/** One schema file per GroupVersionKind in an apiserver's /openapi/v2 document. */
export function schemasFromOpenApiV2(doc: OpenApiV2): SchemaFile[] {
  const defs = { ...doc.definitions };
  // Quantity is a string in the OpenAPI document, but `cpu: 1` is valid YAML for it.
  if (defs[QUANTITY]) defs[QUANTITY] = { oneOf: [{ type: 'string' }, { type: 'number' }] };
  const files = new Map<string, SchemaFile>();
  for (const [name, def] of Object.entries(defs)) {
    const gvks = def['x-kubernetes-group-version-kind'];
    if (!Array.isArray(gvks)) continue;
    const closure = [...refClosure(name, defs)].filter((n) => n !== name);
    for (const gvk of gvks as GroupVersionKind[]) {
      const fileName = schemaFileName(gvk);
      // The meta/v1 kinds (Status, WatchEvent, DeleteOptions...) list every group; a real kind wins.
      if (files.has(fileName) && gvks.length > 1) continue;
      const make = (strict: boolean): Schema => ({
        $schema: SCHEMA_DRAFT,
        ...(gvks.length === 1 ? pinGvk(convert(def, strict) as Schema, gvk) : (convert(def, strict) as Schema)),
        definitions: Object.fromEntries(closure.map((n) => [n, convert(defs[n], strict)])),
      });
      files.set(fileName, { fileName, source: name, lenient: make(false), strict: make(true) });
    }
  }
  return [...files.values()];
}

/** One schema file per served version of each CustomResourceDefinition in the YAML/JSON files of crdDir. */
export function schemasFromCrds(crdDir: string): SchemaFile[] {
  const files: SchemaFile[] = [];
  if (!fs.existsSync(crdDir)) return files;
  for (const entry of fs.readdirSync(crdDir).sort()) {
    if (!/\.(ya?ml|json)$/.test(entry)) continue;
    const file = path.join(crdDir, entry);
    for (const doc of loadAll(fs.readFileSync(file, 'utf8'))) {
      if (!isObject(doc) || doc.kind !== 'CustomResourceDefinition') continue;
      const crd = doc as unknown as k8s.V1CustomResourceDefinition;
      for (const version of crd.spec.versions ?? []) {
        const root = version.schema?.openAPIV3Schema as unknown as Schema | undefined;
        if (!root) throw new Error(`${file}: ${crd.metadata?.name} ${version.name} has no openAPIV3Schema`);
        const gvk = { group: crd.spec.group, version: version.name, kind: crd.spec.names.kind };
        const withMeta = (s: Schema): Schema => {
          // metadata is checked by the apiserver itself, whatever the CRD schema says about it.
          const props = isObject(s.properties) ? s.properties : {};
          return { ...s, properties: { ...props, metadata: { type: 'object' } } };
        };
        const make = (strict: boolean): Schema => ({
          $schema: SCHEMA_DRAFT,
          ...pinGvk(withMeta(convert(root, strict) as Schema), gvk),
        });
        files.push({ fileName: schemaFileName(gvk), source: file, lenient: make(false), strict: make(true) });
      }
    }
  }
  return files;
}

/** Writes the files under <outDir>/standalone and <outDir>/standalone-strict; returns the -schema-location. */
export function writeKubeconformSchemas(outDir: string, files: SchemaFile[]): string {
  for (const [sub, pick] of [
    ['standalone', (f: SchemaFile) => f.lenient],
    ['standalone-strict', (f: SchemaFile) => f.strict],
  ] as const) {
    const dir = path.join(outDir, sub);
    fs.mkdirSync(dir, { recursive: true });
    for (const f of files) fs.writeFileSync(path.join(dir, f.fileName), JSON.stringify(pick(f)));
  }
  return kubeconformSchemaLocation(outDir);
}

/** GET <server>/openapi/v2 as JSON with the credentials of kc. */
export async function fetchOpenApiV2(kc: k8s.KubeConfig): Promise<OpenApiV2> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('fetchOpenApiV2: the kubeconfig has no current cluster');
  const options: https.RequestOptions = { headers: { Accept: 'application/json' } };
  await kc.applyToHTTPSOptions(options);
  const url = new URL('/openapi/v2', cluster.server);
  return new Promise((resolve, reject) => {
    const req = https.get(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) reject(new Error(`GET ${url}: ${res.statusCode} ${body.slice(0, 500)}`));
        else {
          try {
            resolve(JSON.parse(body) as OpenApiV2);
          } catch (err) {
            reject(err);
          }
        }
      });
    });
    req.on('error', reject);
  });
}

/**
 * The apiserver's /openapi/v2 for the pinned Kubernetes version, cached under the tools cache
 * (it only depends on the version): when missing, starts a bare etcd + kube-apiserver to get it.
 */
export async function cachedOpenApiV2(): Promise<OpenApiV2> {
  const version = readToolVersions().KUBERNETES_VERSION;
  const file = path.join(toolsCacheDir(), 'schemas', `kubernetes-${version}`, 'openapi-v2.json');
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as OpenApiV2;
  const env = await startK8sEnv();
  try {
    const doc = await fetchOpenApiV2(env.kc);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.tmp${process.pid}`, JSON.stringify(doc));
    fs.renameSync(`${file}.tmp${process.pid}`, file);
    return doc;
  } finally {
    await env.stop();
  }
}

export interface KubeconformSchemas {
  /** Pass as `kubeconform -schema-location <this>` (with or without -strict). */
  schemaLocation: string;
  outDir: string;
  /** File names written (per variant), e.g. statefulset-apps-v1.json. */
  fileNames: string[];
}

/**
 * Writes kubeconform schemas for every built-in kind (from `openapi`, else from the cached
 * /openapi/v2 of the pinned version) and every CRD in crdDir (default: the repo's crds/).
 * A CRD file replaces what the apiserver serves for the same kind (the CRD may be installed there, in
 * an older version); a CRD named like a built-in Kubernetes kind is an error.
 */
export async function ensureKubeconformSchemas(options: {
  outDir: string;
  crdDir?: string;
  openapi?: OpenApiV2;
}): Promise<KubeconformSchemas> {
  const builtin = schemasFromOpenApiV2(options.openapi ?? (await cachedOpenApiV2()));
  const crds = schemasFromCrds(options.crdDir ?? path.join(REPO_ROOT, 'crds'));
  const byName = new Map(builtin.map((f) => [f.fileName, f]));
  for (const f of crds) {
    const clash = byName.get(f.fileName);
    if (clash?.source.startsWith('io.k8s.')) {
      throw new Error(`${f.source}: schema ${f.fileName} would replace the built-in ${clash.source}`);
    }
    byName.set(f.fileName, f);
  }
  const files = [...byName.values()];
  const schemaLocation = writeKubeconformSchemas(options.outDir, files);
  return { schemaLocation, outDir: path.resolve(options.outDir), fileNames: files.map((f) => f.fileName) };
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const flag = (name: string, fallback: string): string => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
  };
  const outDir = flag('--out', path.join(toolsCacheDir(), 'schemas', 'kubeconform'));
  const crdDir = flag('--crds', path.join(REPO_ROOT, 'crds'));
  ensureKubeconformSchemas({ outDir, crdDir }).then(
    (res) => {
      process.stderr.write(`wrote ${res.fileNames.length} schemas to ${res.outDir}\n`);
      process.stdout.write(`${res.schemaLocation}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}

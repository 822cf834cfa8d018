import { load, loadAll } from 'js-yaml';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { partitionCrd, topicCrd } from '../../../operator/crd-schema';
import { CRD_DIR, OPERATOR_DOC, renderCrdFiles, renderOperatorDoc } from '../../../operator/generate';

/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML */

describe('crds/ is generated from operator/crd-schema.ts', () => {
  it('docs/operator.md has the configuration table the schema renders (run `npx tsx operator/generate.ts`)', async () => {
    const doc = readFileSync(OPERATOR_DOC, 'utf8');
    expect(doc).toBe(await renderOperatorDoc(doc));
  });

  it('the committed YAML is what the schema generates (run `npx tsx operator/generate.ts`)', async () => {
    const files = await renderCrdFiles();
    expect(Object.keys(files).sort()).toEqual([
      'partitions.daftka.io.yaml',
      'topic-deletion-protection.yaml',
      'topics.daftka.io.yaml',
    ]);
    for (const [name, text] of Object.entries(files)) expect(readFileSync(join(CRD_DIR, name), 'utf8')).toBe(text);
  });

  it('the YAML parses back to the TS objects (nothing lost in rendering)', () => {
    expect(load(readFileSync(join(CRD_DIR, 'topics.daftka.io.yaml'), 'utf8'))).toEqual(topicCrd());
    expect(load(readFileSync(join(CRD_DIR, 'partitions.daftka.io.yaml'), 'utf8'))).toEqual(partitionCrd());
    const vap = loadAll(readFileSync(join(CRD_DIR, 'topic-deletion-protection.yaml'), 'utf8')) as any[];
    expect(vap.map((d) => d.kind)).toEqual(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
  });
});

describe('Topic CRD', () => {
  const v = topicCrd().spec.versions[0] as any;
  const spec = v.schema.openAPIV3Schema.properties.spec;

  it('serves v1alpha1 as the storage version with a status subresource and the printer columns', () => {
    expect([v.name, v.served, v.storage]).toEqual(['v1alpha1', true, true]);
    expect(v.subresources).toEqual({ status: {} });
    expect(v.additionalPrinterColumns.map((c: any) => c.name)).toEqual([
      'Partitions',
      'RF',
      'Ready',
      'Leaderless',
      'URP',
      'Age',
    ]);
  });

  it('refuses decreasing partitions and changing the replication factor, saying what to do instead', () => {
    const rules = spec['x-kubernetes-validations'];
    expect(rules.map((r: any) => r.rule)).toEqual([
      'self.partitions >= oldSelf.partitions',
      'has(self.storage) == has(oldSelf.storage) && (!has(self.storage) || self.storage == oldSelf.storage)',
      'self.replicationFactor == oldSelf.replicationFactor',
    ]);
    for (const r of rules) expect(r.message).toMatch(/create a new topic/);
    expect(spec.properties.replicationFactor['x-kubernetes-validations'][0].rule).toBe('self in [1, 3, 5, 7]');
  });

  it("defaults: 3 partitions, RF 3, Retain, no deletion protection; storage from the operator's settings", () => {
    expect(spec.properties.partitions.default).toBe(3);
    expect(spec.properties.replicationFactor.default).toBe(3);
    expect(spec.properties.storage.default).toBeUndefined();
    expect(spec.properties.deletionPolicy).toMatchObject({ enum: ['Retain', 'Delete'], default: 'Retain' });
    expect(spec.properties.deletionProtection.default).toBe(false);
  });

  it('checks names: a DNS label that fits StatefulSet names', () => {
    const rule = v.schema.openAPIV3Schema['x-kubernetes-validations'][0];
    expect(rule.rule).toBe(
      "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 48",
    );
  });

  it('conditions are a map keyed by type (server-side apply merges them one by one)', () => {
    const conds = v.schema.openAPIV3Schema.properties.status.properties.conditions;
    expect(conds['x-kubernetes-list-type']).toBe('map');
    expect(conds['x-kubernetes-list-map-keys']).toEqual(['type']);
    expect(conds.items.required).toEqual(['type', 'status', 'reason', 'message', 'lastTransitionTime']);
  });
});

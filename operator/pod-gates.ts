/**
 * Admitting a replica pod: removing the spare-slot scheduling gate (operator/slots.ts) so the
 * scheduler places it. The only change Kubernetes allows to a pod's gates is removing them; the
 * patch is guarded by the pod's UID and by the gate still being there, so it never touches a
 * successor pod of the same name nor fails on a pod someone else admitted (a 409/422 then).
 */
import { KubeApiError, RESOURCES, resourcePath, type KubeClient } from '../common/kube';
import { SPARE_GATE } from './slots';

/** Removes the spare gate from one pod; false when the pod is gone, another one, or already admitted. */
export async function admitPod(
  kube: KubeClient,
  namespace: string,
  pod: string,
  uid: string | undefined,
): Promise<boolean> {
  const path = resourcePath(RESOURCES.pods, { namespace, name: pod });
  try {
    await kube.patch(
      path,
      [
        ...(uid ? [{ op: 'test', path: '/metadata/uid', value: uid }] : []),
        { op: 'test', path: '/spec/schedulingGates', value: [{ name: SPARE_GATE }] },
        { op: 'remove', path: '/spec/schedulingGates' },
      ],
      'json',
    );
    return true;
  } catch (err) {
    // Gone (404), or a failed test: another pod of that name, or no longer gated (422/409).
    if (err instanceof KubeApiError && [404, 409, 422].includes(err.statusCode)) return false;
    throw err;
  }
}

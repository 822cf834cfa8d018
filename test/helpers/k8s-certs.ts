/**
 * Certificates for a throw-away control plane, made with the openssl CLI: a CA, the apiserver's serving
 * certificate (127.0.0.1, localhost and the in-cluster names), an admin client certificate in the
 * system:masters group, and the service-account signing key pair.
 */
import * as path from 'node:path';
import { openssl, signWithCa, writeCa } from './tls-certs';

export interface ControlPlaneCerts {
  dir: string;
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  clientCert: string;
  clientKey: string;
  /** RSA key pair the apiserver signs service-account tokens with and the controller-manager uses. */
  serviceAccountKey: string;
  serviceAccountPub: string;
}

export function makeControlPlaneCerts(dir: string, days = 7): ControlPlaneCerts {
  writeCa(dir, 'daftka-test-ca', days);
  const ca = { caCert: path.join(dir, 'ca.crt'), caKey: path.join(dir, 'ca.key') };
  signWithCa(
    ca,
    'apiserver',
    '/CN=kube-apiserver',
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,' +
        'DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
    ],
    dir,
    days,
  );
  signWithCa(
    ca,
    'admin',
    '/O=system:masters/CN=daftka-test-admin',
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'],
    dir,
    days,
  );
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir);
  openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  const p = (f: string): string => path.join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    servingCert: p('apiserver.crt'),
    servingKey: p('apiserver.key'),
    clientCert: p('admin.crt'),
    clientKey: p('admin.key'),
    serviceAccountKey: p('sa.key'),
    serviceAccountPub: p('sa.pub'),
  };
}

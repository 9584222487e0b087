// A throw-away PKI for TLS tests, made with the `openssl` command line tool (no npm dependency):
// a CA, a server certificate for 127.0.0.1/localhost signed by it, a client certificate signed by
// it (for mutual TLS), and an unrelated second CA that must never be trusted by anyone. EC P-256
// keys, one day of validity. Without `openssl` the TLS suites say why they skip, unless the suite's
// requirement variable is set (CI), where they fail instead.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const OPENSSL_BIN = process.env.HSM_VAULT_TEST_OPENSSL_BIN ?? 'openssl';

export interface TestPki {
  readonly dir: string;
  /** PEM CA certificate that signed the server and client certificates. */
  readonly caFile: string;
  /** Server certificate (SAN IP:127.0.0.1, DNS:localhost; serverAuth and clientAuth) and key. */
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** Client certificate (clientAuth) and key, signed by the CA. */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A CA that signed nothing here: verifying the server against it must fail. */
  readonly otherCaFile: string;
}

/** Why TLS tests cannot run here, or undefined when they can. */
export function opensslMissingReason(): string | undefined {
  const probe = spawnSync(OPENSSL_BIN, ['version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `openssl binary "${OPENSSL_BIN}" not found (apt-get install openssl)`;
  return undefined;
}

/** Creates the PKI's files in `dir` (which must exist). Synchronous: a few EC keys take milliseconds. */
export function makeTestPki(dir: string): TestPki {
  const path = (name: string) => join(dir, name);
  const pki: TestPki = {
    dir,
    caFile: path('ca.pem'),
    serverCertFile: path('server.pem'),
    serverKeyFile: path('server-key.pem'),
    clientCertFile: path('client.pem'),
    clientKeyFile: path('client-key.pem'),
    otherCaFile: path('other-ca.pem'),
  };
  selfSignedCa('hsm-vault test CA', path('ca-key.pem'), pki.caFile);
  selfSignedCa('hsm-vault unrelated test CA', path('other-ca-key.pem'), pki.otherCaFile);
  // etcd's own gRPC gateway dials the server with the server certificate when client certificate
  // auth is on, so the server certificate needs clientAuth as well as serverAuth.
  issue(pki, 'localhost', pki.serverKeyFile, pki.serverCertFile, [
    'subjectAltName = IP:127.0.0.1, DNS:localhost',
    'extendedKeyUsage = serverAuth, clientAuth',
  ]);
  issue(pki, 'hsm-vault test client', pki.clientKeyFile, pki.clientCertFile, ['extendedKeyUsage = clientAuth']);
  return pki;
}

function selfSignedCa(name: string, keyFile: string, certFile: string): void {
  openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints = critical, CA:TRUE',
    '-addext', 'keyUsage = critical, keyCertSign, cRLSign',
  ]);
}

function issue(pki: TestPki, commonName: string, keyFile: string, certFile: string, extensions: string[]): void {
  const csr = `${certFile}.csr`;
  const extFile = `${certFile}.ext`;
  writeFileSync(extFile, ['basicConstraints = CA:FALSE', 'keyUsage = critical, digitalSignature, keyEncipherment', ...extensions, ''].join('\n'));
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${commonName}`]);
  openssl([
    'x509', '-req', '-in', csr, '-CA', pki.caFile, '-CAkey', join(pki.dir, 'ca-key.pem'), '-CAcreateserial',
    '-out', certFile, '-days', '1', '-sha256', '-extfile', extFile,
  ]);
}

function openssl(args: string[]): void {
  const result = spawnSync(OPENSSL_BIN, args, { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    throw new Error(`openssl ${args[0]} failed (${result.error?.message ?? `exit ${result.status}`}): ${result.stderr.slice(-1000)}`);
  }
}

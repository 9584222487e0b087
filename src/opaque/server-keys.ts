// The narrow port through which the OPAQUE server uses its long-term secrets. The protocol code
// never sees a key: the vault layer fulfils this port with a PKCS#11 token (the OPRF key, the OPRF
// seed and the AKE key stay inside it); `softwareServerKeys` fulfils it in memory for tests and
// for reproducing the RFC's vectors.

import { concat, utf8 } from './bytes.js';
import { type Point, deserializeElement, deserializeScalar } from './group.js';
import { expand } from './kdf.js';
import { Nok } from './messages.js';
import { deriveScalar } from './oprf.js';
import { fullDh, prepareFullDh, softwareDh, softwareKey } from './full-point.js';

export interface OpaqueServerKeys {
  /** The server's static AKE public key, 33 bytes compressed. */
  readonly publicKey: Uint8Array;
  /** BlindEvaluate with the OPRF key of `credentialIdentifier` (RFC 9807 §5.3.1, §6.3.2.1). */
  evaluate(credentialIdentifier: Uint8Array, blindedElement: Point): Promise<Point>;
  /** server_private_key · peer, the whole point (dh2 of the 3DH). */
  staticDh(peer: Point): Promise<Point>;
  /**
   * Threads besides the caller's that run these operations (a token's workers); 0 or absent when
   * they run on the caller's thread, as software keys and the fake token's do. The server uses it
   * to decide where its own software ECDH runs (OpaqueServer).
   */
  readonly keyThreads?: number;
}

export const OPRF_KEY_INFO = utf8('OPAQUE-DeriveKeyPair');

/** The `info` of RFC 9807's per-user seed: Expand(oprf_seed, credential_identifier || "OprfKey", Nok). */
export function oprfKeyInfo(credentialIdentifier: Uint8Array): Uint8Array {
  return concat(credentialIdentifier, utf8('OprfKey'));
}

/** RFC 9807's per-user OPRF key from the seed expansion's output. */
export function oprfKeyFromSeed(seed: Uint8Array): bigint {
  return deriveScalar(seed, OPRF_KEY_INFO);
}

/** Both secrets in memory: exactly RFC 9807's server. */
export function softwareServerKeys(secrets: { oprfSeed: Uint8Array; serverPrivateKey: Uint8Array }): OpaqueServerKeys {
  const staticKey = softwareKey(deserializeScalar(secrets.serverPrivateKey, 'server private key'));
  prepareFullDh([], [staticKey.publicKey]);
  const oprfSeed = secrets.oprfSeed.slice();
  return {
    publicKey: staticKey.publicKey.toBytes(true),
    async evaluate(credentialIdentifier, blindedElement) {
      const oprfKey = oprfKeyFromSeed(expand(oprfSeed, oprfKeyInfo(credentialIdentifier), Nok));
      return softwareDh(oprfKey, blindedElement);
    },
    staticDh: (peer) => fullDh(staticKey.xOnly, staticKey.publicKey, peer),
  };
}

export { deserializeElement };

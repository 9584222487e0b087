// OPAQUE's server-keys port fulfilled by an HSM token (DESIGN.md "OPAQUE inside a PKCS#11 token").
//
// RFC 9807 gives each user an OPRF key s_u = DeriveKeyPair(Expand(oprf_seed, id || "OprfKey")),
// which no token can compute. We use k' = k_tok · s_u instead:
//   - Expand is a single HMAC with the token's seed key (HKDF-Expand's first block);
//   - DeriveKeyPair (HashToScalar) runs in software on that output, giving s_u;
//   - the evaluation k'·B = k_tok · (s_u·B) is the token's ECDH with k_tok on s_u·B.
// Clients see plain RFC 9807. With an imported k_tok = 1 this is exactly the RFC's server, which
// is how the tests reproduce its vectors through a real token. The AKE key's dh2 is the token's
// ECDH. Full points come from two x-only queries (opaque/full-point.ts).
// Per login: 4 token ECDH (2 for the OPRF, 2 for dh2) and 1 token HMAC.

import type { HsmDriver, KeyRef } from '../hsm/driver.js';
import { InvalidArgument } from '../hsm/errors.js';
import { Point, fullDh, prepareFullDh, softwareDh, oprfKeyFromSeed, oprfKeyInfo, type OpaqueServerKeys } from '../opaque/index.js';
import { expandFirstBlockInput } from '../opaque/kdf.js';

export interface TokenOpaqueKeyRefs {
  /** k_tok: an ec-p256-derive key. */
  readonly oprfKey: KeyRef;
  /** oprf_seed: an hmac-sha256 key (32 bytes, RFC 9807 Nh). */
  readonly oprfSeed: KeyRef;
  /** The server's static AKE key: an ec-p256-derive key. */
  readonly akeKey: KeyRef;
}

export async function tokenServerKeys(driver: HsmDriver, refs: TokenOpaqueKeyRefs): Promise<OpaqueServerKeys> {
  if (refs.oprfKey.type !== 'ec-p256-derive' || refs.akeKey.type !== 'ec-p256-derive') throw new InvalidArgument('OPRF and AKE keys must be ec-p256-derive keys');
  if (refs.oprfSeed.type !== 'hmac-sha256') throw new InvalidArgument('the OPRF seed must be an hmac-sha256 key');
  const [oprfPublic, akePublic] = await Promise.all([driver.publicKey(refs.oprfKey), driver.publicKey(refs.akeKey)]);
  const K_tok = Point.fromBytes(oprfPublic);
  const K_ake = Point.fromBytes(akePublic);
  prepareFullDh([], [K_tok, K_ake]); // long-lived: their full points come back affine
  const oprfXOnly = (peer: Uint8Array) => driver.ecdh(refs.oprfKey, peer);
  const akeXOnly = (peer: Uint8Array) => driver.ecdh(refs.akeKey, peer);
  return {
    publicKey: K_ake.toBytes(true),
    async evaluate(credentialIdentifier, blindedElement) {
      const seed = await driver.hmacSha256(refs.oprfSeed, expandFirstBlockInput(oprfKeyInfo(credentialIdentifier)));
      const perUser = await softwareDh(oprfKeyFromSeed(seed), blindedElement);
      return fullDh(oprfXOnly, K_tok, perUser);
    },
    staticDh: (peer) => fullDh(akeXOnly, K_ake, peer),
    keyThreads: driver.callThreads,
  };
}

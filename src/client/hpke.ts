// Secret upload (DESIGN.md "HPKE upload"): RFC 9180 mode_base, DHKEM(P-256, HKDF-SHA256),
// HKDF-SHA256, AES-256-GCM, sealed to the fleet's pinned HPKE key. The node decapsulates with token
// ECDH, so the secret is readable only inside the token.

import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';

export const REGISTRATION_INFO = 'hsm-vault registration v1';

const encoder = new TextEncoder();

let cachedSuite: CipherSuite | undefined;
function suite(): CipherSuite {
  cachedSuite ??= new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
  return cachedSuite;
}

export interface HpkeSealed {
  /** The encapsulated key: an uncompressed P-256 point, 65 bytes. */
  readonly enc: Uint8Array;
  /** AES-256-GCM ciphertext with its 16-byte tag. */
  readonly ciphertext: Uint8Array;
}

/**
 * Single-shot SealBase(pkR, info, aad, pt) (RFC 9180 §6.1) in this suite.
 * `testing.ikmE` fixes the ephemeral key (DeriveKeyPair(ikmE)) for the RFC's vectors only.
 */
export async function hpkeSealBase(
  recipientPublicKey: Uint8Array,
  info: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  testing: { ikmE?: Uint8Array } = {},
): Promise<HpkeSealed> {
  const s = suite();
  const pkR = await s.kem.deserializePublicKey(recipientPublicKey);
  const sealed = await s.seal(
    { recipientPublicKey: pkR, info, ...(testing.ikmE ? { ekm: testing.ikmE } : {}) },
    plaintext,
    aad,
  );
  return { enc: new Uint8Array(sealed.enc), ciphertext: new Uint8Array(sealed.ct) };
}

/** The registration upload: info "hsm-vault registration v1", AAD = the user id (UTF-8). */
export function sealSecretForUpload(hpkePublicKey: Uint8Array, userId: string, secret: Uint8Array): Promise<HpkeSealed> {
  return hpkeSealBase(hpkePublicKey, encoder.encode(REGISTRATION_INFO), encoder.encode(userId), secret);
}

// Ed25519 verification for the trust rules (@noble/curves, browser-safe). Signing and key
// generation stay in src/fleet/ed25519.ts.

import { ed25519 } from '@noble/curves/ed25519.js';

export const ED25519_PUBLIC_KEY_SIZE = 32;
export const ED25519_SIGNATURE_SIZE = 64;

/**
 * RFC 8032 verification (zip215 off: non-canonical encodings of R, S or A are rejected).
 * Returns false, never throws, for wrong lengths or undecodable keys.
 */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== ED25519_PUBLIC_KEY_SIZE || signature.length !== ED25519_SIGNATURE_SIZE) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

export function isValidEd25519PublicKey(publicKey: Uint8Array): boolean {
  return publicKey.length === ED25519_PUBLIC_KEY_SIZE && ed25519.utils.isValidPublicKey(publicKey, false);
}

// Ed25519 for the fleet layer: an async signer port (so the key can live in a token) and a
// verifier that never throws on malformed input. Primitives come from @noble/curves.

import { ed25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from 'node:crypto';

export const ED25519_PUBLIC_KEY_SIZE = 32;
export const ED25519_SIGNATURE_SIZE = 64;

/** Anything that can produce an Ed25519 signature: an HSM key, or a software key in tests. */
export interface Ed25519Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

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

/** A software signer from a 32-byte RFC 8032 seed. For tests and development fleets only. */
export function softwareEd25519Signer(seed: Uint8Array = randomBytes(32)): Ed25519Signer {
  if (seed.length !== 32) throw new RangeError('Ed25519 seed must be 32 bytes');
  const secret = Uint8Array.from(seed);
  return {
    publicKey: ed25519.getPublicKey(secret),
    sign: async (message) => ed25519.sign(message, secret),
  };
}

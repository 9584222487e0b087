// Ed25519 for the fleet layer: an async signer port (so the key can live in a token) and a
// software signer for tests. Verification is src/trust/ed25519.ts's (shared with the SDK).

import { ed25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from 'node:crypto';

export { ED25519_PUBLIC_KEY_SIZE, ED25519_SIGNATURE_SIZE, isValidEd25519PublicKey, verifyEd25519 } from '../trust/ed25519.js';

/** Anything that can produce an Ed25519 signature: an HSM key, or a software key in tests. */
export interface Ed25519Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
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

// Key check values: 3 bytes that two tokens can compare to show they hold the same key, without
// revealing it. Every backend computes them in the token with the definitions below; the software
// versions exist for keys the host held anyway (a ceremony's transport key) and for the fake.
//
//   hmac-sha256   SHA-256( HMAC(K, KCV_INPUT) )[0..3]
//   aes-256       SHA-256( AES-256-GCM(K, IV = 0^12, AAD = KCV_INPUT, P = empty) tag )[0..3]
//   aes-256-wrap  SHA-256( AES-KWP(K, 0^32) )[0..3]   (RFC 5649, deterministic)
//   P-256/Ed25519 SHA-256( public key as `publicKey` returns it )[0..3], after an in-token check
//                 that the private key matches it (ECDH with G gives x(K); a signature verifies)
//
// Hashing the in-token output means a KCV never exposes raw cipher output (AES-GCM's tag over
// nothing under a fixed IV is a function of E_K(J0) only; ECB of a zero block, the classic KCV,
// would hand out bytes of GCM's hash key). A random seal IV equals the fixed one with 2^-96.

import { createCipheriv, createHash, createHmac } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { KeyType } from './driver.js';
import { AuthenticationFailed, InvalidArgument } from './errors.js';

export const KCV_LENGTH = 3;
export const KCV_INPUT = new TextEncoder().encode('hsm-vault/key-check-value/v1');
export const KCV_GCM_IV = new Uint8Array(12);
/** What a wrap key wraps for its KCV: 32 zero bytes as a generic secret. */
export const KCV_WRAP_SUBJECT = new Uint8Array(32);
const KWP_IV = Buffer.from('a65959a6', 'hex');

export function kcvOf(output: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(output).digest().subarray(0, KCV_LENGTH));
}

/** The KCV of a secret key the host holds (transport keys combined from components, the fake). */
export function softwareKcv(type: KeyType, secret: Uint8Array): Uint8Array {
  switch (type) {
    case 'hmac-sha256':
      return kcvOf(createHmac('sha256', secret).update(KCV_INPUT).digest());
    case 'aes-256': {
      const cipher = createCipheriv('aes-256-gcm', secret, KCV_GCM_IV);
      cipher.setAAD(KCV_INPUT);
      cipher.final();
      return kcvOf(cipher.getAuthTag());
    }
    case 'aes-256-wrap':
      return kcvOf(aesKeyWrapPad(secret, KCV_WRAP_SUBJECT));
    default:
      throw new InvalidArgument(`softwareKcv is for secret keys, not ${type}`);
  }
}

export function aesKeyWrapPad(kek: Uint8Array, data: Uint8Array): Uint8Array {
  const cipher = createCipheriv('id-aes256-wrap-pad', kek, KWP_IV);
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()]));
}

export function publicKeyKcv(publicKey: Uint8Array): Uint8Array {
  return kcvOf(publicKey);
}

/**
 * Checks an in-token proof that a private key matches its public key: `ecdhWithG` is x(k·G) for a
 * derive key; `signature` is over KCV_INPUT (Ed25519) or SHA-256(KCV_INPUT) (ECDSA).
 */
export function checkPrivateMatchesPublic(type: KeyType, publicKey: Uint8Array, proof: Uint8Array, label: string): void {
  let ok = false;
  if (type === 'ec-p256-derive') ok = Buffer.from(proof).equals(Buffer.from(publicKey.subarray(1, 33)));
  else if (type === 'ec-p256-sign') ok = p256.verify(proof, kcvDigest(), publicKey, { prehash: false, lowS: false });
  else if (type === 'ed25519') ok = ed25519.verify(proof, KCV_INPUT, publicKey);
  if (!ok) throw new AuthenticationFailed(`key "${label}": the private key in the token does not match its public key`);
}

export function kcvDigest(): Uint8Array {
  return new Uint8Array(createHash('sha256').update(KCV_INPUT).digest());
}

/** The P-256 base point, uncompressed: ECDH with it returns x(K). */
export const P256_BASE_POINT = p256.Point.BASE.toBytes(false);

/** The KCV of a key pair, shared by the backends: an in-token match proof, then the fingerprint. */
export async function keyPairKcv(
  ops: {
    publicKey(key: KeyRefLike): Promise<Uint8Array>;
    ecdh(key: KeyRefLike, point: Uint8Array): Promise<Uint8Array>;
    sign(key: KeyRefLike, data: Uint8Array): Promise<Uint8Array>;
  },
  key: KeyRefLike,
): Promise<Uint8Array> {
  const publicKey = await ops.publicKey(key);
  const proof = key.type === 'ec-p256-derive'
    ? await ops.ecdh(key, P256_BASE_POINT)
    : await ops.sign(key, key.type === 'ed25519' ? KCV_INPUT : kcvDigest());
  checkPrivateMatchesPublic(key.type, publicKey, proof, key.label);
  return publicKeyKcv(publicKey);
}

type KeyRefLike = { readonly label: string; readonly id: Uint8Array; readonly type: KeyType };

/** Checks the public half given to `unwrapKey` for a key pair (both backends). */
export function checkUnwrapPublicKey(type: KeyType, publicKey: Uint8Array | undefined): Uint8Array | undefined {
  if (type !== 'ec-p256-derive' && type !== 'ec-p256-sign' && type !== 'ed25519') {
    if (publicKey !== undefined) throw new InvalidArgument(`a ${type} key has no public key`);
    return undefined;
  }
  if (!(publicKey instanceof Uint8Array)) throw new InvalidArgument(`unwrapping a ${type} key needs its public key`);
  if (type === 'ed25519') {
    if (publicKey.length !== 32 || !ed25519.utils.isValidPublicKey(publicKey, false)) throw new InvalidArgument('Ed25519 public key must be a valid 32-byte point');
    return publicKey;
  }
  try {
    return p256.Point.fromBytes(publicKey).toBytes(false);
  } catch {
    throw new InvalidArgument('P-256 public key is not a valid point');
  }
}

// Secret release (DESIGN.md): after a verified KE3 the node returns the backup key under
// key = HKDF-SHA256(ikm = session_key, salt = "", info = "hsm-vault secret v1", 32),
// AES-256-GCM with a random 12-byte nonce, AAD = user id.

import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

export const SECRET_INFO = 'hsm-vault secret v1';
export const RELEASE_NONCE_LENGTH = 12;

const encoder = new TextEncoder();

export function deriveReleaseKey(sessionKey: Uint8Array): Uint8Array {
  return hkdf(sha256, sessionKey, new Uint8Array(0), encoder.encode(SECRET_INFO), 32);
}

/** Thrown when the released ciphertext does not open: wrong session, wrong user, or tampering. */
export class ReleaseDecryptionError extends Error {
  override readonly name = 'ReleaseDecryptionError';
}

/** Opens the released secret with WebCrypto AES-256-GCM. The derived key is wiped afterwards. */
export async function openReleasedSecret(
  sessionKey: Uint8Array,
  userId: string,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  if (nonce.length !== RELEASE_NONCE_LENGTH) throw new ReleaseDecryptionError(`nonce must be ${RELEASE_NONCE_LENGTH} bytes`);
  if (ciphertext.length < 16) throw new ReleaseDecryptionError('ciphertext shorter than the GCM tag');
  const keyBytes = deriveReleaseKey(sessionKey);
  try {
    const subtle = globalThis.crypto.subtle;
    const key = await subtle.importKey('raw', keyBytes, { name: 'AES-GCM' }, false, ['decrypt']);
    const plaintext = await subtle.decrypt({ name: 'AES-GCM', iv: nonce, additionalData: encoder.encode(userId), tagLength: 128 }, key, ciphertext);
    return new Uint8Array(plaintext);
  } catch (cause) {
    throw new ReleaseDecryptionError('released secret failed to decrypt', { cause });
  } finally {
    keyBytes.fill(0);
  }
}

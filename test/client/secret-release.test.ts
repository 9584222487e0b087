// Secret release: a node-side encryption written independently with node:crypto (HKDF and
// AES-256-GCM), opened by the SDK's WebCrypto path.

import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ReleaseDecryptionError, deriveReleaseKey, openReleasedSecret } from '../../src/client/secret-release.js';

function nodeSideRelease(sessionKey: Uint8Array, userId: string, secret: Uint8Array, nonce = randomBytes(12)) {
  const key = Buffer.from(hkdfSync('sha256', sessionKey, new Uint8Array(0), 'hsm-vault secret v1', 32));
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(userId, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(secret), cipher.final(), cipher.getAuthTag()]);
  return { nonce: new Uint8Array(nonce), ciphertext: new Uint8Array(ciphertext), key: new Uint8Array(key) };
}

describe('secret release decryption', () => {
  const sessionKey = new Uint8Array(Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex'));
  const secret = new Uint8Array(Buffer.from('a key of thirty-two bytes, ok!!!', 'utf8'));

  it('derives the key as HKDF-SHA256(session_key, "", "hsm-vault secret v1", 32)', () => {
    expect(deriveReleaseKey(sessionKey)).toEqual(nodeSideRelease(sessionKey, 'u', secret).key);
  });

  it('opens what the node seals with a known session key', async () => {
    const { nonce, ciphertext } = nodeSideRelease(sessionKey, 'alice', secret);
    expect(await openReleasedSecret(sessionKey, 'alice', nonce, ciphertext)).toEqual(secret);
  });

  it('refuses another user id (AAD), another session key, a flipped bit or a bad nonce length', async () => {
    const { nonce, ciphertext } = nodeSideRelease(sessionKey, 'alice', secret);
    await expect(openReleasedSecret(sessionKey, 'bob', nonce, ciphertext)).rejects.toThrow(ReleaseDecryptionError);
    const otherKey = sessionKey.slice();
    otherKey[0]! ^= 1;
    await expect(openReleasedSecret(otherKey, 'alice', nonce, ciphertext)).rejects.toThrow(ReleaseDecryptionError);
    const flipped = ciphertext.slice();
    flipped[3]! ^= 0x80;
    await expect(openReleasedSecret(sessionKey, 'alice', nonce, flipped)).rejects.toThrow(ReleaseDecryptionError);
    await expect(openReleasedSecret(sessionKey, 'alice', nonce.slice(0, 11), ciphertext)).rejects.toThrow(ReleaseDecryptionError);
    await expect(openReleasedSecret(sessionKey, 'alice', nonce, ciphertext.slice(0, 15))).rejects.toThrow(ReleaseDecryptionError);
  });

  it('error messages carry no key or secret material', async () => {
    const { nonce, ciphertext } = nodeSideRelease(sessionKey, 'alice', secret);
    const error = await openReleasedSecret(sessionKey, 'bob', nonce, ciphertext).then(
      () => { throw new Error('expected a failure'); },
      (e: unknown) => e as Error,
    );
    expect(error.message).not.toContain(Buffer.from(sessionKey).toString('hex'));
    expect(error.message).not.toContain(Buffer.from(secret).toString('utf8'));
  });
});

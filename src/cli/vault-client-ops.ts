// The client's two cryptographic steps around the vault, for CLI tools that play the client
// (demo, qualification): sealing a secret to the fleet's HPKE key, and opening a released secret.
// (The SDK in client/ does the same in browser-safe code.)

import { createDecipheriv } from 'node:crypto';
import { CipherSuite, DhkemP256HkdfSha256, HkdfSha256, Aes256Gcm } from '@hpke/core';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

const enc = new TextEncoder();
const suite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

export async function sealSecretUpload(hpkeKey: Uint8Array, userId: string, secret: Uint8Array): Promise<{ enc: Uint8Array; ciphertext: Uint8Array }> {
  const sender = await suite.createSenderContext({ recipientPublicKey: await suite.kem.deserializePublicKey(hpkeKey), info: enc.encode('hsm-vault registration v1') });
  const ciphertext = new Uint8Array(await sender.seal(secret, enc.encode(userId)));
  return { enc: new Uint8Array(sender.enc), ciphertext };
}

export function openReleasedSecret(sessionKey: Uint8Array, userId: string, released: { nonce: Uint8Array; ciphertext: Uint8Array }): Uint8Array {
  const key = hkdf(sha256, sessionKey, new Uint8Array(0), enc.encode('hsm-vault secret v1'), 32);
  const decipher = createDecipheriv('aes-256-gcm', key, released.nonce);
  decipher.setAAD(enc.encode(userId));
  decipher.setAuthTag(released.ciphertext.subarray(released.ciphertext.length - 16));
  return new Uint8Array(Buffer.concat([decipher.update(released.ciphertext.subarray(0, released.ciphertext.length - 16)), decipher.final()]));
}

// HPKE upload: the SDK's seal against RFC 9180's published vectors (deterministic ephemeral key
// through @hpke/core's testing hook `ekm`), and against an independent receiver (@hpke/core's open
// with a known key pair).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { describe, expect, it } from 'vitest';
import { REGISTRATION_INFO, hpkeSealBase, sealSecretForUpload } from '../../src/client/hpke.js';

interface HpkeVector {
  mode: number; kem_id: number; kdf_id: number; aead_id: number;
  info: string; ikmR: string; ikmE: string; skRm: string; pkRm: string; enc: string;
  encryptions: Array<{ aad: string; ct: string; nonce: string; pt: string }>;
}

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array | ArrayBuffer): string => Buffer.from(b instanceof ArrayBuffer ? new Uint8Array(b) : b).toString('hex');
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

const vectors: HpkeVector[] = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/vectors/hpke-rfc9180-p256-sha256-base.json', import.meta.url)), 'utf8'));
const aes256 = vectors.find((v) => v.mode === 0 && v.kem_id === 0x10 && v.kdf_id === 0x01 && v.aead_id === 0x02);

const suite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

describe('HPKE mode_base DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM', () => {
  it('the fixture holds the AES-256-GCM base-mode vector', () => {
    expect(aes256).toBeDefined();
    expect(aes256!.encryptions.length).toBeGreaterThan(0);
  });

  it('SDK seal reproduces the RFC 9180 vector (enc and sequence-0 ciphertext)', async () => {
    const v = aes256!;
    const first = v.encryptions[0]!;
    const sealed = await hpkeSealBase(hex(v.pkRm), hex(v.info), hex(first.aad), hex(first.pt), { ikmE: hex(v.ikmE) });
    expect(toHex(sealed.enc)).toBe(v.enc);
    expect(toHex(sealed.ciphertext)).toBe(first.ct);
  });

  it('the receiver (@hpke/core, vector key) opens every vector encryption in sequence', async () => {
    const v = aes256!;
    const skR = await suite.kem.importKey('raw', hex(v.skRm), false);
    const recipient = await suite.createRecipientContext({ recipientKey: skR, enc: hex(v.enc), info: hex(v.info) });
    for (const e of v.encryptions) {
      expect(toHex(await recipient.open(hex(e.ct), hex(e.aad)))).toBe(e.pt);
    }
  });

  it('sealSecretForUpload is opened by an independent receiver with info and AAD = user id', async () => {
    const recipient = await suite.kem.deriveKeyPair(hex(aes256!.ikmR));
    const pkR = new Uint8Array(await suite.kem.serializePublicKey(recipient.publicKey));
    expect(toHex(pkR)).toBe(aes256!.pkRm);
    const secret = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const { enc, ciphertext } = await sealSecretForUpload(pkR, 'alice@example', secret);
    expect(enc.length).toBe(65);
    expect(enc[0]).toBe(0x04);
    expect(ciphertext.length).toBe(32 + 16);
    const opened = await suite.open({ recipientKey: recipient, enc, info: utf8(REGISTRATION_INFO) }, ciphertext, utf8('alice@example'));
    expect(new Uint8Array(opened)).toEqual(secret);
    // The user id is bound: the same upload does not open for another user, nor with another info.
    await expect(suite.open({ recipientKey: recipient, enc, info: utf8(REGISTRATION_INFO) }, ciphertext, utf8('mallory'))).rejects.toThrow();
    await expect(suite.open({ recipientKey: recipient, enc, info: utf8('other') }, ciphertext, utf8('alice@example'))).rejects.toThrow();
  });

  it('uses a fresh ephemeral key for every upload', async () => {
    const pkR = hex(aes256!.pkRm);
    const secret = new Uint8Array(16);
    const a = await sealSecretForUpload(pkR, 'u', secret);
    const b = await sealSecretForUpload(pkR, 'u', secret);
    expect(toHex(a.enc)).not.toBe(toHex(b.enc));
    expect(toHex(a.ciphertext)).not.toBe(toHex(b.ciphertext));
  });

  it('rejects a recipient key that is not on the curve', async () => {
    const bad = hex(aes256!.pkRm);
    bad[64]! ^= 1;
    await expect(sealSecretForUpload(bad, 'u', new Uint8Array(16))).rejects.toThrow();
  });
});

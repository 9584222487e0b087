// The HPKE receiver on every HSM backend, with the recipient key imported into the token: RFC 9180
// vectors (DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM and AES-256-GCM, mode_base), and
// interop with @hpke/core as the sender (what the client SDK uses).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { CipherSuite, DhkemP256HkdfSha256, HkdfSha256, Aes256Gcm } from '@hpke/core';
import type { HsmDriver, KeyRef } from '../../src/hsm/driver.js';
import { HpkeOpenError, aeadOpen, decap, keySchedule, openBase, type HpkeRecipientKey } from '../../src/vault/hpke.js';
import { backends, reportMissingSoftHsm, uniqueLabel } from '../support/backends.js';

reportMissingSoftHsm();

interface HpkeVector {
  aead_id: number; info: string; skRm: string; pkRm: string; enc: string; shared_secret: string; key: string; base_nonce: string;
  encryptions: Array<{ aad: string; ct: string; nonce: string; pt: string }>;
}
const vectors: HpkeVector[] = (JSON.parse(readFileSync(new URL('../fixtures/vectors/hpke-rfc9180-p256-sha256-base.json', import.meta.url), 'utf8')) as HpkeVector[])
  .filter((v) => v.aead_id === 1 || v.aead_id === 2);
const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');

for (const backend of backends()) {
  describe(`HPKE receiver in the token: ${backend.name}`, () => {
    let driver: HsmDriver;
    const made: KeyRef[] = [];
    beforeAll(async () => {
      ({ driver } = await backend.open());
    });
    afterAll(async () => {
      for (const key of made) await driver.destroyKey(key).catch(() => {});
      await driver.close();
    });
    const recipientOf = async (ref: KeyRef): Promise<HpkeRecipientKey> => ({
      publicKey: await driver.publicKey(ref),
      dh: (pkE) => driver.ecdh(ref, pkE),
    });

    for (const v of vectors) {
      it(`RFC 9180 vectors, AEAD 0x000${v.aead_id}: shared secret, key schedule, the first 16 encryptions`, async () => {
        const ref = await driver.importKey({ label: uniqueLabel('hpke'), type: 'ec-p256-derive' }, { type: 'ec-p256-derive', scalar: hex(v.skRm) });
        made.push(ref);
        const recipient = await recipientOf(ref);
        expect(toHex(recipient.publicKey)).toBe(v.pkRm);
        const shared = await decap(hex(v.enc), recipient);
        expect(toHex(shared)).toBe(v.shared_secret);
        const { key, baseNonce } = keySchedule(shared, hex(v.info), v.aead_id);
        expect(toHex(key)).toBe(v.key);
        expect(toHex(baseNonce)).toBe(v.base_nonce);
        v.encryptions.slice(0, 16).forEach((e, seq) => {
          expect(toHex(aeadOpen(key, baseNonce, seq, hex(e.aad), hex(e.ct)))).toBe(e.pt);
        });
      });
    }

    it('opens what @hpke/core seals to a key generated in the token, and refuses tampering', async () => {
      const ref = await driver.generateKey({ label: uniqueLabel('hpke'), type: 'ec-p256-derive' });
      made.push(ref);
      const recipient = await recipientOf(ref);
      const suite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
      const info = new TextEncoder().encode('hsm-vault registration v1');
      const aad = new TextEncoder().encode('alice');
      const secret = crypto.getRandomValues(new Uint8Array(32));
      const sender = await suite.createSenderContext({ recipientPublicKey: await suite.kem.deserializePublicKey(recipient.publicKey), info });
      const ct = new Uint8Array(await sender.seal(secret, aad));
      const enc = new Uint8Array(sender.enc);
      expect(Buffer.from(await openBase(recipient, enc, info, aad, ct))).toEqual(Buffer.from(secret));
      await expect(openBase(recipient, enc, info, new TextEncoder().encode('mallory'), ct)).rejects.toBeInstanceOf(HpkeOpenError);
      const flipped = ct.slice();
      flipped[0]! ^= 1;
      await expect(openBase(recipient, enc, info, aad, flipped)).rejects.toBeInstanceOf(HpkeOpenError);
      await expect(openBase(recipient, enc.subarray(1), info, aad, ct)).rejects.toBeInstanceOf(HpkeOpenError);
    });
  });
}

// Fleet-ceremony driver extensions on every backend, same assertions: transportable keys,
// trusted transport keys made by the security officer, wrap/unwrap, key check values.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import type { HsmDriver, KeyRef, KeyType } from '../../src/hsm/driver.js';
import { AuthenticationFailed, HsmError, KeyExists, KeyNotFound, LoginFailed, NonExportableKey } from '../../src/hsm/errors.js';
import { softwareKcv } from '../../src/hsm/kcv.js';
import type { Pkcs11Driver } from '../../src/hsm/pkcs11/driver.js';
import { backends, reportMissingSoftHsm, uniqueLabel } from '../support/backends.js';

reportMissingSoftHsm();

const TRANSPORTABLE: KeyType[] = ['ec-p256-derive', 'ec-p256-sign', 'aes-256', 'hmac-sha256'];

async function expectError<T extends HsmError>(promise: Promise<unknown>, type: new (...args: never[]) => T): Promise<T> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err, `expected ${type.name}`).toBeInstanceOf(type);
  return err as T;
}

async function findHandle(pkcs11: Pkcs11Driver['rawModule']['pkcs11'], session: Buffer, label: string): Promise<{ handle: Buffer }> {
  pkcs11.C_FindObjectsInit(session, [{ type: 0x03, value: label }, { type: 0x01, value: true }, { type: 0x00, value: 0x04 }]);
  const [handle] = pkcs11.C_FindObjects(session, 1);
  pkcs11.C_FindObjectsFinal(session);
  return { handle: handle! };
}

function soPinFor(backend: string): string {
  if (backend === 'fake') return 'fake-so-pin';
  return readFileSync(process.env.HSM_VAULT_TEST_SOFTHSM_SO_PIN_FILE!, 'utf8').trim();
}

for (const backend of backends()) {
  describe(`fleet transport extensions: ${backend.name}`, () => {
    let driver: HsmDriver;
    let soPin: string;
    const made: KeyRef[] = [];
    const track = (k: KeyRef): KeyRef => (made.push(k), k);
    const gen = async (type: KeyType, transportable = true) => track(await driver.generateKey({ label: uniqueLabel('tr'), type, transportable }));
    const trusted = async (secret = randomBytes(32)) => track(await driver.importTrustedKey({ label: uniqueLabel('transport'), type: 'aes-256-wrap' }, secret, { soPin }));

    beforeAll(async () => {
      ({ driver } = await backend.open());
      soPin = soPinFor(backend.name);
    });
    afterAll(async () => {
      for (const key of made) await driver.destroyKey(key).catch(() => {});
      await driver.close();
    });

    it.each([...TRANSPORTABLE, 'ed25519' as const])('a transportable %s key is sensitive, local, extractable only under a trusted key', async (type) => {
      const key = await gen(type);
      expect(await driver.keyAttributes(key)).toMatchObject({
        local: true, sensitive: true, alwaysSensitive: true, extractable: true, neverExtractable: false, wrapWithTrusted: true, trusted: false,
      });
      await expectError(driver.exportKeyValue(key), NonExportableKey);
      await expectError(driver.updateKeyAttributes(key, { sensitive: false }), NonExportableKey);
      const untrusted = await gen('aes-256-wrap', false);
      await expectError(driver.wrapKey(untrusted, key), NonExportableKey);
    });

    it('a trusted transport key comes from the security officer; the user session works on afterwards', async () => {
      const before = await gen('ec-p256-derive', false);
      const secret = randomBytes(32);
      const transport = await trusted(secret);
      expect(transport.type).toBe('aes-256-wrap');
      expect(await driver.keyAttributes(transport)).toMatchObject({ trusted: true, sensitive: true, extractable: false, local: false });
      expect(Buffer.from(await driver.keyCheckValue(transport))).toEqual(Buffer.from(softwareKcv('aes-256-wrap', secret)));
      const peer = p256.getPublicKey(p256.utils.randomSecretKey(), false);
      expect((await driver.ecdh(before, peer)).length).toBe(32); // the user login is back
      await expectError(driver.importTrustedKey({ label: transport.label, type: 'aes-256-wrap' }, randomBytes(32), { soPin }), KeyExists);
      await driver.destroyKey(transport);
      await expectError(driver.keyAttributes(transport), KeyNotFound);
    });

    it('calls issued while the security officer is logged in wait and then succeed', async () => {
      const mac = await gen('hmac-sha256', false);
      const derive = await gen('ec-p256-derive', false);
      const peer = p256.getPublicKey(p256.utils.randomSecretKey(), false);
      const expected = await driver.hmacSha256(mac, Buffer.from('busy'));
      const busy = Array.from({ length: 50 }, (_, i) => (i % 2 ? driver.hmacSha256(mac, Buffer.from('busy')) : driver.ecdh(derive, peer)));
      const [transport] = await Promise.all([trusted(), ...busy]);
      const results = await Promise.all(busy);
      for (let i = 1; i < results.length; i += 2) expect(results[i]).toEqual(expected);
      expect(await driver.keyAttributes(transport)).toMatchObject({ trusted: true });
    });

    it('a key that is not transportable is never wrapped, not even under a trusted key', async () => {
      const transport = await trusted();
      for (const type of TRANSPORTABLE) await expectError(driver.wrapKey(transport, await gen(type, false)), NonExportableKey);
    });

    it.each(TRANSPORTABLE)('%s: wraps under a trusted key and unwraps as the same key (same KCV, same results)', async (type) => {
      const transport = await trusted();
      const key = await gen(type);
      const blob = await driver.wrapKey(transport, key);
      const publicKey = type.startsWith('ec-') ? await driver.publicKey(key) : undefined;
      const copy = track(await driver.unwrapKey(transport, blob, { label: uniqueLabel('copy'), type, id: randomBytes(16), ...(publicKey ? { publicKey } : {}) }));
      expect(copy.type).toBe(type);
      expect(await driver.keyAttributes(copy)).toMatchObject({
        local: false, sensitive: true, alwaysSensitive: false, extractable: true, neverExtractable: false, wrapWithTrusted: true, keyGenMechanism: null,
      });
      expect(Buffer.from(await driver.keyCheckValue(copy))).toEqual(Buffer.from(await driver.keyCheckValue(key)));
      if (type === 'hmac-sha256') expect(await driver.hmacSha256(copy, Buffer.from('x'))).toEqual(await driver.hmacSha256(key, Buffer.from('x')));
      if (type === 'aes-256') {
        const sealed = await driver.sealAesGcm(key, Buffer.from('record'), Buffer.from('aad'));
        expect(Buffer.from(await driver.openAesGcm(copy, sealed, Buffer.from('aad'))).toString()).toBe('record');
      }
      if (type === 'ec-p256-derive') {
        const peer = p256.getPublicKey(p256.utils.randomSecretKey(), false);
        expect(await driver.ecdh(copy, peer)).toEqual(await driver.ecdh(key, peer));
      }
      if (publicKey) expect(await driver.publicKey(copy)).toEqual(publicKey);
      // the copy travels on only under a trusted key, and never in the clear
      await expectError(driver.exportKeyValue(copy), NonExportableKey);
      await expectError(driver.wrapKey(await gen('aes-256-wrap', false), copy), NonExportableKey);
      expect((await driver.wrapKey(transport, copy)).length).toBe(blob.length);
    });

    it('Ed25519 wraps under a trusted key where the token can, else NonExportableKey (SoftHSM 2.6.1 cannot)', async () => {
      const transport = await trusted();
      const key = await gen('ed25519');
      await expectError(driver.wrapKey(transport, key), NonExportableKey);
    });

    it('a blob does not unwrap under another trusted key, nor when tampered', async () => {
      const [t1, t2] = [await trusted(), await trusted()];
      const key = await gen('hmac-sha256');
      const blob = await driver.wrapKey(t1, key);
      const spec = { label: uniqueLabel('bad'), type: 'hmac-sha256' as const, id: randomBytes(16) };
      await expectError(driver.unwrapKey(t2, blob, spec), AuthenticationFailed);
      const tampered = Uint8Array.from(blob);
      tampered[tampered.length - 1]! ^= 1;
      await expectError(driver.unwrapKey(t1, tampered, spec), AuthenticationFailed);
      await expectError(driver.findKey({ label: spec.label }), KeyNotFound);
      await expectError(driver.unwrapKey(t1, blob, { ...spec, label: key.label }), KeyExists);
    });

    it('key check values match the published definitions', async () => {
      const secret = randomBytes(32);
      const mac = track(await driver.importKey({ label: uniqueLabel('kcv'), type: 'hmac-sha256' }, { type: 'hmac-sha256', secret }));
      const aes = track(await driver.importKey({ label: uniqueLabel('kcv'), type: 'aes-256' }, { type: 'aes-256', secret }));
      expect(Buffer.from(await driver.keyCheckValue(mac))).toEqual(Buffer.from(softwareKcv('hmac-sha256', secret)));
      expect(Buffer.from(await driver.keyCheckValue(aes))).toEqual(Buffer.from(softwareKcv('aes-256', secret)));
      for (const type of ['ec-p256-derive', 'ec-p256-sign', 'ed25519'] as const) {
        const key = await gen(type, false);
        const kcv = await driver.keyCheckValue(key);
        expect(Buffer.from(kcv)).toEqual(createHash('sha256').update(await driver.publicKey(key)).digest().subarray(0, 3));
      }
    });

    it.each(['ed25519', 'ec-p256-derive'] as const)('%s: a public-only key is found by label, is not a usable key, and is destroyed', async (type) => {
      const holder = await gen(type, false);
      const publicKey = await driver.publicKey(holder);
      const label = uniqueLabel('pub');
      const ref = await driver.importPublicKey({ label, type }, publicKey);
      expect(await driver.findPublicKey(label, type)).toEqual({ ref, publicKey });
      expect((await driver.findPublicKey(holder.label, type)).publicKey).toEqual(publicKey);
      await expectError(driver.findKey({ label }), KeyNotFound);
      await expectError(driver.importPublicKey({ label, type }, publicKey), KeyExists);
      await expectError(driver.importPublicKey({ label: holder.label, type }, publicKey), KeyExists);
      await expectError(driver.generateKey({ label, type }), KeyExists); // its label is taken too
      await driver.destroyKey(ref);
      await expectError(driver.findPublicKey(label, type), KeyNotFound);
      await expectError(driver.destroyKey(ref), KeyNotFound);
    });

    if (backend.name === 'softhsm2') {
      it('SoftHSM2 itself: only the SO sets CKA_TRUSTED, and CKA_WRAP_WITH_TRUSTED cannot be cleared', async () => {
        const { pkcs11, slot } = (driver as Pkcs11Driver).rawModule;
        const session = pkcs11.C_OpenSession(slot, 0x06); // the user login is application-wide
        try {
          const trustedByUser = [
            { type: 0x00, value: 0x04 }, { type: 0x100, value: 0x1f }, { type: 0x01, value: false }, { type: 0x02, value: true },
            { type: 0x11, value: randomBytes(32) }, { type: 0x106, value: true }, { type: 0x86 /* CKA_TRUSTED */, value: true },
          ];
          expect(() => pkcs11.C_CreateObject(session, trustedByUser)).toThrow(/CKR_ATTRIBUTE_READ_ONLY/);
          const key = await gen('hmac-sha256');
          const { handle } = await findHandle(pkcs11, session, key.label);
          expect(() => pkcs11.C_SetAttributeValue(session, handle, [{ type: 0x210 /* CKA_WRAP_WITH_TRUSTED */, value: false }])).toThrow(/CKR_ATTRIBUTE_READ_ONLY/);
          const wrap = await gen('aes-256-wrap', false);
          const { handle: wrapHandle } = await findHandle(pkcs11, session, wrap.label);
          expect(() => pkcs11.C_SetAttributeValue(session, wrapHandle, [{ type: 0x86, value: true }])).toThrow(/CKR_ATTRIBUTE_READ_ONLY/);
        } finally {
          pkcs11.C_CloseSession(session);
        }
      });
    }

    it('a wrong SO PIN is LoginFailed and leaves the user session working', async () => {
      const key = await gen('hmac-sha256', false);
      if (backend.name !== 'fake') {
        await expectError(driver.importTrustedKey({ label: uniqueLabel('t'), type: 'aes-256-wrap' }, randomBytes(32), { soPin: `${soPin}x` }), LoginFailed);
      }
      expect((await driver.hmacSha256(key, Buffer.from('still logged in'))).length).toBe(32);
    });
  });
}

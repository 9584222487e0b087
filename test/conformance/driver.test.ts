// One conformance suite, every backend, the same assertions.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, createHmac, createPublicKey, createDecipheriv, verify as nodeVerify, randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import type { HsmDriver, KeyRef, KeyType } from '../../src/hsm/driver.js';
import {
  AmbiguousKey, AuthenticationFailed, DriverClosed, HsmError, InvalidArgument, InvalidPoint, KeyExists, KeyNotFound,
  NonExportableKey, WrongKeyType,
} from '../../src/hsm/errors.js';
import { backends, reportMissingSoftHsm, uniqueLabel, type Harness } from '../support/backends.js';

reportMissingSoftHsm();

const N = p256.Point.Fn.ORDER;
const ROLE_USAGES: Record<KeyType, string[]> = {
  'ec-p256-derive': ['derive'],
  'ec-p256-sign': ['sign'],
  ed25519: ['sign'],
  'aes-256': ['encrypt', 'decrypt'],
  'aes-256-wrap': ['wrap', 'unwrap'],
  'hmac-sha256': ['sign', 'verify'],
};
const GEN_MECHANISM: Record<KeyType, string> = {
  'ec-p256-derive': 'CKM_EC_KEY_PAIR_GEN',
  'ec-p256-sign': 'CKM_EC_KEY_PAIR_GEN',
  ed25519: 'CKM_EC_EDWARDS_KEY_PAIR_GEN',
  'aes-256': 'CKM_AES_KEY_GEN',
  'aes-256-wrap': 'CKM_AES_KEY_GEN',
  'hmac-sha256': 'CKM_GENERIC_SECRET_KEY_GEN',
};
const TYPES = Object.keys(ROLE_USAGES) as KeyType[];

function x(point: Uint8Array, scalar: bigint): Uint8Array {
  return p256.Point.fromBytes(point).multiply(scalar).toBytes(true).subarray(1);
}

function spkiFromPoint(point: Uint8Array) {
  const P = p256.Point.fromBytes(point);
  const { x: px, y: py } = P.toAffine();
  const b64 = (v: bigint) => Buffer.from(v.toString(16).padStart(64, '0'), 'hex').toString('base64url');
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64(px), y: b64(py) }, format: 'jwk' });
}

async function expectError<T extends HsmError>(promise: Promise<unknown>, type: new (...args: never[]) => T): Promise<T> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${type.name}`).toBeInstanceOf(type);
  return err as T;
}

for (const backend of backends()) {
  describe(`HSM driver conformance: ${backend.name}`, () => {
    let driver: HsmDriver;
    let harness: Harness;
    const made: KeyRef[] = [];

    async function gen(type: KeyType, prefix: string = type): Promise<KeyRef> {
      const key = await driver.generateKey({ label: uniqueLabel(prefix), type });
      made.push(key);
      return key;
    }

    beforeAll(async () => {
      ({ driver, harness } = await backend.open());
    });

    afterAll(async () => {
      for (const key of made) await driver.destroyKey(key).catch(() => {});
      await driver.close();
    });

    describe('key lifecycle and lookup', () => {
      it.each(TYPES)('generates, finds (by label and by id), lists and destroys a %s key', async (type) => {
        const key = await driver.generateKey({ label: uniqueLabel('life'), type });
        expect(key.type).toBe(type);
        expect(key.id.length).toBeGreaterThan(0);
        const byLabel = await driver.findKey({ label: key.label });
        expect(byLabel).toEqual(key);
        const byId = await driver.findKey({ id: key.id });
        expect(byId.label).toBe(key.label);
        expect((await driver.listKeys()).map((k) => k.label)).toContain(key.label);
        await driver.destroyKey(key);
        await expectError(driver.findKey({ label: key.label }), KeyNotFound);
        await expectError(driver.keyAttributes(key), KeyNotFound);
      });

      it('a destroyed key cannot be used any more, by any session that used it before', async () => {
        const derive = await driver.generateKey({ label: uniqueLabel('gone'), type: 'ec-p256-derive' });
        const mac = await driver.generateKey({ label: uniqueLabel('gone'), type: 'hmac-sha256' });
        const peer = p256.getPublicKey(p256.utils.randomSecretKey(), false);
        await Promise.all(Array.from({ length: 8 }, () => Promise.all([driver.ecdh(derive, peer), driver.hmacSha256(mac, peer)])));
        await driver.destroyKey(derive);
        await driver.destroyKey(mac);
        for (let i = 0; i < 4; i++) {
          await expectError(driver.ecdh(derive, peer), KeyNotFound);
          await expectError(driver.hmacSha256(mac, peer), KeyNotFound);
        }
      });

      it('refuses a second key with the same label', async () => {
        const key = await gen('aes-256');
        await expectError(driver.generateKey({ label: key.label, type: 'aes-256' }), KeyExists);
        await expectError(driver.generateKey({ label: key.label, type: 'hmac-sha256' }), KeyExists);
      });

      it('keeps exactly-one semantics under concurrent generation, lookups and operations', async () => {
        const derive = await gen('ec-p256-derive', 'busy');
        const peer = p256.getPublicKey(p256.utils.randomSecretKey(), false);
        const label = uniqueLabel('race');
        const sameLabel = await Promise.allSettled([0, 1, 2].map(() => driver.generateKey({ label, type: 'aes-256' })));
        const winners = sameLabel.filter((r) => r.status === 'fulfilled');
        expect(winners).toHaveLength(1);
        made.push((winners[0] as PromiseFulfilledResult<KeyRef>).value);
        for (const r of sameLabel) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(KeyExists);
        const generated = Array.from({ length: 6 }, (_, i) => gen(i % 2 ? 'ec-p256-derive' : 'ed25519', 'busy-gen'));
        const lookups = Array.from({ length: 20 }, async () => {
          expect(await driver.findKey({ label: derive.label })).toEqual(derive);
          await driver.listKeys();
          await driver.ecdh(derive, peer);
        });
        await Promise.all([...generated, ...lookups]);
      });

      it('tells "none" and "several" apart', async () => {
        await expectError(driver.findKey({ label: uniqueLabel('absent') }), KeyNotFound);
        const id = randomBytes(8);
        made.push(await driver.generateKey({ label: uniqueLabel('dup-a'), type: 'aes-256', id }));
        made.push(await driver.generateKey({ label: uniqueLabel('dup-b'), type: 'hmac-sha256', id }));
        const err = await expectError(driver.findKey({ id }), AmbiguousKey);
        expect(err.count).toBe(2);
      });

      it('rejects bad labels and ids before the token', async () => {
        const before = driver.stats.tokenCalls;
        await expect(driver.generateKey({ label: '', type: 'aes-256' })).rejects.toBeInstanceOf(InvalidArgument);
        await expect(driver.generateKey({ label: 'x'.repeat(65), type: 'aes-256' })).rejects.toBeInstanceOf(InvalidArgument);
        await expect(driver.generateKey({ label: ' padded', type: 'aes-256' })).rejects.toBeInstanceOf(InvalidArgument);
        await expect(driver.generateKey({ label: 'ok', type: 'aes-256', id: new Uint8Array(33) })).rejects.toBeInstanceOf(InvalidArgument);
        await expect(driver.generateKey({ label: 'ok', type: 'rsa' as KeyType })).rejects.toBeInstanceOf(InvalidArgument);
        expect(driver.stats.tokenCalls).toBe(before);
      });

      it('refuses an operation on a key of the wrong role', async () => {
        const aes = await gen('aes-256');
        await expectError(driver.ecdh(aes, p256.Point.BASE.toBytes(false)), WrongKeyType);
        await expectError(driver.sign(aes, new Uint8Array(32)), WrongKeyType);
        await expectError(driver.hmacSha256(aes, new Uint8Array(1)), WrongKeyType);
        await expectError(driver.publicKey(aes), WrongKeyType);
        const lying: KeyRef = { ...aes, type: 'hmac-sha256' };
        await expectError(driver.hmacSha256(lying, new Uint8Array(1)), WrongKeyType);
      });
    });

    describe('attributes as evidence', () => {
      it.each(TYPES)('a generated %s key is local, always sensitive, never extractable, with only its role\'s usages', async (type) => {
        const key = await gen(type);
        const a = await driver.keyAttributes(key);
        expect(a).toMatchObject({
          label: key.label, id: Buffer.from(key.id).toString('hex'), type,
          local: true, sensitive: true, alwaysSensitive: true, extractable: false, neverExtractable: true,
          keyGenMechanism: GEN_MECHANISM[type],
        });
        expect([...a.usages].sort()).toEqual([...ROLE_USAGES[type]].sort());
      });

      it('an imported key is sensitive and non-extractable but not local and not always-sensitive', async () => {
        const key = await driver.importKey({ label: uniqueLabel('imp'), type: 'aes-256' }, { type: 'aes-256', secret: randomBytes(32) });
        made.push(key);
        expect(await driver.keyAttributes(key)).toMatchObject({
          local: false, sensitive: true, alwaysSensitive: false, extractable: false, neverExtractable: false, keyGenMechanism: null,
        });
      });
    });

    describe('every export path fails', () => {
      it.each(TYPES)('%s: CKA_VALUE read, attribute flips and wrapping all give NonExportableKey', async (type) => {
        const key = await gen(type);
        const wrapper = await gen('aes-256-wrap', 'wrapper');
        await expectError(driver.exportKeyValue(key), NonExportableKey);
        await expectError(driver.updateKeyAttributes(key, { extractable: true }), NonExportableKey);
        await expectError(driver.updateKeyAttributes(key, { sensitive: false }), NonExportableKey);
        await expectError(driver.wrapKey(wrapper, key), NonExportableKey);
        // and the key is unchanged afterwards
        expect(await driver.keyAttributes(key)).toMatchObject({ sensitive: true, extractable: false, neverExtractable: true });
      });

      it('imported keys cannot be exported either', async () => {
        const key = await driver.importKey({ label: uniqueLabel('impx'), type: 'hmac-sha256' }, { type: 'hmac-sha256', secret: randomBytes(32) });
        made.push(key);
        const wrapper = await gen('aes-256-wrap', 'wrapper');
        await expectError(driver.exportKeyValue(key), NonExportableKey);
        await expectError(driver.wrapKey(wrapper, key), NonExportableKey);
      });
    });

    describe('ECDH', () => {
      it('equals x(k·P) computed in software, for an imported k', async () => {
        const k = BigInt(`0x${randomBytes(31).toString('hex')}`) + 1n;
        const scalar = Buffer.from(k.toString(16).padStart(64, '0'), 'hex');
        const key = await driver.importKey({ label: uniqueLabel('ecdh-imp'), type: 'ec-p256-derive' }, { type: 'ec-p256-derive', scalar });
        made.push(key);
        expect(Buffer.from(await driver.publicKey(key))).toEqual(Buffer.from(p256.getPublicKey(scalar, false)));
        for (let i = 0; i < 20; i++) {
          const P = p256.Point.BASE.multiply(BigInt(`0x${randomBytes(31).toString('hex')}`) + 1n);
          const expected = x(P.toBytes(false), k);
          expect(Buffer.from(await driver.ecdh(key, P.toBytes(false)))).toEqual(Buffer.from(expected));
          expect(Buffer.from(await driver.ecdh(key, P.toBytes(true)))).toEqual(Buffer.from(expected));
        }
      });

      it('agrees with the peer side for a generated key', async () => {
        const key = await gen('ec-p256-derive');
        const K = await driver.publicKey(key);
        expect(K.length).toBe(65);
        const peer = p256.utils.randomSecretKey();
        const peerPub = p256.getPublicKey(peer, false);
        const shared = p256.getSharedSecret(peer, K, true).subarray(1);
        expect(Buffer.from(await driver.ecdh(key, peerPub))).toEqual(Buffer.from(shared));
      });

      it('rejects invalid points before the token', async () => {
        const key = await gen('ec-p256-derive');
        const G = p256.Point.BASE.toBytes(false);
        const offCurve = G.slice();
        offCurve[64]! ^= 1;
        const pBytes = Buffer.from(p256.Point.Fp.ORDER.toString(16), 'hex');
        const nonCanonicalX = Buffer.concat([Buffer.from([0x02]), pBytes]); // x = p
        const hybrid = G.slice();
        hybrid[0] = 0x06;
        const bad: Array<[string, Uint8Array]> = [
          ['off curve', offCurve],
          ['identity (SEC1 0x00)', Uint8Array.of(0)],
          ['identity (all zero)', new Uint8Array(65).fill(0, 1).map((v, i) => (i === 0 ? 4 : v))],
          ['wrong length', G.subarray(0, 64)],
          ['empty', new Uint8Array()],
          ['non-canonical x >= p', nonCanonicalX],
          ['hybrid prefix', hybrid],
          ['compressed with bad prefix', Uint8Array.of(0x05, ...G.subarray(1, 33))],
        ];
        const before = driver.stats.tokenCalls;
        for (const [what, point] of bad) {
          await expect(driver.ecdh(key, point), what).rejects.toBeInstanceOf(InvalidPoint);
        }
        expect(driver.stats.tokenCalls).toBe(before);
      });
    });

    describe('signatures', () => {
      it('ECDSA over a digest verifies with node:crypto and is low-S', async () => {
        const key = await gen('ec-p256-sign');
        const pub = spkiFromPoint(await driver.publicKey(key));
        for (let i = 0; i < 40; i++) {
          const message = randomBytes(50);
          const digest = createHash('sha256').update(message).digest();
          const sig = await driver.sign(key, digest);
          expect(sig.length).toBe(64);
          expect(BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`) <= N / 2n).toBe(true);
          expect(nodeVerify('sha256', message, { key: pub, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
        }
        await expectError(driver.sign(key, new Uint8Array(31)), InvalidArgument);
      });

      it('Ed25519 verifies with node:crypto', async () => {
        const key = await gen('ed25519');
        const raw = await driver.publicKey(key);
        expect(raw.length).toBe(32);
        const pub = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw]), format: 'der', type: 'spki' });
        for (const message of [new Uint8Array(), randomBytes(1), randomBytes(1000)]) {
          const sig = await driver.sign(key, message);
          expect(nodeVerify(null, message, pub, sig)).toBe(true);
        }
      });
    });

    describe('HMAC-SHA256', () => {
      it('equals node:crypto for an imported secret', async () => {
        const secret = randomBytes(32);
        const key = await driver.importKey({ label: uniqueLabel('hmac'), type: 'hmac-sha256' }, { type: 'hmac-sha256', secret });
        made.push(key);
        for (const data of [new Uint8Array(), randomBytes(33), randomBytes(4096)]) {
          expect(Buffer.from(await driver.hmacSha256(key, data))).toEqual(createHmac('sha256', secret).update(data).digest());
        }
      });
    });

    describe('AES-GCM', () => {
      it('round-trips, interoperates with node:crypto, and detects every kind of tampering', async () => {
        const secret = randomBytes(32);
        const key = await driver.importKey({ label: uniqueLabel('gcm'), type: 'aes-256' }, { type: 'aes-256', secret });
        made.push(key);
        const aad = Buffer.from('user-42|v7');
        for (const plaintext of [new Uint8Array(), randomBytes(1), randomBytes(64), randomBytes(5000)]) {
          const sealed = await driver.sealAesGcm(key, plaintext, aad);
          expect(sealed.iv.length).toBe(12);
          expect(sealed.ciphertext.length).toBe(plaintext.length + 16);
          expect(Buffer.from(await driver.openAesGcm(key, sealed, aad))).toEqual(Buffer.from(plaintext));
          const d = createDecipheriv('aes-256-gcm', secret, sealed.iv);
          d.setAAD(aad);
          d.setAuthTag(sealed.ciphertext.subarray(-16));
          expect(Buffer.concat([d.update(sealed.ciphertext.subarray(0, -16)), d.final()])).toEqual(Buffer.from(plaintext));
        }
        const sealed = await driver.sealAesGcm(key, randomBytes(40), aad);
        const flip = (b: Uint8Array, i: number) => { const c = b.slice(); c[i]! ^= 1; return c; };
        await expectError(driver.openAesGcm(key, { ...sealed, ciphertext: flip(sealed.ciphertext, 0) }, aad), AuthenticationFailed);
        await expectError(driver.openAesGcm(key, { ...sealed, ciphertext: flip(sealed.ciphertext, sealed.ciphertext.length - 1) }, aad), AuthenticationFailed);
        await expectError(driver.openAesGcm(key, { ...sealed, iv: flip(sealed.iv, 3) }, aad), AuthenticationFailed);
        await expectError(driver.openAesGcm(key, sealed, Buffer.from('user-43|v7')), AuthenticationFailed);
        await expectError(driver.openAesGcm(key, { ...sealed, ciphertext: sealed.ciphertext.subarray(0, 20) }, aad), AuthenticationFailed);
        await expectError(driver.openAesGcm(key, { ...sealed, iv: new Uint8Array() }, aad), InvalidArgument);
        await expectError(driver.openAesGcm(key, { ...sealed, ciphertext: new Uint8Array(15) }, aad), InvalidArgument);
        // still works after failures
        expect((await driver.openAesGcm(key, sealed, aad)).length).toBe(40);
      });

      it('10,000 seals give 10,000 distinct IVs', async () => {
        const key = await gen('aes-256');
        const ivs = new Set<string>();
        const batch = 500;
        for (let i = 0; i < 10_000; i += batch) {
          const sealed = await Promise.all(Array.from({ length: batch }, () => driver.sealAesGcm(key, Uint8Array.of(1), new Uint8Array())));
          for (const s of sealed) ivs.add(Buffer.from(s.iv).toString('hex'));
        }
        expect(ivs.size).toBe(10_000);
      });
    });

    describe('random', () => {
      it('returns the length asked for, different each time, and bounds the length', async () => {
        const a = await driver.randomBytes(32);
        const b = await driver.randomBytes(32);
        expect(a.length).toBe(32);
        expect(Buffer.from(a)).not.toEqual(Buffer.from(b));
        await expectError(driver.randomBytes(0), InvalidArgument);
        await expectError(driver.randomBytes(1 << 20), InvalidArgument);
      });
    });

    describe('concurrency and recovery', () => {
      async function mixed(count: number, onHalf?: () => void) {
        const derive = await gen('ec-p256-derive', 'mix-d');
        const signer = await gen('ec-p256-sign', 'mix-s');
        const ed = await gen('ed25519', 'mix-e');
        const secret = randomBytes(32);
        const mac = await driver.importKey({ label: uniqueLabel('mix-h'), type: 'hmac-sha256' }, { type: 'hmac-sha256', secret });
        made.push(mac);
        const aes = await gen('aes-256', 'mix-a');
        const K = await driver.publicKey(derive);
        const signerPub = spkiFromPoint(await driver.publicKey(signer));
        const edPub = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), await driver.publicKey(ed)]), format: 'der', type: 'spki' });
        const tasks: Array<Promise<void>> = [];
        for (let i = 0; i < count; i++) {
          if (onHalf && i === count / 2) tasks.push(Promise.resolve().then(onHalf));
          const data = randomBytes(32);
          switch (i % 5) {
            case 0: {
              const peer = p256.utils.randomSecretKey();
              tasks.push(driver.ecdh(derive, p256.getPublicKey(peer, false)).then((out) => {
                expect(Buffer.from(out)).toEqual(Buffer.from(p256.getSharedSecret(peer, K, true).subarray(1)));
              }));
              break;
            }
            case 1:
              tasks.push(driver.sign(signer, createHash('sha256').update(data).digest()).then((sig) => {
                expect(nodeVerify('sha256', data, { key: signerPub, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
              }));
              break;
            case 2:
              tasks.push(driver.sign(ed, data).then((sig) => expect(nodeVerify(null, data, edPub, sig)).toBe(true)));
              break;
            case 3:
              tasks.push(driver.hmacSha256(mac, data).then((out) => expect(Buffer.from(out)).toEqual(createHmac('sha256', secret).update(data).digest())));
              break;
            default:
              tasks.push(driver.sealAesGcm(aes, data, data).then((s) => driver.openAesGcm(aes, s, data)).then((pt) => expect(Buffer.from(pt)).toEqual(data)));
          }
        }
        await Promise.all(tasks);
      }

      it('1,000 mixed operations issued at once all give correct results', async () => {
        await mixed(1000);
      });

      it('recovers when every session is closed behind its back under load', async () => {
        const before = driver.stats.recoveries;
        await mixed(400, () => harness.closeAllSessions());
        expect(driver.stats.recoveries).toBeGreaterThan(before);
        await mixed(50);
      });

      it('recovers when the application is logged out from another session under load', async () => {
        const before = driver.stats.recoveries;
        await mixed(400, () => harness.logoutElsewhere());
        expect(driver.stats.recoveries).toBeGreaterThan(before);
        await mixed(50);
      });
    });

    describe('closing', () => {
      it('refuses work after close, and close is idempotent', async () => {
        const { driver: d } = await backend.open();
        await d.randomBytes(8);
        await Promise.all([d.close(), d.close()]);
        await expectError(d.randomBytes(8), DriverClosed);
      });
    });
  });
}

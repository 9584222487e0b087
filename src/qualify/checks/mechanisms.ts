// Every mechanism the vault needs, each proven by an operation whose result is checked in
// software (or against a published vector), not merely by its presence in C_GetMechanismList.

import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, verify as nodeVerify } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { AuthenticationFailed, MechanismUnsupported } from '../../hsm/errors.js';
import * as C from '../../hsm/pkcs11/constants.js';
import { aesSessionValue, attempt } from '../raw.js';
import { fail, pass, quirk, type Check } from '../types.js';
import { ed25519Spki, importedHmac, p256Spki, refusal, same } from './util.js';

// RFC 8032 §7.1, TEST 2.
const RFC8032 = {
  seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
  publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
  message: '72',
  signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
};
const AIV = Buffer.from('a65959a6', 'hex'); // RFC 5649 alternative initial value
const h = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

const mechanismProofs: Check[] = [
  {
    id: 'mech.list',
    phase: 'mechanisms',
    proves: 'C_GetMechanismList names every mechanism the vault uses',
    required: true,
    async run(ctx) {
      const info = await ctx.driver.info();
      const missing = info.mechanisms.filter((m) => !m.present);
      if (missing.length) return fail(`missing: ${missing.map((m) => `${m.name} (${m.purpose})`).join(', ')}`);
      return pass(`all ${info.mechanisms.length} present: ${info.mechanisms.map((m) => m.name).join(', ')}`);
    },
  },
  {
    id: 'mech.p256-keygen',
    phase: 'mechanisms',
    proves: 'CKM_EC_KEY_PAIR_GEN makes P-256 derive and sign keys whose public points are valid curve points',
    required: true,
    async run(ctx) {
      for (const type of ['ec-p256-derive', 'ec-p256-sign'] as const) {
        const key = await ctx.key(type);
        const point = await ctx.driver.publicKey(key); // the driver validates the point
        if (point.length !== 65) return fail(`${type}: public key is ${point.length} bytes`);
      }
      return pass('generated a derive and a sign key pair; both public points are on P-256');
    },
  },
  {
    id: 'mech.ecdh-derive',
    phase: 'mechanisms',
    proves: 'CKM_ECDH1_DERIVE with CKD_NULL into a readable generic secret returns x(k·P), equal to the software result',
    required: true,
    async run(ctx) {
      const key = await ctx.key('ec-p256-derive');
      const K = await ctx.driver.publicKey(key);
      for (let i = 0; i < 4; i++) {
        const peer = p256.utils.randomSecretKey();
        const x = await ctx.driver.ecdh(key, p256.getPublicKey(peer, i % 2 === 1));
        if (!same(x, p256.getSharedSecret(peer, K, true).subarray(1))) return fail('token ECDH output differs from the software computation');
      }
      return pass('4 derivations (compressed and uncompressed peers) equal the software x-coordinate');
    },
  },
  {
    id: 'mech.ecdsa',
    phase: 'mechanisms',
    proves: 'CKM_ECDSA signs a SHA-256 digest with a P-256 key and node:crypto verifies the signature',
    required: true,
    async run(ctx) {
      const key = await ctx.key('ec-p256-sign');
      const spki = p256Spki(await ctx.driver.publicKey(key));
      const message = randomBytes(48);
      const sig = await ctx.driver.sign(key, createHash('sha256').update(message).digest());
      if (!nodeVerify('sha256', message, { key: spki, dsaEncoding: 'ieee-p1363' }, sig)) return fail('signature does not verify');
      return pass('signature verifies (r||s, low-S after the driver\'s normalisation)');
    },
  },
  {
    id: 'mech.eddsa',
    phase: 'mechanisms',
    proves: 'CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA give pure Ed25519: RFC 8032 test 2 reproduced exactly, generated keys verify',
    required: true,
    async run(ctx) {
      const key = await ctx.key('ed25519');
      const message = randomBytes(40);
      const sig = await ctx.driver.sign(key, message);
      if (!nodeVerify(null, message, ed25519Spki(await ctx.driver.publicKey(key)), sig)) return fail('signature of a generated Ed25519 key does not verify');
      const vector = await ctx.driver.importKey({ label: ctx.label('ed25519-rfc8032'), type: 'ed25519' }, { type: 'ed25519', seed: h(RFC8032.seed) });
      ctx.track(vector);
      const pub = await ctx.driver.publicKey(vector);
      if (!same(pub, h(RFC8032.publicKey))) return fail('RFC 8032 test 2: public key differs');
      const vsig = await ctx.driver.sign(vector, h(RFC8032.message));
      if (!same(vsig, h(RFC8032.signature))) return fail('RFC 8032 test 2: signature differs (not pure Ed25519?)');
      return pass('generated key signs and verifies; RFC 8032 test 2 public key and signature reproduced');
    },
  },
  {
    id: 'mech.hmac-sha256',
    phase: 'mechanisms',
    proves: 'CKM_SHA256_HMAC in the token equals HMAC-SHA256 in software (imported key), and generated HMAC keys work',
    required: true,
    async run(ctx) {
      const { key, secret } = await importedHmac(ctx);
      const data = randomBytes(64);
      const mac = await ctx.driver.hmacSha256(key, data);
      if (!same(mac, createHmac('sha256', secret).update(data).digest())) return fail('token HMAC differs from software');
      const generated = await ctx.key('hmac-sha256');
      const a = await ctx.driver.hmacSha256(generated, data);
      const b = await ctx.driver.hmacSha256(generated, data);
      if (a.length !== 32 || !same(a, b)) return fail('HMAC with a generated key is not a stable 32-byte value');
      return pass('imported-key HMAC equals software; generated-key HMAC is deterministic, 32 bytes');
    },
  },
  {
    id: 'mech.aes-gcm',
    phase: 'mechanisms',
    proves: 'CKM_AES_GCM seals and opens with a 12-byte IV and AAD, interoperates with node:crypto, and refuses a tampered tag',
    required: true,
    async run(ctx) {
      const key = await ctx.key('aes-256');
      const plaintext = randomBytes(100);
      const aad = Buffer.from('user:qualify|v1');
      const sealed = await ctx.driver.sealAesGcm(key, plaintext, aad);
      const reopened = await ctx.driver.openAesGcm(key, sealed, aad).catch((err: unknown) => err);
      if (reopened instanceof AuthenticationFailed) {
        return fail('a fresh seal does not open with the IV the seal returned (AuthenticationFailed): the token encrypted under an IV of its own — sealed records would be lost (see gcm.iv; profile quirk gcmIvFromToken)');
      }
      if (reopened instanceof Error) throw reopened;
      if (!same(reopened as Uint8Array, plaintext)) return fail('round trip with a generated key differs');
      const tampered = { iv: sealed.iv, ciphertext: sealed.ciphertext.map((b, i) => (i === sealed.ciphertext.length - 1 ? b ^ 1 : b)) };
      const bad = await refusal(ctx.driver.openAesGcm(key, tampered, aad));
      if (!bad.refused) return fail('a tampered tag was ACCEPTED');
      const secret = randomBytes(32);
      const imported = await ctx.driver.importKey({ label: ctx.label('aes-imported'), type: 'aes-256' }, { type: 'aes-256', secret });
      ctx.track(imported);
      const s2 = await ctx.driver.sealAesGcm(imported, plaintext, aad);
      const d = createDecipheriv('aes-256-gcm', secret, s2.iv);
      d.setAAD(aad);
      d.setAuthTag(Buffer.from(s2.ciphertext.subarray(-16)));
      const soft = Buffer.concat([d.update(s2.ciphertext.subarray(0, -16)), d.final()]);
      if (!same(soft, plaintext)) return fail('node:crypto does not decrypt the token\'s ciphertext');
      const iv = randomBytes(12);
      const e = createCipheriv('aes-256-gcm', secret, iv);
      e.setAAD(aad);
      const ct = Buffer.concat([e.update(plaintext), e.final(), e.getAuthTag()]);
      if (!same(await ctx.driver.openAesGcm(imported, { iv, ciphertext: ct }, aad), plaintext)) return fail('the token does not open node:crypto\'s ciphertext');
      const tagError = (await ctx.driver.openAesGcm(key, tampered, aad).catch((err: unknown) => err)) instanceof AuthenticationFailed;
      return pass(`round trip, node:crypto interop both ways; tampered tag refused (${bad.how}${tagError ? '' : ', not mapped to AuthenticationFailed'})`);
    },
  },
  {
    id: 'mech.aes-key-wrap-pad',
    phase: 'mechanisms',
    proves: 'CKM_AES_KEY_WRAP_PAD (RFC 5649) wraps and unwraps 32-byte keys exactly as node:crypto does, and how it pads other lengths (session keys with known values)',
    required: true,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      return raw.withSession((s) => {
        const kek = randomBytes(32);
        const W = raw.pkcs11.C_CreateObject(s, aesSessionValue(ctx.label('kw-kek'), kek, [
          { type: C.CKA_WRAP, value: true }, { type: C.CKA_UNWRAP, value: true }, { type: C.CKA_PRIVATE, value: true },
        ]));
        const softWrap = (secret: Uint8Array): Buffer => createCipheriv('id-aes256-wrap-pad', kek, AIV).update(secret);
        const tokenWrap = (secret: Uint8Array, name: string) => {
          const T = raw.pkcs11.C_CreateObject(s, [
            { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
            { type: C.CKA_TOKEN, value: false }, { type: C.CKA_PRIVATE, value: true }, { type: C.CKA_LABEL, value: ctx.label(name) },
            { type: C.CKA_EXTRACTABLE, value: true }, { type: C.CKA_SENSITIVE, value: true }, { type: C.CKA_VALUE, value: Buffer.from(secret) },
          ]);
          return attempt(() => raw.pkcs11.C_WrapKey(s, { mechanism: C.CKM_AES_KEY_WRAP_PAD }, W, T, Buffer.alloc(256)));
        };
        // Vault keys are 32 bytes: that size must match RFC 5649 exactly.
        const secret = randomBytes(32);
        const wrapped = tokenWrap(secret, 'kw-target');
        if (!wrapped.ok) return fail(`C_WrapKey refused an extractable 32-byte key: ${wrapped.ckr}`);
        if (!same(wrapped.value, softWrap(secret))) return fail('wrapped 32-byte key differs from RFC 5649 in software');
        const unwrapped = attempt(() => raw.pkcs11.C_UnwrapKey(s, { mechanism: C.CKM_AES_KEY_WRAP_PAD }, W, softWrap(secret), [
          { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
          { type: C.CKA_TOKEN, value: false }, { type: C.CKA_LABEL, value: ctx.label('kw-unwrapped') },
          { type: C.CKA_SENSITIVE, value: false }, { type: C.CKA_EXTRACTABLE, value: true },
        ]));
        if (!unwrapped.ok) return fail(`C_UnwrapKey refused RFC 5649 output: ${unwrapped.ckr}`);
        const value = raw.attribute(s, unwrapped.value, C.CKA_VALUE);
        if (!value.ok || !same(value.value, secret)) return fail('unwrapped key value differs');
        // A length that needs padding shows whether the token implements the padding itself.
        const odd = randomBytes(45);
        const oddWrapped = tokenWrap(odd, 'kw-target-45');
        const base = '32-byte key wrapped to the RFC 5649 blob node:crypto computes, and unwrapped back';
        if (!oddWrapped.ok) return quirk(`${base}; a 45-byte key is refused (${oddWrapped.ckr})`);
        if (same(oddWrapped.value, softWrap(odd))) return pass(`${base}; 45-byte key (padded) also matches`);
        let inside = '';
        try {
          inside = createDecipheriv('id-aes256-wrap-pad', kek, AIV).update(oddWrapped.value).toString('hex');
        } catch {
          inside = '';
        }
        const zeroPadded = inside === Buffer.concat([odd, Buffer.alloc(3)]).toString('hex');
        return quirk(`${base}; but a 45-byte key is NOT wrapped per RFC 5649${zeroPadded ? ': the token zero-pads the key to 48 bytes itself and wraps 48 bytes (message length indicator 48, not 45)' : ''} — interop risk only for keys whose length is not a multiple of 8 (every vault key is 32 bytes)`);
      });
    },
  },
  {
    id: 'mech.random',
    phase: 'mechanisms',
    proves: 'C_GenerateRandom returns the requested length, and two draws differ',
    required: true,
    async run(ctx) {
      const a = await ctx.driver.randomBytes(32);
      const b = await ctx.driver.randomBytes(32);
      const big = await ctx.driver.randomBytes(4096);
      if (a.length !== 32 || big.length !== 4096) return fail('wrong length returned');
      if (same(a, b)) return fail('two 32-byte draws are EQUAL');
      const zeros = big.filter((x) => x === 0).length;
      if (zeros > 64) return fail(`4096 random bytes hold ${zeros} zero bytes (expected ~16)`);
      return pass('lengths right; draws differ; 4 KiB looks uniform at a glance');
    },
  },
];

/**
 * A mechanism the token lacks fails the check that needs it with that reason (CKR_MECHANISM_INVALID
 * behind MechanismUnsupported), instead of an "unexpected error".
 */
export const mechanismChecks: Check[] = mechanismProofs.map((check) => ({
  ...check,
  async run(ctx) {
    try {
      return await check.run(ctx);
    } catch (err) {
      if (err instanceof MechanismUnsupported) return fail(`the token lacks a mechanism this needs: ${err.message}`);
      throw err;
    }
  },
}));

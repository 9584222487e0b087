// How the token behaves where tokens differ: EC point encodings, invalid points, ECDH output,
// derived-key defaults and GCM IVs. Probes use session keys, so nothing outlives its session.

import { createDecipheriv, randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { InvalidPoint, MechanismUnsupported } from '../../hsm/errors.js';
import { derWrapOctetString } from '../../hsm/ec-point.js';
import * as C from '../../hsm/pkcs11/constants.js';
import { ecdhOutputTemplate } from '../../hsm/pkcs11/templates.js';
import { aesSessionValue, attempt, bool, type Mechanism, deriveEcdh, ecdhSessionPair } from '../raw.js';
import { fail, measuring, pass, quirk, skip, type Check, type Outcome, type QualifyContext } from '../types.js';
import { same } from './util.js';

function invalidPoints(valid: Uint8Array): Array<{ name: string; point: Uint8Array }> {
  const offCurve = valid.slice();
  offCurve[64] = offCurve[64]! ^ 1;
  const p = Buffer.from(p256.Point.Fp.ORDER.toString(16).padStart(64, '0'), 'hex');
  return [
    { name: 'off-curve point', point: offCurve },
    { name: 'identity (0x00)', point: Uint8Array.of(0) },
    { name: 'all-zero point', point: Uint8Array.from([4, ...new Uint8Array(64)]) },
    { name: 'x = p (non-canonical)', point: Uint8Array.from([4, ...p, ...valid.subarray(33)]) },
  ];
}

const OWN_IV = 'the token ignored the caller\'s IV and used its own (profile quirk gcmIvFromToken, not yet supported by the driver: it refuses to seal on such a token)';

/**
 * Driver level, on any backend: seal with an imported key and decrypt in software with the IV the
 * seal returned. A token that writes its own IV makes that fail. Undefined when the IV held.
 */
async function driverGcmIv(ctx: QualifyContext): Promise<Outcome | undefined> {
  const secret = randomBytes(32);
  const key = await ctx.driver.importKey({ label: ctx.label('gcm-iv-probe'), type: 'aes-256' }, { type: 'aes-256', secret });
  ctx.track(key);
  const plaintext = randomBytes(40);
  const aad = Buffer.from('aad');
  const sealed = await ctx.driver.sealAesGcm(key, plaintext, aad);
  const again = await ctx.driver.sealAesGcm(key, plaintext, aad);
  if (same(sealed.iv, again.iv)) return fail('two seals returned the SAME IV: GCM with a repeated IV leaks the authentication key');
  try {
    const d = createDecipheriv('aes-256-gcm', secret, sealed.iv);
    d.setAAD(aad);
    d.setAuthTag(sealed.ciphertext.subarray(-16));
    if (same(Buffer.concat([d.update(sealed.ciphertext.subarray(0, -16)), d.final()]), plaintext)) return undefined;
  } catch {
    // authentication failed: the ciphertext is not under the returned IV
  }
  return measuring(quirk(`driver level: software cannot decrypt a seal with the IV the seal returned: ${OWN_IV}`), { gcmIvFromToken: true });
}

export const behaviourChecks: Check[] = [
  {
    id: 'ec.point-encoding',
    phase: 'behaviour',
    proves: 'the form of CKA_EC_POINT the token returns (DER OCTET STRING or raw), and that the driver decodes it',
    required: true,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      const key = await ctx.key('ec-p256-derive');
      const point = await ctx.driver.publicKey(key);
      const form = raw.withSession((s) => {
        const [handle] = raw.find(s, [{ type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY }, { type: C.CKA_LABEL, value: key.label }], 2);
        if (!handle) return 'public object not found';
        const v = raw.attribute(s, handle, C.CKA_EC_POINT);
        if (!v.ok) return `unreadable (${v.ckr})`;
        if (v.value.length === 67 && v.value[0] === 0x04 && v.value[1] === 65) return 'DER OCTET STRING (04 41 04‖X‖Y)';
        if (v.value.length === 65) return 'raw uncompressed point';
        return `unexpected ${v.value.length}-byte value`;
      });
      if (point.length !== 65) return fail(`driver decoded a ${point.length}-byte point`);
      const encoding = form.startsWith('DER') ? 'der' : form.startsWith('raw') ? 'raw' : undefined;
      const outcome = pass(`CKA_EC_POINT is ${form}; the driver decodes it`);
      return encoding ? measuring(outcome, { ecPointEncoding: encoding }) : outcome;
    },
  },
  {
    id: 'ec.peer-encodings',
    phase: 'behaviour',
    proves: 'which peer point encodings CKM_ECDH1_DERIVE accepts (raw uncompressed, DER-wrapped, compressed), each with the right result',
    required: true,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      return raw.withSession((s) => {
        const pair = ecdhSessionPair(raw, s, ctx.label('ecdh-probe'));
        const peer = p256.utils.randomSecretKey();
        const expected = p256.getSharedSecret(peer, pair.point, true).subarray(1);
        const uncompressed = p256.getPublicKey(peer, false);
        const forms = [
          { name: 'raw', data: uncompressed },
          { name: 'DER', data: derWrapOctetString(uncompressed) },
          { name: 'compressed', data: p256.getPublicKey(peer, true) },
        ];
        const results = forms.map((f) => {
          const d = attempt(() => deriveEcdh(raw, s, pair.privateKey, f.data, ecdhOutputTemplate()));
          if (!d.ok) return { name: f.name, ok: false, text: `${f.name}: ${d.ckr}` };
          const v = raw.attribute(s, d.value, C.CKA_VALUE);
          const right = v.ok && same(v.value, expected);
          return { name: f.name, ok: right, text: `${f.name}: ${right ? 'accepted, correct' : 'accepted, WRONG result'}` };
        });
        const wrongResult = results.some((r) => r.text.includes('WRONG'));
        const text = results.map((r) => r.text).join('; ');
        if (wrongResult) return fail(text);
        const rawOk = results[0]!.ok;
        const derOk = results[1]!.ok;
        if (!rawOk && !derOk) return fail(`neither raw nor DER peer points accepted: ${text}`);
        if (!rawOk) return measuring(quirk(`${text} — set the profile quirk ecdhPublicDataEncoding=der`), { ecdhPublicDataEncoding: 'der' });
        return measuring(pass(text), { ecdhPublicDataEncoding: 'raw' });
      });
    },
  },
  {
    id: 'ec.invalid-points',
    phase: 'behaviour',
    proves: 'off-curve, identity and non-canonical peer points are refused by the token itself, and by our layer before the token sees them',
    required: true,
    async run(ctx) {
      const key = await ctx.key('ec-p256-derive');
      const valid = p256.getPublicKey(p256.utils.randomSecretKey(), false);
      const points = invalidPoints(valid);
      const layerAccepted: string[] = [];
      for (const { name, point } of points) {
        const err = await ctx.driver.ecdh(key, point).then(() => undefined, (e: unknown) => e);
        if (!(err instanceof InvalidPoint)) layerAccepted.push(`${name}${err ? ` (${(err as Error).name})` : ''}`);
      }
      if (layerAccepted.length) return fail(`our layer did not refuse with InvalidPoint: ${layerAccepted.join(', ')}`);
      if (!ctx.raw) return skip(`our layer refused all ${points.length} with InvalidPoint; the token's own refusal needs raw PKCS#11 (fake backend)`);
      const raw = ctx.raw;
      const token = raw.withSession((s) => {
        const pair = ecdhSessionPair(raw, s, ctx.label('invalid-probe'));
        return points.map(({ name, point }) => ({ name, a: attempt(() => deriveEcdh(raw, s, pair.privateKey, point, ecdhOutputTemplate())) }));
      });
      const accepted = token.filter((t) => t.a.ok).map((t) => t.name);
      const how = [...new Set(token.filter((t) => !t.a.ok).map((t) => (t.a.ok ? '' : t.a.ckr)))].join('/');
      if (accepted.length) return quirk(`the token ACCEPTED ${accepted.join(', ')} (our layer refuses them before any token call, so the vault is safe)`);
      return pass(`token refused all ${points.length} (${how}); our layer refused all ${points.length} with InvalidPoint`);
    },
  },
  {
    id: 'ec.ecdh-output',
    phase: 'behaviour',
    proves: 'CKD_NULL output is the 32-byte x-coordinate with CKA_VALUE_LEN=32, and what the token does without CKA_VALUE_LEN',
    required: true,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      return raw.withSession((s) => {
        const pair = ecdhSessionPair(raw, s, ctx.label('ecdh-len'));
        const peer = p256.utils.randomSecretKey();
        const expected = p256.getSharedSecret(peer, pair.point, true).subarray(1);
        const point = p256.getPublicKey(peer, false);
        const d = attempt(() => deriveEcdh(raw, s, pair.privateKey, point, ecdhOutputTemplate()));
        if (!d.ok) return fail(`derive with CKA_VALUE_LEN=32 refused: ${d.ckr}`);
        const v = raw.attribute(s, d.value, C.CKA_VALUE);
        if (!v.ok) return fail(`derived value unreadable: ${v.ckr}`);
        if (!same(v.value, expected)) return fail(`output is ${v.value.length} bytes and is not x(k·P)`);
        const noLen = attempt(() => deriveEcdh(raw, s, pair.privateKey, point, ecdhOutputTemplate().filter((a) => a.type !== C.CKA_VALUE_LEN)));
        let without = `refused (${noLen.ok ? '' : noLen.ckr})`;
        if (noLen.ok) {
          const nv = raw.attribute(s, noLen.value, C.CKA_VALUE);
          without = nv.ok ? `${nv.value.length} bytes${same(nv.value, expected) ? ' (the x-coordinate)' : ''}` : `unreadable (${nv.ckr})`;
        }
        return pass(`32 bytes, equal to x(k·P); without CKA_VALUE_LEN: ${without} (the driver always sets it)`);
      });
    },
  },
  {
    id: 'ec.derived-defaults',
    phase: 'behaviour',
    proves: 'the default protection of an ECDH-derived secret when the template does not say (the driver always sets it explicitly)',
    required: false,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      return raw.withSession((s) => {
        const pair = ecdhSessionPair(raw, s, ctx.label('ecdh-defaults'));
        const point = p256.getPublicKey(p256.utils.randomSecretKey(), false);
        const d = attempt(() => deriveEcdh(raw, s, pair.privateKey, point, [
          { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET }, { type: C.CKA_TOKEN, value: false },
        ]));
        if (!d.ok) return pass(`a minimal template is refused (${d.ckr}); the driver's explicit template is what matters`);
        const read = (t: number): string => {
          const a = raw.attribute(s, d.value, t);
          return a.ok ? String(bool(a.value)) : a.ckr;
        };
        const value = raw.attribute(s, d.value, C.CKA_VALUE);
        return pass(`defaults: SENSITIVE=${read(C.CKA_SENSITIVE)} EXTRACTABLE=${read(C.CKA_EXTRACTABLE)} LOCAL=${read(C.CKA_LOCAL)}; value ${value.ok ? `readable (${value.value.length} bytes)` : `unreadable (${value.ckr})`}`);
      });
    },
  },
  {
    id: 'gcm.iv',
    phase: 'behaviour',
    proves: 'AES-GCM honours the caller\'s 12-byte IV (software decrypts with it); whether the token also accepts an empty IV',
    required: true,
    async run(ctx) {
      let refused = '';
      const driverLevel = await driverGcmIv(ctx).catch((err: unknown) => {
        // The driver refuses to seal (no CKM_AES_GCM, or a profile says the token writes its own IV).
        if (err instanceof MechanismUnsupported) refused = err.message;
        else throw err;
        return undefined;
      });
      if (driverLevel) return driverLevel;
      if (refused && !ctx.raw) return skip(`the driver does not seal on this token (${refused}), and raw PKCS#11 is not available to probe the IV`);
      if (!ctx.raw) return pass('driver level: fresh IVs, and software decrypts each seal with the IV it returned; the empty-IV probe needs raw PKCS#11 (fake backend)');
      const raw = ctx.raw;
      return raw.withSession((s) => {
        const secret = randomBytes(32);
        const key = raw.pkcs11.C_CreateObject(s, aesSessionValue(ctx.label('gcm-probe'), secret, [
          { type: C.CKA_PRIVATE, value: true }, { type: C.CKA_ENCRYPT, value: true }, { type: C.CKA_DECRYPT, value: true },
        ]));
        const plaintext = randomBytes(40);
        const aad = Buffer.from('aad');
        const seal = (iv: Buffer, ivBits: number) => attempt(() => {
          const mechanism = { mechanism: C.CKM_AES_GCM, parameter: { type: 3 /* CK_PARAMS_AES_GCM */, iv, ivBits, aad, tagBits: 128 } };
          raw.pkcs11.C_EncryptInit(s, mechanism as Mechanism, key);
          return raw.pkcs11.C_Encrypt(s, plaintext, Buffer.alloc(plaintext.length + 16));
        });
        const iv = randomBytes(12);
        const sealed = seal(iv, 96);
        if (!sealed.ok) return measuring(quirk(`the token refuses a caller-chosen IV (${sealed.ckr}): it writes its own (profile quirk gcmIvFromToken, not yet supported by the driver)`), { gcmIvFromToken: true });
        let honoured = false;
        try {
          const d = createDecipheriv('aes-256-gcm', secret, iv);
          d.setAAD(aad);
          d.setAuthTag(sealed.value.subarray(-16));
          honoured = same(Buffer.concat([d.update(sealed.value.subarray(0, -16)), d.final()]), plaintext);
        } catch {
          honoured = false;
        }
        if (!honoured) return measuring(quirk(OWN_IV), { gcmIvFromToken: true });
        const empty = seal(Buffer.alloc(1).subarray(0, 0), 0);
        if (empty.ok) return quirk('caller\'s IV honoured; the token also ACCEPTS AN EMPTY IV (the driver always passes a fresh 12-byte IV, so the vault is not affected)');
        return pass(`caller's 12-byte IV honoured; empty IV refused (${empty.ckr})`);
      });
    },
  },
];

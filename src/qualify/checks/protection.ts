// Key protection the token itself must enforce. A token that lets any of these through does not
// qualify, whatever else it does well: the vault's trust model rests on keys never leaving it.

import type { KeyType } from '../../hsm/driver.js';
import { NonExportableKey } from '../../hsm/errors.js';
import * as C from '../../hsm/pkcs11/constants.js';
import { CKA_TRUSTED, CKA_WRAP_WITH_TRUSTED, CKU_SO, aesSessionKey, attempt, bool, describe, type Handle, type RawToken } from '../raw.js';
import { fail, pass, quirk, skip, type Check, type QualifyContext } from '../types.js';
import { refusal } from './util.js';

export const PROTECTED_TYPES: readonly KeyType[] = ['ec-p256-derive', 'ec-p256-sign', 'ed25519', 'aes-256', 'aes-256-wrap', 'hmac-sha256'];

function untrustedWrapKey(raw: RawToken, s: Handle, ctx: QualifyContext): Handle {
  return raw.pkcs11.C_GenerateKey(s, { mechanism: C.CKM_AES_KEY_GEN }, aesSessionKey(ctx.label('untrusted-kek'), [
    { type: C.CKA_PRIVATE, value: false }, { type: C.CKA_WRAP, value: true }, { type: C.CKA_UNWRAP, value: true },
    { type: C.CKA_SENSITIVE, value: true }, { type: C.CKA_EXTRACTABLE, value: false }, { type: C.CKA_MODIFIABLE, value: true },
  ]));
}

function wrapWithTrustedKey(raw: RawToken, s: Handle, ctx: QualifyContext, extractable: boolean): Handle {
  return raw.pkcs11.C_GenerateKey(s, { mechanism: C.CKM_AES_KEY_GEN }, aesSessionKey(ctx.label('wwt-target'), [
    { type: C.CKA_PRIVATE, value: true }, { type: C.CKA_SENSITIVE, value: true }, { type: C.CKA_EXTRACTABLE, value: extractable },
    { type: CKA_WRAP_WITH_TRUSTED, value: true }, { type: C.CKA_ENCRYPT, value: true },
  ]));
}

const wrap = (raw: RawToken, s: Handle, kek: Handle, key: Handle) =>
  attempt(() => raw.pkcs11.C_WrapKey(s, { mechanism: C.CKM_AES_KEY_WRAP_PAD }, kek, key, Buffer.alloc(256)));

export const protectionChecks: Check[] = [
  {
    id: 'protect.value-unreadable',
    phase: 'protection',
    proves: 'the value of every sensitive key is unreadable: each key role the vault generates, and a sensitive-but-extractable key',
    required: true,
    async run(ctx) {
      const leaks: string[] = [];
      const odd: string[] = [];
      for (const type of PROTECTED_TYPES) {
        const key = await ctx.key(type);
        try {
          const value = await ctx.driver.exportKeyValue(key);
          leaks.push(`${type} (${value.length} bytes READ)`);
        } catch (err) {
          if (!(err instanceof NonExportableKey)) odd.push(`${type}: ${(err as Error).name}`);
        }
      }
      let rawNote = '';
      if (ctx.raw) {
        const raw = ctx.raw;
        const read = raw.withSession((s) => {
          const k = raw.pkcs11.C_GenerateKey(s, { mechanism: C.CKM_AES_KEY_GEN }, aesSessionKey(ctx.label('sensitive-extractable'), [
            { type: C.CKA_PRIVATE, value: true }, { type: C.CKA_SENSITIVE, value: true }, { type: C.CKA_EXTRACTABLE, value: true },
          ]));
          return raw.attribute(s, k, C.CKA_VALUE);
        });
        if (read.ok) leaks.push(`sensitive but extractable AES key (${read.value.length} bytes READ)`);
        else rawNote = `; sensitive+extractable key: CKA_VALUE ${read.ckr}`;
      }
      if (leaks.length) return fail(`sensitive key values are READABLE: ${leaks.join(', ')}`);
      if (odd.length) return quirk(`refused, but not as "sensitive" (${odd.join('; ')})${rawNote}`);
      return pass(`CKA_VALUE refused for all ${PROTECTED_TYPES.length} roles${rawNote}`);
    },
  },
  {
    id: 'protect.no-weakening',
    phase: 'protection',
    proves: 'CKA_EXTRACTABLE cannot be turned on and CKA_SENSITIVE cannot be turned off, and the attributes stay as they were',
    required: true,
    async run(ctx) {
      const holes: string[] = [];
      const silent: string[] = [];
      for (const type of PROTECTED_TYPES) {
        // Keys of its own: on a token that lets the change through, the shared keys other checks
        // use must stay as they were, so each deficiency shows in the check that looks for it.
        const key = await ctx.driver.generateKey({ label: ctx.label(`weaken-${type}`), type });
        ctx.track(key);
        const tries = [
          { change: { extractable: true }, name: 'EXTRACTABLE→true' },
          { change: { sensitive: false }, name: 'SENSITIVE→false' },
        ] as const;
        for (const t of tries) {
          const r = await refusal(ctx.driver.updateKeyAttributes(key, t.change));
          const after = await ctx.driver.keyAttributes(key);
          const weakened = after.extractable || !after.sensitive;
          if (weakened) holes.push(`${type}: ${t.name} ${r.refused ? 'refused yet the attribute changed' : 'ACCEPTED'}`);
          else if (!r.refused) silent.push(`${type}: ${t.name}`);
        }
      }
      if (holes.length) return fail(`protection weakened: ${holes.join('; ')}`);
      if (silent.length) return quirk(`the token returned CKR_OK without changing the attribute for ${silent.join(', ')}`);
      return pass(`both changes refused for all ${PROTECTED_TYPES.length} roles; attributes unchanged`);
    },
  },
  {
    id: 'protect.no-wrap-non-extractable',
    phase: 'protection',
    proves: 'a non-extractable key cannot be wrapped out, even under a wrapping key of the same token',
    required: true,
    async run(ctx) {
      const kek = await ctx.key('aes-256-wrap');
      const wrapped: string[] = [];
      const how: string[] = [];
      for (const type of PROTECTED_TYPES.filter((t) => t !== 'aes-256-wrap')) {
        const r = await refusal(ctx.driver.wrapKey(kek, await ctx.key(type)));
        if (!r.refused) wrapped.push(type);
        else how.push(r.how);
      }
      if (wrapped.length) return fail(`non-extractable keys were WRAPPED: ${wrapped.join(', ')}`);
      return pass(`wrapping refused for all ${how.length} roles (${[...new Set(how)].join(', ')})`);
    },
  },
  {
    id: 'protect.wrap-with-trusted',
    phase: 'protection',
    proves: 'a CKA_WRAP_WITH_TRUSTED key is not wrapped under an untrusted key, and the attribute cannot be cleared',
    required: true,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      return raw.withSession((s) => {
        const kek = untrustedWrapKey(raw, s, ctx);
        const target = wrapWithTrustedKey(raw, s, ctx, true);
        const set = raw.attribute(s, target, CKA_WRAP_WITH_TRUSTED);
        if (!set.ok || bool(set.value) !== true) return fail(`CKA_WRAP_WITH_TRUSTED does not read back as true (${set.ok ? 'false' : set.ckr})`);
        const w = wrap(raw, s, kek, target);
        if (w.ok) return fail('a WRAP_WITH_TRUSTED key was WRAPPED under an untrusted key');
        const clear = attempt(() => raw.pkcs11.C_SetAttributeValue(s, target, [{ type: CKA_WRAP_WITH_TRUSTED, value: false }]));
        const still = raw.attribute(s, target, CKA_WRAP_WITH_TRUSTED);
        if (clear.ok && still.ok && bool(still.value) === false) return fail('CKA_WRAP_WITH_TRUSTED was CLEARED by the user');
        return pass(`wrap under an untrusted key ${describe(w)}; clearing the attribute ${describe(clear)}`);
      });
    },
  },
  {
    id: 'protect.trusted-user-refused',
    phase: 'protection',
    proves: 'a normal user can neither create a CKA_TRUSTED key nor mark an existing key trusted',
    required: true,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      return raw.withSession((s) => {
        const created = attempt(() => raw.pkcs11.C_GenerateKey(s, { mechanism: C.CKM_AES_KEY_GEN }, aesSessionKey(ctx.label('user-trusted'), [
          { type: C.CKA_PRIVATE, value: false }, { type: C.CKA_WRAP, value: true }, { type: CKA_TRUSTED, value: true },
        ])));
        const kek = untrustedWrapKey(raw, s, ctx);
        const set = attempt(() => raw.pkcs11.C_SetAttributeValue(s, kek, [{ type: CKA_TRUSTED, value: true }]));
        const after = raw.attribute(s, kek, CKA_TRUSTED);
        const createdAttr = created.ok ? raw.attribute(s, created.value, CKA_TRUSTED) : undefined;
        const createdTrusted = createdAttr?.ok === true && bool(createdAttr.value) === true;
        if (createdTrusted) return fail('the user CREATED a trusted wrapping key');
        if (after.ok && bool(after.value) === true) return fail('the user MARKED a key trusted');
        return pass(`user creating a trusted key: ${describe(created)}${created.ok ? ' (attribute ignored)' : ''}; user setting CKA_TRUSTED: ${describe(set)}`);
      });
    },
  },
  {
    id: 'protect.trusted-so',
    phase: 'protection',
    proves: 'the SO can create a trusted wrapping key, a WRAP_WITH_TRUSTED key then wraps under it, and a non-extractable one still does not',
    required: false,
    raw: true,
    timeoutMs: 20_000,
    async run(ctx) {
      const raw = ctx.raw!;
      if (ctx.soPin === undefined) return skip('no SO PIN given (--so-pin-source file:PATH or HSM_VAULT_SO_PIN_SOURCE)');
      if (ctx.userPin === undefined) return skip('the user PIN is not known to qualify, so it could not log the user back in after the SO');
      const s = raw.openSession();
      try {
        // Login state is per application: the SO can log in only after the user logs out.
        const out = attempt(() => raw.pkcs11.C_Logout(s));
        if (!out.ok) return skip(`could not log the user out for the SO login: ${out.ckr}`);
        let trustedKek: Handle | undefined;
        let soCreate = '';
        let soSetExisting = '';
        let relogin = '';
        try {
          const so = attempt(() => raw.pkcs11.C_Login(s, CKU_SO, ctx.soPin));
          if (!so.ok) return skip(`SO login refused: ${so.ckr}`);
          const created = attempt(() => raw.pkcs11.C_GenerateKey(s, { mechanism: C.CKM_AES_KEY_GEN }, aesSessionKey(ctx.label('so-trusted-kek'), [
            { type: C.CKA_PRIVATE, value: false }, { type: C.CKA_WRAP, value: true }, { type: C.CKA_UNWRAP, value: true },
            { type: C.CKA_SENSITIVE, value: true }, { type: C.CKA_EXTRACTABLE, value: false }, { type: CKA_TRUSTED, value: true },
          ])));
          soCreate = describe(created);
          if (created.ok) trustedKek = created.value;
          const existing = untrustedWrapKey(raw, s, ctx);
          soSetExisting = describe(attempt(() => raw.pkcs11.C_SetAttributeValue(s, existing, [{ type: CKA_TRUSTED, value: true }])));
          attempt(() => raw.pkcs11.C_Logout(s));
        } finally {
          const back = attempt(() => raw.pkcs11.C_Login(s, C.CKU_USER, ctx.userPin));
          if (!back.ok && back.rv !== 0x100 /* already logged in */) relogin = back.ckr;
        }
        if (relogin) return fail(`could not log the user back in after the SO: ${relogin}`);
        if (trustedKek === undefined) return quirk(`the SO could not create a trusted wrapping key (${soCreate}): multi-token fleets cannot move keys under a trusted transport key`);
        const trusted = raw.attribute(s, trustedKek, CKA_TRUSTED);
        if (!trusted.ok || bool(trusted.value) !== true) return quirk('the SO-created key does not read back CKA_TRUSTED=true');
        const target = wrapWithTrustedKey(raw, s, ctx, true);
        const ok = wrap(raw, s, trustedKek, target);
        const sealed = wrapWithTrustedKey(raw, s, ctx, false);
        const leak = wrap(raw, s, trustedKek, sealed);
        if (leak.ok) return fail('a NON-EXTRACTABLE key was wrapped under the trusted key');
        const setNote = `SO marking an existing key trusted: ${soSetExisting}`;
        if (!ok.ok) return quirk(`a WRAP_WITH_TRUSTED key does not wrap under the SO's trusted key (${ok.ckr}); ${setNote}`);
        return pass(`SO created a trusted key; WRAP_WITH_TRUSTED key wrapped under it; non-extractable key refused (${leak.ckr}); ${setNote}`);
      } finally {
        raw.closeSession(s);
      }
    },
  },
];

// Evidence attributes: deployment evidence quotes CKA_LOCAL, NEVER_EXTRACTABLE, ALWAYS_SENSITIVE
// and KEY_GEN_MECHANISM, so the token must report them truthfully for generated and imported keys.

import type { KeyAttributes, KeyType } from '../../hsm/driver.js';
import { fail, pass, quirk, type Check } from '../types.js';
import { PROTECTED_TYPES } from './protection.js';
import { importedHmac } from './util.js';

const GEN_MECHANISM: Record<KeyType, string> = {
  'ec-p256-derive': 'CKM_EC_KEY_PAIR_GEN',
  'ec-p256-sign': 'CKM_EC_KEY_PAIR_GEN',
  ed25519: 'CKM_EC_EDWARDS_KEY_PAIR_GEN',
  'aes-256': 'CKM_AES_KEY_GEN',
  'aes-256-wrap': 'CKM_AES_KEY_GEN',
  'hmac-sha256': 'CKM_GENERIC_SECRET_KEY_GEN',
};

const flags = (a: KeyAttributes): string =>
  `local=${a.local} neverExtractable=${a.neverExtractable} alwaysSensitive=${a.alwaysSensitive} keyGenMechanism=${a.keyGenMechanism ?? 'none'}`;

export const evidenceChecks: Check[] = [
  {
    id: 'evidence.generated',
    phase: 'evidence',
    proves: 'keys generated in the token report LOCAL, NEVER_EXTRACTABLE and ALWAYS_SENSITIVE true and their generation mechanism',
    required: true,
    async run(ctx) {
      const wrong: string[] = [];
      const missing: string[] = [];
      for (const type of PROTECTED_TYPES) {
        const a = await ctx.driver.keyAttributes(await ctx.key(type));
        if (!a.local || !a.neverExtractable || !a.alwaysSensitive || !a.sensitive || a.extractable) wrong.push(`${type}: ${flags(a)}`);
        else if (a.keyGenMechanism === null) missing.push(type);
        else if (a.keyGenMechanism !== GEN_MECHANISM[type]) wrong.push(`${type}: keyGenMechanism ${a.keyGenMechanism}, expected ${GEN_MECHANISM[type]}`);
      }
      if (wrong.length) return fail(`generated keys misreport their evidence: ${wrong.join('; ')}`);
      if (missing.length) return quirk(`CKA_KEY_GEN_MECHANISM unavailable for ${missing.join(', ')} (LOCAL and the rest are right)`);
      return pass(`all ${PROTECTED_TYPES.length} roles: local, never extractable, always sensitive, right generation mechanism`);
    },
  },
  {
    id: 'evidence.imported',
    phase: 'evidence',
    proves: 'imported keys are reported not LOCAL (evidence can tell them from generated ones)',
    required: true,
    async run(ctx) {
      const { key } = await importedHmac(ctx);
      const a = await ctx.driver.keyAttributes(key);
      if (a.local) return fail(`an imported key claims CKA_LOCAL=true: evidence could not tell it from a generated key (${flags(a)})`);
      const notes: string[] = [];
      if (a.neverExtractable) notes.push('NEVER_EXTRACTABLE=true');
      if (a.alwaysSensitive) notes.push('ALWAYS_SENSITIVE=true');
      if (a.keyGenMechanism !== null) notes.push(`KEY_GEN_MECHANISM=${a.keyGenMechanism}`);
      if (notes.length) return quirk(`imported key is not LOCAL, but reports ${notes.join(', ')} — evidence must rest on CKA_LOCAL (${flags(a)})`);
      return pass(`imported key: ${flags(a)}`);
    },
  },
];

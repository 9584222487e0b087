import { describe, expect, it } from 'vitest';
import { InvalidArgument } from '../../src/hsm/errors.js';
import { DEFAULT_QUIRKS, activeQuirks, loadProfiles, parseProfile, resolveQuirks, selectProfile } from '../../src/hsm/pkcs11/profile.js';
import * as C from '../../src/hsm/pkcs11/constants.js';
import { ecdhOutputTemplate } from '../../src/hsm/pkcs11/templates.js';

describe('native-config profiles', () => {
  const profiles = loadProfiles();

  it('ships a softhsm2 profile that matches SoftHSM2 by token info', () => {
    const p = selectProfile(profiles, { manufacturer: 'SoftHSM project', model: 'SoftHSM v2', libraryDescription: 'Implementation of PKCS11' });
    expect(p?.name).toBe('softhsm2');
    expect(resolveQuirks(p).ecPointEncoding).toBe('der');
  });

  it('every shipped profile parses, and every quirk it sets cites a source', () => {
    expect(profiles.length).toBeGreaterThan(0);
    for (const p of profiles) {
      for (const quirk of Object.keys(p.quirks)) {
        if (quirk === 'inlineCheapOperations' && p.quirks.inlineCheapOperations === false) continue; // our own policy default
        expect(p.citations?.some((c) => c.quirk === quirk && c.source.length > 0), `${p.name}: ${quirk} has no citation`).toBe(true);
      }
    }
  });

  it('derives a public ECDH output only where the profile says so (SoftHSM2), else leaves CKA_PRIVATE to the token', () => {
    const privateOf = (quirks: { ecdhOutputPublic: boolean }) => ecdhOutputTemplate(quirks).filter((a) => a.type === C.CKA_PRIVATE).map((a) => a.value);
    expect(privateOf(resolveQuirks(profiles.find((p) => p.name === 'softhsm2')))).toEqual([false]);
    expect(privateOf(DEFAULT_QUIRKS)).toEqual([]);
    for (const quirks of [DEFAULT_QUIRKS, { ecdhOutputPublic: true }]) {
      // Whatever CKA_PRIVATE says, the output stays a readable session object of 32 bytes.
      const t = new Map(ecdhOutputTemplate(quirks).map((a) => [a.type, a.value]));
      expect([t.get(C.CKA_TOKEN), t.get(C.CKA_SENSITIVE), t.get(C.CKA_EXTRACTABLE), t.get(C.CKA_VALUE_LEN)]).toEqual([false, false, true, 32]);
    }
  });

  it('unknown tokens get conservative defaults; unknown quirks are refused', () => {
    expect(selectProfile(profiles, { manufacturer: 'Acme', model: 'X', libraryDescription: '' })).toBeUndefined();
    expect(resolveQuirks(undefined)).toEqual(DEFAULT_QUIRKS);
    expect(activeQuirks(DEFAULT_QUIRKS)).toEqual([]);
    expect(() => parseProfile({ name: 'x', quirks: { flyingCars: true } }, 'inline')).toThrow(InvalidArgument);
    expect(() => selectProfile(profiles, { manufacturer: '', model: '', libraryDescription: '' }, 'nope')).toThrow('no native-config profile');
  });
});

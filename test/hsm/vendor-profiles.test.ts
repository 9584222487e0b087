// Every shipped vendor profile must load through the driver's own loader and cite a source for
// each quirk it sets, and nothing else. The same checks run against broken copies in a temp
// directory, so a check that can never fail is caught here too.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadProfiles, profilesDirectory, type Profile } from '../../src/hsm/pkcs11/profile.js';

/** Problems with the profiles in one directory, one line each; empty when all is well. */
function profileProblems(directory: string): string[] {
  const problems: string[] = [];
  const files = readdirSync(directory).filter((n) => n.endsWith('.json')).sort();
  let profiles: Profile[];
  try {
    profiles = loadProfiles(directory);
  } catch (err) {
    return [`loader refused the directory: ${(err as Error).message}`];
  }
  if (profiles.length !== files.length) problems.push(`${files.length} files but ${profiles.length} profiles loaded`);

  const seen = new Set<string>();
  profiles.forEach((profile, i) => {
    const file = files[i] ?? '?';
    if (seen.has(profile.name)) problems.push(`${file}: profile name "${profile.name}" is used twice`);
    seen.add(profile.name);
    if (`${profile.name}.json` !== basename(file)) problems.push(`${file}: name "${profile.name}" does not match the file name`);

    const set = new Set(Object.keys(profile.quirks));
    const citations = profile.citations ?? [];
    for (const quirk of set) {
      const cited = citations.some((c) => c.quirk === quirk && typeof c.source === 'string' && c.source.trim() !== '');
      if (!cited) problems.push(`${file}: quirk "${quirk}" has no citation with a source`);
    }
    for (const citation of citations) {
      if (!set.has(citation.quirk)) problems.push(`${file}: citation names "${citation.quirk}", which the profile does not set`);
    }
  });
  return problems;
}

describe('vendor profiles in native-config/profiles', () => {
  it('ships the expected vendors', () => {
    const names = loadProfiles().map((p) => p.name).sort();
    expect(names).toEqual(expect.arrayContaining(['aws-cloudhsm', 'entrust-nshield', 'softhsm2', 'thales-luna', 'yubihsm2']));
  });

  it('all load, have unique names matching their files, and cite exactly the quirks they set', () => {
    expect(profileProblems(profilesDirectory())).toEqual([]);
  });
});

describe('the checks fail on broken profiles', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** A temp copy of the shipped profiles with one file replaced (or added). */
  function copyWith(file: string, edit: (profile: Record<string, unknown>) => Record<string, unknown>, from = file): string {
    dir = mkdtempSync(join(tmpdir(), 'hsm-vault-profiles-'));
    const source = profilesDirectory();
    for (const n of readdirSync(source).filter((x) => x.endsWith('.json'))) {
      writeFileSync(join(dir, n), readFileSync(join(source, n)));
    }
    const original = JSON.parse(readFileSync(join(source, from), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, file), JSON.stringify(edit(original)));
    return dir;
  }

  it('an unshipped copy of the real profiles passes', () => {
    expect(profileProblems(copyWith('yubihsm2.json', (p) => p))).toEqual([]);
  });

  it('a quirk without a citation', () => {
    const d = copyWith('yubihsm2.json', (p) => ({ ...p, citations: (p.citations as { quirk: string }[]).filter((c) => c.quirk !== 'idMaxLength') }));
    expect(profileProblems(d)).toContain('yubihsm2.json: quirk "idMaxLength" has no citation with a source');
  });

  it('a citation with an empty source', () => {
    const d = copyWith('thales-luna.json', (p) => ({ ...p, citations: [{ quirk: 'gcmIvFromToken', source: ' ', note: '' }] }));
    expect(profileProblems(d)).toContain('thales-luna.json: quirk "gcmIvFromToken" has no citation with a source');
  });

  it('a citation for a quirk the profile does not set', () => {
    const d = copyWith('aws-cloudhsm.json', (p) => ({ ...p, citations: [...(p.citations as object[]), { quirk: 'ecPointEncoding', source: 'x', note: '' }] }));
    expect(profileProblems(d)).toContain('aws-cloudhsm.json: citation names "ecPointEncoding", which the profile does not set');
  });

  it('a name that does not match the file, and a duplicate name', () => {
    const d = copyWith('zz-copy.json', (p) => p, 'softhsm2.json');
    const problems = profileProblems(d);
    expect(problems).toContain('zz-copy.json: profile name "softhsm2" is used twice');
    expect(problems).toContain('zz-copy.json: name "softhsm2" does not match the file name');
  });

  it('a quirk the loader does not know', () => {
    const d = copyWith('entrust-nshield.json', (p) => ({ ...p, quirks: { flyingCars: true } }));
    expect(profileProblems(d)[0]).toMatch(/^loader refused the directory: .*unknown quirk "flyingCars"/);
  });

  it('a file that is not JSON', () => {
    dir = mkdtempSync(join(tmpdir(), 'hsm-vault-profiles-'));
    writeFileSync(join(dir, 'broken.json'), '{ "name": ');
    expect(profileProblems(dir)[0]).toMatch(/^loader refused the directory/);
  });
});

// The fake backend posing as deficient tokens (src/hsm/fake/capabilities.ts): each deficiency
// must be diagnosed by the check that looks for it, with a clear detail, and nothing else may
// fail besides token.backend (a fake never qualifies: it is insecure by design).

import { describe, expect, it } from 'vitest';
import { vaultProtocolLeg } from '../../src/cli/protocol-leg.js';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitFakeUri } from '../../src/hsm/fake/capabilities.js';
import { FakeDriver } from '../../src/hsm/fake/driver.js';
import { MechanismUnsupported, NonExportableKey, TokenUnavailable } from '../../src/hsm/errors.js';
import { loadProfileFile, loadProfiles, resolveQuirks } from '../../src/hsm/pkcs11/profile.js';
import { ALL_CHECKS, profileOf, qualify, writeReports, type QualifyRunOptions, type Report } from '../../src/qualify/index.js';

const fast: Partial<QualifyRunOptions> = { perfMs: 30, concurrency: 4, maxSessionsProbe: 16 };
const byStatus = (r: Report, s: string): string[] => r.checks.filter((c) => c.status === s).map((c) => c.id).sort();
const detail = (r: Report, id: string): string => r.checks.find((c) => c.id === id)!.detail;
// With the real vault layer, as the CLI runs it: it must not fail again for a deficiency diagnosed elsewhere.
const run = (query: string): Promise<Report> => qualify({ hsm: `fake:${query}`, ...fast, protocol: vaultProtocolLeg() });

describe('fake capabilities: the switches themselves', () => {
  it('parses URI parameters and leaves path/token to parseHsmUri', () => {
    expect(splitFakeUri('fake:?token=t&missing=CKM_EDDSA,CKM_AES_GCM&leaky=1&gcm-iv=token&max-sessions=4&fail-after=9')).toEqual({
      uri: 'fake:?token=t',
      capabilities: { missing: ['CKM_EDDSA', 'CKM_AES_GCM'], leaky: true, gcmIv: 'token', maxSessions: 4, failAfter: 9 },
    });
    expect(splitFakeUri('fake:')).toEqual({ uri: 'fake:', capabilities: {} });
    expect(() => splitFakeUri('fake:?missing=CKM_NOPE')).toThrow(/unknown mechanism/);
    expect(() => splitFakeUri('fake:?max-sessions=0')).toThrow(/integer >= 1/);
  });

  it('are off by default, and each does only what it says', async () => {
    const plain = await FakeDriver.open();
    const key = await plain.generateKey({ label: 'k', type: 'aes-256' });
    await expect(plain.exportKeyValue(key)).rejects.toBeInstanceOf(NonExportableKey);
    expect((await plain.info()).mechanisms.every((m) => m.present)).toBe(true);

    const missing = await FakeDriver.open(undefined, { capabilities: { missing: ['CKM_EDDSA'] } });
    const ed = await missing.generateKey({ label: 'e', type: 'ed25519' });
    await expect(missing.sign(ed, new Uint8Array(8))).rejects.toBeInstanceOf(MechanismUnsupported);
    expect((await missing.info()).mechanisms.find((m) => m.name === 'CKM_EDDSA')!.present).toBe(false);

    const dying = await FakeDriver.open(undefined, { capabilities: { failAfter: 2 } });
    await dying.randomBytes(1);
    await dying.randomBytes(1);
    await expect(dying.randomBytes(1)).rejects.toBeInstanceOf(TokenUnavailable);

    const capped = await FakeDriver.open(undefined, { capabilities: { maxSessions: 3 } });
    expect((await capped.info()).maxSessionCount).toBe(3);
    const s = await capped.openSession();
    await expect(capped.openSession()).rejects.toThrow(/CKR_SESSION_COUNT/);
    await capped.closeSession(s);
    await capped.openSession();
  });
});

describe('qualify: simulated deficient tokens', () => {
  it('a token without CKM_EDDSA and CKM_AES_GCM: mech.list, mech.eddsa and mech.aes-gcm fail, nothing else', async () => {
    const r = await run('?missing=CKM_EDDSA,CKM_AES_GCM');
    expect(r.verdict).toBe('does not qualify');
    expect(byStatus(r, 'fail')).toEqual(['mech.aes-gcm', 'mech.eddsa', 'mech.list', 'token.backend']);
    expect(byStatus(r, 'quirk')).toEqual([]);
    expect(detail(r, 'mech.list')).toBe('missing: CKM_EDDSA (Ed25519 countersignatures and transcripts), CKM_AES_GCM (seal records and login state)');
    expect(detail(r, 'mech.eddsa')).toMatch(/lacks a mechanism.*CKM_EDDSA \(CKR_MECHANISM_INVALID\)/);
    expect(detail(r, 'mech.aes-gcm')).toMatch(/lacks a mechanism.*CKM_AES_GCM/);
    // Load and throughput leave the missing operations out, saying why, instead of failing.
    expect(detail(r, 'token.threads')).toMatch(/all correct; left out: ed25519 \(CKM_EDDSA missing.*gcm \(CKM_AES_GCM missing/);
    expect(detail(r, 'perf.ed25519')).toMatch(/not measured: CKM_EDDSA missing/);
    expect(detail(r, 'gcm.iv')).toMatch(/does not seal on this token/);
    expect(r.reasons.some((x) => x.startsWith('mech.list: missing: CKM_EDDSA'))).toBe(true);
    expect(detail(r, 'protocol.register-recover')).toMatch(/^not run: the vault layer needs every operation, and this token lacks: ed25519/);
  });

  it('a token that does not enforce non-exportability: the three protection checks fail, evidence stays right', async () => {
    const r = await run('?leaky=1');
    expect(r.verdict).toBe('does not qualify');
    expect(byStatus(r, 'fail')).toEqual(['protect.no-weakening', 'protect.no-wrap-non-extractable', 'protect.value-unreadable', 'token.backend']);
    expect(detail(r, 'protect.value-unreadable')).toMatch(/^sensitive key values are READABLE: ec-p256-derive \(32 bytes READ\)/);
    expect(detail(r, 'protect.no-weakening')).toMatch(/EXTRACTABLE→true ACCEPTED.*SENSITIVE→false ACCEPTED/);
    expect(detail(r, 'protect.no-wrap-non-extractable')).toBe('non-extractable keys were WRAPPED: ec-p256-derive, ec-p256-sign, ed25519, aes-256, hmac-sha256');
    // the weakening probe used keys of its own, so evidence and the vault layer still work
    expect(byStatus(r, 'pass')).toEqual(expect.arrayContaining(['evidence.generated', 'protocol.opaque-login', 'protocol.register-recover']));
  });

  it('a token that writes its own GCM IV: gcm.iv is a quirk (gcmIvFromToken), mech.aes-gcm fails', async () => {
    const r = await run('?gcm-iv=token');
    expect(r.verdict).toBe('does not qualify');
    expect(byStatus(r, 'fail')).toEqual(['mech.aes-gcm', 'token.backend']);
    expect(byStatus(r, 'quirk')).toEqual(['gcm.iv']);
    expect(detail(r, 'gcm.iv')).toMatch(/ignored the caller's IV and used its own \(profile quirk gcmIvFromToken/);
    expect(detail(r, 'mech.aes-gcm')).toMatch(/does not open with the IV the seal returned/);
    expect(r.checks.find((c) => c.id === 'gcm.iv')!.measured).toEqual({ gcmIvFromToken: true });
    expect(profileOf(r)!.quirks).toEqual({ gcmIvFromToken: true });
    expect(detail(r, 'token.threads')).toMatch(/left out: gcm \(AES-GCM round trip fails/);
  });

  it('a token that caps sessions: a quirk with maxSessions when the vault still fits, a fail when it does not', async () => {
    const four = await run('?max-sessions=4');
    expect(byStatus(four, 'fail')).toEqual(['token.backend']);
    expect(byStatus(four, 'quirk')).toEqual(['token.sessions']);
    expect(detail(four, 'token.sessions')).toMatch(/^opened 2 \(then TokenUnavailable: .*CKR_SESSION_COUNT.*\) beside the driver's 2; token claims 4/);
    expect(profileOf(four)!.quirks).toEqual({ maxSessions: 4 });

    const three = await run('?max-sessions=3');
    expect(byStatus(three, 'fail')).toEqual(['token.backend', 'token.sessions']);
    expect(detail(three, 'token.sessions')).toMatch(/opened 1 .*needs at least two more sessions/);
  });

  it('a token that fails mid-run: one check reports it, the rest skip with that reason, and the run ends cleanly', async () => {
    const r = await run('?fail-after=60');
    expect(r.verdict).toBe('does not qualify');
    const failed = byStatus(r, 'fail').filter((id) => id !== 'token.backend' && id !== 'cleanup.objects');
    expect(failed).toHaveLength(1);
    const where = failed[0]!;
    expect(detail(r, where)).toMatch(/TokenUnavailable.*stopped answering after 60 operations.*the \d+ checks after this one did not run/);
    const after = ALL_CHECKS.slice(ALL_CHECKS.findIndex((c) => c.id === where) + 1).map((c) => c.id);
    expect(after.length).toBeGreaterThan(10);
    for (const id of after) expect(detail(r, id), id).toMatch(new RegExp(`^not run: the token stopped answering during ${where.replace('.', '\\.')}`));
    expect(detail(r, 'cleanup.objects')).toMatch(/^cleanup failed: TokenUnavailable.*may remain/);
    expect(r.reasons.find((x) => x.startsWith(`${where}:`))).toMatch(/stopped answering/);
  });
});

describe('qualify: profile.json', () => {
  it('is a native-config profile the driver loads, citing the run for each quirk', async () => {
    const r = await run('?gcm-iv=token&max-sessions=4');
    const dir = mkdtempSync(join(tmpdir(), 'hvq-profile-'));
    try {
      const paths = writeReports(r, dir, { profileName: 'fake-deficient' });
      expect(paths.profile).toBe(join(dir, 'profile.json'));
      const profile = loadProfileFile(paths.profile!);
      mkdirSync(join(dir, 'profiles'));
      copyFileSync(paths.profile!, join(dir, 'profiles', 'fake-deficient.json'));
      expect(loadProfiles(join(dir, 'profiles')).map((p) => p.name)).toEqual(['fake-deficient']);
      expect(profile.match).toEqual({ manufacturer: 'hsm-vault', model: 'fake (node:crypto)' });
      expect(profile.quirks).toEqual({ gcmIvFromToken: true, maxSessions: 4 });
      expect(resolveQuirks(profile).maxSessions).toBe(4);
      // the vendor-profile rule: every quirk cited, every citation names a quirk set
      expect(new Set(profile.citations!.map((c) => c.quirk))).toEqual(new Set(Object.keys(profile.quirks)));
      for (const c of profile.citations!) {
        expect(c.source).toContain(r.startedAt);
        expect(c.source).toMatch(/hsm-vault fake \(node:crypto\)/);
        expect(c.source).toMatch(/check (gcm\.iv|token\.sessions)/);
      }
      expect(JSON.parse(readFileSync(paths.profile!, 'utf8')).name).toBe('fake-deficient');
      expect(profileOf(r)!.name).toBe('hsm-vault-fake-node-crypto');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

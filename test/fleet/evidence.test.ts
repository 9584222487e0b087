// Deployment evidence: create on every backend, audit, and catch every edit to a signed field by
// the step it belongs to.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import type { HsmDriver } from '../../src/hsm/driver.js';
import { FakeDriver } from '../../src/hsm/fake/driver.js';
import { encodeBase64Url } from '../../src/fleet/bytes.js';
import { initFleet, joinFleet } from '../../src/fleet/ceremony.js';
import { softwareEd25519Signer } from '../../src/fleet/ed25519.js';
import { createFleetKeys, openFleetKeys, type FleetKeySet } from '../../src/fleet/keys.js';
import type { SignedTranscript } from '../../src/fleet/transcript.js';
import {
  EVIDENCE_VERSION, NO_ATTESTATION, createEvidence, directoryDigest, evidenceMessage, formatEvidence, type Evidence, type EvidenceBody,
} from '../../src/fleet/evidence.js';
import { auditEvidence, markdownAudit, htmlAudit, type EvidenceAudit, type StepId } from '../../src/fleet/evidence-audit.js';
import { backends, reportMissingSoftHsm, uniqueLabel } from '../support/backends.js';

let root: string;
let noDist: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'hsm-vault-evidence-'));
  writeFileSync(join(root, 'package-lock.json'), '{"lockfileVersion":3}\n');
  mkdirSync(join(root, 'dist', 'cli'), { recursive: true });
  writeFileSync(join(root, 'dist', 'index.js'), 'export {};\n');
  writeFileSync(join(root, 'dist', 'cli', 'main.js'), 'console.log(1);\n');
  noDist = mkdtempSync(join(tmpdir(), 'hsm-vault-evidence-nodist-'));
  writeFileSync(join(noDist, 'package-lock.json'), '{"lockfileVersion":3}\n');
});
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(noDist, { recursive: true, force: true });
});

const step = (a: EvidenceAudit, id: StepId) => a.steps.find((s) => s.id === id);
const failedSteps = (a: EvidenceAudit): StepId[] => a.steps.filter((s) => s.status === 'fail').map((s) => s.id);
const clone = (e: Evidence): Evidence => JSON.parse(JSON.stringify(e)) as Evidence;
const pinOf = (keys: FleetKeySet) => ({ key: keys.publicKeys.signing, source: '--fleet-key' });

/** Re-signs an evidence body with the fleet key in the token: how a hardware token's evidence would read. */
async function resign(driver: HsmDriver, keys: FleetKeySet, body: EvidenceBody): Promise<Evidence> {
  return { ...body, signature: encodeBase64Url(await driver.sign(keys.refs.signing, evidenceMessage(body))) };
}

for (const backend of backends()) {
  describe(`evidence on ${backend.name}`, () => {
    let driver: HsmDriver;
    let fleetId: string;
    let keys: FleetKeySet;
    let transcript: SignedTranscript;
    let evidence: Evidence;

    beforeAll(async () => {
      ({ driver } = await backend.open());
      fleetId = uniqueLabel('ev').slice(2);
      ({ keys, transcript } = await initFleet(driver, fleetId, { operators: ['alice'] }));
      evidence = await createEvidence(driver, fleetId, { transcript, softwareRoot: root });
    });
    afterAll(async () => {
      const fleet = await openFleetKeys(driver, fleetId);
      for (const ref of Object.values(fleet.refs)) await driver.destroyKey(ref).catch(() => undefined);
      await driver.close();
    });

    it('records the token, every key, no attestation, the transcript and the software, signed by the fleet key', () => {
      expect(evidence.version).toBe(EVIDENCE_VERSION);
      expect(evidence.fleetId).toBe(fleetId);
      expect(evidence.keys.map((k) => k.role).sort()).toEqual(['ake', 'hpke', 'oprf', 'oprfSeed', 'sealing', 'signing']);
      for (const k of evidence.keys) {
        expect(k.attributes).toMatchObject({ local: true, sensitive: true, alwaysSensitive: true, extractable: false, neverExtractable: true });
        expect(k.attributes!.keyGenMechanism).toMatch(/^CKM_/);
        expect(k.kcv).toMatch(/^[0-9a-f]{6}$/);
      }
      expect(evidence.keys.find((k) => k.role === 'sealing')!.publicKey).toBeNull();
      expect(evidence.keys.find((k) => k.role === 'signing')!.publicKey).toBe(encodeBase64Url(keys.publicKeys.signing));
      expect(evidence.attestation).toBeNull();
      expect(evidence.attestationNote).toBe(NO_ATTESTATION);
      expect(evidence.transcript!.transcript.fleetId).toBe(fleetId);
      expect(evidence.software.packageLockSha256).toMatch(/^[0-9a-f]{64}$/);
      expect(evidence.software.distSha256).toBe(directoryDigest(join(root, 'dist'))!.sha256);
      expect(evidence.software.distFiles).toBe(2);
      expect(evidence.signer.publicKey).toBe(encodeBase64Url(keys.publicKeys.signing));
      expect(formatEvidence(evidence)).not.toMatch(/\n./); // canonical: one line
    });

    it('audits with every step passing except the honest warnings, and says the token cannot prove key protection', () => {
      const a = auditEvidence(formatEvidence(evidence), { pin: pinOf(keys), source: root });
      expect(failedSteps(a)).toEqual([]);
      expect(a.verdict).toBe('consistent, but unprovable on this token');
      expect(a.softwareToken).toBe(true);
      for (const id of ['format', 'signature', 'key-set', 'key-protection', 'transcript', 'software'] as const) expect(step(a, id)!.status).toBe('pass');
      expect(step(a, 'attestation')!.status).toBe('warn');
      expect(step(a, 'token')!.status).toBe('warn');
      expect(a.cannotProve.join('\n')).toMatch(backend.name === 'fake' ? /fake backend/ : /software token \(SoftHSM project[\s\S]*Nothing about key protection is proven on this token/);
      expect(a.cannotProve.join('\n')).toMatch(/No vendor attestation/);
      expect(markdownAudit(a)).toMatch(/^# hsm-vault evidence audit: CONSISTENT, BUT UNPROVABLE ON THIS TOKEN/);
      expect(markdownAudit(a)).toMatch(/## What this evidence cannot prove/);
      expect(htmlAudit(a)).toMatch(/<!doctype html>[\s\S]*What this evidence cannot prove/);
      expect(htmlAudit(a)).not.toMatch(/<(script|link|img)\b/);
    });

    const edits: Array<[string, (e: Evidence) => void, StepId]> = [
      ['a key attribute (sealing key made extractable)', (e) => { (e.keys.find((k) => k.role === 'sealing')!.attributes as { extractable: boolean }).extractable = true; }, 'key-protection'],
      ['a public key (hpke replaced by another valid point)', (e) => { (e.keys.find((k) => k.role === 'hpke') as { publicKey: string }).publicKey = encodeBase64Url(p256.Point.BASE.multiply(7n).toBytes(false)); }, 'key-set'],
      ['the token serial', (e) => { (e.token as { serial: string }).serial = 'HSM-0001'; }, 'transcript'],
      ['the software digest', (e) => { (e.software as { distSha256: string }).distSha256 = '00'.repeat(32); }, 'software'],
      ['the transcript (an operator renamed)', (e) => { (e.transcript!.transcript as unknown as { operators: string[] }).operators = ['mallory']; }, 'transcript'],
    ];
    for (const [what, edit, named] of edits) {
      it(`edited evidence: ${what} -> inconsistent, failing the signature and the ${named} step`, () => {
        const e = clone(evidence);
        edit(e);
        const a = auditEvidence(formatEvidence(e), { pin: pinOf(keys), source: root });
        expect(a.verdict).toBe('inconsistent');
        expect(failedSteps(a)).toContain('signature');
        expect(failedSteps(a)).toContain(named);
        expect(step(a, 'signature')!.summary).toMatch(/a signed field was changed after signing/);
        expect(markdownAudit(a)).toMatch(new RegExp(`### ${named}: FAIL`));
      });
    }

    it('a wrong pinned key -> inconsistent; no pinned key -> a warning, not a pass', () => {
      const other = softwareEd25519Signer().publicKey;
      const wrong = auditEvidence(evidence, { pin: { key: other, source: '--fleet-key' } });
      expect(wrong.verdict).toBe('inconsistent');
      expect(failedSteps(wrong)).toEqual(['signature']);
      expect(step(wrong, 'signature')!.summary).toMatch(/but the fleet signing key from --fleet-key is/);
      const unpinned = auditEvidence(evidence);
      expect(step(unpinned, 'signature')!.status).toBe('warn');
      expect(step(unpinned, 'signature')!.summary).toMatch(/self-signed/);
      expect(unpinned.cannotProve.join('\n')).toMatch(/No fleet key was pinned/);
    });

    it('a checkout with another lockfile -> the software step fails', () => {
      const other = mkdtempSync(join(tmpdir(), 'hsm-vault-evidence-other-'));
      try {
        writeFileSync(join(other, 'package-lock.json'), '{"lockfileVersion":2}\n');
        const a = auditEvidence(evidence, { pin: pinOf(keys), source: other });
        expect(failedSteps(a)).toEqual(['software']);
        expect(step(a, 'software')!.summary).toMatch(/package-lock.json of .* has SHA-256/);
      } finally {
        rmSync(other, { recursive: true, force: true });
      }
    });
  });
}

describe('dist digest', () => {
  it('is what find | sort | sha256sum prints', () => {
    const shell = spawnSync('bash', ['-c', "cd dist && find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum"], { cwd: root, encoding: 'utf8' });
    expect(shell.status).toBe(0);
    expect(shell.stdout.split(' ')[0]).toBe(directoryDigest(join(root, 'dist'))!.sha256);
    expect(directoryDigest(join(root, 'absent'))).toBeNull();
  });
});

describe('evidence on the fake backend: the remaining cases', () => {
  const drivers: HsmDriver[] = [];
  const open = async (...args: Parameters<typeof FakeDriver.open>) => {
    const d = await FakeDriver.open(...args);
    drivers.push(d);
    return d;
  };
  afterEach(async () => {
    for (const d of drivers.splice(0)) await d.close();
  });

  it('any change to any signed field fails the signature step (or the format step, for a wrong type)', async () => {
    const d = await open();
    const { transcript } = await initFleet(d, 'every', {});
    const evidence = await createEvidence(d, 'every', { transcript, softwareRoot: root });
    const paths: Array<Array<string | number>> = [];
    const walk = (v: unknown, path: Array<string | number>): void => {
      if (v !== null && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, [...path, Array.isArray(v) ? Number(k) : k]);
      else if (path[0] !== 'signature') paths.push(path);
    };
    walk(evidence, []);
    expect(paths.length).toBeGreaterThan(100);
    for (const path of paths) {
      const e = clone(evidence) as unknown as Record<string | number, unknown>;
      let parent = e;
      for (const p of path.slice(0, -1)) parent = parent[p] as Record<string | number, unknown>;
      const last = path.at(-1)!;
      const v = parent[last];
      parent[last] = typeof v === 'boolean' ? !v : typeof v === 'number' ? v + 1 : v === null ? 'x' : `${String(v)}x`;
      const a = auditEvidence(e);
      // A value of the wrong type or an unknown enum stops at the format step; anything else reaches the signature.
      expect(failedSteps(a), path.join('.')).toContain(step(a, 'format')!.status === 'fail' ? 'format' : 'signature');
      if (typeof v === 'string' && path[0] !== 'version' && path.at(-1) !== 'held') expect(step(a, 'signature')?.status, path.join('.')).toBe('fail');
      expect(a.verdict).toBe('inconsistent');
    }
  });

  it('a field added to the evidence fails the format step', async () => {
    const d = await open();
    await createFleetKeys(d, 'extra');
    const e = { ...(await createEvidence(d, 'extra', { softwareRoot: root })), note: 'trust me' };
    const a = auditEvidence(e);
    expect(failedSteps(a)).toEqual(['format']);
    expect(a.steps).toHaveLength(1);
    expect(a.verdict).toBe('inconsistent');
  });

  it('a hardware-looking token with every step passing is consistent (exit-0 case)', async () => {
    const d = await open();
    const keys = await createFleetKeys(d, 'hw');
    const made = await createEvidence(d, 'hw', { softwareRoot: root });
    const { signature: _, ...unsigned } = made;
    const body: EvidenceBody = { ...unsigned, token: { ...made.token, backend: 'pkcs11', manufacturer: 'Example HSM Corp', model: 'EX-1', serial: '1234', insecure: false } };
    const a = auditEvidence(await resign(d, keys, body), { pin: pinOf(keys), source: root });
    expect(failedSteps(a)).toEqual([]);
    expect(a.verdict).toBe('consistent');
    expect(step(a, 'transcript')!.status).toBe('warn');
    expect(a.cannotProve.join('\n')).not.toMatch(/software token|fake backend/);
  });

  it('dist/ absent: recorded as null, and the audit says so', async () => {
    const d = await open();
    await createFleetKeys(d, 'nodist');
    const e = await createEvidence(d, 'nodist', { softwareRoot: noDist });
    expect(e.software.distSha256).toBeNull();
    const a = auditEvidence(e, { source: noDist });
    expect(step(a, 'software')!.status).toBe('warn');
    expect(step(a, 'software')!.summary).toMatch(/dist\/ was absent/);
    expect(a.cannotProve.join('\n')).toMatch(/dist\/ did not exist/);
    expect(failedSteps(a)).toEqual([]);
  });

  it('a transportable fleet: explained, and without a transcript its copies are a warning', async () => {
    const d = await open();
    const { transcript } = await initFleet(d, 'moves', { transportable: true });
    const withT = auditEvidence(await createEvidence(d, 'moves', { transcript, softwareRoot: root }));
    expect(step(withT, 'key-protection')!.status).toBe('pass');
    expect(step(withT, 'key-protection')!.details.join('\n')).toMatch(/transportable/);
    expect(step(withT, 'transcript')!.status).toBe('pass');
    const withoutT = auditEvidence(await createEvidence(d, 'moves', { softwareRoot: root }));
    expect(step(withoutT, 'key-protection')!.status).toBe('warn');
  });

  it('a joined token: unwrapped (not LOCAL) keys pass only when the transcript accounts for them', async () => {
    const a = await open({ scheme: 'fake', label: 'origin' }, { wrapsEd25519: true });
    const b = await open({ scheme: 'fake', label: 'joined' });
    await initFleet(a, 'multi', { transportable: true });
    const { keys, transcript } = await joinFleet(a, b, 'multi', { transport: { soPinFrom: 'so', soPinTo: 'so' } });
    expect(keys.holdsSigningKey).toBe(true);
    const e = await createEvidence(b, 'multi', { transcript, softwareRoot: root });
    expect(e.keys.every((k) => k.attributes!.local === false)).toBe(true);
    const ok = auditEvidence(e, { pin: pinOf(keys) });
    expect(failedSteps(ok)).toEqual([]);
    expect(step(ok, 'transcript')!.details.join('\n')).toMatch(/token 1 of the transcript/);
    const bare = auditEvidence(await createEvidence(b, 'multi', { softwareRoot: root }), { pin: pinOf(keys) });
    expect(failedSteps(bare)).toEqual(['key-protection']);
    expect(step(bare, 'key-protection')!.summary).toMatch(/not LOCAL\) and no ceremony transcript accounts for how it arrived/);
  });

  it('refuses a transcript of another fleet key, and a token holding only the public signing key', async () => {
    const a = await open({ scheme: 'fake', label: 'a' });
    const b = await open({ scheme: 'fake', label: 'b' });
    const { transcript } = await initFleet(a, 'one', { transportable: true });
    await initFleet(b, 'one');
    await expect(createEvidence(b, 'one', { transcript, softwareRoot: root })).rejects.toThrow(/another fleet signing key/);
    const c = await open({ scheme: 'fake', label: 'c' });
    await joinFleet(a, c, 'one', { transport: { soPinFrom: 'so', soPinTo: 'so' } });
    await expect(createEvidence(c, 'one', { softwareRoot: root })).rejects.toThrow(/only the public half/);
  });
});

reportMissingSoftHsm();

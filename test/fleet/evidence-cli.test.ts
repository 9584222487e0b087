// `hsm-vault evidence create|audit` on a persistent fake token (fake:?path=FILE): in process for
// the option handling, and once as a real subprocess (main.ts does not register the command yet,
// so the subprocess runs evidenceCommands() through a two-line entry).

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { evidenceCommands } from '../../src/cli/evidence-commands.js';
import { fleetCommands } from '../../src/cli/fleet-commands.js';
import { bundleCommands } from '../../src/cli/trust-commands.js';
import { decodeBase64Url } from '../../src/fleet/bytes.js';
import { softwareEd25519Signer } from '../../src/fleet/ed25519.js';
import { LogStore } from '../../src/fleet/log-store.js';
import type { EvidenceAudit } from '../../src/fleet/evidence-audit.js';

async function run(command: () => Command, args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += String(chunk)), true));
  process.exitCode = 0;
  try {
    await command().exitOverride().parseAsync(args, { from: 'user' });
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { stdout, stderr, exitCode };
}

describe('hsm-vault evidence (fake:?path=FILE)', () => {
  let dir: string;
  let hsm: string;
  let source: string;
  let signingKey: string;
  const fleet = 'cli-ev';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hsm-vault-evidence-cli-'));
    hsm = `fake:?path=${join(dir, 'token.json')}`;
    source = join(dir, 'checkout');
    mkdirSync(join(source, 'dist'), { recursive: true });
    writeFileSync(join(source, 'package-lock.json'), '{"lockfileVersion":3}\n');
    writeFileSync(join(source, 'dist', 'index.js'), 'export {};\n');
    const init = await run(fleetCommands, ['init', '--hsm', hsm, '--fleet', fleet, '--operator', 'alice', '--transcript', join(dir, 'transcript.json'), '--state-dir', dir]);
    expect(init.exitCode).toBe(0);
    signingKey = (JSON.parse(init.stdout) as { signing: string }).signing;
    const bundle = await run(bundleCommands, ['create', '--hsm', hsm, '--fleet', fleet, '--out', join(dir, 'bundle-body.json'), '--state-dir', dir]);
    expect(bundle.exitCode).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('create writes canonical evidence, appends it to the log and prints the index; never overwrites', async () => {
    const args = ['create', '--hsm', hsm, '--fleet', fleet, '--out', join(dir, 'evidence.json'), '--transcript', join(dir, 'transcript.json'), '--log', join(dir, 'log'), '--source', source, '--state-dir', dir];
    const r = await run(evidenceCommands, args);
    expect(r.stderr).toMatch(/INSECURE/);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/appended to the audit log .* at index 0/);
    const text = readFileSync(join(dir, 'evidence.json'), 'utf8');
    const log = LogStore.open(join(dir, 'log'));
    expect(Buffer.from(log.entry(0)).toString('utf8')).toBe(text.trimEnd());
    const again = await run(evidenceCommands, args);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/cannot write the evidence .*EEXIST/);
  });

  it('audit: pinned by hex key or by bundle, checked against the checkout and the log; writes JSON, Markdown and HTML; exit 2 on the fake', async () => {
    const hex = Buffer.from(decodeBase64Url(signingKey)!).toString('hex');
    const r = await run(evidenceCommands, ['audit', join(dir, 'evidence.json'), '--fleet-key', hex, '--source', source, '--log', join(dir, 'log'), '--out', join(dir, 'audit')]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toMatch(/^CONSISTENT, BUT UNPROVABLE ON THIS TOKEN/);
    expect(r.stdout).toMatch(/what this cannot prove:/);
    const audit = JSON.parse(readFileSync(join(dir, 'audit', 'audit.json'), 'utf8')) as EvidenceAudit;
    expect(audit.steps.filter((s) => s.status === 'fail')).toEqual([]);
    expect(audit.steps.find((s) => s.id === 'log')!.details[0]).toMatch(/entry 0 of the log/);
    expect(readFileSync(join(dir, 'audit', 'audit.md'), 'utf8')).toMatch(/## What this evidence cannot prove/);
    expect(existsSync(join(dir, 'audit', 'audit.html'))).toBe(true);
    const viaBundle = await run(evidenceCommands, ['audit', join(dir, 'evidence.json'), '--bundle', join(dir, 'bundle-body.json'), '--json']);
    expect(viaBundle.exitCode).toBe(2);
    expect((JSON.parse(viaBundle.stdout) as EvidenceAudit).steps.find((s) => s.id === 'signature')!.status).toBe('pass');
  });

  it('audit: edited evidence exits 1 naming the step; a wrong pinned key exits 1', async () => {
    const e = JSON.parse(readFileSync(join(dir, 'evidence.json'), 'utf8')) as { token: { serial: string } };
    e.token.serial = 'HSM-0001';
    writeFileSync(join(dir, 'edited.json'), JSON.stringify(e));
    const r = await run(evidenceCommands, ['audit', join(dir, 'edited.json'), '--fleet-key', signingKey]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toMatch(/^INCONSISTENT/);
    expect(r.stdout).toMatch(/fail {2}signature +the signature does not verify/);
    expect(r.stdout).toMatch(/fail {2}transcript +the evidence's token .*serial HSM-0001\) is none of the transcript's tokens/);
    const other = Buffer.from(softwareEd25519Signer().publicKey).toString('hex');
    const wrong = await run(evidenceCommands, ['audit', join(dir, 'evidence.json'), '--fleet-key', other]);
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stdout).toMatch(/fail {2}signature +signed by .*, but the fleet signing key from --fleet-key is/);
    const bad = await run(evidenceCommands, ['audit', join(dir, 'evidence.json'), '--fleet-key', 'nope']);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/--fleet-key must be an Ed25519 public key: .* \[INVALID_ARGUMENT\]/);
  });

  it('runs as a subprocess with env twins', () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const entry = "import { evidenceCommands } from './src/cli/evidence-commands.ts'; await evidenceCommands().parseAsync(process.argv.slice(1), { from: 'user' });";
    const env = { ...process.env, HSM_VAULT_HSM: hsm, HSM_VAULT_FLEET: fleet, HSM_VAULT_SOURCE: source, HSM_VAULT_STATE_DIR: dir };
    const node = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', entry, '--', ...args], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
    const created = node(['create', '--out', join(dir, 'sub.json')]);
    expect(created.stderr).not.toMatch(/unexpected/);
    expect(created.status).toBe(0);
    const audited = node(['audit', join(dir, 'sub.json'), '--fleet-key', signingKey]);
    expect(audited.stdout).toMatch(/^CONSISTENT, BUT UNPROVABLE ON THIS TOKEN/);
    expect(audited.status).toBe(2);
  });
});

// The key-management CLI on both backends, run as a subprocess.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reportMissingSoftHsm, softHsmUri, uniqueLabel } from '../support/backends.js';
import { runCli } from '../support/cli.js';

reportMissingSoftHsm();

const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const targets = [
  { name: 'fake', uri: `fake:?path=${join(dir, 'fake-token.json')}` },
  ...(softHsmUri() ? [{ name: 'softhsm2', uri: softHsmUri()! }] : []),
];

for (const target of targets) {
  describe(`CLI keys on ${target.name}`, () => {
    const env = { HSM_VAULT_HSM: target.uri };

    it('generates, lists (JSON) and destroys a key; the process exits with the output complete', () => {
      const label = uniqueLabel('cli');
      const gen = runCli(['keys', 'generate', '--label', label, '--type', 'ec-p256-derive', '--json'], env);
      expect(gen.status, gen.stderr).toBe(0);
      expect(JSON.parse(gen.stdout)).toMatchObject({ label, type: 'ec-p256-derive', local: true, neverExtractable: true });

      const list = runCli(['keys', 'list', '--json'], env);
      expect(list.status, list.stderr).toBe(0);
      const keys = JSON.parse(list.stdout) as Array<{ label: string; sensitive: boolean }>;
      expect(keys.find((k) => k.label === label)).toMatchObject({ sensitive: true });

      const table = runCli(['keys', 'list'], env);
      expect(table.stdout).toMatch(new RegExp(`${label}\\s+ec-p256-derive\\s+yes\\s+yes\\s+yes\\s+no\\s+yes`));

      const dup = runCli(['keys', 'generate', '--label', label, '--type', 'aes-256'], env);
      expect(dup.status).toBe(1);
      expect(dup.stderr).toContain('[KEY_EXISTS]');
      expect(dup.stderr).not.toContain('    at '); // typed errors never print a stack

      const destroy = runCli(['keys', 'destroy', '--label', label], env);
      expect(destroy.status, destroy.stderr).toBe(0);
      const gone = runCli(['keys', 'destroy', '--label', label], env);
      expect(gone.status).toBe(1);
      expect(gone.stderr).toContain('[KEY_NOT_FOUND]');
    });

    it('hsm info lists every mechanism the vault needs', () => {
      const info = runCli(['hsm', 'info', '--json'], env);
      expect(info.status, info.stderr).toBe(0);
      const parsed = JSON.parse(info.stdout) as { mechanisms: Array<{ name: string; present: boolean }> };
      expect(parsed.mechanisms.map((m) => m.name)).toEqual(expect.arrayContaining(['CKM_ECDH1_DERIVE', 'CKM_AES_GCM', 'CKM_EDDSA', 'CKM_SHA256_HMAC']));
      expect(parsed.mechanisms.every((m) => m.present)).toBe(true);
    });
  });
}

describe('CLI errors', () => {
  it('explains a missing --hsm', () => {
    const r = runCli(['keys', 'list'], { HSM_VAULT_HSM: undefined });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('pass --hsm URI or set HSM_VAULT_HSM');
  });

  it('refuses a bad URI with a clear line', () => {
    const r = runCli(['keys', 'list', '--hsm', 'pkcs11:token=x;bogus=1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('unknown path attribute "bogus"');
  });

  it.runIf(softHsmUri() !== undefined)('a wrong PIN names C_Login and the CKR, never the PIN', () => {
    const uri = softHsmUri()!.replace(/pin-source=[^&]*/, 'pin-value=wrong-pin-424242');
    const r = runCli(['hsm', 'info', '--hsm', uri]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('C_Login failed: CKR_PIN_INCORRECT (0xa0)');
    expect(r.stderr + r.stdout).not.toContain('wrong-pin-424242');
  });
});

describe.runIf(softHsmUri() !== undefined)('independent check with pkcs11-tool', () => {
  it('a key made by `keys generate` shows as sensitive, always sensitive, never extractable and local', () => {
    let tool: string;
    try {
      tool = execFileSync('sh', ['-c', 'command -v pkcs11-tool']).toString().trim();
    } catch {
      if (process.env.HSM_VAULT_REQUIRE_SOFTHSM === '1') throw new Error('pkcs11-tool (opensc) is required in CI');
      return;
    }
    const label = uniqueLabel('p11tool');
    const gen = runCli(['keys', 'generate', '--label', label, '--type', 'ec-p256-sign'], { HSM_VAULT_HSM: softHsmUri() });
    expect(gen.status, gen.stderr).toBe(0);
    const uri = softHsmUri()!;
    const modulePath = decodeURIComponent(/module-path=([^&]*)/.exec(uri)![1]!);
    const pinFile = decodeURIComponent(/pin-source=file:([^&]*)/.exec(uri)![1]!);
    const out = execFileSync(tool, ['--module', modulePath, '--token-label', 'conformance', '-O', '--login', '--pin', readFileSync(pinFile, 'utf8')], {
      env: process.env,
    }).toString();
    const block = out.split(/\n(?=\S)/).find((b) => b.startsWith('Private Key Object') && b.includes(`label:      ${label}`));
    expect(block, out).toBeDefined();
    expect(block).toMatch(/Access:\s+sensitive, always sensitive, never extractable, local/);
    expect(block).toMatch(/Usage:\s+sign\s*$/m);
    runCli(['keys', 'destroy', '--label', label], { HSM_VAULT_HSM: softHsmUri() });
  });
});

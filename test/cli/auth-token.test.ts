// `hsm-vault auth token` as a process: one JWT on stdout signed by the state directory's dev key
// (made on first use, 0600), the claims the node checks, bounded lifetime, no key material printed.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { DEV_AUTH_KEY_FILE, openDevAuthKey } from '../../src/server/dev-auth.js';

const root = join(import.meta.dirname, '..', '..');
const ENTRY = `import { authCommands } from './src/cli/auth-commands.ts'; await authCommands().parseAsync(process.argv.slice(1), { from: 'user' });`;

const TWINS = ['HSM_VAULT_STATE_DIR', 'HSM_VAULT_FLEET', 'HSM_VAULT_USER', 'HSM_VAULT_SCOPE', 'HSM_VAULT_TOKEN_TTL', 'HSM_VAULT_JWT_ISSUER'];
const withoutTwins = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(env).filter(([k]) => !TWINS.includes(k)));

function authToken(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', ENTRY, '--', 'token', ...args], {
    cwd: root,
    env: { ...withoutTwins(process.env), ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('hsm-vault auth token', () => {
  it('prints one 5-minute token signed by the dev key, and never the key', async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'hsm-vault-auth-')), 'state');
    const r = authToken(['--state-dir', state, '--fleet', 'fleet-1', '--user', 'alice', '--scope', 'recover']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
    expect(r.stderr).toMatch(/created the dev auth key/);
    const keyPath = join(state, DEV_AUTH_KEY_FILE);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    const pem = readFileSync(keyPath, 'utf8');
    const body = pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '');
    for (const out of [r.stdout, r.stderr]) {
      expect(out).not.toContain(body);
      expect(out).not.toContain('PRIVATE');
    }

    const token = r.stdout.trim();
    const key = openDevAuthKey(state);
    const { payload } = await jwtVerify(token, key.publicKey, { audience: 'fleet-1', algorithms: ['EdDSA'] });
    expect(payload).toMatchObject({ sub: 'alice', aud: 'fleet-1', scope: 'recover' });
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(60);
    expect(decodeProtectedHeader(token).kid).toBe(key.kid);

    // Second run: same key, nothing created, file unchanged; environment twins work.
    const again = authToken(['--state-dir', state], { HSM_VAULT_FLEET: 'fleet-1', HSM_VAULT_USER: 'bob', HSM_VAULT_SCOPE: 'delete', HSM_VAULT_TOKEN_TTL: '600' });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toBe('');
    expect(readFileSync(keyPath, 'utf8')).toBe(pem);
    const claims = decodeJwt(again.stdout.trim());
    expect(claims).toMatchObject({ sub: 'bob', scope: 'delete' });
    expect(claims.exp! - claims.iat!).toBe(600);
    await jwtVerify(again.stdout.trim(), key.publicKey, { audience: 'fleet-1' });
  }, 60_000);

  it('refuses long lifetimes, unknown scopes and missing claims', () => {
    const state = join(mkdtempSync(join(tmpdir(), 'hsm-vault-auth-')), 'state');
    const ok = ['--state-dir', state, '--fleet', 'f', '--user', 'alice', '--scope', 'register'];
    for (const [args, message] of [
      [[...ok, '--ttl', '601'], /1\.\.600/],
      [[...ok, '--ttl', '0'], /1\.\.600/],
      [['--state-dir', state, '--fleet', 'f', '--user', 'alice', '--scope', 'admin'], /Allowed choices are register, recover, delete/],
      [['--state-dir', state, '--fleet', 'f', '--scope', 'register'], /no user given/],
      [['--state-dir', state, '--user', 'alice', '--scope', 'register'], /no fleet given/],
      [['--state-dir', state, '--fleet', 'f', '--user', 'a/b', '--scope', 'register'], /user id must match/],
    ] as [string[], RegExp][]) {
      const r = authToken(args);
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(message);
    }
  }, 60_000);
});

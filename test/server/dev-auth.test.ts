// Dev auth in process: the issuer key file (created once, 0600, never overwritten, refused when
// others can read it), the tokens it signs, and a node that accepts them only when given its key.

import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { DEV_AUTH_KEY_FILE, DevAuthError, devAuthVerificationKey, openDevAuthKey, signDevToken } from '../../src/server/dev-auth.js';
import { harness } from './support.js';

const freshDir = (): string => join(mkdtempSync(join(tmpdir(), 'hsm-vault-dev-auth-')), 'state');

describe('dev auth key', () => {
  it('is created once with mode 0600 and reused afterwards', () => {
    const dir = freshDir();
    const first = openDevAuthKey(dir);
    expect(first.created).toBe(true);
    expect(first.path).toBe(join(dir, DEV_AUTH_KEY_FILE));
    expect(statSync(first.path).mode & 0o777).toBe(0o600);
    const pem = readFileSync(first.path, 'utf8');
    expect(pem).toContain('BEGIN PRIVATE KEY');

    const second = openDevAuthKey(dir);
    expect(second.created).toBe(false);
    expect(second.kid).toBe(first.kid);
    expect(second.publicKey.equals(first.publicKey)).toBe(true);
    expect(readFileSync(first.path, 'utf8')).toBe(pem);
  });

  it('never overwrites a key another process made first', async () => {
    const dir = freshDir();
    // Several processes race to create the key: exactly one key results and all of them use it.
    const script = `import { openDevAuthKey } from './src/server/dev-auth.ts'; process.stdout.write(openDevAuthKey(${JSON.stringify(dir)}).kid);`;
    const kids = await Promise.all(
      Array.from({ length: 4 }, () => new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: join(import.meta.dirname, '..', '..'), stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}`))));
      })),
    );
    expect(new Set(kids).size).toBe(1);
    expect(openDevAuthKey(dir).kid).toBe(kids[0]);
  }, 60_000);

  it('refuses a key file others can read, and a key that is not Ed25519', () => {
    const dir = freshDir();
    const { path } = openDevAuthKey(dir);
    chmodSync(path, 0o644);
    expect(() => openDevAuthKey(dir)).toThrow(DevAuthError);
    expect(() => openDevAuthKey(dir)).toThrow(/readable by others/);

    const other = freshDir();
    openDevAuthKey(other);
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    writeFileSync(join(other, DEV_AUTH_KEY_FILE), ec);
    expect(() => openDevAuthKey(other)).toThrow(/not an Ed25519 key/);
  });
});

describe('dev tokens', () => {
  it('carry sub, aud, scope, iat, exp (5 minutes by default) and the key id', async () => {
    const key = openDevAuthKey(freshDir());
    const now = Date.UTC(2026, 0, 1);
    const token = await signDevToken(key, { fleetId: 'test-fleet', userId: 'alice', scope: 'recover', now });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: 'alice', aud: 'test-fleet', scope: 'recover', iat: now / 1000, exp: now / 1000 + 300 });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'EdDSA', kid: key.kid });
    const ten = decodeJwt(await signDevToken(key, { fleetId: 'f', userId: 'u', scope: 'delete', lifetimeSeconds: 600, issuer: 'dev' }));
    expect(ten.exp! - ten.iat!).toBe(600);
    expect(ten.iss).toBe('dev');
    for (const lifetimeSeconds of [0, 601, 1.5]) {
      await expect(signDevToken(key, { fleetId: 'f', userId: 'u', scope: 'delete', lifetimeSeconds })).rejects.toThrow(DevAuthError);
    }
  });

  it('are accepted by a node given the dev key and refused by a node without it', async () => {
    const key = openDevAuthKey(freshDir());
    const token = await signDevToken(key, { fleetId: 'test-fleet', userId: 'alice', scope: 'delete' });
    const request = { method: 'DELETE' as const, url: '/v1/registrations/alice', headers: { authorization: `Bearer ${token}` } };

    const plain = await harness();
    const refused = await plain.app.inject(request);
    expect(refused.statusCode).toBe(401);
    await plain.app.close();

    const dev = await harness({ jwt: { keys: [devAuthVerificationKey(key)] } });
    const accepted = await dev.app.inject(request);
    expect(accepted.statusCode).toBe(204);
    expect(dev.vault.calls).toContainEqual({ op: 'deleteRegistration', userId: 'alice' });
    // Scope and subject are still enforced for dev tokens.
    const wrongUser = await dev.app.inject({ ...request, url: '/v1/registrations/bob' });
    expect(wrongUser.statusCode).toBe(403);
    await dev.app.close();
  });
});

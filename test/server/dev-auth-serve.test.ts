// `hsm-vault serve --dev-auth` as a process: it makes the dev issuer key once in --state-dir,
// warns loudly, accepts the tokens it signs (alongside --jwt-keys), and without --dev-auth the
// same tokens are refused. HSM_VAULT_DEV_AUTH is its environment twin, read strictly.

import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createFleetKeys } from '../../src/fleet/keys.js';
import { openHsm } from '../../src/hsm/open.js';
import { DEV_AUTH_KEY_FILE, openDevAuthKey, signDevToken } from '../../src/server/dev-auth.js';
import { testKeys, tokenFor } from './support.js';
import { startServe as start } from './serve-process.js';

let dir: string;
let baseEnv: Record<string, string>;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hsm-vault-dev-serve-'));
  const hsm = `fake:?path=${join(dir, 'token.json')}`;
  const driver = await openHsm(hsm, { onInsecure: () => {} });
  await createFleetKeys(driver, 'test-fleet');
  await driver.close();
  baseEnv = { HSM_VAULT_HSM: hsm, HSM_VAULT_FLEET: 'test-fleet', HSM_VAULT_STORE: 'memory:', HSM_VAULT_JWT_KEYS: '', HSM_VAULT_LOG_LEVEL: 'info', HSM_VAULT_STATE_DIR: join(dir, 'state') };
  delete process.env.HSM_VAULT_DEV_AUTH;
});

const remove = (base: string, user: string, token: string) =>
  fetch(`${base}/v1/registrations/${user}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });

async function stop(node: ReturnType<typeof start>): Promise<void> {
  node.child.kill('SIGTERM');
  expect(await node.exited).toBe(0);
}

describe('hsm-vault serve --dev-auth', () => {
  it('creates the key once, warns, and accepts dev tokens alongside --jwt-keys', async () => {
    const keys = await testKeys();
    const node = start(['--listen', '127.0.0.1:0', '--dev-auth'], { ...baseEnv, HSM_VAULT_JWT_KEYS: keys.pemPath });
    const base = await node.listening;
    const keyPath = join(dir, 'state', DEV_AUTH_KEY_FILE);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    const pem = readFileSync(keyPath, 'utf8');

    const devKey = openDevAuthKey(join(dir, 'state'));
    expect(devKey.created).toBe(false);
    const devToken = await signDevToken(devKey, { fleetId: 'test-fleet', userId: 'alice', scope: 'delete' });
    expect((await remove(base, 'alice', devToken)).status).toBe(404); // authenticated; nothing registered
    expect((await remove(base, 'alice', await tokenFor(keys, 'alice', 'delete'))).status).toBe(404);
    const otherFleet = await signDevToken(devKey, { fleetId: 'other-fleet', userId: 'alice', scope: 'delete' });
    expect((await remove(base, 'alice', otherFleet)).status).toBe(401);
    await stop(node);

    const { stdout, stderr } = node.output();
    expect(stderr).toMatch(/WARNING: DEV AUTH IS ON/);
    expect(stdout).toMatch(/"level":40.*DEV AUTH IS ON/);
    const body = pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '');
    expect(`${stdout}${stderr}`).not.toContain(body);
    expect(`${stdout}${stderr}`).not.toContain('PRIVATE KEY');

    // A second start reuses the key: the file is unchanged and old tokens still work.
    const again = start(['--listen', '127.0.0.1:0'], { ...baseEnv, HSM_VAULT_DEV_AUTH: '1' });
    const base2 = await again.listening;
    expect(readFileSync(keyPath, 'utf8')).toBe(pem);
    expect(again.output().stderr).toMatch(/existing key/);
    expect((await remove(base2, 'alice', devToken)).status).toBe(404);
    await stop(again);
  }, 60_000);

  it('refuses dev tokens when dev auth is off', async () => {
    const keys = await testKeys();
    const devToken = await signDevToken(openDevAuthKey(join(dir, 'state')), { fleetId: 'test-fleet', userId: 'alice', scope: 'delete' });
    const node = start(['--listen', '127.0.0.1:0'], { ...baseEnv, HSM_VAULT_JWT_KEYS: keys.pemPath, HSM_VAULT_DEV_AUTH: '0' });
    const base = await node.listening;
    expect((await remove(base, 'alice', devToken)).status).toBe(401);
    expect((await remove(base, 'alice', await tokenFor(keys, 'alice', 'delete'))).status).toBe(404);
    await stop(node);
    expect(node.output().stderr).not.toMatch(/DEV AUTH/);
  }, 60_000);

  it('will not start with neither --jwt-keys nor --dev-auth, nor with an unclear HSM_VAULT_DEV_AUTH', async () => {
    for (const [env, message] of [
      [{}, /no JWT keys given.*--dev-auth/],
      [{ HSM_VAULT_DEV_AUTH: '' }, /no JWT keys given/],
      [{ HSM_VAULT_DEV_AUTH: 'false' }, /no JWT keys given/],
      [{ HSM_VAULT_DEV_AUTH: 'maybe' }, /HSM_VAULT_DEV_AUTH must be/],
    ] as [Record<string, string>, RegExp][]) {
      const node = start(['--listen', '127.0.0.1:0'], { ...baseEnv, ...env });
      node.listening.catch(() => {});
      expect(await node.exited).toBe(1);
      expect(node.output().stderr).toMatch(message);
    }
  }, 60_000);
});

// `hsm-vault serve` as a process: flags and environment twins, a fake token with a fleet in it,
// real HTTP on an ephemeral port, SIGTERM drains and exits 0, bad configuration exits 1 in one line.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseListen } from '../../src/cli/serve.js';
import { createFleetKeys } from '../../src/fleet/keys.js';
import { openHsm } from '../../src/hsm/open.js';
import { testKeys, tokenFor } from './support.js';
import { startServe as start } from './serve-process.js';

describe('parseListen', () => {
  it('reads HOST:PORT and [v6]:PORT', () => {
    expect(parseListen('127.0.0.1:8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseListen('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    for (const bad of ['8080', '127.0.0.1', 'host:99999', ':80', 'a b:1', '::1:80']) expect(() => parseListen(bad), bad).toThrow();
  });
});

describe('hsm-vault serve', () => {
  it('serves a fleet from the environment and stops cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-serve-'));
    const hsm = `fake:?path=${join(dir, 'token.json')}`;
    const driver = await openHsm(hsm, { onInsecure: () => {} });
    await createFleetKeys(driver, 'test-fleet');
    await driver.close();
    const keys = await testKeys();

    const node = start(['--listen', '127.0.0.1:0'], {
      HSM_VAULT_HSM: hsm,
      HSM_VAULT_FLEET: 'test-fleet',
      HSM_VAULT_JWT_KEYS: keys.pemPath,
      HSM_VAULT_STORE: `sqlite:${join(dir, 'vault.db')}`,
      HSM_VAULT_LOG_LEVEL: 'info',
    });
    const base = await node.listening;
    const fleet = (await (await fetch(`${base}/v1/fleet`)).json()) as { fleetId: string; keys: { ake: string } };
    expect(fleet.fleetId).toBe('test-fleet');
    expect(Buffer.from(fleet.keys.ake, 'base64url')).toHaveLength(33);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const token = await tokenFor(keys, 'alice', 'delete');
    const del = await fetch(`${base}/v1/registrations/alice`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
    expect(del.status).toBe(404);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/hsm_vault_store_operation_duration_seconds_count\{operation="[a-zA-Z]+",result="ok"\} \d+/);
    expect(metrics).toMatch(/hsm_vault_hsm_operation_duration_seconds_count\{operation="findKey",result="ok"\} \d+/);

    node.child.kill('SIGTERM');
    expect(await node.exited).toBe(0);
    const { stdout } = node.output();
    expect(stdout).toContain('"msg":"stopped"');
    expect(stdout).not.toContain(token.split('.')[2]!);
  });

  it('exits 1 with one line when configuration is missing or wrong', async () => {
    const keys = await testKeys();
    for (const [env, message] of [
      [{ HSM_VAULT_HSM: 'fake:', HSM_VAULT_FLEET: 'f' }, /no JWT keys given/],
      [{ HSM_VAULT_HSM: 'fake:', HSM_VAULT_FLEET: 'f', HSM_VAULT_JWT_KEYS: '/nonexistent/keys.pem' }, /cannot read JWT key file/],
      [{ HSM_VAULT_HSM: 'fake:', HSM_VAULT_FLEET: 'f', HSM_VAULT_JWT_KEYS: keys.jwksPath, HSM_VAULT_STORE: 'mysql://x' }, /unknown store scheme/],
      [{ HSM_VAULT_HSM: 'fake:', HSM_VAULT_FLEET: 'nofleet', HSM_VAULT_JWT_KEYS: keys.jwksPath, HSM_VAULT_STORE: 'memory:' }, /hsm-vault/],
    ] as [Record<string, string>, RegExp][]) {
      const node = start([], { HSM_VAULT_HSM: '', HSM_VAULT_FLEET: '', HSM_VAULT_JWT_KEYS: '', HSM_VAULT_STORE: 'memory:', ...env });
      node.listening.catch(() => {});
      expect(await node.exited).toBe(1);
      expect(node.output().stderr).toMatch(message);
    }
  });
});

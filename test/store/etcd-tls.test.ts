// The etcd store as production runs it: over TLS (server verified against a CA, client
// certificate for mutual TLS) and with etcd user authentication, against real etcd members on
// loopback with a throw-away PKI made by openssl. Compare-and-swap works through both; a wrong CA,
// a missing client certificate, a wrong password or a missing permission is StoreAccessDenied (a
// StoreUnavailable: the node answers 503), never a crash, and no message carries a password.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { randomBytes } from 'node:crypto';
import { createFleetKeys } from '../../src/fleet/keys.js';
import { FakeDriver } from '../../src/hsm/fake/driver.js';
import { createServer } from '../../src/server/server.js';
import { Vault } from '../../src/vault/vault.js';
import { InvalidStoreUrl, StoreAccessDenied, StoreUnavailable, VersionConflict } from '../../src/store/errors.js';
import type { RecordStore } from '../../src/store/store.js';
import { openStore, parseStoreUrl } from '../../src/store/url.js';
import { EtcdCluster, etcdctlMissingReason, etcdMissingReason, reportMissingEtcd } from '../support/etcd.js';
import { opensslMissingReason } from '../support/pki.js';
import { LogCapture, testKeys, tokenFor } from '../server/support.js';

const TIMEOUT_MS = 1500;
/** Deadline plus scheduling slack: a refused call must have settled by then. */
const SETTLE_MS = TIMEOUT_MS + 1000;

// openssl and etcdctl fall under the etcd requirement: with HSM_VAULT_REQUIRE_ETCD=1 a missing
// one fails the run instead of skipping these suites.
const missing = etcdMissingReason() ?? opensslMissingReason() ?? etcdctlMissingReason();
if (missing) reportMissingEtcd(missing);

const bytes = (...values: number[]) => new Uint8Array(values);

/** Put, CAS update, stale-CAS refusal, read, delete: the contract the vault relies on. */
async function casRoundTrip(store: RecordStore, userId: string): Promise<void> {
  expect(await store.get(userId)).toBeNull();
  expect(await store.put(userId, bytes(1), null)).toMatchObject({ version: 1 });
  expect(await store.put(userId, bytes(2), 1)).toMatchObject({ version: 2 });
  await expect(store.put(userId, bytes(3), 1)).rejects.toBeInstanceOf(VersionConflict);
  await expect(store.put(userId, bytes(3), null)).rejects.toMatchObject({ expected: null, current: 2 });
  expect(await store.get(userId)).toMatchObject({ version: 2, value: bytes(2) });
  await store.delete(userId, 2);
  expect(await store.get(userId)).toBeNull();
  expect(await store.health()).toMatchObject({ ok: true });
}

/** Every call of a refused store fails, in time, with StoreAccessDenied for `reason`. */
async function expectDenied(url: string, reason: StoreAccessDenied['reason'], message: RegExp): Promise<StoreAccessDenied[]> {
  const store = await openStore(url);
  const errors: StoreAccessDenied[] = [];
  try {
    for (const call of [() => store.get('alice'), () => store.put('alice', bytes(1), null), () => store.delete('alice', 1), () => store.get('alice')]) {
      const started = Date.now();
      const error = await call().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(Date.now() - started).toBeLessThan(SETTLE_MS);
      expect(error).toBeInstanceOf(StoreAccessDenied);
      // What the vault maps to VaultUnavailable, i.e. 503.
      expect(error).toBeInstanceOf(StoreUnavailable);
      expect(error).toMatchObject({ code: 'STORE_ACCESS_DENIED', reason, backend: 'etcd' });
      expect((error as Error).message).toMatch(message);
      errors.push(error as StoreAccessDenied);
    }
    const health = await store.health();
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(message);
  } finally {
    await store.close();
  }
  return errors;
}

describe.skipIf(missing !== undefined)('etcd store over mutual TLS', () => {
  let cluster: EtcdCluster;

  beforeAll(async () => {
    cluster = await EtcdCluster.start({ size: 1, tls: 'mutual' });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const withClientCert = () => `&cert-file=${cluster.pki!.clientCertFile}&key-file=${cluster.pki!.clientKeyFile}`;

  it('runs compare-and-swap over TLS with the CA and a client certificate', async () => {
    const url = cluster.storeUrl({ timeoutMs: TIMEOUT_MS });
    expect(url).toMatch(/&ca-file=.*&cert-file=.*&key-file=/);
    const store = await openStore(url);
    try {
      expect(store).toMatchObject({ tls: true, user: undefined });
      await casRoundTrip(store, 'alice');
    } finally {
      await store.close();
    }
  });

  it('refuses a server whose certificate does not chain to ca-file', async () => {
    const url = `${cluster.storeUrl({ timeoutMs: TIMEOUT_MS, credentials: false })}&ca-file=${cluster.pki!.otherCaFile}${withClientCert()}`;
    await expectDenied(url, 'tls', /TLS handshake failed: the server certificate is not trusted .*ca-file=/);
  });

  it('refuses the server with tls=1 and the default roots, which do not know the test CA', async () => {
    await expectDenied(`${cluster.storeUrl({ timeoutMs: TIMEOUT_MS, credentials: false })}&tls=1`, 'tls', /the server certificate is not trusted/);
  });

  it('reports a refused client certificate when none is presented', async () => {
    const url = `${cluster.storeUrl({ timeoutMs: TIMEOUT_MS, credentials: false })}&ca-file=${cluster.pki!.caFile}`;
    await expectDenied(url, 'tls', /the server refused the client certificate .*cert-file= and key-file=/);
  });

  it('fails closed as unavailable when a plain client meets the TLS port (it cannot tell it from a dead one)', async () => {
    const store = await openStore(cluster.storeUrl({ timeoutMs: TIMEOUT_MS, credentials: false }));
    try {
      await expect(store.get('alice')).rejects.toBeInstanceOf(StoreUnavailable);
    } finally {
      await store.close();
    }
  });

  it('refuses, when the store opens, a key-file that does not match cert-file', async () => {
    const url = `${cluster.storeUrl({ credentials: false })}&ca-file=${cluster.pki!.caFile}&cert-file=${cluster.pki!.clientCertFile}&key-file=${cluster.pki!.serverKeyFile}`;
    await expect(openStore(url)).rejects.toThrow(InvalidStoreUrl);
    await expect(openStore(url)).rejects.toThrow(/TLS files do not load together .*cert-file .*client\.pem.*key-file .*server-key\.pem.*key values mismatch/);
  });
});

describe.skipIf(missing !== undefined)('etcd store with user authentication over TLS', () => {
  let cluster: EtcdCluster;
  let dir: string;

  beforeAll(async () => {
    cluster = await EtcdCluster.start({ size: 1, tls: 'server', auth: true });
    dir = mkdtempSync(join(tmpdir(), 'hsm-vault-etcd-auth-'));
  });
  afterAll(async () => {
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A password file holding `password` (and a newline, as an editor leaves it). */
  function passwordFile(name: string, password: string): string {
    const path = join(dir, name);
    writeFileSync(path, `${password}\n`, { mode: 0o600 });
    return path;
  }

  const base = (prefix?: string) => `${cluster.storeUrl({ timeoutMs: TIMEOUT_MS, credentials: false, ...(prefix ? { prefix } : {}) })}&ca-file=${cluster.pki!.caFile}`;

  it('runs compare-and-swap as the etcd user whose password-file ends in a newline', async () => {
    const store = await openStore(cluster.storeUrl({ timeoutMs: TIMEOUT_MS }));
    try {
      expect(store).toMatchObject({ tls: true, user: 'vault' });
      await casRoundTrip(store, 'bob');
    } finally {
      await store.close();
    }
  });

  it('reports a wrong password as StoreAccessDenied without the password anywhere in the error', async () => {
    const wrong = `wrong-${cluster.testUser!.password}`;
    const prefix = `t-${randomBytes(4).toString('hex')}/`;
    const url = `${base(prefix)}&user=vault&password-file=${passwordFile('wrong', wrong)}`;
    const errors = await expectDenied(url, 'authentication', /rejected the user name or password of user "vault"; check user= and the password in password-file=/);
    for (const error of errors) {
      const everything = `${error.message}\n${error.stack}\n${inspect(error, { depth: 10, showHidden: true })}\n${JSON.stringify(error)}`;
      expect(everything).not.toContain(wrong);
      expect(everything).not.toContain(cluster.testUser!.password);
    }
    // The refused put wrote nothing.
    const right = await openStore(`${base(prefix)}&user=vault&password-file=${cluster.testUser!.passwordFile}`);
    try {
      expect(await right.get('alice')).toBeNull();
    } finally {
      await right.close();
    }
  });

  it('does not offer a rejected password to etcd again until the pause is over', async () => {
    const wrong = passwordFile('wrong-pause', `wrong-${cluster.testUser!.password}`);
    const url = parseStoreUrl(`${base()}&user=vault&password-file=${wrong}`);
    if (url.scheme !== 'etcd') throw new Error('not an etcd URL');
    const store = await openStore({ ...url, authRetryMs: 1_500 });
    try {
      const first = await store.get('alice').catch((e: unknown) => e);
      expect(first).toMatchObject({ reason: 'authentication' });
      expect((first as Error).message).not.toMatch(/not offered to etcd again/);
      const paused = await store.get('alice').catch((e: unknown) => e);
      expect(paused).toBeInstanceOf(StoreAccessDenied);
      expect((paused as Error).message).toMatch(/rejected the user name or password of user "vault".*\(not offered to etcd again for [12] s/);
      expect((await store.health()).detail).toMatch(/not offered to etcd again/);
      await new Promise((resolve) => setTimeout(resolve, 1_600));
      const retried = await store.get('alice').catch((e: unknown) => e);
      expect(retried).toMatchObject({ reason: 'authentication' });
      expect((retried as Error).message).not.toMatch(/not offered to etcd again/); // etcd was asked, and refused again
    } finally {
      await store.close();
    }
  });

  it('reports an unknown user and a missing user as authentication failures', async () => {
    await expectDenied(`${base()}&user=nobody&password-file=${cluster.testUser!.passwordFile}`, 'authentication', /user "nobody"/);
    await expectDenied(base(), 'authentication', /etcd requires authentication; give the store URL user= and password-file=/);
  });

  it('reports a prefix the user may not touch as a permission failure', async () => {
    const url = `${base('other/records/')}&user=vault&password-file=${cluster.testUser!.passwordFile}`;
    await expectDenied(url, 'permission', /etcd user "vault" may not read and write keys under prefix "other\/records\/"/);
  });

  it('makes a vault node answer 503, as for an unavailable store, and log no password', async () => {
    const wrong = `wrong-${cluster.testUser!.password}`;
    const driver = await FakeDriver.open();
    const store = await openStore(`${base()}&user=vault&password-file=${passwordFile('wrong-node', wrong)}`);
    const keys = await testKeys();
    const logs = new LogCapture();
    try {
      await createFleetKeys(driver, 'test-fleet');
      const vault = await Vault.open({ driver, store, fleetId: 'test-fleet' });
      const app = await createServer(vault, { jwt: { keys: keys.jwksPath }, logger: { level: 'debug', stream: logs } });
      try {
        const health = await app.inject({ method: 'GET', url: '/healthz' });
        expect(health.statusCode).toBe(503);
        expect(health.json()).toMatchObject({ ok: false, checks: { store: { ok: false, detail: expect.stringMatching(/rejected the user name or password of user "vault"/) } } });
        const deletion = await app.inject({
          method: 'DELETE',
          url: '/v1/registrations/erin',
          headers: { authorization: `Bearer ${await tokenFor(keys, 'erin', 'delete')}` },
        });
        expect(deletion.statusCode).toBe(503);
        expect(deletion.json()).toMatchObject({ error: 'unavailable' });
        for (const text of [health.body, deletion.body, logs.text]) {
          expect(text).not.toContain(wrong);
          expect(text).not.toContain(cluster.testUser!.password);
        }
      } finally {
        await app.close();
      }
    } finally {
      await store.close();
      await driver.close();
    }
  });

  it('keeps working for a store with the right credentials while another one is refused', async () => {
    const good = await openStore(cluster.storeUrl({ timeoutMs: TIMEOUT_MS }));
    const bad = await openStore(`${base()}&user=vault&password-file=${passwordFile('wrong2', 'not-it')}`);
    try {
      await expect(bad.put('carol', bytes(1), null)).rejects.toBeInstanceOf(StoreAccessDenied);
      expect(await good.put('carol', bytes(1), null)).toMatchObject({ version: 1 });
      await expect(bad.get('carol')).rejects.toBeInstanceOf(StoreAccessDenied);
      expect(await good.get('carol')).toMatchObject({ version: 1 });
    } finally {
      await Promise.all([good.close(), bad.close()]);
    }
  });
});

// End to end on every HSM backend: the client SDK over real HTTP on loopback, the fastify node,
// the vault, a SQLite store, and the fleet keys in the token.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { HsmDriver } from '../../src/hsm/driver.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import { VaultClient } from '../../src/client/vault-client.js';
import { Locked, Unauthorized, WrongPassword, ServerError, InvalidArgument } from '../../src/client/errors.js';
import { identityKsf } from '../../src/opaque/ksf.js';
import { startLocalNode, type LocalNode } from '../../src/cli/local-node.js';
import { backends, reportMissingSoftHsm } from '../support/backends.js';

reportMissingSoftHsm();

const enc = new TextEncoder();
const user = (name: string) => `${name}-${randomBytes(4).toString('hex')}`;

for (const backend of backends()) {
  describe(`vault over HTTP: ${backend.name}`, () => {
    let driver: HsmDriver;
    let store: SqliteStore;
    let node: LocalNode;
    let client: VaultClient;
    let dir: string;

    beforeAll(async () => {
      ({ driver } = await backend.open());
      dir = mkdtempSync(join(tmpdir(), 'hsm-vault-e2e-'));
      store = await SqliteStore.open(join(dir, 'vault.db'));
      node = await startLocalNode({ driver, store, fleetId: `e2e${randomBytes(4).toString('hex')}` });
      const fleet = await node.vault.fleetInfo();
      client = new VaultClient({
        baseUrl: node.baseUrl,
        fleetId: node.fleetId,
        pinnedKeys: { ake: fleet.keys.ake, hpke: fleet.keys.hpke },
        ksf: identityKsf,
        getToken: (scope, userId) => node.issueToken(scope, userId),
      });
    });
    afterAll(async () => {
      await node.close();
      await store.close();
      await driver.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('registers a backup key and recovers it with the password', async () => {
      const id = user('alice');
      const secret = randomBytes(32);
      expect((await client.register(id, enc.encode('correct horse'), secret)).maxAttempts).toBe(10);
      const { secret: recovered } = await client.recover(id, enc.encode('correct horse'));
      expect(Buffer.from(recovered)).toEqual(secret);
    });

    it('counts wrong passwords and destroys the key at the limit', async () => {
      const id = user('bob');
      await client.register(id, enc.encode('right'), randomBytes(16), { maxAttempts: 2 });
      const first = await client.recover(id, enc.encode('wrong')).catch((e: unknown) => e);
      expect(first).toBeInstanceOf(WrongPassword);
      expect((first as WrongPassword).attemptsRemaining).toBe(1);
      await expect(client.recover(id, enc.encode('wrong'))).rejects.toBeInstanceOf(WrongPassword);
      await expect(client.recover(id, enc.encode('right'))).rejects.toBeInstanceOf(Locked);
    });

    it('an unknown user sees what a known user with a wrong password sees', async () => {
      const known = user('carol');
      await client.register(known, enc.encode('pw'), randomBytes(16));
      const wrongPassword = (p: Promise<unknown>) => p.then(() => { throw new Error('a guess was accepted'); }, (e: unknown) => e as WrongPassword);
      const a = await wrongPassword(client.recover(known, enc.encode('guess')));
      const b = await wrongPassword(client.recover(user('nobody'), enc.encode('guess')));
      expect(b).toBeInstanceOf(WrongPassword);
      expect(b.attemptsRemaining).toBe(a.attemptsRemaining);
    });

    it('refuses requests without a token for that user and scope', async () => {
      const id = user('dave');
      const wrongUser = new VaultClient({
        baseUrl: node.baseUrl, fleetId: node.fleetId, pinnedKeys: { ake: (await node.vault.fleetInfo()).keys.ake, hpke: (await node.vault.fleetInfo()).keys.hpke },
        ksf: identityKsf, getToken: (scope) => node.issueToken(scope, 'someone-else'),
      });
      await expect(wrongUser.register(id, enc.encode('pw'), randomBytes(16))).rejects.toBeInstanceOf(Unauthorized);
      await expect(client.register('bad/user', enc.encode('pw'), randomBytes(16))).rejects.toBeInstanceOf(InvalidArgument);
    });

    it('answers a tampered record with 502 record_tampered, never a secret', async () => {
      const id = user('erin');
      await client.register(id, enc.encode('pw'), randomBytes(16));
      const stored = (await store.get(id))!;
      const value = stored.value.slice();
      value[20]! ^= 0x40;
      await store.put(id, value, stored.version);
      const err = await client.recover(id, enc.encode('pw')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServerError);
      expect((err as ServerError).status).toBe(502);
      expect((err as ServerError).serverCode).toBe('record_tampered');
    });

    it('serves concurrent recoveries of many users', async () => {
      const ids = Array.from({ length: 6 }, () => user('many'));
      const secrets = ids.map(() => randomBytes(24));
      await Promise.all(ids.map((id, i) => client.register(id, enc.encode(`pw-${i}`), secrets[i]!)));
      const recovered = await Promise.all(ids.map((id, i) => client.recover(id, enc.encode(`pw-${i}`))));
      recovered.forEach((r, i) => expect(Buffer.from(r.secret)).toEqual(secrets[i]));
    });
  });
}

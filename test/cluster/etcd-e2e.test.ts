// End to end over HTTP with the etcd store: the client SDK against real `hsm-vault serve`
// processes (two per backend) that share a 3-member etcd cluster on loopback and one token (the
// fake through `fake:?path=FILE`, SoftHSM2 through SOFTHSM2_CONF). What one node writes, the other
// reads: registrations, attempt counters, locks and deletions are fleet-wide.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { VaultClient } from '../../src/client/vault-client.js';
import { Locked, WrongPassword } from '../../src/client/errors.js';
import { identityKsf } from '../../src/opaque/ksf.js';
import { EtcdCluster, etcdMissingReason, reportMissingEtcd } from '../support/etcd.js';
import { reportMissingSoftHsm } from '../support/backends.js';
import { NodeFleet, makeAccount, prepareFleet, processBackends, spreadIpFetch, type SharedFleet } from '../support/cluster.js';

const enc = new TextEncoder();
const user = (name: string) => `${name}-${randomBytes(4).toString('hex')}`;
const missing = etcdMissingReason();

if (missing) {
  reportMissingEtcd(missing);
} else {
  reportMissingSoftHsm();

  describe('vault over HTTP on a 3-member etcd cluster', () => {
    let cluster: EtcdCluster;
    beforeAll(async () => {
      cluster = await EtcdCluster.start(3);
    });
    afterAll(async () => {
      await cluster?.stop();
    });

    for (const backend of processBackends()) {
      describe(`${backend}: 2 serve processes`, () => {
        let nodes: NodeFleet | undefined;
        let fleet: SharedFleet;
        let clients: VaultClient[];

        beforeAll(async () => {
          const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-cluster-e2e-'));
          fleet = await prepareFleet(backend, dir);
          const account = await makeAccount(dir, fleet.fleetId);
          nodes = await NodeFleet.start(2, { fleet, store: cluster.storeUrl(), jwksPath: account.jwksPath, trustLoopbackProxy: true }, dir);
          clients = nodes.nodes.map((node) => new VaultClient({
            baseUrl: node.baseUrl,
            fleetId: fleet.fleetId,
            pinnedKeys: { ake: fleet.keys.ake, hpke: fleet.keys.hpke },
            ksf: identityKsf,
            fetch: spreadIpFetch,
            getToken: (scope, id) => account.token(scope, id),
          }));
        });
        afterAll(async () => {
          await nodes?.close();
        });

        it('every node serves the keys created in the token beforehand', async () => {
          for (const client of clients) {
            const info = await client.fleet();
            expect(Buffer.from(info.keys.signing)).toEqual(Buffer.from(fleet.keys.signing));
          }
        });

        it('registers on one node and recovers on the other', async () => {
          const id = user('alice');
          const secret = randomBytes(32);
          expect((await clients[0]!.register(id, enc.encode('correct horse'), secret)).maxAttempts).toBe(10);
          const { secret: recovered } = await clients[1]!.recover(id, enc.encode('correct horse'));
          expect(Buffer.from(recovered)).toEqual(secret);
          const again = await clients[0]!.recover(id, enc.encode('correct horse'));
          expect(Buffer.from(again.secret)).toEqual(secret);
        });

        it('counts wrong guesses fleet-wide and locks on any node', async () => {
          const id = user('bob');
          await clients[1]!.register(id, enc.encode('right'), randomBytes(16), { maxAttempts: 3 });
          const remaining: number[] = [];
          for (const i of [0, 1, 0]) {
            const err = await clients[i]!.recover(id, enc.encode('wrong')).catch((e: unknown) => e);
            expect(err).toBeInstanceOf(WrongPassword);
            remaining.push((err as WrongPassword).attemptsRemaining);
          }
          expect(remaining).toEqual([2, 1, 0]);
          await expect(clients[1]!.recover(id, enc.encode('right'))).rejects.toBeInstanceOf(Locked);
          await expect(clients[0]!.recover(id, enc.encode('right'))).rejects.toBeInstanceOf(Locked);
        });

        it('a right password on one node resets the count made on the other', async () => {
          const id = user('carol');
          await clients[0]!.register(id, enc.encode('pw'), randomBytes(16), { maxAttempts: 5 });
          await expect(clients[1]!.recover(id, enc.encode('nope'))).rejects.toBeInstanceOf(WrongPassword);
          await clients[0]!.recover(id, enc.encode('pw'));
          const err = await clients[1]!.recover(id, enc.encode('nope')).catch((e: unknown) => e);
          expect((err as WrongPassword).attemptsRemaining).toBe(4);
        });

        it('a deletion on one node is seen by the other', async () => {
          const id = user('dave');
          await clients[0]!.register(id, enc.encode('pw'), randomBytes(16));
          await clients[1]!.deleteRegistration(id);
          // Deleted now looks like never registered: a wrong-password answer, never the secret.
          await expect(clients[0]!.recover(id, enc.encode('pw'))).rejects.toBeInstanceOf(WrongPassword);
        });
      });
    }
  });
}

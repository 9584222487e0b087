// Guess storm: three node processes share one 3-member etcd cluster; 500 concurrent recovery
// starts with wrong passwords hit one user registered with maxAttempts 10, spread over the nodes.
// An attempt is committed to a majority before KE2 leaves a node, so exactly 10 KE2 answers come
// back in the whole fleet (attemptsRemaining 9, 8, …, 0 — each once), every other answer is
// 423 locked (or 503 when a node gave up on a contended compare-and-swap, which issues no KE2),
// and the user stays locked. The nodes are `hsm-vault serve` with every rate limit raised
// (--recovery-limit and friends): serve's default 5 recovery starts a minute per user would
// otherwise stop the storm before the vault.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { VaultClient } from '../../src/client/vault-client.js';
import { Locked } from '../../src/client/errors.js';
import { OpaqueClient } from '../../src/opaque/client.js';
import { identityKsf } from '../../src/opaque/ksf.js';
import { EtcdCluster, etcdMissingReason, reportMissingEtcd } from '../support/etcd.js';
import { NodeFleet, makeAccount, postJson, preferredBackend, prepareFleet, type Account, type SharedFleet } from '../support/cluster.js';

const enc = new TextEncoder();
const STORM = 500;
const MAX_ATTEMPTS = 10;
const missing = etcdMissingReason();

if (missing) {
  reportMissingEtcd(missing);
} else {
  describe(`guess storm: 3 node processes, one etcd cluster (${preferredBackend()})`, () => {
    let cluster: EtcdCluster | undefined;
    let nodes: NodeFleet | undefined;
    let fleet: SharedFleet;
    let account: Account;

    beforeAll(async () => {
      cluster = await EtcdCluster.start(3);
      const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-storm-'));
      fleet = await prepareFleet(preferredBackend(), dir);
      account = await makeAccount(dir, fleet.fleetId);
      nodes = await NodeFleet.start(3, { fleet, store: cluster.storeUrl(), jwksPath: account.jwksPath, unlimited: true }, dir);
    });
    afterAll(async () => {
      await nodes?.close();
      await cluster?.stop();
    });

    it(`${STORM} concurrent wrong guesses give exactly ${MAX_ATTEMPTS} KE2 answers, then Locked`, async () => {
      const id = `storm-${randomBytes(4).toString('hex')}`;
      const client = (i: number) => new VaultClient({
        baseUrl: nodes!.nodes[i]!.baseUrl,
        fleetId: fleet.fleetId,
        pinnedKeys: { ake: fleet.keys.ake, hpke: fleet.keys.hpke },
        ksf: identityKsf,
        getToken: (scope, user) => account.token(scope, user),
      });
      await client(0).register(id, enc.encode('the right one'), randomBytes(32), { maxAttempts: MAX_ATTEMPTS });

      // Every request is a distinct KE1 for a wrong password, with its own token, prepared up
      // front so that the requests really leave at once. A KE1 costs the client ~30 ms here
      // (hash-to-curve in software), so 20 wrong passwords are blinded and each request gets a
      // fresh client nonce (KE1 = blinded element ‖ nonce ‖ keyshare; the server cannot tell).
      const opaque = new OpaqueClient({ ksf: identityKsf });
      const bases = Array.from({ length: 20 }, (_, i) => opaque.generateKE1(enc.encode(`wrong-${i}`)).ke1);
      const requests = await Promise.all(Array.from({ length: STORM }, async (_, i) => {
        const ke1 = Buffer.from(bases[i % bases.length]!);
        randomBytes(32).copy(ke1, 33); // client nonce
        return {
          url: `${nodes!.nodes[i % 3]!.baseUrl}/v1/recoveries/${id}/start`,
          token: await account.token('recover', id),
          body: { ke1: ke1.toString('base64url') },
        };
      }));
      const started = Date.now();
      const answers = await Promise.all(requests.map((r) => postJson(r.url, r.token, r.body).catch((e: unknown) => ({ status: -1, body: { error: String(e) } as Record<string, unknown> }))));

      const byStatus = new Map<number, number>();
      for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
      const ke2 = answers.filter((a) => a.status === 200);
      console.log(`guess storm: ${JSON.stringify(Object.fromEntries(byStatus))} (status: count) in ${Date.now() - started} ms`);

      expect(ke2).toHaveLength(MAX_ATTEMPTS);
      expect(ke2.every((a) => typeof a.body.ke2 === 'string')).toBe(true);
      expect(ke2.map((a) => a.body.attemptsRemaining as number).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      // Nothing but KE2, locked, or a refusal that issued no KE2.
      expect([...byStatus.keys()].filter((s) => s !== 200 && s !== 423 && s !== 503)).toEqual([]);
      expect(byStatus.get(423) ?? 0).toBeGreaterThan(STORM / 2);
      for (const a of answers.filter((x) => x.status === 423)) expect(a.body.error).toBe('locked');

      // The right password no longer helps, on any node.
      for (const i of [0, 1, 2]) await expect(client(i).recover(id, enc.encode('the right one'))).rejects.toBeInstanceOf(Locked);
    });
  });
}

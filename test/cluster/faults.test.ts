// Faults, on three `hsm-vault serve` processes sharing one 3-member etcd cluster and one token.
//
// Crash: a stream of registrations, wrong guesses and right-password recoveries, mostly aimed at
// node 0, which is killed with SIGKILL mid-stream (requests in flight); the stream moves to the
// survivors, then node 0 is restarted on the same port. Afterwards:
//   - no counter went backwards: each guesser's attemptsRemaining only ever fell, and the first
//     guess after the restart is lower still; the stored count lies between the KE2 answers seen
//     and the guesses sent;
//   - no registration was lost: every acknowledged registration recovers its exact secret through
//     the restarted node, and its sealed record in etcd holds that secret;
//   - no record is corrupt: every record any request may have touched (including registrations
//     whose answer was lost in the crash) opens under the token's sealing key with its version.
//
// Fail closed (same nodes, after the crash test): with 2 of 3 members stopped (SIGKILL) the
// cluster has no quorum: recovery starts answer 503 and no KE2 leaves any node (an attempt that
// cannot be committed to a majority is never answered), registrations cannot finish, and /healthz
// says 503. With the members restarted, service resumes on its own: the counter continues (never
// lower than before the outage) and the secrets are intact.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { VaultClient } from '../../src/client/vault-client.js';
import { VaultUnavailable, WrongPassword } from '../../src/client/errors.js';
import { OpaqueClient } from '../../src/opaque/client.js';
import { identityKsf } from '../../src/opaque/ksf.js';
import { openHsm } from '../../src/hsm/open.js';
import { openFleetKeys } from '../../src/fleet/keys.js';
import { openRecord } from '../../src/vault/codec.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { EtcdCluster, etcdMissingReason, reportMissingEtcd } from '../support/etcd.js';
import { NodeFleet, makeAccount, postJson, preferredBackend, prepareFleet, sleep, spreadIpFetch, type Account, type SharedFleet } from '../support/cluster.js';

const enc = new TextEncoder();
const GUESSERS = 5;
const RECOVERERS = 3;
const REGISTRAR_WORKERS = 4;
/** serve's per-user recovery limit is a burst of 5 per node: stay under it on each node. */
const PER_NODE_RECOVERIES = 4;
const GUESSER_MAX_ATTEMPTS = 100;
const missing = etcdMissingReason();

type Outcome = { kind: 'ke2'; remaining: number } | { kind: 'unknown'; error: string };

if (missing) {
  reportMissingEtcd(missing);
} else {
  describe(`faults: 3 serve processes on a 3-member etcd cluster (${preferredBackend()})`, () => {
    let cluster: EtcdCluster | undefined;
    let nodes: NodeFleet | undefined;
    let fleet: SharedFleet;
    let account: Account;
    const prefix = `faults-${randomBytes(4).toString('hex')}/`;

    beforeAll(async () => {
      cluster = await EtcdCluster.start(3);
      const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-faults-'));
      fleet = await prepareFleet(preferredBackend(), dir);
      account = await makeAccount(dir, fleet.fleetId);
      // A short store deadline, so that a lost quorum answers 503 within about a second.
      nodes = await NodeFleet.start(3, { fleet, store: cluster.storeUrl({ prefix, timeoutMs: 1000 }), jwksPath: account.jwksPath, trustLoopbackProxy: true }, dir);
    });
    afterAll(async () => {
      await nodes?.close();
      await cluster?.stop();
    });

    /** An SDK client of node i. */
    const client = (i: number) => new VaultClient({
      baseUrl: nodes!.nodes[i]!.baseUrl,
      fleetId: fleet.fleetId,
      pinnedKeys: { ake: fleet.keys.ake, hpke: fleet.keys.hpke },
      ksf: identityKsf,
      fetch: spreadIpFetch,
      getToken: (scope, user) => account.token(scope, user),
    });

    it('crash: kill -9 mid-stream loses no registration, moves no counter back and corrupts no record', async () => {
      const victim = nodes!.nodes[0]!;
      const clients = [0, 1, 2].map(client);
      const tag = randomBytes(3).toString('hex');

      // Users that exist before the stream: guessers (wrong passwords only) and recoverers.
      const guessers = Array.from({ length: GUESSERS }, (_, i) => ({ id: `g${i}-${tag}`, outcomes: [] as Outcome[], sent: 0 }));
      const recoverers = Array.from({ length: RECOVERERS }, (_, i) => ({ id: `r${i}-${tag}`, secret: randomBytes(32), ok: 0, unknown: 0 }));
      await Promise.all([
        ...guessers.map((g) => clients[1]!.register(g.id, enc.encode('guess me not'), randomBytes(16), { maxAttempts: GUESSER_MAX_ATTEMPTS })),
        ...recoverers.map((r) => clients[2]!.register(r.id, enc.encode(`pw-${r.id}`), r.secret)),
      ]);

      let victimDown = false;
      let stop = false;
      const survivor = (k: number) => 1 + (k % 2);
      const registrations: { id: string; secret: Buffer; acked: boolean; error?: string }[] = [];

      const guesser = async (g: (typeof guessers)[number], k: number) => {
        // Up to PER_NODE_RECOVERIES on the victim while it lives, then as many on one survivor.
        for (const phase of ['victim', 'survivor'] as const) {
          for (let n = 0; n < PER_NODE_RECOVERIES && !stop; n++) {
            if (phase === 'victim' && victimDown) break;
            const target = phase === 'victim' ? 0 : survivor(k);
            g.sent++;
            try {
              await clients[target]!.recover(g.id, enc.encode(`wrong-${n}`));
              throw new Error('a wrong password recovered the secret');
            } catch (err) {
              if (err instanceof WrongPassword) g.outcomes.push({ kind: 'ke2', remaining: err.attemptsRemaining });
              else g.outcomes.push({ kind: 'unknown', error: String(err) });
            }
            await sleep(50 + Math.random() * 100);
          }
          while (phase === 'victim' && !victimDown && !stop) await sleep(20);
        }
      };
      const recoverer = async (r: (typeof recoverers)[number], k: number) => {
        for (const phase of ['victim', 'survivor'] as const) {
          for (let n = 0; n < PER_NODE_RECOVERIES && !stop; n++) {
            if (phase === 'victim' && victimDown) break;
            try {
              const { secret } = await clients[phase === 'victim' ? 0 : survivor(k)]!.recover(r.id, enc.encode(`pw-${r.id}`));
              expect(Buffer.from(secret)).toEqual(r.secret);
              r.ok++;
            } catch (err) {
              if (err instanceof Error && err.name === 'AssertionError') throw err;
              r.unknown++;
            }
            await sleep(50 + Math.random() * 100);
          }
          while (phase === 'victim' && !victimDown && !stop) await sleep(20);
        }
      };
      const registrar = async (k: number) => {
        for (let n = 0; !stop; n++) {
          const entry: (typeof registrations)[number] = { id: `n${k}x${n}-${tag}`, secret: randomBytes(24), acked: false };
          registrations.push(entry);
          try {
            await clients[victimDown ? survivor(n) : 0]!.register(entry.id, enc.encode(`pw-${entry.id}`), entry.secret);
            entry.acked = true;
          } catch (err) {
            entry.error = String(err);
          }
        }
      };

      const stream = Promise.all([
        ...guessers.map((g, k) => guesser(g, k)),
        ...recoverers.map((r, k) => recoverer(r, k)),
        ...Array.from({ length: REGISTRAR_WORKERS }, (_, k) => registrar(k)),
      ]);
      await sleep(1500);
      victimDown = true;
      await victim.kill9();
      const killedAt = registrations.length;
      await sleep(2000);
      stop = true;
      await stream;

      victim.start();
      await victim.waitReady();
      const restarted = clients[0]!;

      const acked = registrations.filter((r) => r.acked);
      const lostAnswers = registrations.filter((r) => !r.acked);
      console.log(
        `crash: ${registrations.length} registrations (${killedAt} started before the kill), ${acked.length} acknowledged, ` +
          `${lostAnswers.length} without answer; guesses ${guessers.map((g) => `${g.outcomes.filter((o) => o.kind === 'ke2').length}/${g.sent}`).join(' ')} ` +
          `(KE2/sent); right-password recoveries ok ${recoverers.map((r) => r.ok).join(',')}, failed ${recoverers.map((r) => r.unknown).join(',')}`,
      );
      expect(acked.length).toBeGreaterThanOrEqual(4);
      // The survivors took over the stream.
      expect(registrations.slice(killedAt).some((r) => r.acked)).toBe(true);
      // The kill hit work in flight on the victim.
      expect(lostAnswers.length + guessers.reduce((s, g) => s + g.outcomes.filter((o) => o.kind === 'unknown').length, 0) + recoverers.reduce((s, r) => s + r.unknown, 0)).toBeGreaterThan(0);

      // Counters never went backwards: each guesser's KE2 answers fell strictly, and the first
      // guess after the restart (on the restarted node) is lower than any before.
      const finalRemaining = new Map<string, number>();
      for (const g of guessers) {
        const seen = g.outcomes.flatMap((o) => (o.kind === 'ke2' ? [o.remaining] : []));
        for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeLessThan(seen[i - 1]!);
        const after = await restarted.recover(g.id, enc.encode('after the crash')).catch((e: unknown) => e);
        expect(after).toBeInstanceOf(WrongPassword);
        const remaining = (after as WrongPassword).attemptsRemaining;
        if (seen.length > 0) expect(remaining).toBeLessThan(seen[seen.length - 1]!);
        // Counted: at least every KE2 plus this one, at most every guess sent plus this one.
        const counted = GUESSER_MAX_ATTEMPTS - remaining;
        expect(counted).toBeGreaterThanOrEqual(seen.length + 1);
        expect(counted).toBeLessThanOrEqual(g.sent + 1);
        finalRemaining.set(g.id, remaining);
      }

      // No acknowledged registration was lost; pre-stream users still recover.
      await Promise.all([
        ...acked.map(async (r) => {
          const { secret } = await restarted.recover(r.id, enc.encode(`pw-${r.id}`));
          expect(Buffer.from(secret)).toEqual(r.secret);
        }),
        ...recoverers.map(async (r) => {
          const { secret } = await clients[1]!.recover(r.id, enc.encode(`pw-${r.id}`));
          expect(Buffer.from(secret)).toEqual(r.secret);
        }),
      ]);

      // No record is corrupt: every record opens under the sealing key at its stored version.
      const driver = await openHsm(fleet.hsmUri, { onInsecure: () => {} });
      const store = new EtcdStore({ hosts: cluster!.endpoints, prefix });
      try {
        const sealing = (await openFleetKeys(driver, fleet.fleetId)).refs.sealing;
        const open = async (id: string) => {
          const stored = await store.get(id);
          return stored === null ? null : openRecord(driver, sealing, id, stored.version, stored.value);
        };
        for (const g of guessers) {
          const record = await open(g.id);
          expect(record?.kind).toBe('active');
          expect(record!.attempts).toBe(GUESSER_MAX_ATTEMPTS - finalRemaining.get(g.id)!);
        }
        const mustExist = new Set([...acked.map((r) => r.id), ...recoverers.map((r) => r.id)]);
        let unanswered = { present: 0, absent: 0 };
        for (const r of [...registrations, ...recoverers]) {
          const record = await open(r.id);
          if (mustExist.has(r.id)) expect(record).not.toBeNull();
          else unanswered = record === null ? { ...unanswered, absent: unanswered.absent + 1 } : { ...unanswered, present: unanswered.present + 1 };
          if (record === null) continue; // a registration whose finish never committed
          expect(record.kind).toBe('active');
          if (record.kind === 'active') expect(Buffer.from(record.secret)).toEqual(r.secret);
        }
        console.log(`crash: unanswered registrations: ${unanswered.present} committed (record opens, secret intact), ${unanswered.absent} never written`);
      } finally {
        await store.close();
        await driver.close();
      }
    });

    it('fail closed: answers 503 without KE2 while 2 of 3 members are down, and resumes when they return', async () => {
      const tag = randomBytes(3).toString('hex');
      const guessed = `u-${tag}`;
      const recovered = `v-${tag}`;
      const secret = randomBytes(32);
      await client(0).register(guessed, enc.encode('right'), randomBytes(16), { maxAttempts: 10 });
      await client(1).register(recovered, enc.encode('pw'), secret);
      const before = await client(1).recover(guessed, enc.encode('wrong')).catch((e: unknown) => e);
      expect((before as WrongPassword).attemptsRemaining).toBe(9);

      // Stop two members: the leader and one follower.
      const leader = (await cluster!.leaderIndex()) ?? 0;
      const down = [leader, (leader + 1) % 3];
      await Promise.all(down.map((i) => cluster!.kill(i)));

      const opaque = new OpaqueClient({ ksf: identityKsf });
      const ke1 = Buffer.from(opaque.generateKE1(enc.encode('wrong again')).ke1).toString('base64url');
      const rightKe1 = Buffer.from(opaque.generateKE1(enc.encode('pw')).ke1).toString('base64url');
      // serve allows 5 recovery starts per user and node (burst): 2 per user and node here.
      const outage = await Promise.all([
        ...[0, 1, 0, 1].map(async (i) =>
          postJson(`${nodes!.nodes[i]!.baseUrl}/v1/recoveries/${guessed}/start`, await account.token('recover', guessed), { ke1 }, spreadIpFetch)),
        ...[0, 1, 0, 1].map(async (i) =>
          postJson(`${nodes!.nodes[i]!.baseUrl}/v1/recoveries/${recovered}/start`, await account.token('recover', recovered), { ke1: rightKe1 }, spreadIpFetch)),
      ]);
      console.log(`fail closed: statuses during the outage ${JSON.stringify(outage.map((a) => a.status))}`);
      for (const answer of outage) {
        expect(answer.status).toBe(503);
        expect(answer.body.ke2).toBeUndefined();
        expect(answer.body.session).toBeUndefined();
      }
      // A registration cannot finish either, and the nodes report themselves unhealthy.
      const newcomer = await client(0).register(`w-${tag}`, enc.encode('pw'), randomBytes(16)).catch((e: unknown) => e);
      expect((newcomer as { status?: number }).status).toBe(503);
      for (const node of nodes!.nodes) expect((await fetch(`${node.baseUrl}/healthz`)).status).toBe(503);

      // Members back: service resumes without touching the nodes.
      const restarted = Date.now();
      for (const i of down) cluster!.restart(i);
      await cluster!.waitHealthy();
      // Poll /healthz (a quorum read through the node's own store client), not the recovery
      // route: retries there would spend the per-user recovery budget.
      for (const node of nodes!.nodes) {
        for (let tries = 0; ; tries++) {
          const res = await fetch(`${node.baseUrl}/healthz`).catch(() => undefined);
          if (res?.status === 200) break;
          if (tries > 150) throw new Error(`${node.name} still unhealthy 30 s after the members came back`);
          await sleep(200);
        }
      }
      // Right after the members rejoin, etcd 3.4 (no pre-vote) may hold one more election, which
      // fails a write or two: wait until a registration (a committed write) goes through, on
      // fresh users so that no recovery budget is spent.
      for (let tries = 0; ; tries++) {
        const probe = await client(tries % 2).register(`p${tries}-${tag}`, enc.encode('pw'), randomBytes(16)).catch((e: unknown) => e);
        if (!(probe instanceof Error)) break;
        if (!(probe instanceof VaultUnavailable) || tries > 60) throw probe;
        await sleep(250);
      }
      console.log(`fail closed: nodes healthy and writing ${Date.now() - restarted} ms after the members were restarted`);

      // A 503 may still happen once in a while: retried (within serve's per-user budget).
      let unavailable = 0;
      const retry503 = async <T>(nodeOrder: number[], fn: (node: number) => Promise<T>): Promise<T> => {
        for (let i = 0; ; i++) {
          try {
            return await fn(nodeOrder[i]!);
          } catch (err) {
            if (!(err instanceof VaultUnavailable) || i + 1 >= nodeOrder.length) throw err;
            unavailable++;
            await sleep(300);
          }
        }
      };
      const resumed = await retry503([0, 0, 0], (i) => client(i).recover(recovered, enc.encode('pw')));
      expect(Buffer.from(resumed.secret)).toEqual(secret);

      unavailable = 0;
      const after = await retry503([0, 0, 1], (i) => client(i).recover(guessed, enc.encode('wrong'))).catch((e: unknown) => e);
      expect(after).toBeInstanceOf(WrongPassword);
      // No counter went back, and nothing counted that was not sent: 9 before, one more now, and
      // each refused start (outage or retried) may or may not have committed its count.
      const remaining = (after as WrongPassword).attemptsRemaining;
      console.log(`fail closed: attemptsRemaining 9 before the outage, ${remaining} at the first guess after it (${unavailable} retried 503)`);
      expect(remaining).toBeLessThanOrEqual(8);
      expect(remaining).toBeGreaterThanOrEqual(8 - 4 - unavailable);
      const { secret: again } = await retry503([1, 1, 1], (i) => client(i).recover(recovered, enc.encode('pw')));
      expect(Buffer.from(again)).toEqual(secret);
    });
  });
}

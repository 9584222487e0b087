// SoftwareDhPool: x-only ECDH in worker threads must answer exactly what node:crypto answers on
// this thread, under more concurrency than it has cells and with more keys than its threads
// cache; when it stops, callers get PoolUnavailable and softwareKey falls back to this thread.

import { createECDH } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { p256 } from '@noble/curves/nist.js';
import { PoolUnavailable, SoftwareDhPool } from '../../src/opaque/dh-pool.js';
import { OpaqueClient, OpaqueServer, identityKsf, parseRegistrationRecord, softwareServerKeys } from '../../src/opaque/index.js';

function randomKey(): { scalar: Uint8Array; ecdh: ReturnType<typeof createECDH> } {
  const scalar = p256.utils.randomSecretKey();
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(scalar);
  return { scalar, ecdh };
}

const randomPoint = (): Uint8Array => p256.getPublicKey(p256.utils.randomSecretKey(), false);

describe('SoftwareDhPool', () => {
  const pool = new SoftwareDhPool(2);
  afterAll(() => pool.close());

  it('answers x(k·P) as node:crypto does, 400 queries at once over 100 keys', async () => {
    const keys = Array.from({ length: 100 }, randomKey);
    const queries = Array.from({ length: 400 }, (_, i) => ({ id: 1000 + (i % keys.length), key: keys[i % keys.length]!, peer: randomPoint() }));
    const answers = await Promise.all(queries.map((q) => pool.dh(q.id, q.key.scalar, q.peer)));
    answers.forEach((x, i) => {
      const q = queries[i]!;
      expect(Buffer.from(x).toString('hex')).toBe(q.key.ecdh.computeSecret(q.peer).toString('hex'));
    });
  });

  it('refuses malformed input without asking a thread', async () => {
    const { scalar } = randomKey();
    await expect(pool.dh(1, scalar.subarray(1), randomPoint())).rejects.toBeInstanceOf(RangeError);
    await expect(pool.dh(1, scalar, randomPoint().subarray(1))).rejects.toBeInstanceOf(RangeError);
  });

  it('fails queries with PoolUnavailable once closed', async () => {
    const other = new SoftwareDhPool(1);
    const { scalar, ecdh } = randomKey();
    const peer = randomPoint();
    expect(Buffer.from(await other.dh(7, scalar, peer))).toEqual(ecdh.computeSecret(peer));
    // Closed before any answer can be collected (that happens in a later turn of the event loop).
    const inFlight = expect(other.dh(7, scalar, peer)).rejects.toBeInstanceOf(PoolUnavailable);
    await other.close();
    await inFlight;
    await expect(other.dh(7, scalar, peer)).rejects.toBeInstanceOf(PoolUnavailable);
  });
});

describe('OPAQUE logins with software ECDH in threads', () => {
  const password = new TextEncoder().encode('pw');
  const userId = new TextEncoder().encode('user');
  const secrets = { oprfSeed: new Uint8Array(32).fill(3), serverPrivateKey: p256.utils.randomSecretKey() };
  const client = new OpaqueClient({ ksf: identityKsf });

  async function setUp(server: OpaqueServer) {
    const { request, state } = client.createRegistrationRequest(password);
    const { record } = await client.finalizeRegistrationRequest(state, await server.createRegistrationResponse(request, userId));
    const sessions = Array.from({ length: 12 }, () => {
      const { ke1, state: loginState } = client.generateKE1(password);
      return { ke1, loginState, fixed: { maskingNonce: p256.utils.randomSecretKey(), serverNonce: p256.utils.randomSecretKey(), serverKeyshareSeed: p256.utils.randomSecretKey() } };
    });
    const parsed = parseRegistrationRecord(record);
    const ke2 = async (s: (typeof sessions)[number]) => Buffer.from((await server.generateKE2(s.ke1, parsed, userId, undefined, s.fixed)).ke2).toString('hex');
    return { sessions, ke2 };
  }

  /** KE2s of the sessions one at a time, then all at once, and the queries the threads answered in each run. */
  async function loneThenTogether(server: OpaqueServer) {
    const shared = SoftwareDhPool.shared();
    expect(shared).toBeDefined(); // the suite runs with the pool on
    const { sessions, ke2 } = await setUp(server);
    const before = shared!.answered;
    const alone: string[] = [];
    for (const s of sessions) alone.push(await ke2(s));
    const loneQueries = shared!.answered - before;
    const together = await Promise.all(sessions.map(ke2));
    const togetherQueries = shared!.answered - before - loneQueries;
    expect(together).toEqual(alone);
    // And they are logins a client accepts.
    for (const [i, s] of sessions.entries()) await expect(client.generateKE3(s.loginState, Buffer.from(together[i]!, 'hex'))).resolves.toBeDefined();
    return { loneQueries, togetherQueries, logins: sessions.length };
  }

  it('keys on this thread: a lone login sends dh1 and dh3 to the threads; concurrent logins give the same KE2s', async () => {
    const { loneQueries, togetherQueries, logins } = await loneThenTogether(new OpaqueServer(softwareServerKeys(secrets)));
    // Two x-only queries for each of dh1 and dh3 when another core can take them.
    expect(loneQueries).toBe(availableParallelism() > 1 ? 4 * logins : 0);
    expect(togetherQueries).toBeGreaterThan(0);
  });

  it('keys on worker threads (a token): a lone login keeps its software ECDH on this thread', async () => {
    const onWorkers = { ...softwareServerKeys(secrets), keyThreads: 2 };
    const { loneQueries, togetherQueries } = await loneThenTogether(new OpaqueServer(onWorkers));
    expect(loneQueries).toBe(0);
    expect(togetherQueries).toBeGreaterThan(0); // several at once: queries went to the threads
  });
});

// What only the etcd backend has. Under failure: a 3-member cluster keeps serving with one member
// down, fails closed (StoreUnavailable, within the deadline, no hang) without a quorum, and
// recovers when members come back; this is what "never a KE2 without a committed count" rests on
// in a fleet. Under retries: a put delivered twice is reported once, as a success.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailable, VersionConflict } from '../../src/store/errors.js';
import { openStore } from '../../src/store/url.js';
import type { RecordStore } from '../../src/store/store.js';
import type { EtcdStore } from '../../src/store/etcd.js';
import type { ITxnRequest, ITxnResponse } from 'etcd3';
import { EtcdCluster, etcdMissingReason, reportMissingEtcd } from '../support/etcd.js';

const TIMEOUT_MS = 1000;
/** Deadline plus scheduling slack: a call must have settled by then. */
const SETTLE_MS = TIMEOUT_MS + 1000;

const missing = etcdMissingReason();
if (missing) reportMissingEtcd(missing);

async function timed<T>(promise: Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const started = Date.now();
  const [result] = await Promise.allSettled([promise]);
  return { ms: Date.now() - started, result: result! };
}

async function expectUnavailableInTime(promise: Promise<unknown>): Promise<void> {
  const { ms, result } = await timed(promise);
  expect(result.status).toBe('rejected');
  expect((result as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailable);
  expect(ms).toBeLessThan(SETTLE_MS);
}

/** Retries a write until it succeeds (an election in progress), failing closed meanwhile. */
async function eventually<T>(fn: () => Promise<T>, withinMs: number): Promise<T> {
  const until = Date.now() + withinMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof StoreUnavailable) || Date.now() > until) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Bumps a record by one version, whatever its current version. */
async function bump(store: RecordStore, userId: string): Promise<number> {
  const current = await store.get(userId);
  return (await store.put(userId, new Uint8Array([1]), current?.version ?? null)).version;
}

describe.skipIf(missing !== undefined)('etcd store under member failures', () => {
  let cluster: EtcdCluster;
  let store: RecordStore;

  beforeAll(async () => {
    cluster = await EtcdCluster.start(3);
    store = await openStore(cluster.storeUrl({ timeoutMs: TIMEOUT_MS }));
  });
  afterAll(async () => {
    await store?.close();
    await cluster?.stop();
  });

  it('reports a put whose first delivery committed but whose answer was lost as a success', async () => {
    // What the client's internal retry does after e.g. "leader changed": the same txn runs twice.
    const kv = (store as EtcdStore as unknown as { client: { kv: { txn(req: ITxnRequest, opts: unknown): Promise<ITxnResponse> } } }).client.kv;
    const txn = kv.txn.bind(kv);
    kv.txn = async (req, opts) => {
      await txn(req, opts);
      return txn(req, opts);
    };
    try {
      expect(await store.put('twice', new Uint8Array([1]), null)).toMatchObject({ version: 1 });
      expect(await store.put('twice', new Uint8Array([2]), 1)).toMatchObject({ version: 2 });
      // Someone else's identical bytes are still a conflict: the write id, not the value, decides.
      await expect(store.put('twice', new Uint8Array([2]), 1)).rejects.toBeInstanceOf(VersionConflict);
    } finally {
      kv.txn = txn;
    }
    expect(await store.get('twice')).toMatchObject({ version: 2, value: new Uint8Array([2]) });
  });

  it('fails closed quickly when no endpoint answers at all', async () => {
    const nowhere = await openStore(`etcd://127.0.0.1:1,127.0.0.1:2?timeout-ms=${TIMEOUT_MS}`);
    try {
      await expectUnavailableInTime(nowhere.get('alice'));
      await expectUnavailableInTime(nowhere.put('alice', new Uint8Array([1]), null));
      expect((await nowhere.health()).ok).toBe(false);
    } finally {
      await nowhere.close();
    }
  });

  it('keeps reading and writing with one follower down', async () => {
    await store.put('alice', new Uint8Array([0]), null);
    const leader = await cluster.leaderIndex();
    expect(leader).toBeDefined();
    const follower = (leader! + 1) % 3;
    await cluster.kill(follower);
    try {
      for (let i = 0; i < 5; i++) {
        const { ms, result } = await timed(bump(store, 'alice'));
        expect(result.status, String((result as PromiseRejectedResult).reason)).toBe('fulfilled');
        expect(ms).toBeLessThan(SETTLE_MS);
      }
      expect((await store.get('alice'))!.version).toBe(6);
      expect((await store.health()).ok).toBe(true);
    } finally {
      cluster.restart(follower);
    }
  });

  it('elects a new leader and keeps writing when the leader dies', async () => {
    await cluster.waitHealthy();
    const before = (await store.get('alice'))!.version;
    const leader = await cluster.leaderIndex();
    await cluster.kill(leader!);
    try {
      // Writes may fail closed during the election (well under a second with these raft
      // timers), then succeed on the two survivors.
      const version = await eventually(() => bump(store, 'alice'), 10_000);
      expect(version).toBeGreaterThan(before);
    } finally {
      cluster.restart(leader!);
    }
  });

  it('fails closed within the deadline with two of three members down, then recovers', async () => {
    await cluster.waitHealthy();
    // Let the restarted member catch up, so any two survivors would be a quorum again.
    await eventually(() => bump(store, 'alice'), 10_000);
    const before = (await store.get('alice'))!.version;

    const leader = (await cluster.leaderIndex())!;
    const victims = [leader, (leader + 1) % 3];
    await Promise.all(victims.map((i) => cluster.kill(i)));
    try {
      await expectUnavailableInTime(store.put('alice', new Uint8Array([2]), before));
      await expectUnavailableInTime(store.put('bob', new Uint8Array([2]), null));
      // Linearizable reads need the quorum too: a minority member never serves stale versions.
      await expectUnavailableInTime(store.get('alice'));
      await expectUnavailableInTime(store.delete('alice', before));
      const { ms, result } = await timed(store.health());
      expect(result).toMatchObject({ status: 'fulfilled', value: { ok: false } });
      expect(ms).toBeLessThan(SETTLE_MS);
    } finally {
      for (const i of victims) cluster.restart(i);
    }

    await cluster.waitHealthy();
    // The failed put's outcome was unknown: it may have committed after the deadline. Either way
    // the store is consistent and CAS continues from what is really there.
    const after = await eventually(() => store.get('alice'), 15_000);
    expect([before, before + 1]).toContain(after!.version);
    const next = await eventually(() => store.put('alice', new Uint8Array([3]), after!.version), 15_000);
    expect(next.version).toBe(after!.version + 1);
    await expect(store.put('alice', new Uint8Array([4]), after!.version)).rejects.toBeInstanceOf(VersionConflict);
  });
});

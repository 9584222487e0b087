// One suite, the same assertions, every record store backend: the vault may run on any of them.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidRecordKey, InvalidStoreArgument, StoreError, StoreUnavailable, VersionConflict } from '../../src/store/errors.js';
import { MAX_VALUE_BYTES, type RecordStore } from '../../src/store/store.js';
import { reportMissingEtcd } from '../support/etcd.js';
import { StoreTracker, storeBackends, type StoreBackend } from './backends.js';

const { backends, etcdMissing } = storeBackends();
if (etcdMissing) reportMissingEtcd(etcdMissing);

const bytes = (...values: number[]) => new Uint8Array(values);
const text = (s: string) => new TextEncoder().encode(s);

async function conflictOf(promise: Promise<unknown>): Promise<VersionConflict> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VersionConflict);
  return err as VersionConflict;
}

/** Read-modify-CAS-retry on a counter record: the pattern the vault uses for attempt counters. */
async function increment(store: RecordStore, userId: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const current = await store.get(userId);
    const count = current ? new DataView(current.value.buffer).getUint32(0) : 0;
    const next = new Uint8Array(4);
    new DataView(next.buffer).setUint32(0, count + 1);
    try {
      await store.put(userId, next, current?.version ?? null);
      return attempt;
    } catch (err) {
      if (!(err instanceof VersionConflict)) throw err;
      // Jitter keeps 50 writers from retrying in lockstep.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 3));
    }
  }
}

for (const backend of backends) defineConformance(backend);

function defineConformance(backend: StoreBackend): void {
  describe(`record store conformance: ${backend.name}`, () => {
    const tracker = new StoreTracker();
    let store: RecordStore;
    let url: string;

    beforeAll(() => backend.setUp());
    afterAll(() => backend.tearDown());
    afterEach(() => tracker.closeAll());

    async function fresh(): Promise<RecordStore> {
      url = backend.freshUrl();
      store = await tracker.openStore(url);
      return store;
    }

    it('returns null for a record that does not exist', async () => {
      await fresh();
      expect(await store.get('nobody')).toBeNull();
    });

    it('creates a record only if absent, at version 1', async () => {
      await fresh();
      const created = await store.put('alice', text('first'), null);
      expect(created).toEqual({ userId: 'alice', version: 1, value: text('first') });
      expect(await store.get('alice')).toEqual({ userId: 'alice', version: 1, value: text('first') });

      const conflict = await conflictOf(store.put('alice', text('second'), null));
      expect(conflict).toBeInstanceOf(StoreError);
      expect(conflict.code).toBe('VERSION_CONFLICT');
      expect(conflict).toMatchObject({ userId: 'alice', expected: null, current: 1 });
      expect((await store.get('alice'))!.value).toEqual(text('first'));
    });

    it('compare-and-swaps: the right version wins with version + 1, a wrong one changes nothing', async () => {
      await fresh();
      await store.put('bob', bytes(1), null);
      expect(await store.put('bob', bytes(2), 1)).toEqual({ userId: 'bob', version: 2, value: bytes(2) });
      expect(await store.put('bob', bytes(3), 2)).toMatchObject({ version: 3 });

      expect(await conflictOf(store.put('bob', bytes(9), 2))).toMatchObject({ expected: 2, current: 3 });
      expect(await conflictOf(store.put('bob', bytes(9), 7))).toMatchObject({ expected: 7, current: 3 });
      expect(await conflictOf(store.put('carol', bytes(9), 1))).toMatchObject({ expected: 1, current: null });
      expect(await store.get('bob')).toEqual({ userId: 'bob', version: 3, value: bytes(3) });
      expect(await store.get('carol')).toBeNull();
    });

    it('keeps versions per user', async () => {
      await fresh();
      await store.put('u1', bytes(1), null);
      await store.put('u1', bytes(2), 1);
      await store.put('u2', bytes(7), null);
      expect((await store.get('u1'))!.version).toBe(2);
      expect((await store.get('u2'))!.version).toBe(1);
    });

    it('hands out copies as plain Uint8Arrays: callers cannot mutate stored bytes', async () => {
      await fresh();
      const value = bytes(1, 2, 3);
      const returned = await store.put('dave', value, null);
      value[0] = 99;
      returned.value[1] = 99;
      const read = await store.get('dave');
      expect(read!.value).toEqual(bytes(1, 2, 3));
      expect(Object.getPrototypeOf(read!.value)).toBe(Uint8Array.prototype);
      read!.value[2] = 99;
      expect((await store.get('dave'))!.value).toEqual(bytes(1, 2, 3));
    });

    it('ends 50 concurrent read-modify-CAS increments at exactly 50', async () => {
      await fresh();
      const retries = await Promise.all(Array.from({ length: 50 }, () => increment(store, 'counter')));
      const record = await store.get('counter');
      expect(new DataView(record!.value.buffer).getUint32(0)).toBe(50);
      expect(record!.version).toBe(50);
      expect(retries.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(0);
    });

    it('lets exactly one of 20 concurrent creates win', async () => {
      await fresh();
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => store.put('race', bytes(i), null)));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(VersionConflict);
      expect((await store.get('race'))!.value).toEqual((won[0] as PromiseFulfilledResult<{ value: Uint8Array }>).value.value);
    });

    it('deletes only at the expected version; an absent record is a conflict with current null', async () => {
      await fresh();
      await store.put('erin', bytes(1), null);
      await store.put('erin', bytes(2), 1);
      expect(await conflictOf(store.delete('erin', 1))).toMatchObject({ expected: 1, current: 2 });
      expect((await store.get('erin'))!.version).toBe(2);

      await store.delete('erin', 2);
      expect(await store.get('erin')).toBeNull();
      expect(await conflictOf(store.delete('erin', 2))).toMatchObject({ expected: 2, current: null });

      // A re-created record starts again at 1 (the documented ABA caveat).
      expect(await store.put('erin', bytes(3), null)).toMatchObject({ version: 1 });
    });

    it('rejects bad user ids with InvalidRecordKey, without echoing them', async () => {
      await fresh();
      const bad = ['', 'x'.repeat(129), 'a/b', 'a b', 'ä', 'a\0b', 'a\nb', '../etc', 'a%2Fb', 'a*'];
      for (const userId of bad) {
        for (const op of [() => store.get(userId), () => store.put(userId, bytes(1), null), () => store.delete(userId, 1)]) {
          const err = await op().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err, JSON.stringify(userId)).toBeInstanceOf(InvalidRecordKey);
          expect((err as StoreError).code).toBe('INVALID_RECORD_KEY');
          if (userId.length > 2) expect((err as Error).message).not.toContain(userId);
        }
      }
      await expect(store.get(42 as unknown as string)).rejects.toBeInstanceOf(InvalidRecordKey);
    });

    it('accepts every allowed character and 128-character ids', async () => {
      await fresh();
      for (const userId of ['A-Za-z0-9._:@-', 'x'.repeat(128), 'user@example.com', 'urn:uuid:0f1e.2d-3c']) {
        await store.put(userId, bytes(1), null);
        expect((await store.get(userId))!.userId).toBe(userId);
      }
    });

    it('stores values up to 64 KiB, including empty ones, and refuses larger ones', async () => {
      await fresh();
      const big = new Uint8Array(MAX_VALUE_BYTES).map((_, i) => (i * 7) & 0xff);
      await store.put('big', big, null);
      expect((await store.get('big'))!.value).toEqual(big);
      await store.put('empty', new Uint8Array(0), null);
      expect((await store.get('empty'))!.value).toEqual(new Uint8Array(0));

      const err = await store.put('big', new Uint8Array(MAX_VALUE_BYTES + 1), 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidStoreArgument);
      expect((err as StoreError).code).toBe('INVALID_ARGUMENT');
      expect((await store.get('big'))!.version).toBe(1);
      await expect(store.put('x', 'not bytes' as unknown as Uint8Array, null)).rejects.toBeInstanceOf(InvalidStoreArgument);
    });

    it('refuses versions that are not positive safe integers', async () => {
      await fresh();
      for (const version of [0, -1, 1.5, Number.NaN, Number.MAX_SAFE_INTEGER + 1, '1' as unknown as number]) {
        await expect(store.put('v', bytes(1), version)).rejects.toBeInstanceOf(InvalidStoreArgument);
        await expect(store.delete('v', version)).rejects.toBeInstanceOf(InvalidStoreArgument);
      }
    });

    it('never puts record bytes into error messages', async () => {
      await fresh();
      const secret = text('SEALED-RECORD-MARKER-4f2a');
      await store.put('frank', secret, null);
      const errors = [await conflictOf(store.put('frank', secret, null)), await conflictOf(store.put('frank', secret, 5)), await conflictOf(store.delete('frank', 3))];
      for (const err of errors) {
        expect(err.message).not.toContain('MARKER');
        expect(err.message).not.toContain(Buffer.from(secret).toString('hex'));
        expect(err.message).not.toContain(Buffer.from(secret).toString('base64'));
      }
    });

    it('reports health, and fails closed after close()', async () => {
      await fresh();
      const health = await store.health();
      expect(health.ok, health.detail).toBe(true);
      await store.close();
      await store.close();
      expect((await store.health()).ok).toBe(false);
      await expect(store.get('alice')).rejects.toBeInstanceOf(StoreUnavailable);
      await expect(store.put('alice', bytes(1), null)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      await expect(store.delete('alice', 1)).rejects.toBeInstanceOf(StoreUnavailable);
    });

    it.skipIf(!backend.persistent)('keeps records across close and reopen, and CAS continues from there', async () => {
      await fresh();
      await store.put('gina', bytes(1), null);
      await store.put('gina', bytes(2), 1);
      await store.put('gone', bytes(5), null);
      await store.delete('gone', 1);
      await store.close();

      const reopened = await tracker.openStore(url);
      expect(await reopened.get('gina')).toEqual({ userId: 'gina', version: 2, value: bytes(2) });
      expect(await reopened.get('gone')).toBeNull();
      expect(await conflictOf(reopened.put('gina', bytes(3), 1))).toMatchObject({ current: 2 });
      expect(await reopened.put('gina', bytes(3), 2)).toMatchObject({ version: 3 });
    });
  });
}

// The vault on every HSM backend (the fake and SoftHSM2) with the same assertions: registration,
// recovery, attempt counters committed before KE2, destruction at the limit, unknown users that
// look like known ones, sealed records and sessions that detect tampering.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { HsmDriver } from '../../src/hsm/driver.js';
import { createFleetKeys } from '../../src/fleet/keys.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { RecordStore } from '../../src/store/store.js';
import { StoreUnavailable } from '../../src/store/errors.js';
import { Vault } from '../../src/vault/vault.js';
import {
  AuthenticationFailed, InvalidRequest, Locked, RecordTampered, RegistrationNotFound, SessionInvalid, VaultUnavailable,
} from '../../src/vault/errors.js';
import { EnvelopeRecoveryError } from '../../src/opaque/errors.js';
import { SIZES } from '../../src/opaque/messages.js';
import { backends, reportMissingSoftHsm } from '../support/backends.js';
import { opaqueClient, recover, register, sealUpload, startRecovery } from './vault-client.js';

reportMissingSoftHsm();

const enc = new TextEncoder();
const fleetIdOf = () => `t${randomBytes(5).toString('hex')}`;
const user = (name: string) => `${name}-${randomBytes(4).toString('hex')}`;

async function expectError<T>(promise: Promise<unknown>, type: new (...args: never[]) => T): Promise<T> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err, `expected ${type.name}`).toBeInstanceOf(type);
  return err as T;
}

/** A store whose writes can be made to fail, to show nothing is answered without a committed count. */
class FlakyStore implements RecordStore {
  failWrites = false;
  constructor(private readonly inner: RecordStore) {}
  get(userId: string) { return this.inner.get(userId); }
  put(userId: string, value: Uint8Array, expected: number | null) {
    return this.failWrites ? Promise.reject(new StoreUnavailable('test', 'injected: quorum lost')) : this.inner.put(userId, value, expected);
  }
  delete(userId: string, expected: number) { return this.inner.delete(userId, expected); }
  close() { return this.inner.close(); }
  health() { return this.inner.health(); }
}

for (const backend of backends()) {
  describe(`vault: ${backend.name}`, () => {
    let driver: HsmDriver;
    let store: FlakyStore;
    let clock = Date.now();
    let vault: Vault;

    beforeAll(async () => {
      ({ driver } = await backend.open());
      const fleetId = fleetIdOf();
      await createFleetKeys(driver, fleetId);
      store = new FlakyStore(new MemoryStore());
      vault = await Vault.open({ driver, store, fleetId, now: () => clock });
    });
    afterAll(async () => {
      await store.close();
      await driver.close();
    });

    it('registers a secret and releases it to the right password, from any number of recoveries', async () => {
      const id = user('alice');
      const secret = randomBytes(32);
      expect(await register(vault, id, 'correct horse', secret)).toBe(10);
      for (let i = 0; i < 3; i++) expect(Buffer.from(await recover(vault, id, 'correct horse'))).toEqual(secret);
      // success resets the counter
      expect((await startRecovery(vault, id, 'correct horse')).started.attemptsRemaining).toBe(9);
    });

    it('counts wrong guesses and destroys the secret at the limit', async () => {
      const id = user('bob');
      await register(vault, id, 'right', randomBytes(16), 3);
      for (const remaining of [2, 1]) {
        const r = await startRecovery(vault, id, 'wrong');
        expect(r.started.attemptsRemaining).toBe(remaining);
        await expect(r.finish()).rejects.toBeInstanceOf(EnvelopeRecoveryError);
        const err = await expectError(r.finishWith(new Uint8Array(32)), AuthenticationFailed);
        expect(err.attemptsRemaining).toBe(remaining);
      }
      const last = await startRecovery(vault, id, 'wrong');
      expect(last.started.attemptsRemaining).toBe(0);
      expect((await expectError(last.finishWith(new Uint8Array(32)), AuthenticationFailed)).attemptsRemaining).toBe(0);
      // the record is now a tombstone: the sealed secret is gone from the store, even the right password is refused
      await expectError(startRecovery(vault, id, 'right'), Locked);
      const stored = await store.get(id);
      expect(stored!.value.length).toBeLessThan(200);
    });

    it('a recovery that is started and abandoned at the limit locks the record too', async () => {
      const id = user('carol');
      await register(vault, id, 'pw', randomBytes(16), 1);
      await startRecovery(vault, id, 'wrong'); // counted, never finished
      await expectError(startRecovery(vault, id, 'pw'), Locked);
    });

    it('answers an unknown user exactly like a known user with a wrong password', async () => {
      const known = user('dave');
      await register(vault, known, 'secret pw', randomBytes(16));
      const stranger = user('nobody');
      for (let i = 1; i <= 10; i++) {
        const a = await startRecovery(vault, known, 'guess');
        const b = await startRecovery(vault, stranger, 'guess');
        expect(b.started.ke2.length).toBe(a.started.ke2.length);
        expect(b.started.ke2.length).toBe(SIZES.ke2);
        expect(b.started.session.length).toBe(a.started.session.length);
        expect(b.started.attemptsRemaining).toBe(a.started.attemptsRemaining);
        await expect(b.finish()).rejects.toBeInstanceOf(EnvelopeRecoveryError);
        const ea = await expectError(a.finishWith(randomBytes(32)), AuthenticationFailed);
        const eb = await expectError(b.finishWith(randomBytes(32)), AuthenticationFailed);
        expect(eb.toJSON()).toEqual(ea.toJSON());
      }
      await expectError(startRecovery(vault, known, 'guess'), Locked);
      await expectError(startRecovery(vault, stranger, 'guess'), Locked);
      await expectError(vault.deleteRegistration(user('nobody-else')), RegistrationNotFound);
    });

    it('commits the attempt before KE2: with the store down there is no KE2 and no count lost', async () => {
      const id = user('erin');
      await register(vault, id, 'pw', randomBytes(16));
      store.failWrites = true;
      try {
        await expectError(startRecovery(vault, id, 'pw'), VaultUnavailable);
      } finally {
        store.failWrites = false;
      }
      expect((await startRecovery(vault, id, 'pw')).started.attemptsRemaining).toBe(9);
    });

    it('detects a changed byte in a stored record', async () => {
      const id = user('frank');
      await register(vault, id, 'pw', randomBytes(16));
      const stored = (await store.get(id))!;
      const tampered = stored.value.slice();
      tampered[tampered.length - 5]! ^= 1;
      await store.put(id, tampered, stored.version);
      await expectError(startRecovery(vault, id, 'pw'), RecordTampered);
      // a record sealed for another user does not pass for this one either
      const other = user('grace');
      await register(vault, other, 'pw', randomBytes(16));
      const otherStored = (await store.get(other))!;
      const mine = (await store.get(id))!;
      await store.put(id, otherStored.value, mine.version);
      await expectError(startRecovery(vault, id, 'pw'), RecordTampered);
    });

    it('binds sessions to the user, to the attempt, and to 60 seconds', async () => {
      const id = user('heidi');
      const secret = randomBytes(20);
      await register(vault, id, 'pw', secret);
      const other = user('ivan');
      await register(vault, other, 'pw', randomBytes(20));
      // another user's session
      const r = await startRecovery(vault, id, 'pw');
      await expectError(vault.recoveryFinish(other, new Uint8Array(32), r.started.session), SessionInvalid);
      // altered session
      const altered = r.started.session.slice();
      altered[20]! ^= 1;
      await expectError(vault.recoveryFinish(id, new Uint8Array(32), altered), SessionInvalid);
      // superseded by a later attempt
      const later = await startRecovery(vault, id, 'pw');
      await expectError(r.finish(), SessionInvalid);
      // single use
      expect(Buffer.from(await later.finish())).toEqual(secret);
      await expectError(later.finish(), SessionInvalid);
      // expired
      const slow = await startRecovery(vault, id, 'pw');
      clock += 61_000;
      await expectError(slow.finish(), SessionInvalid);
    });

    it('re-registration keeps the attempt counter; a new password then works', async () => {
      const id = user('judy');
      await register(vault, id, 'old', randomBytes(16));
      for (let i = 0; i < 3; i++) await startRecovery(vault, id, 'x');
      const secret = randomBytes(16);
      await register(vault, id, 'new', secret);
      const r = await startRecovery(vault, id, 'new');
      expect(r.started.attemptsRemaining).toBe(6);
      expect(Buffer.from(await r.finish())).toEqual(secret);
    });

    it('refuses bad input with InvalidRequest and counts nothing for it', async () => {
      const id = user('ken');
      await register(vault, id, 'pw', randomBytes(16));
      await expectError(vault.recoveryStart(id, new Uint8Array(97)), InvalidRequest);
      const badPoint = opaqueClient.generateKE1(enc.encode('pw')).ke1;
      badPoint[0] = 0x05;
      await expectError(vault.recoveryStart(id, badPoint), InvalidRequest);
      await expectError(vault.recoveryStart('bad/user', new Uint8Array(98)), InvalidRequest);
      expect((await startRecovery(vault, id, 'pw')).started.attemptsRemaining).toBe(9);
      const { request, state } = opaqueClient.createRegistrationRequest(enc.encode('pw'));
      const { record } = await opaqueClient.finalizeRegistrationRequest(state, (await vault.registrationStart(id, request)).response);
      const hpke = (await vault.fleetInfo()).keys.hpke;
      for (const maxAttempts of [0, 101, 2.5]) {
        await expectError(vault.registrationFinish(id, { record, ...(await sealUpload(hpke, id, randomBytes(16))), maxAttempts }), InvalidRequest);
      }
      for (const size of [15, 65]) await expectError(vault.registrationFinish(id, { record, ...(await sealUpload(hpke, id, randomBytes(size))) }), InvalidRequest);
      const sealedForOther = await sealUpload(hpke, 'someone-else', randomBytes(16));
      await expectError(vault.registrationFinish(id, { record, ...sealedForOther }), InvalidRequest);
      const upload = await sealUpload(hpke, id, randomBytes(16));
      await expectError(vault.registrationFinish(id, { record: record.subarray(1), ...upload }), InvalidRequest);
      const badEnc = upload.enc.slice();
      badEnc[64]! ^= 1; // off the curve
      await expectError(vault.registrationFinish(id, { record, enc: badEnc, ciphertext: upload.ciphertext }), InvalidRequest);
      await expectError(vault.recoveryFinish(id, new Uint8Array(31), new Uint8Array(60)), InvalidRequest);
      await expectError(vault.recoveryFinish(id, new Uint8Array(32), new Uint8Array(3)), SessionInvalid);
    });

    it('counts every one of many concurrent attempts exactly once', async () => {
      const id = user('leo');
      await register(vault, id, 'pw', randomBytes(16), 100);
      const results = await Promise.all(Array.from({ length: 12 }, () => startRecovery(vault, id, 'x')));
      const remaining = results.map((r) => r.started.attemptsRemaining).sort((a, b) => a - b);
      expect(remaining).toEqual(Array.from({ length: 12 }, (_, i) => 88 + i));
    });

    it('deletes a registration; the user is then unknown', async () => {
      const id = user('mia');
      await register(vault, id, 'pw', randomBytes(16));
      await vault.deleteRegistration(id);
      await expectError(vault.deleteRegistration(id), RegistrationNotFound);
      const r = await startRecovery(vault, id, 'pw');
      await expect(r.finish()).rejects.toBeInstanceOf(EnvelopeRecoveryError);
    });

    it('reports health of store and token', async () => {
      const report = await vault.health();
      expect(report.ok).toBe(true);
      expect(Object.keys(report.checks).sort()).toEqual(['store', 'token']);
    });
  });
}

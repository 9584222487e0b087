// The token-backed OPAQUE server on every HSM backend (the fake and a real SoftHSM2 token), with
// the same assertions: the RFC 9807 vectors byte for byte with imported test keys (k_tok = 1, the
// vectors' seed and static key), then round trips with keys generated inside the token.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HsmDriver, KeyRef } from '../../src/hsm/driver.js';
import { OpaqueClient } from '../../src/opaque/client.js';
import { identityKsf } from '../../src/opaque/ksf.js';
import { OpaqueServer, fakeRecord } from '../../src/opaque/server.js';
import { parseRegistrationRecord, SIZES } from '../../src/opaque/messages.js';
import {
  ClientAuthenticationError, EnvelopeRecoveryError, ServerAuthenticationError,
} from '../../src/opaque/errors.js';
import { tokenServerKeys } from '../../src/vault/token-server-keys.js';
import { backends, reportMissingSoftHsm, uniqueLabel } from '../support/backends.js';
import { fakeVectors, hex, realVectors, vectorName } from '../opaque/vectors.js';
import { runFakeVector, runRealVector } from '../opaque/vector-runners.js';

reportMissingSoftHsm();

const ONE = new Uint8Array(32);
ONE[31] = 1;
const enc = new TextEncoder();

for (const backend of backends()) {
  describe(`token-backed OPAQUE server: ${backend.name}`, () => {
    let driver: HsmDriver;
    const made: KeyRef[] = [];
    const imported = async (type: 'ec-p256-derive' | 'hmac-sha256', value: Uint8Array): Promise<KeyRef> => {
      const key = type === 'hmac-sha256'
        ? await driver.importKey({ label: uniqueLabel('opq'), type }, { type, secret: value })
        : await driver.importKey({ label: uniqueLabel('opq'), type }, { type, scalar: value });
      made.push(key);
      return key;
    };
    const generated = async (type: 'ec-p256-derive' | 'hmac-sha256'): Promise<KeyRef> => {
      const key = await driver.generateKey({ label: uniqueLabel('opq'), type });
      made.push(key);
      return key;
    };

    beforeAll(async () => {
      ({ driver } = await backend.open());
    });
    afterAll(async () => {
      for (const key of made) await driver.destroyKey(key).catch(() => {});
      await driver.close();
    });

    const vectorKeys = async (inputs: Record<string, string>) =>
      tokenServerKeys(driver, {
        oprfKey: await imported('ec-p256-derive', ONE),
        oprfSeed: await imported('hmac-sha256', hex(inputs.oprf_seed!)),
        akeKey: await imported('ec-p256-derive', hex(inputs.server_private_key!)),
      });

    realVectors.forEach((v, n) => {
      it(`${vectorName(v, n)} byte for byte with k_tok = 1`, async () => {
        await runRealVector(v, await vectorKeys(v.inputs))();
      });
    });
    fakeVectors.forEach((v, n) => {
      it(`${vectorName(v, n)} byte for byte with k_tok = 1`, async () => {
        await runFakeVector(v, await vectorKeys(v.inputs))();
      });
    });

    it('tells the OPAQUE server where the key operations run (the driver\'s call threads)', async () => {
      const keys = await vectorKeys(realVectors[0]!.inputs);
      // The fake runs every call on the caller's thread; the pkcs11 driver in its session workers.
      expect(driver.callThreads).toBe(driver.backend === 'fake' ? 0 : (await driver.info()).poolSize);
      expect(keys.keyThreads).toBe(driver.callThreads);
    });

    describe('with keys generated in the token', () => {
      let server: OpaqueServer;
      const client = new OpaqueClient({ ksf: identityKsf });
      const userId = enc.encode('alice@example.com');
      const password = enc.encode('correct horse battery staple');
      let record: Uint8Array;

      beforeAll(async () => {
        const keys = await tokenServerKeys(driver, {
          oprfKey: await generated('ec-p256-derive'),
          oprfSeed: await generated('hmac-sha256'),
          akeKey: await generated('ec-p256-derive'),
        });
        server = new OpaqueServer(keys);
        const { request, state } = client.createRegistrationRequest(password);
        ({ record } = await client.finalizeRegistrationRequest(state, await server.createRegistrationResponse(request, userId)));
      });

      it('a login round-trips and both sides agree on the session key', async () => {
        for (let i = 0; i < 3; i++) {
          const { ke1, state } = client.generateKE1(password);
          const { ke2, state: serverState } = await server.generateKE2(ke1, parseRegistrationRecord(record), userId);
          const result = await client.generateKE3(state, ke2);
          expect(Buffer.from(server.finish(serverState, result.ke3))).toEqual(Buffer.from(result.sessionKey));
          expect(Buffer.from(result.serverPublicKey)).toEqual(Buffer.from(server.publicKey));
        }
      });

      it('a wrong password fails at the client, and a KE3 it could forge fails at the server', async () => {
        const { ke1, state } = client.generateKE1(enc.encode('wrong password'));
        const { ke2, state: serverState } = await server.generateKE2(ke1, parseRegistrationRecord(record), userId);
        await expect(client.generateKE3(state, ke2)).rejects.toBeInstanceOf(EnvelopeRecoveryError);
        expect(() => server.finish(serverState, new Uint8Array(32))).toThrow(ClientAuthenticationError);
        // a KE3 from another (successful) session does not finish this one either
        const good = client.generateKE1(password);
        const other = await server.generateKE2(good.ke1, parseRegistrationRecord(record), userId);
        const { ke3 } = await client.generateKE3(good.state, other.ke2);
        expect(() => server.finish(serverState, ke3)).toThrow(ClientAuthenticationError);
      });

      it('a tampered server MAC fails the client check', async () => {
        const { ke1, state } = client.generateKE1(password);
        const { ke2 } = await server.generateKE2(ke1, parseRegistrationRecord(record), userId);
        ke2[ke2.length - 1]! ^= 1;
        await expect(client.generateKE3(state, ke2)).rejects.toBeInstanceOf(ServerAuthenticationError);
      });

      it('an unknown user gets a KE2 of the right shape, and the client fails as with a wrong password', async () => {
        const fake = fakeRecord(new Uint8Array(Buffer.from('03b81708eae026a9370616c22e1e8542fe9dbebd36ce8a2661b708e9628f4a57fc', 'hex')), new Uint8Array(32).fill(7));
        const { ke1, state } = client.generateKE1(password);
        const { ke2 } = await server.generateKE2(ke1, fake, enc.encode('nobody@example.com'));
        expect(ke2.length).toBe(SIZES.ke2);
        await expect(client.generateKE3(state, ke2)).rejects.toBeInstanceOf(EnvelopeRecoveryError);
      });
    });
  });
}

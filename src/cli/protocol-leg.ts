// The qualification run's protocol leg: an OPAQUE login whose server keys live in the token under
// qualification (checked against the software server), and a register/recover through the vault
// layer on an in-memory store. Every key it makes carries the run's label prefix, so the run's
// cleanup destroys it. Wired here, in cli/, because qualify/ sits beside the vault, not above it.

import { randomBytes } from 'node:crypto';
import type { HsmDriver } from '../hsm/driver.js';
import { createFleetKeys } from '../fleet/keys.js';
import { OpaqueClient, OpaqueServer, identityKsf, parseRegistrationRecord, softwareServerKeys } from '../opaque/index.js';
import { MemoryStore } from '../store/memory.js';
import { tokenServerKeys } from '../vault/token-server-keys.js';
import { Vault } from '../vault/vault.js';
import { AuthenticationFailed } from '../vault/errors.js';
import { EnvelopeRecoveryError } from '../opaque/errors.js';
import { fail, pass, type Outcome, type ProtocolLeg, type ProtocolSession } from '../qualify/types.js';
import { sealSecretForUpload } from '../client/hpke.js';
import { openReleasedSecret } from '../client/secret-release.js';

const enc = new TextEncoder();
const ONE = new Uint8Array(32);
ONE[31] = 1;

/** Token-backed OPAQUE with keys imported from known values, so the software server can be the oracle. */
async function opaquePair(session: ProtocolSession) {
  const d = session.driver;
  const tag = randomBytes(3).toString('hex'); // each call makes its own keys
  const oprfSeed = randomBytes(32);
  const ake = randomBytes(32);
  ake[0] = 0x7f; // below the group order
  const keys = await tokenServerKeys(d, {
    oprfKey: await d.importKey({ label: session.label(`opaque-oprf-${tag}`), type: 'ec-p256-derive' }, { type: 'ec-p256-derive', scalar: ONE }),
    oprfSeed: await d.importKey({ label: session.label(`opaque-seed-${tag}`), type: 'hmac-sha256' }, { type: 'hmac-sha256', secret: oprfSeed }),
    akeKey: await d.importKey({ label: session.label(`opaque-ake-${tag}`), type: 'ec-p256-derive' }, { type: 'ec-p256-derive', scalar: ake }),
  });
  return { token: new OpaqueServer(keys), software: new OpaqueServer(softwareServerKeys({ oprfSeed, serverPrivateKey: ake })) };
}

/** Fleet ids are [a-z0-9-]; the run's prefix is `hvq-<hex>-`, so its fleet's labels carry the prefix. */
function fleetIdFor(session: ProtocolSession): string {
  return session.label('fleet').toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/-+$/, '');
}

export function vaultProtocolLeg(): ProtocolLeg {
  return {
    async opaqueLogin(session): Promise<Outcome> {
      const { token, software } = await opaquePair(session);
      const client = new OpaqueClient({ ksf: identityKsf });
      const userId = enc.encode('qualify-user');
      const password = enc.encode('qualification password');
      const { request, state } = client.createRegistrationRequest(password);
      const response = await token.createRegistrationResponse(request, userId);
      const expected = await software.createRegistrationResponse(request, userId);
      if (!Buffer.from(response).equals(Buffer.from(expected))) return fail('the token\'s OPRF evaluation differs from the software server\'s');
      const { record } = await client.finalizeRegistrationRequest(state, response);
      const fixed = { maskingNonce: randomBytes(32), serverNonce: randomBytes(32), serverKeyshareSeed: randomBytes(32) };
      const { ke1, state: login } = client.generateKE1(password);
      const fromToken = await token.generateKE2(ke1, parseRegistrationRecord(record), userId, undefined, fixed);
      const fromSoftware = await software.generateKE2(ke1, parseRegistrationRecord(record), userId, undefined, fixed);
      if (!Buffer.from(fromToken.ke2).equals(Buffer.from(fromSoftware.ke2))) return fail('KE2 through the token differs from the software server\'s');
      const { ke3, sessionKey } = await client.generateKE3(login, fromToken.ke2);
      if (!Buffer.from(token.finish(fromToken.state, ke3)).equals(Buffer.from(sessionKey))) return fail('session keys differ');
      return pass('registration and login through the token match the software server byte for byte');
    },

    async registerRecover(session): Promise<Outcome> {
      const store = new MemoryStore();
      try {
        const fleetId = fleetIdFor(session);
        await createFleetKeys(session.driver, fleetId);
        const vault = await Vault.open({ driver: session.driver, store, fleetId });
        const client = new OpaqueClient({ ksf: identityKsf });
        const secret = randomBytes(32);
        const userId = 'qualify-user';
        const { request, state } = client.createRegistrationRequest(enc.encode('right password'));
        const { record } = await client.finalizeRegistrationRequest(state, (await vault.registrationStart(userId, request)).response);
        const fleet = await vault.fleetInfo();
        await vault.registrationFinish(userId, { record, ...(await sealSecretForUpload(fleet.keys.hpke, userId, secret)) });
        // a wrong password: the client cannot open its envelope, the server refuses a made-up KE3
        const wrong = client.generateKE1(enc.encode('wrong password'));
        const startedWrong = await vault.recoveryStart(userId, wrong.ke1);
        const clientRefused = await client.generateKE3(wrong.state, startedWrong.ke2).then(() => false, (e: unknown) => e instanceof EnvelopeRecoveryError);
        const serverRefused = await vault.recoveryFinish(userId, randomBytes(32), startedWrong.session).then(() => false, (e: unknown) => e instanceof AuthenticationFailed);
        if (!clientRefused || !serverRefused) return fail('a wrong password was not refused');
        const right = client.generateKE1(enc.encode('right password'));
        const started = await vault.recoveryStart(userId, right.ke1);
        const { ke3, sessionKey } = await client.generateKE3(right.state, started.ke2);
        const { nonce, ciphertext } = await vault.recoveryFinish(userId, ke3, started.session);
        const released = await openReleasedSecret(sessionKey, userId, nonce, ciphertext);
        if (!Buffer.from(released).equals(secret)) return fail('the recovered secret differs from the registered one');
        return pass('secret registered (HPKE to the token), refused to a wrong password, released to the right one');
      } finally {
        await store.close();
      }
    },

    async loginsPerSecond(session, durationMs): Promise<number> {
      const { token } = await opaquePair(session);
      const client = new OpaqueClient({ ksf: identityKsf });
      const userId = enc.encode('qualify-user');
      const password = enc.encode('p');
      const { request, state } = client.createRegistrationRequest(password);
      const { record } = await client.finalizeRegistrationRequest(state, await token.createRegistrationResponse(request, userId));
      const parsed = parseRegistrationRecord(record);
      const { ke1 } = client.generateKE1(password);
      const started = performance.now();
      let logins = 0;
      while (performance.now() - started < durationMs && !session.signal.aborted) {
        await token.generateKE2(ke1, parsed, userId);
        logins++;
      }
      return (logins * 1000) / (performance.now() - started);
    },
  };
}

export type { HsmDriver };

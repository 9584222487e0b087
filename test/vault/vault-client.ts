// What a client does against a VaultService, in-process, with the SDK's own HPKE and release code:
// OPAQUE with the fleet's pinned AKE key, the secret sealed with HPKE to the fleet's upload key,
// and the released secret opened with the session key.

import { sealSecretForUpload } from '../../src/client/hpke.js';
import { openReleasedSecret } from '../../src/client/secret-release.js';
import { OpaqueClient, identityKsf } from '../../src/opaque/index.js';
import type { RecoveryStarted, VaultService } from '../../src/vault/service.js';

const enc = new TextEncoder();
export const opaqueClient = new OpaqueClient({ ksf: identityKsf });

export const sealUpload = sealSecretForUpload;

export async function register(vault: VaultService, userId: string, password: string, secret: Uint8Array, maxAttempts?: number): Promise<number> {
  const { request, state } = opaqueClient.createRegistrationRequest(enc.encode(password));
  const { response } = await vault.registrationStart(userId, request);
  const { record, serverPublicKey } = await opaqueClient.finalizeRegistrationRequest(state, response);
  const fleet = await vault.fleetInfo();
  if (!Buffer.from(serverPublicKey).equals(Buffer.from(fleet.keys.ake))) throw new Error('server key is not the fleet key');
  const upload = await sealUpload(fleet.keys.hpke, userId, secret);
  return (await vault.registrationFinish(userId, { record, ...upload, ...(maxAttempts !== undefined ? { maxAttempts } : {}) })).maxAttempts;
}

/** Starts a recovery; returns the server's answer and a way to finish it as the client would. */
export async function startRecovery(vault: VaultService, userId: string, password: string) {
  const { ke1, state } = opaqueClient.generateKE1(enc.encode(password));
  const started: RecoveryStarted = await vault.recoveryStart(userId, ke1);
  return {
    started,
    /** Runs the client's KE3 (throws on a wrong password) and the server's finish. */
    async finish(): Promise<Uint8Array> {
      const { ke3, sessionKey } = await opaqueClient.generateKE3(state, started.ke2);
      const { nonce, ciphertext } = await vault.recoveryFinish(userId, ke3, started.session);
      return openReleasedSecret(sessionKey, userId, nonce, ciphertext);
    },
    /** What a client with the wrong password can send: anything but a valid KE3. */
    finishWith(ke3: Uint8Array) {
      return vault.recoveryFinish(userId, ke3, started.session);
    },
  };
}

export async function recover(vault: VaultService, userId: string, password: string): Promise<Uint8Array> {
  return (await startRecovery(vault, userId, password)).finish();
}

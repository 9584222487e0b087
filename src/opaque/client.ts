// The OPAQUE-3DH client (RFC 9807 §5.2, §6.2, §6.4.3): registration and login. Pure TypeScript
// on @noble: no Node-only import, so the same code runs in browsers and in the SDK.
// The `fixed` arguments exist for the RFC's test vectors; real callers leave them out.

import { p256 } from '@noble/curves/nist.js';
import { concat, ctEqual, xor } from './bytes.js';
import { ServerAuthenticationError } from './errors.js';
import { type Point, bytesToBigInt, deserializeElement, serializeElement } from './group.js';
import { extract, hash, mac, expand } from './kdf.js';
import { createCleartextCredentials, deriveDiffieHellmanKeyPair, recover, store } from './envelope.js';
import { deriveKeys, preamble } from './key-schedule.js';
import type { Ksf } from './ksf.js';
import {
  Nh, Nm, Nn, Npk, Nseed, parseKE2, parseRegistrationResponse, serializeKE1, serializeRegistrationRecord,
} from './messages.js';
import { blind as oprfBlind, finalize } from './oprf.js';
import { utf8 } from './bytes.js';

export interface ClientOptions {
  /** The key stretching function: the same at registration and at every login. */
  readonly ksf: Ksf;
  /** RFC 9807 context, bound into the transcript; the fleet's (default empty). */
  readonly context?: Uint8Array;
}

export interface Identities {
  readonly serverIdentity?: Uint8Array;
  readonly clientIdentity?: Uint8Array;
}

function randomBytes(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}

function randomScalar(): bigint {
  return bytesToBigInt(p256.utils.randomSecretKey());
}

export interface RegistrationState {
  readonly password: Uint8Array;
  readonly blind: bigint;
}

export interface LoginState {
  readonly password: Uint8Array;
  readonly blind: bigint;
  readonly clientSecret: bigint;
  readonly ke1: Uint8Array;
}

export interface LoginResult {
  readonly ke3: Uint8Array;
  readonly sessionKey: Uint8Array;
  readonly exportKey: Uint8Array;
  /** The server's public key as the envelope authenticated it. */
  readonly serverPublicKey: Uint8Array;
}

export class OpaqueClient {
  private readonly context: Uint8Array;
  constructor(private readonly options: ClientOptions) {
    this.context = options.context ?? new Uint8Array(0);
  }

  /** CreateRegistrationRequest(password). */
  createRegistrationRequest(password: Uint8Array, fixed: { blind?: bigint } = {}): { request: Uint8Array; state: RegistrationState } {
    const { blind, blindedElement } = oprfBlind(password, fixed.blind ?? randomScalar());
    return { request: serializeElement(blindedElement), state: { password: password.slice(), blind } };
  }

  /** FinalizeRegistrationRequest: the record to upload and the export key. */
  async finalizeRegistrationRequest(
    state: RegistrationState,
    responseBytes: Uint8Array,
    identities: Identities = {},
    fixed: { envelopeNonce?: Uint8Array } = {},
  ): Promise<{ record: Uint8Array; exportKey: Uint8Array; serverPublicKey: Uint8Array }> {
    const response = parseRegistrationResponse(responseBytes);
    const randomizedPassword = await this.randomizedPassword(state.password, state.blind, response.evaluatedMessage);
    const { envelope, clientPublicKey, maskingKey, exportKey } = store(
      randomizedPassword, response.serverPublicKey, fixed.envelopeNonce ?? randomBytes(Nn), identities.serverIdentity, identities.clientIdentity,
    );
    return { record: serializeRegistrationRecord({ clientPublicKey, maskingKey, envelope }), exportKey, serverPublicKey: response.serverPublicKey };
  }

  /** GenerateKE1(password). */
  generateKE1(password: Uint8Array, fixed: { blind?: bigint; clientNonce?: Uint8Array; clientKeyshareSeed?: Uint8Array } = {}): { ke1: Uint8Array; state: LoginState } {
    const { blind, blindedElement } = oprfBlind(password, fixed.blind ?? randomScalar());
    const clientNonce = fixed.clientNonce ?? randomBytes(Nn);
    const { privateKey: clientSecret, publicKey: clientPublicKeyshare } = deriveDiffieHellmanKeyPair(fixed.clientKeyshareSeed ?? randomBytes(Nseed));
    const ke1 = serializeKE1({ blindedMessage: blindedElement, clientNonce, clientPublicKeyshare: deserializeElement(clientPublicKeyshare) });
    return { ke1, state: { password: password.slice(), blind, clientSecret, ke1 } };
  }

  /**
   * GenerateKE3(state, ke2): recovers the credentials, authenticates the server (constant-time
   * MAC check), and returns KE3 with the session and export keys.
   * EnvelopeRecoveryError on a wrong password; ServerAuthenticationError on a bad server MAC.
   */
  async generateKE3(state: LoginState, ke2Bytes: Uint8Array, identities: Identities = {}): Promise<LoginResult> {
    const ke2 = parseKE2(ke2Bytes);
    const response = ke2.credentialResponse;
    // RecoverCredentials
    const randomizedPassword = await this.randomizedPassword(state.password, state.blind, response.evaluatedMessage);
    const maskingKey = expand(randomizedPassword, utf8('MaskingKey'), Nh);
    const pad = expand(maskingKey, concat(response.maskingNonce, utf8('CredentialResponsePad')), Npk + Nn + Nm);
    const unmasked = xor(pad, response.maskedResponse);
    const serverPublicKey = unmasked.slice(0, Npk);
    const envelope = { nonce: unmasked.slice(Npk, Npk + Nn), authTag: unmasked.slice(Npk + Nn) };
    // The envelope's MAC authenticates the unmasked key first: with a wrong password the bytes are
    // noise, and that must fail as EnvelopeRecoveryError, not as a malformed point.
    const { clientPrivateKey, cleartext, exportKey } = recover(randomizedPassword, serverPublicKey, envelope, identities.serverIdentity, identities.clientIdentity);
    const serverKey = deserializeElement(serverPublicKey, 'server_public_key (unmasked)');
    // AuthClientFinalize
    const dh1 = dh(state.clientSecret, ke2.serverPublicKeyshare);
    const dh2 = dh(state.clientSecret, serverKey);
    const dh3 = dh(clientPrivateKey, ke2.serverPublicKeyshare);
    const transcript = preamble(cleartext.clientIdentity, state.ke1, cleartext.serverIdentity, response, ke2.serverNonce, ke2.serverPublicKeyshare, this.context);
    const { km2, km3, sessionKey } = deriveKeys(concat(dh1, dh2, dh3), transcript);
    const expectedServerMac = mac(km2, hash(transcript));
    if (!ctEqual(ke2.serverMac, expectedServerMac)) throw new ServerAuthenticationError();
    const clientMac = mac(km3, hash(concat(transcript, expectedServerMac)));
    return { ke3: clientMac, sessionKey, exportKey, serverPublicKey };
  }

  private async randomizedPassword(password: Uint8Array, blind: bigint, evaluated: Point): Promise<Uint8Array> {
    const oprfOutput = finalize(password, blind, evaluated);
    const stretched = await this.options.ksf.stretch(oprfOutput);
    return extract(new Uint8Array(0), concat(oprfOutput, stretched));
  }
}

/** DiffieHellman(k, B) = SerializeElement(k·B), the full compressed point. */
function dh(k: bigint, B: Point): Uint8Array {
  return serializeElement(B.multiply(k));
}

export { createCleartextCredentials };

// The OPAQUE-3DH server (RFC 9807 §5.2.2, §6.3, §6.4.4). Long-term secrets are reached only
// through the OpaqueServerKeys port; ephemeral keys and DH outputs live in memory for one login.
// The server is stateless between KE2 and KE3: it returns the state for the caller to keep (the
// vault seals it in the token and hands it to the client, so any node can finish).

import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { concat, ctEqual, utf8, xor } from './bytes.js';
import { ClientAuthenticationError, InvalidMessage } from './errors.js';
import { type Point, serializeElement } from './group.js';
import { expand, hash, mac } from './kdf.js';
import { createCleartextCredentials } from './envelope.js';
import { deriveKeys, preamble } from './key-schedule.js';
import {
  type CredentialResponse, type KE1, type RegistrationRecord, Nm, Nn, Npk, Nseed, parseKE1, parseKE3, parseRegistrationRecord,
  parseRegistrationRequest, serializeEnvelope, serializeKE2, serializeRegistrationResponse,
} from './messages.js';
import { deriveScalar } from './oprf.js';
import { deserializeElementFast, duringLogin, fullDh, prepareFullDh, softwareKey } from './full-point.js';
import { SoftwareDhPool } from './dh-pool.js';
import type { OpaqueServerKeys } from './server-keys.js';

const DH_KEY_PAIR_INFO = utf8('OPAQUE-DeriveDiffieHellmanKeyPair');

export interface ServerOptions {
  /** RFC 9807 context (default empty); must equal the clients'. */
  readonly context?: Uint8Array;
  /** Server identity (default: its public key). */
  readonly serverIdentity?: Uint8Array;
}

/** What the server must remember between KE2 and KE3. Secret: keep it sealed. */
export interface ServerLoginState {
  readonly expectedClientMac: Uint8Array; // Nm
  readonly sessionKey: Uint8Array; // Nx
}

/** Test-vector hooks: every random input of GenerateKE2. */
export interface Ke2Fixed {
  readonly maskingNonce?: Uint8Array;
  readonly serverNonce?: Uint8Array;
  readonly serverKeyshareSeed?: Uint8Array;
}

/**
 * A registration record whose client public key is already decoded (parseRecord, fakeRecord), so
 * that generateKE2 does not decompress it again (~60 µs of the event loop).
 */
export interface DecodedRecord extends RegistrationRecord {
  readonly clientPublicKeyPoint: Point;
}

/** A KE1 already parsed (OpaqueServer.parseKE1), with a copy of its bytes for the transcript. */
export interface ParsedKE1 extends KE1 {
  readonly bytes: Uint8Array;
}

/**
 * RFC 9807 §10.9 client enumeration: for an unknown user the server answers from a fake record
 * (a valid client public key and a masking key, the same for the same identifier every time;
 * an all-zero envelope). The client then fails exactly as with a wrong password. The key is
 * decoded as a real record's is (parseRecord), so neither path takes longer than the other.
 */
export function fakeRecord(clientPublicKey: Uint8Array, maskingKey: Uint8Array): DecodedRecord {
  const clientPublicKeyPoint = deserializeElementFast(clientPublicKey, 'fake client public key');
  if (maskingKey.length !== 32) throw new InvalidMessage('fake masking key', 'expected 32 bytes');
  return { clientPublicKey, clientPublicKeyPoint, maskingKey, envelope: { nonce: new Uint8Array(Nn), authTag: new Uint8Array(Nm) } };
}

export class OpaqueServer {
  private readonly context: Uint8Array;
  private readonly serverIdentity: Uint8Array | undefined;
  /** Send dh1 and dh3 to the software ECDH threads from the start of every login (see respond). */
  private readonly backgroundDh: boolean;

  constructor(
    private readonly keys: OpaqueServerKeys,
    options: ServerOptions = {},
  ) {
    this.context = options.context ?? new Uint8Array(0);
    this.serverIdentity = options.serverIdentity;
    // Start the software ECDH threads now: a bad HSM_VAULT_DH_THREADS fails here, when the node
    // starts, rather than in its first logins, and no login waits for a thread to start.
    const pool = SoftwareDhPool.shared();
    this.backgroundDh = pool !== undefined && (keys.keyThreads ?? 0) === 0 && availableParallelism() > 1;
  }

  get publicKey(): Uint8Array {
    return this.keys.publicKey;
  }

  /** CreateRegistrationResponse(request, server_public_key, credential_identifier, oprf_seed). */
  async createRegistrationResponse(requestBytes: Uint8Array, credentialIdentifier: Uint8Array): Promise<Uint8Array> {
    const request = parseRegistrationRequest(requestBytes, deserializeElementFast);
    const evaluatedMessage = await this.keys.evaluate(credentialIdentifier, request.blindedMessage);
    return serializeRegistrationResponse({ evaluatedMessage, serverPublicKey: this.keys.publicKey });
  }

  /** Checks a record's structure (the vault stores an upload only if this passes). */
  parseRecord(recordBytes: Uint8Array): DecodedRecord {
    let clientPublicKeyPoint: Point | undefined;
    const record = parseRegistrationRecord(recordBytes, (bytes, field) => (clientPublicKeyPoint = deserializeElementFast(bytes, field)));
    return { ...record, clientPublicKeyPoint: clientPublicKeyPoint! };
  }

  /** Checks a KE1's structure without doing any work with it; generateKE2 takes the result. */
  parseKE1(ke1Bytes: Uint8Array): ParsedKE1 {
    return { ...parseKE1(ke1Bytes, deserializeElementFast), bytes: ke1Bytes.slice() };
  }

  /**
   * GenerateKE2: the credential response and the server's half of the 3DH. KE1 and record may come
   * as bytes / a plain record, or as parseKE1's and parseRecord's results (nothing decoded twice).
   */
  async generateKE2(
    ke1Input: Uint8Array | ParsedKE1,
    record: RegistrationRecord | DecodedRecord,
    credentialIdentifier: Uint8Array,
    clientIdentity?: Uint8Array,
    fixed: Ke2Fixed = {},
  ): Promise<{ ke2: Uint8Array; state: ServerLoginState }> {
    return duringLogin(() => this.respond(ke1Input, record, credentialIdentifier, clientIdentity, fixed));
  }

  private async respond(
    ke1Input: Uint8Array | ParsedKE1,
    record: RegistrationRecord | DecodedRecord,
    credentialIdentifier: Uint8Array,
    clientIdentity: Uint8Array | undefined,
    fixed: Ke2Fixed,
  ): Promise<{ ke2: Uint8Array; state: ServerLoginState }> {
    const ke1 = ke1Input instanceof Uint8Array ? this.parseKE1(ke1Input) : ke1Input;
    const clientPublicKey = 'clientPublicKeyPoint' in record
      ? record.clientPublicKeyPoint
      : deserializeElementFast(record.clientPublicKey, 'record client_public_key');
    const serverKeyshare = softwareKey(deriveScalar(fixed.serverKeyshareSeed ?? randomBytes(Nseed), DH_KEY_PAIR_INFO));
    prepareFullDh([ke1.blindedMessage, ke1.clientPublicKeyshare, clientPublicKey], [serverKeyshare.publicKey]);
    // dh1 and dh3 (four software ECDH queries, ~0.8 ms) wait for nothing, and nothing waits for
    // them before the key schedule. When the key operations run on this thread too (software keys,
    // the fake token), another core would idle through a lone login, so they go to the software
    // ECDH threads at once: measured here (2 cores), fake backend, one caller, 0.61-0.66 -> 0.81-0.86
    // of the floor. When a token's workers run the key operations, they have the other cores (on
    // SoftHSM2 the same change cost one caller 8%), and the DH waits as below.
    const early = this.backgroundDh
      ? [fullDh(serverKeyshare.background, serverKeyshare.publicKey, ke1.clientPublicKeyshare), fullDh(serverKeyshare.background, serverKeyshare.publicKey, clientPublicKey)] as const
      : undefined;
    // Otherwise the key operations (OPRF evaluation, dh2) start first; the software DH (~1 ms of
    // this thread) only after one turn of the event loop, by which time an evaluation whose
    // first step is cheap (an in-process HMAC) has sent its own key operations too, so both
    // run while this thread multiplies.
    const evaluation = this.keys.evaluate(credentialIdentifier, ke1.blindedMessage);
    const staticDh = this.keys.staticDh(ke1.clientPublicKeyshare);
    // Handled below by Promise.all; these only keep a failure during the yield from counting
    // as an unhandled rejection (which ends the process).
    evaluation.catch(() => undefined);
    staticDh.catch(() => undefined);
    if (!early) await new Promise<void>((resolve) => setImmediate(resolve));
    const [evaluatedMessage, dh1, dh2, dh3] = await Promise.all([
      evaluation,
      early ? early[0] : fullDh(serverKeyshare.xOnly, serverKeyshare.publicKey, ke1.clientPublicKeyshare),
      staticDh,
      early ? early[1] : fullDh(serverKeyshare.xOnly, serverKeyshare.publicKey, clientPublicKey),
    ]);
    // CreateCredentialResponse
    const maskingNonce = fixed.maskingNonce ?? randomBytes(Nn);
    const pad = expand(record.maskingKey, concat(maskingNonce, utf8('CredentialResponsePad')), Npk + Nn + Nm);
    const maskedResponse = xor(pad, concat(this.keys.publicKey, serializeEnvelope(record.envelope)));
    const credentialResponse: CredentialResponse = { evaluatedMessage, maskingNonce, maskedResponse };
    // AuthServerRespond
    const cleartext = createCleartextCredentials(this.keys.publicKey, record.clientPublicKey, this.serverIdentity, clientIdentity);
    const serverNonce = fixed.serverNonce ?? randomBytes(Nn);
    const transcript = preamble(cleartext.clientIdentity, ke1.bytes, cleartext.serverIdentity, credentialResponse, serverNonce, serverKeyshare.publicKey, this.context);
    const ikm = concat(serializeElement(dh1), serializeElement(dh2), serializeElement(dh3));
    const { km2, km3, sessionKey } = deriveKeys(ikm, transcript);
    const serverMac = mac(km2, hash(transcript));
    const expectedClientMac = mac(km3, hash(concat(transcript, serverMac)));
    const ke2 = serializeKE2({ credentialResponse, serverNonce, serverPublicKeyshare: serverKeyshare.publicKey, serverMac });
    return { ke2, state: { expectedClientMac, sessionKey } };
  }

  /** ServerFinish(ke3): the session key, or ClientAuthenticationError (constant-time check). */
  finish(state: ServerLoginState, ke3Bytes: Uint8Array): Uint8Array {
    const ke3 = parseKE3(ke3Bytes);
    if (!ctEqual(ke3.clientMac, state.expectedClientMac)) throw new ClientAuthenticationError();
    return state.sessionKey.slice();
  }
}

export type { Point };

// VaultClient: registration, recovery and deletion of a backup key against a vault node
// (DESIGN.md "HTTP API of a vault node"). Every key the node presents is checked against the keys
// pinned in the client before anything is uploaded or trusted.
// Browser-safe: fetch, WebCrypto and @noble only; the OPAQUE client is imported file by file so the
// server half of src/opaque (node:crypto) never enters the graph.

import { p256 } from '@noble/curves/nist.js';
import { ctEqual } from '../opaque/bytes.js';
import { OpaqueClient } from '../opaque/client.js';
import { EnvelopeRecoveryError, OpaqueError, ServerAuthenticationError } from '../opaque/errors.js';
import type { Ksf } from '../opaque/ksf.js';
import { SIZES } from '../opaque/messages.js';
import { encodeBase64url } from './base64url.js';
import {
  InvalidArgument, PinnedKeyMismatch, ProtocolError, ServerAuthenticationFailed, VaultClientError, WrongPassword,
} from './errors.js';
import { sealSecretForUpload } from './hpke.js';
import { type FetchLike, type JsonObject, bytesField, countField, objectField, requestJson, stringField } from './http.js';
import { ReleaseDecryptionError, RELEASE_NONCE_LENGTH, openReleasedSecret } from './secret-release.js';

export type TokenScope = 'register' | 'recover' | 'delete';

export interface PinnedKeys {
  /** The fleet's OPAQUE server key: compressed P-256, 33 bytes. */
  readonly ake: Uint8Array;
  /** The fleet's HPKE upload key: uncompressed P-256, 65 bytes. */
  readonly hpke: Uint8Array;
}

export interface VaultClientOptions {
  /** The node (or load balancer) URL, e.g. https://vault.example/ ; paths /v1/... are appended. */
  readonly baseUrl: string;
  readonly fleetId: string;
  readonly pinnedKeys: PinnedKeys;
  /** The key stretching function: the same at registration and at every recovery. */
  readonly ksf: Ksf;
  /** The fleet's OPAQUE context (default empty). */
  readonly context?: Uint8Array;
  /** Defaults to globalThis.fetch. */
  readonly fetch?: FetchLike;
  /** A short-lived JWT from the account service (sub = user, aud = fleet id, scope). */
  readonly getToken: (scope: TokenScope, userId: string) => Promise<string>;
}

export interface RegisterOptions {
  /** Wrong guesses allowed before the node destroys the secret: 1..100 (node default 10). */
  readonly maxAttempts?: number;
}

export interface RegisterResult {
  /** RFC 9807 export key: client-side only, never sent; use it for client-side key derivation. */
  readonly exportKey: Uint8Array;
  /** What the node stored. */
  readonly maxAttempts: number;
}

export interface RecoverResult {
  readonly secret: Uint8Array;
  readonly exportKey: Uint8Array;
}

export interface FleetKeys {
  readonly fleetId: string;
  readonly keys: { readonly ake: Uint8Array; readonly hpke: Uint8Array; readonly signing: Uint8Array };
  /** The validation bundle as the node serves it (JSON), or null. Not verified here. */
  readonly bundle: unknown;
}

/** The node's user id rule (vault/service.ts USER_ID_PATTERN), repeated: the SDK must not import vault/. */
export const USER_ID_PATTERN = /^(?!\.+$)[A-Za-z0-9._@-]{1,128}$/;
export const SECRET_MIN_BYTES = 16;
export const SECRET_MAX_BYTES = 64;
export const MAX_ATTEMPTS_RANGE = { min: 1, max: 100 } as const;

const AKE_KEY_BYTES = 33;
const HPKE_KEY_BYTES = 65;
const SIGNING_KEY_BYTES = 32;

export class VaultClient {
  private readonly baseUrl: string;
  private readonly fleetId: string;
  private readonly pinned: PinnedKeys;
  private readonly opaque: OpaqueClient;
  private readonly fetchFn: FetchLike;
  private readonly getToken: VaultClientOptions['getToken'];

  constructor(options: VaultClientOptions) {
    checkPinnedKey(options.pinnedKeys.ake, AKE_KEY_BYTES, 'ake');
    checkPinnedKey(options.pinnedKeys.hpke, HPKE_KEY_BYTES, 'hpke');
    if (options.fleetId === '') throw new InvalidArgument('fleetId must not be empty');
    this.baseUrl = options.baseUrl;
    this.fleetId = options.fleetId;
    this.pinned = { ake: options.pinnedKeys.ake.slice(), hpke: options.pinnedKeys.hpke.slice() };
    this.opaque = new OpaqueClient({ ksf: options.ksf, ...(options.context ? { context: options.context } : {}) });
    // Bound: a detached `fetch` throws "Illegal invocation" in browsers.
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.getToken = options.getToken;
  }

  /**
   * OPAQUE registration plus the HPKE-sealed upload of `secret` (16..64 bytes). The server's OPAQUE
   * key is compared with the pinned one before anything is uploaded.
   */
  async register(userId: string, password: Uint8Array, secret: Uint8Array, options: RegisterOptions = {}): Promise<RegisterResult> {
    checkUserId(userId);
    if (secret.length < SECRET_MIN_BYTES || secret.length > SECRET_MAX_BYTES) {
      throw new InvalidArgument(`secret must be ${SECRET_MIN_BYTES}..${SECRET_MAX_BYTES} bytes, got ${secret.length}`);
    }
    const { maxAttempts } = options;
    if (maxAttempts !== undefined && (!Number.isSafeInteger(maxAttempts) || maxAttempts < MAX_ATTEMPTS_RANGE.min || maxAttempts > MAX_ATTEMPTS_RANGE.max)) {
      throw new InvalidArgument(`maxAttempts must be an integer in ${MAX_ATTEMPTS_RANGE.min}..${MAX_ATTEMPTS_RANGE.max}`);
    }
    const token = await this.getToken('register', userId);
    const base = `/v1/registrations/${encodeURIComponent(userId)}`;

    const { request, state } = this.opaque.createRegistrationRequest(password);
    try {
      const started = await this.post(`${base}/start`, token, { request: encodeBase64url(request) });
      const response = bytesField(started, 'response', SIZES.registrationResponse);
      const { record, exportKey, serverPublicKey } = await opaqueStep(() => this.opaque.finalizeRegistrationRequest(state, response));
      if (!ctEqual(serverPublicKey, this.pinned.ake)) throw new PinnedKeyMismatch('ake');

      const { enc, ciphertext } = await sealSecretForUpload(this.pinned.hpke, userId, secret);
      const finished = await this.post(`${base}/finish`, token, {
        record: encodeBase64url(record),
        enc: encodeBase64url(enc),
        ciphertext: encodeBase64url(ciphertext),
        ...(maxAttempts !== undefined ? { maxAttempts } : {}),
      });
      return { exportKey, maxAttempts: countField(finished, 'maxAttempts') };
    } finally {
      state.password.fill(0);
    }
  }

  /**
   * OPAQUE login, then the release of the secret. A wrong password is found locally after KE2
   * (WrongPassword, with the server's attemptsRemaining); KE3 is then never sent.
   */
  async recover(userId: string, password: Uint8Array): Promise<RecoverResult> {
    checkUserId(userId);
    const token = await this.getToken('recover', userId);
    const base = `/v1/recoveries/${encodeURIComponent(userId)}`;

    const { ke1, state } = this.opaque.generateKE1(password);
    let sessionKey: Uint8Array | undefined;
    try {
      const started = await this.post(`${base}/start`, token, { ke1: encodeBase64url(ke1) });
      const ke2 = bytesField(started, 'ke2', SIZES.ke2);
      const session = bytesField(started, 'session');
      const attemptsRemaining = countField(started, 'attemptsRemaining');

      let login;
      try {
        login = await this.opaque.generateKE3(state, ke2);
      } catch (error) {
        if (error instanceof EnvelopeRecoveryError) throw new WrongPassword(attemptsRemaining, { cause: error });
        throw mapOpaqueError(error);
      }
      sessionKey = login.sessionKey;
      if (!ctEqual(login.serverPublicKey, this.pinned.ake)) throw new PinnedKeyMismatch('ake');

      const released = await this.post(`${base}/finish`, token, { ke3: encodeBase64url(login.ke3), session: encodeBase64url(session) });
      const nonce = bytesField(released, 'nonce', RELEASE_NONCE_LENGTH);
      const ciphertext = bytesField(released, 'ciphertext', { min: SECRET_MIN_BYTES + 16, max: SECRET_MAX_BYTES + 16 });
      let secret: Uint8Array;
      try {
        secret = await openReleasedSecret(sessionKey, userId, nonce, ciphertext);
      } catch (error) {
        if (error instanceof ReleaseDecryptionError) throw new ProtocolError('the released secret did not decrypt', undefined, { cause: error });
        throw error;
      }
      return { secret, exportKey: login.exportKey };
    } finally {
      sessionKey?.fill(0);
      state.password.fill(0);
    }
  }

  /** Deletes the user's registration and secret. NotFound when nothing was registered. */
  async deleteRegistration(userId: string): Promise<void> {
    checkUserId(userId);
    const token = await this.getToken('delete', userId);
    await requestJson(this.fetchFn, this.baseUrl, { method: 'DELETE', path: `/v1/registrations/${encodeURIComponent(userId)}`, token });
  }

  /**
   * The fleet's public keys as the node serves them, checked against the pinned ones and the
   * configured fleet id: PinnedKeyMismatch names the first field that differs.
   */
  async fleet(): Promise<FleetKeys> {
    const body = await requestJson(this.fetchFn, this.baseUrl, { method: 'GET', path: '/v1/fleet' });
    const fleetId = stringField(body, 'fleetId');
    const keys = objectField(body, 'keys');
    const ake = bytesField(keys, 'ake', AKE_KEY_BYTES);
    const hpke = bytesField(keys, 'hpke', HPKE_KEY_BYTES);
    const signing = bytesField(keys, 'signing', SIGNING_KEY_BYTES);
    if (fleetId !== this.fleetId) throw new PinnedKeyMismatch('fleetId');
    if (!ctEqual(ake, this.pinned.ake)) throw new PinnedKeyMismatch('ake');
    if (!ctEqual(hpke, this.pinned.hpke)) throw new PinnedKeyMismatch('hpke');
    return { fleetId, keys: { ake, hpke, signing }, bundle: body.bundle ?? null };
  }

  private post(path: string, token: string, body: Record<string, unknown>): Promise<JsonObject> {
    return requestJson(this.fetchFn, this.baseUrl, { method: 'POST', path, token, body });
  }
}

function checkUserId(userId: string): void {
  if (!USER_ID_PATTERN.test(userId)) throw new InvalidArgument('user id must match [A-Za-z0-9._@-]{1,128}');
}

function checkPinnedKey(key: Uint8Array, length: number, field: 'ake' | 'hpke'): void {
  if (!(key instanceof Uint8Array) || key.length !== length) throw new InvalidArgument(`pinned ${field} key must be ${length} bytes`);
  try {
    p256.Point.fromBytes(key).assertValidity();
  } catch {
    throw new InvalidArgument(`pinned ${field} key is not a valid P-256 point`);
  }
}

/** Runs an OPAQUE client step, turning its typed errors into the SDK's. */
async function opaqueStep<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw mapOpaqueError(error);
  }
}

function mapOpaqueError(error: unknown): unknown {
  if (error instanceof VaultClientError) return error;
  if (error instanceof ServerAuthenticationError) return new ServerAuthenticationFailed({ cause: error });
  if (error instanceof OpaqueError) return new ProtocolError(`the vault sent a malformed OPAQUE message (${error.code})`, undefined, { cause: error });
  return error;
}

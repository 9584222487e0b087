// The vault: registration, recovery with durable attempt counters, sealed records. Every long-term
// secret stays in the token (OPRF key and seed, AKE key, HPKE key, sealing key); the store holds
// only sealed records; a recovery's server state travels sealed with the client, so any node of
// the fleet can finish it.
//
// Attempt counting (DESIGN.md "Trust model"): recovery start counts the attempt and commits it to
// the store (to a majority, on etcd) BEFORE KE2 is computed; only a valid KE3 resets it; the
// attempt that reaches the limit destroys the secret. Unknown users get RFC 9807's fake KE2 from a
// stored stand-in ("phantom") that is counted and locked exactly like a real record, so no answer
// tells a stranger whether a user exists.

import { createCipheriv, createECDH, randomBytes } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { HsmDriver } from '../hsm/driver.js';
import { DriverClosed, InvalidArgument as HsmInvalidArgument, InvalidPoint, TokenUnavailable } from '../hsm/errors.js';
import { ctEqual, utf8 } from '../opaque/bytes.js';
import { InvalidMessage, OpaqueError } from '../opaque/errors.js';
import { OpaqueServer, fakeRecord } from '../opaque/server.js';
import { SIZES } from '../opaque/messages.js';
import { openFleetKeys, type FleetKeySet } from '../fleet/keys.js';
import { StoreUnavailable, VersionConflict } from '../store/errors.js';
import type { RecordStore, StoredRecord } from '../store/store.js';
import { SealedFormatError, SealedTampered, openRecord, openSession, sealRecord, sealSession, type VaultRecord } from './codec.js';
import { HpkeOpenError, openBase } from './hpke.js';
import { tokenServerKeys } from './token-server-keys.js';
import {
  AuthenticationFailed, InvalidRequest, Locked, RecordTampered, RegistrationNotFound, SessionInvalid, VaultError, VaultUnavailable,
} from './errors.js';
import {
  USER_ID_PATTERN, type FleetInfo, type HealthReport, type RecoveryStarted, type RegistrationUpload, type ReleasedSecret, type VaultService,
} from './service.js';

export const DEFAULT_MAX_ATTEMPTS = 10;
export const MAX_MAX_ATTEMPTS = 100;
export const SECRET_MIN_BYTES = 16;
export const SECRET_MAX_BYTES = 64;
export const SESSION_TTL_MS = 60_000;
const HPKE_INFO = utf8('hsm-vault registration v1');
const SECRET_INFO = utf8('hsm-vault secret v1');
/** Compare-and-swap retries under contention before the node gives up (503). */
const CAS_ATTEMPTS = 8;

export interface VaultOptions {
  readonly driver: HsmDriver;
  readonly store: RecordStore;
  readonly fleetId: string;
  /** RFC 9807 context of this fleet (default empty). */
  readonly context?: Uint8Array;
  /** The current validation bundle, served by GET /v1/fleet. */
  readonly bundle?: unknown;
  /** Clock (tests). */
  readonly now?: () => number;
  readonly sessionTtlMs?: number;
}

export class Vault implements VaultService {
  private bundle: unknown;
  private readonly userQueues = new Map<string, Promise<unknown>>();
  private readonly now: () => number;
  private readonly sessionTtlMs: number;

  private constructor(
    private readonly driver: HsmDriver,
    private readonly store: RecordStore,
    private readonly keys: FleetKeySet,
    private readonly opaque: OpaqueServer,
    options: VaultOptions,
  ) {
    this.bundle = options.bundle ?? null;
    this.now = options.now ?? Date.now;
    this.sessionTtlMs = options.sessionTtlMs ?? SESSION_TTL_MS;
  }

  /** Finds the fleet's keys in the token. Closes nothing it was given (the caller owns driver and store). */
  static async open(options: VaultOptions): Promise<Vault> {
    const keys = await openFleetKeys(options.driver, options.fleetId);
    const serverKeys = await tokenServerKeys(options.driver, { oprfKey: keys.refs.oprf, oprfSeed: keys.refs.oprfSeed, akeKey: keys.refs.ake });
    const opaque = new OpaqueServer(serverKeys, options.context !== undefined ? { context: options.context } : {});
    return new Vault(options.driver, options.store, keys, opaque, options);
  }

  get fleetId(): string {
    return this.keys.fleetId;
  }

  setBundle(bundle: unknown): void {
    this.bundle = bundle;
  }

  async close(): Promise<void> {
    // Nothing of its own to release: the driver and the store belong to the caller.
  }

  async fleetInfo(): Promise<FleetInfo> {
    const { ake, hpke, signing } = this.keys.publicKeys;
    return { fleetId: this.fleetId, keys: { ake, hpke, signing }, bundle: this.bundle };
  }

  async registrationStart(userId: string, request: Uint8Array): Promise<{ response: Uint8Array }> {
    checkUserId(userId);
    return guard(async () => ({ response: await this.opaque.createRegistrationResponse(request, utf8(userId)) }));
  }

  async registrationFinish(userId: string, upload: RegistrationUpload): Promise<{ maxAttempts: number }> {
    checkUserId(userId);
    const maxAttempts = upload.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > MAX_MAX_ATTEMPTS) {
      throw new InvalidRequest(`maxAttempts must be an integer in 1..${MAX_MAX_ATTEMPTS}`);
    }
    return guard(async () => {
      this.opaque.parseRecord(upload.record); // strict: valid point, exact length
      let secret: Uint8Array;
      try {
        secret = await openBase({ publicKey: this.keys.publicKeys.hpke, dh: (pkE) => this.driver.ecdh(this.keys.refs.hpke, pkE) }, upload.enc, HPKE_INFO, utf8(userId), upload.ciphertext);
      } catch (err) {
        if (err instanceof HpkeOpenError || err instanceof InvalidPoint) throw new InvalidRequest('the secret upload does not open with this fleet\'s HPKE key', { cause: err });
        throw err;
      }
      if (secret.length < SECRET_MIN_BYTES || secret.length > SECRET_MAX_BYTES) {
        throw new InvalidRequest(`the secret must be ${SECRET_MIN_BYTES}..${SECRET_MAX_BYTES} bytes`);
      }
      await this.update(userId, (current) => {
        // Re-registering keeps the count of an active record, so it cannot be used to reset it;
        // a locked record's secret is already gone, and a phantom was never a registration.
        const attempts = current?.record.kind === 'active' ? current.record.attempts : 0;
        return { kind: 'active', incarnation: randomBytes(16), maxAttempts, attempts, opaqueRecord: upload.record.slice(), secret };
      });
      return { maxAttempts };
    });
  }

  async recoveryStart(userId: string, ke1: Uint8Array): Promise<RecoveryStarted> {
    checkUserId(userId);
    if (!(ke1 instanceof Uint8Array) || ke1.length !== SIZES.ke1) throw new InvalidRequest(`KE1 must be ${SIZES.ke1} bytes`);
    return guard(async () => {
      // A malformed KE1 is refused before anything is counted: it is not a password guess.
      const parsedKe1 = this.opaque.parseKE1(ke1);
      let locked = false;
      const committed = await this.update(userId, (current) => {
        locked = false;
        const record: VaultRecord = current?.record ?? newPhantom();
        if (record.kind === 'locked') {
          locked = true;
          return null;
        }
        if (record.attempts >= record.maxAttempts) {
          locked = true;
          return destroyed(record);
        }
        return { ...record, attempts: record.attempts + 1 };
      });
      if (locked || !committed) throw new Locked();
      const record = committed.record;
      if (record.kind === 'locked') throw new Locked();
      const opaqueRecord = record.kind === 'active'
        ? this.opaque.parseRecord(record.opaqueRecord)
        : fakeRecord(record.fakeClientPublicKey, record.fakeMaskingKey);
      const { ke2, state } = await this.opaque.generateKE2(parsedKe1, opaqueRecord, utf8(userId));
      // A phantom's session carries a MAC no KE3 can match: it fails at finish like a wrong password.
      const expectedClientMac = record.kind === 'active' ? state.expectedClientMac : randomBytes(32);
      const session = await sealSession(this.driver, this.keys.refs.sealing, userId, {
        incarnation: record.incarnation,
        recordVersion: committed.version,
        expiresAt: this.now() + this.sessionTtlMs,
        expectedClientMac,
        sessionKey: state.sessionKey,
      });
      return { ke2, session, attemptsRemaining: record.maxAttempts - record.attempts };
    });
  }

  async recoveryFinish(userId: string, ke3: Uint8Array, sessionBytes: Uint8Array): Promise<ReleasedSecret> {
    checkUserId(userId);
    if (!(ke3 instanceof Uint8Array) || ke3.length !== SIZES.ke3) throw new InvalidRequest(`KE3 must be ${SIZES.ke3} bytes`);
    return guard(async () => {
      let session;
      try {
        session = await openSession(this.driver, this.keys.refs.sealing, userId, sessionBytes);
      } catch (err) {
        if (err instanceof SealedTampered || err instanceof SealedFormatError || err instanceof SyntaxError) throw new SessionInvalid('not issued for this user, or altered');
        throw err;
      }
      if (this.now() > session.expiresAt) throw new SessionInvalid('expired');
      const authentic = ctEqual(ke3, session.expectedClientMac);
      let outcome: { kind: 'released'; secret: Uint8Array } | { kind: 'failed'; remaining: number } | undefined;
      await this.update(userId, (current) => {
        if (!current) throw new SessionInvalid('the registration no longer exists');
        const record = current.record;
        if (!ctEqual(record.incarnation, session.incarnation)) throw new SessionInvalid('the registration has changed');
        if (record.kind === 'locked') throw new Locked();
        // Single use, and overtaken by any later attempt: the record must still be where this
        // attempt left it.
        if (current.version !== session.recordVersion) throw new SessionInvalid('superseded by a later attempt or already used');
        if (authentic && record.kind === 'active') {
          outcome = { kind: 'released', secret: record.secret };
          return { ...record, attempts: 0 };
        }
        if (record.attempts >= record.maxAttempts) {
          outcome = { kind: 'failed', remaining: 0 };
          return destroyed(record);
        }
        outcome = { kind: 'failed', remaining: record.maxAttempts - record.attempts };
        return null; // the attempt was counted at start; nothing to write
      });
      if (!outcome) throw new VaultUnavailable('recovery outcome unknown');
      if (outcome.kind === 'failed') throw new AuthenticationFailed(outcome.remaining);
      return releaseSecret(session.sessionKey, outcome.secret, userId);
    });
  }

  async deleteRegistration(userId: string): Promise<void> {
    checkUserId(userId);
    await guard(async () => {
      for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        const current = await this.read(userId);
        if (!current) throw new RegistrationNotFound();
        try {
          await this.store.delete(userId, current.version);
        } catch (err) {
          if (err instanceof VersionConflict) continue;
          throw err;
        }
        if (current.record.kind === 'phantom') throw new RegistrationNotFound();
        return;
      }
      throw new VaultUnavailable('the record changed too often to delete it');
    });
  }

  async health(): Promise<HealthReport> {
    const store = await this.store.health();
    const token = await this.driver.randomBytes(1).then(
      () => ({ ok: true, detail: 'token answers' }),
      (err: unknown) => ({ ok: false, detail: err instanceof Error ? err.message : 'token error' }),
    );
    return { ok: store.ok && token.ok, checks: { store, token } };
  }

  // ---- store access -----------------------------------------------------------------------------

  private async read(userId: string): Promise<{ record: VaultRecord; version: number } | null> {
    const stored: StoredRecord | null = await this.store.get(userId);
    if (!stored) return null;
    try {
      return { record: await openRecord(this.driver, this.keys.refs.sealing, userId, stored.version, stored.value), version: stored.version };
    } catch (err) {
      if (err instanceof SealedTampered || err instanceof SealedFormatError) throw new RecordTampered(`the stored record of this user fails its integrity check (${err.message})`);
      throw err;
    }
  }

  /**
   * Read-modify-write by compare-and-swap. `change` returns the new record, or null to write
   * nothing; it may run several times under contention, so it must only compute. Returns the
   * record as stored afterwards (null when there is none).
   */
  private update(
    userId: string,
    change: (current: { record: VaultRecord; version: number } | null) => VaultRecord | null,
  ): Promise<{ record: VaultRecord; version: number } | null> {
    // Requests for one user on this node take turns: racing them would only burn CAS retries.
    // Other nodes still race through the store's compare-and-swap.
    const previous = this.userQueues.get(userId) ?? Promise.resolve();
    const run = previous.then(() => this.compareAndSwap(userId, change));
    const tail = run.catch(() => undefined);
    this.userQueues.set(userId, tail);
    void tail.then(() => {
      if (this.userQueues.get(userId) === tail) this.userQueues.delete(userId);
    });
    return run;
  }

  private async compareAndSwap(
    userId: string,
    change: (current: { record: VaultRecord; version: number } | null) => VaultRecord | null,
  ): Promise<{ record: VaultRecord; version: number } | null> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt)); // another node won: back off
      const current = await this.read(userId);
      const next = change(current);
      if (!next) return current;
      const version = (current?.version ?? 0) + 1;
      const sealed = await sealRecord(this.driver, this.keys.refs.sealing, userId, version, next);
      try {
        const stored = await this.store.put(userId, sealed, current?.version ?? null);
        return { record: next, version: stored.version };
      } catch (err) {
        if (err instanceof VersionConflict) continue;
        throw err;
      }
    }
    throw new VaultUnavailable('the record changed too often under concurrent requests; try again');
  }
}

function checkUserId(userId: string): void {
  if (typeof userId !== 'string' || !USER_ID_PATTERN.test(userId)) throw new InvalidRequest('user id must be 1..128 characters of [A-Za-z0-9._@-]');
}

function newPhantom(): VaultRecord {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return {
    kind: 'phantom',
    incarnation: randomBytes(16),
    maxAttempts: DEFAULT_MAX_ATTEMPTS,
    attempts: 0,
    fakeClientPublicKey: new Uint8Array(ecdh.getPublicKey(null, 'compressed')),
    fakeMaskingKey: randomBytes(32),
  };
}

/** The record after its last attempt failed: counters kept, secret and OPAQUE record gone. */
function destroyed(record: VaultRecord): VaultRecord {
  return { kind: 'locked', incarnation: record.incarnation, maxAttempts: record.maxAttempts, attempts: record.attempts };
}

/** DESIGN.md: key = HKDF-SHA256(session_key, "", "hsm-vault secret v1", 32); AES-256-GCM, AAD = user id. */
export function releaseSecret(sessionKey: Uint8Array, secret: Uint8Array, userId: string): ReleasedSecret {
  const key = hkdf(sha256, sessionKey, new Uint8Array(0), SECRET_INFO, 32);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(utf8(userId));
  const ciphertext = Buffer.concat([cipher.update(secret), cipher.final(), cipher.getAuthTag()]);
  return { nonce: new Uint8Array(nonce), ciphertext: new Uint8Array(ciphertext) };
}

/** Maps lower layers' errors onto the vault's typed errors (and so onto HTTP statuses). */
async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof VaultError) throw err;
    if (err instanceof InvalidMessage) throw new InvalidRequest(err.message, { cause: err });
    if (err instanceof InvalidPoint || err instanceof HsmInvalidArgument) throw new InvalidRequest(err.message, { cause: err });
    if (err instanceof StoreUnavailable) throw new VaultUnavailable('the record store is unavailable', { cause: err });
    if (err instanceof TokenUnavailable || err instanceof DriverClosed) throw new VaultUnavailable('the token is unavailable', { cause: err });
    if (err instanceof OpaqueError) throw new VaultUnavailable(`key operation failed: ${err.message}`, { cause: err });
    throw err;
  }
}

// Sealing of what the vault keeps outside the token: user records (in the store) and recovery
// session states (handed to the client). Both are JSON sealed with the token's AES-256-GCM key;
// the AAD binds what the bytes are for, so a record cannot pass for a session, or for another
// user, or for another version of the same record. A changed byte fails the tag: never a wrong
// answer.

import type { HsmDriver, KeyRef } from '../hsm/driver.js';
import { AuthenticationFailed as TagMismatch } from '../hsm/errors.js';
import { concat, i2osp, utf8 } from '../opaque/bytes.js';

const IV_BYTES = 12;
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
const unb64 = (text: unknown, field: string): Uint8Array => {
  if (typeof text !== 'string') throw new SealedFormatError(`${field} missing`);
  return new Uint8Array(Buffer.from(text, 'base64url'));
};

/** Sealed bytes whose plaintext is not what this version of the vault writes. */
export class SealedFormatError extends Error {
  override get name(): string {
    return 'SealedFormatError';
  }
}

/** The bytes do not open under this token's sealing key with this AAD. */
export class SealedTampered extends Error {
  override get name(): string {
    return 'SealedTampered';
  }
}

// ---- records --------------------------------------------------------------------------------

interface Counted {
  /** Random per registration: a session or a CAS never confuses two registrations of one user. */
  readonly incarnation: Uint8Array;
  readonly maxAttempts: number;
  /** Recovery attempts started since the last success. */
  readonly attempts: number;
}

export type VaultRecord =
  | (Counted & { readonly kind: 'active'; readonly opaqueRecord: Uint8Array; readonly secret: Uint8Array })
  /** An unknown user's stand-in (RFC 9807 §10.9): a fake OPAQUE record, counted like a real one. */
  | (Counted & { readonly kind: 'phantom'; readonly fakeClientPublicKey: Uint8Array; readonly fakeMaskingKey: Uint8Array })
  /** All attempts used: the secret and the OPAQUE record are gone. */
  | (Counted & { readonly kind: 'locked' });

function recordAad(userId: string, version: number): Uint8Array {
  return concat(utf8('hsm-vault record v1'), Uint8Array.of(0), utf8(userId), Uint8Array.of(0), i2osp(version, 8));
}

function encodeRecord(record: VaultRecord): Uint8Array {
  const base = { v: 1, kind: record.kind, inc: b64(record.incarnation), max: record.maxAttempts, n: record.attempts };
  switch (record.kind) {
    case 'active':
      return utf8(JSON.stringify({ ...base, rec: b64(record.opaqueRecord), sec: b64(record.secret) }));
    case 'phantom':
      return utf8(JSON.stringify({ ...base, pk: b64(record.fakeClientPublicKey), mk: b64(record.fakeMaskingKey) }));
    case 'locked':
      return utf8(JSON.stringify(base));
  }
}

function decodeRecord(bytes: Uint8Array): VaultRecord {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new SealedFormatError('record is not JSON');
  }
  if (o.v !== 1) throw new SealedFormatError(`record format ${String(o.v)} is not supported`);
  const counted: Counted = { incarnation: unb64(o.inc, 'incarnation'), maxAttempts: Number(o.max), attempts: Number(o.n) };
  if (!Number.isInteger(counted.maxAttempts) || !Number.isInteger(counted.attempts)) throw new SealedFormatError('record counters are not integers');
  switch (o.kind) {
    case 'active':
      return { ...counted, kind: 'active', opaqueRecord: unb64(o.rec, 'opaque record'), secret: unb64(o.sec, 'secret') };
    case 'phantom':
      return { ...counted, kind: 'phantom', fakeClientPublicKey: unb64(o.pk, 'fake key'), fakeMaskingKey: unb64(o.mk, 'fake masking key') };
    case 'locked':
      return { ...counted, kind: 'locked' };
    default:
      throw new SealedFormatError('unknown record kind');
  }
}

async function seal(driver: HsmDriver, key: KeyRef, plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  const { iv, ciphertext } = await driver.sealAesGcm(key, plaintext, aad);
  return concat(iv, ciphertext);
}

async function open(driver: HsmDriver, key: KeyRef, sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
  if (sealed.length < IV_BYTES + 16) throw new SealedTampered('sealed value is too short');
  try {
    return await driver.openAesGcm(key, { iv: sealed.slice(0, IV_BYTES), ciphertext: sealed.slice(IV_BYTES) }, aad);
  } catch (err) {
    if (err instanceof TagMismatch) throw new SealedTampered('sealed value does not authenticate');
    throw err;
  }
}

/** Seals a record to be written at store version `version` (the store's next version). */
export function sealRecord(driver: HsmDriver, key: KeyRef, userId: string, version: number, record: VaultRecord): Promise<Uint8Array> {
  return seal(driver, key, encodeRecord(record), recordAad(userId, version));
}

export async function openRecord(driver: HsmDriver, key: KeyRef, userId: string, version: number, sealed: Uint8Array): Promise<VaultRecord> {
  return decodeRecord(await open(driver, key, sealed, recordAad(userId, version)));
}

// ---- recovery sessions -------------------------------------------------------------------------

/** Server state between KE2 and KE3, bound to the user, the registration and the record version. */
export interface SessionState {
  readonly incarnation: Uint8Array;
  /** Store version of the record after this attempt was counted. */
  readonly recordVersion: number;
  readonly expiresAt: number; // ms since the epoch
  readonly expectedClientMac: Uint8Array;
  readonly sessionKey: Uint8Array;
}

function sessionAad(userId: string): Uint8Array {
  return concat(utf8('hsm-vault session v1'), Uint8Array.of(0), utf8(userId));
}

/** Sessions are padded to one size: their length must not vary with the record's history. */
const SESSION_PLAINTEXT_BYTES = 256;

export function sealSession(driver: HsmDriver, key: KeyRef, userId: string, s: SessionState): Promise<Uint8Array> {
  const json = utf8(JSON.stringify({ v: 1, inc: b64(s.incarnation), ver: s.recordVersion, exp: s.expiresAt, mac: b64(s.expectedClientMac), key: b64(s.sessionKey) }));
  if (json.length > SESSION_PLAINTEXT_BYTES) throw new SealedFormatError('session state does not fit its padding');
  const padded = new Uint8Array(SESSION_PLAINTEXT_BYTES).fill(0x20); // JSON ignores trailing spaces
  padded.set(json);
  return seal(driver, key, padded, sessionAad(userId));
}

export async function openSession(driver: HsmDriver, key: KeyRef, userId: string, sealed: Uint8Array): Promise<SessionState> {
  const o = JSON.parse(Buffer.from(await open(driver, key, sealed, sessionAad(userId))).toString('utf8')) as Record<string, unknown>;
  if (o.v !== 1 || typeof o.ver !== 'number' || typeof o.exp !== 'number') throw new SealedFormatError('session format is not supported');
  return { incarnation: unb64(o.inc, 'incarnation'), recordVersion: o.ver, expiresAt: o.exp, expectedClientMac: unb64(o.mac, 'mac'), sessionKey: unb64(o.key, 'key') };
}

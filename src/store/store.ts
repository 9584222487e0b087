// The vault's record store: opaque bytes per user id, updated only by compare-and-swap on a
// per-record version. The vault seals records (AES-GCM, AAD = user id and version) before they
// reach a store, so a store never sees plaintext and never needs to.
//
// Version contract, identical on every backend (the conformance suite checks it):
//   - a record is created at version 1; every successful put makes it expectedVersion + 1.
//     The new version is therefore known BEFORE the write, which is what lets the vault bind it
//     into the AAD of the bytes it is about to write.
//   - delete removes the record; a later create starts again at 1. A CAS prepared against the
//     deleted incarnation can land on a re-created record that has reached the same version
//     (ABA). The vault's sealed records must carry their own incarnation if that matters.
//   - put/delete that return normally are durable (sqlite: fsync'd WAL; etcd: committed by a
//     majority). StoreUnavailable from a write means the outcome is unknown.

import { InvalidRecordKey, InvalidStoreArgument } from './errors.js';

export interface StoredRecord {
  readonly userId: string;
  /** Starts at 1, +1 per successful put. */
  readonly version: number;
  /** A copy: mutating it never changes the store. */
  readonly value: Uint8Array;
}

export interface StoreHealth {
  readonly ok: boolean;
  readonly detail: string;
}

export interface RecordStore {
  /** The record, or null when none exists. Reads are linearizable (etcd: through the leader). */
  get(userId: string): Promise<StoredRecord | null>;
  /**
   * Writes `value` if the record is at `expectedVersion` (null: only if no record exists) and
   * returns it at version `(expectedVersion ?? 0) + 1`. Throws VersionConflict otherwise.
   */
  put(userId: string, value: Uint8Array, expectedVersion: number | null): Promise<StoredRecord>;
  /** Deletes the record if it is at `expectedVersion`; VersionConflict (current null) if absent. */
  delete(userId: string, expectedVersion: number): Promise<void>;
  /** Releases the backend; later calls throw StoreUnavailable. Idempotent. */
  close(): Promise<void>;
  /** Whether the store can serve a linearizable read right now; never throws. */
  health(): Promise<StoreHealth>;
}

/** Sealed records are a few hundred bytes; the bound stops a misbehaving caller filling a store. */
export const MAX_VALUE_BYTES = 64 * 1024;
export const MAX_USER_ID_LENGTH = 128;
const USER_ID = /^[A-Za-z0-9._:@-]+$/;

export function checkUserId(userId: unknown): asserts userId is string {
  if (typeof userId !== 'string') throw new InvalidRecordKey('user id must be a string');
  if (userId.length < 1 || userId.length > MAX_USER_ID_LENGTH) {
    throw new InvalidRecordKey(`user id must be 1..${MAX_USER_ID_LENGTH} characters (got ${userId.length})`);
  }
  // The id is not echoed: it failed validation, so it may hold anything.
  if (!USER_ID.test(userId)) throw new InvalidRecordKey('user id may only contain [A-Za-z0-9._:@-]');
}

export function checkValue(value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidStoreArgument('record value must be a Uint8Array');
  if (value.length > MAX_VALUE_BYTES) {
    throw new InvalidStoreArgument(`record value is ${value.length} bytes; the limit is ${MAX_VALUE_BYTES}`);
  }
}

export function checkVersion(version: unknown, what: string): asserts version is number {
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    throw new InvalidStoreArgument(`${what} must be a positive safe integer`);
  }
}

/** Validates put's arguments and returns the version the record will have after it. */
export function checkPut(userId: unknown, value: unknown, expectedVersion: unknown): number {
  checkUserId(userId);
  checkValue(value);
  if (expectedVersion === null) return 1;
  checkVersion(expectedVersion, 'expected version');
  return expectedVersion + 1;
}

/** A detached copy, also turning Node Buffers (sqlite, gRPC) into plain Uint8Arrays. */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

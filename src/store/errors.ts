// Typed errors of the record store. Messages are safe to log: they name the backend, the user id
// and versions, never record bytes (sealed or not) and never credentials from a store URL.
// The vault maps StoreUnavailable to 503: it is the "fail closed" signal.

export type StoreErrorCode =
  | 'VERSION_CONFLICT'
  | 'STORE_UNAVAILABLE'
  | 'STORE_ACCESS_DENIED'
  | 'INVALID_RECORD_KEY'
  | 'INVALID_ARGUMENT'
  | 'INVALID_STORE_URL'
  | 'INCOMPATIBLE_STORE';

export class StoreError extends Error {
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/**
 * The compare-and-swap lost: the record is not at the version the caller expected. `current` is
 * the version the store saw (null: no record), or undefined when the backend could not tell.
 */
export class VersionConflict extends StoreError {
  readonly userId: string;
  readonly expected: number | null;
  readonly current: number | null | undefined;

  constructor(userId: string, expected: number | null, current: number | null | undefined) {
    super(
      'VERSION_CONFLICT',
      `record "${userId}": expected ${describeVersion(expected)}, store has ${current === undefined ? 'an unknown version' : describeVersion(current)}`,
    );
    this.userId = userId;
    this.expected = expected;
    this.current = current;
  }
}

/**
 * The backend cannot answer right now: file unreadable, database locked past the busy timeout,
 * etcd unreachable, no leader, lost quorum, deadline exceeded, store closed. For a write the
 * outcome is UNKNOWN (it may commit later): callers must re-read before acting on it.
 */
export class StoreUnavailable extends StoreError {
  readonly backend: string;

  constructor(backend: string, message: string, options?: { cause?: unknown; code?: StoreErrorCode }) {
    super(options?.code ?? 'STORE_UNAVAILABLE', `${backend} store unavailable: ${message}`, options && 'cause' in options ? { cause: options.cause } : undefined);
    this.backend = backend;
  }
}

/** Why a store refused us: the TLS handshake, the user name or password, or the user's permissions. */
export type StoreAccessFailure = 'tls' | 'authentication' | 'permission';

/**
 * The store answered but refused this client: the TLS handshake failed (server certificate not
 * trusted, client certificate refused), the user name or password was rejected, or the user may
 * not touch the record prefix. A StoreUnavailable, so it fails closed the same way (the vault
 * answers 503), but no retry helps until the configuration changes; nothing was written. The
 * message says what to check and never carries a password.
 */
export class StoreAccessDenied extends StoreUnavailable {
  readonly reason: StoreAccessFailure;

  constructor(backend: string, reason: StoreAccessFailure, message: string, options?: { cause?: unknown }) {
    super(backend, message, { ...options, code: 'STORE_ACCESS_DENIED' });
    this.reason = reason;
  }
}

/** A user id outside 1..128 characters of [A-Za-z0-9._:@-]. */
export class InvalidRecordKey extends StoreError {
  constructor(message: string) {
    super('INVALID_RECORD_KEY', message);
  }
}

/** A bad argument other than the key: oversized value, malformed version. */
export class InvalidStoreArgument extends StoreError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** A store URL that does not parse; the message says which part and what is accepted. */
export class InvalidStoreUrl extends StoreError {
  constructor(message: string) {
    super('INVALID_STORE_URL', message);
  }
}

/** The store holds data this code does not understand (another application, a newer schema). */
export class IncompatibleStore extends StoreError {
  constructor(message: string) {
    super('INCOMPATIBLE_STORE', message);
  }
}

function describeVersion(version: number | null): string {
  return version === null ? 'no record' : `version ${version}`;
}

// Typed errors of the vault layer, each with the HTTP status and the JSON `error` code the node
// answers with. Messages are safe to log: no password, secret, key or session material.

export type VaultErrorCode =
  | 'invalid_request'
  | 'authentication_failed'
  | 'locked'
  | 'session_invalid'
  | 'not_found'
  | 'unavailable'
  | 'record_tampered';

export class VaultError extends Error {
  constructor(
    readonly code: VaultErrorCode,
    readonly httpStatus: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  override get name(): string {
    return this.constructor.name;
  }

  /** The JSON body the HTTP node sends. */
  toJSON(): Record<string, unknown> {
    return { error: this.code, message: this.message };
  }
}

/** A malformed field, an out-of-range value: the caller's fault (400). */
export class InvalidRequest extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid_request', 400, message, options);
  }
}

/** The login did not verify (401). The attempt stays counted. */
export class AuthenticationFailed extends VaultError {
  constructor(readonly attemptsRemaining: number) {
    super('authentication_failed', 401, 'authentication failed');
  }

  override toJSON(): Record<string, unknown> {
    return { error: this.code, attemptsRemaining: this.attemptsRemaining };
  }
}

/** The record has used all its attempts; its secret is destroyed (423). */
export class Locked extends VaultError {
  constructor() {
    super('locked', 423, 'too many failed attempts: the backup key was destroyed');
  }
}

/** The session state is not ours, expired, or overtaken by a later attempt (401). */
export class SessionInvalid extends VaultError {
  constructor(reason: string) {
    super('session_invalid', 401, `recovery session is not valid: ${reason}`);
  }
}

/** Nothing registered under this user (404; only for delete). */
export class RegistrationNotFound extends VaultError {
  constructor() {
    super('not_found', 404, 'no registration for this user');
  }
}

/** The store, its quorum or the token cannot serve now (503); nothing was released, but a recovery start may already have counted its attempt (fail closed). */
export class VaultUnavailable extends VaultError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', 503, message, options);
  }
}

/**
 * A stored record failed its integrity check: tampering, or a store shared with the wrong fleet.
 * 502: the node is fine, the store (its upstream) answered with bytes that are not ours. The
 * record is never served; operators alert on this code.
 */
export class RecordTampered extends VaultError {
  constructor(message: string) {
    super('record_tampered', 502, message);
  }
}

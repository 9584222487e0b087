// Typed errors of the OPAQUE layer. Messages name the field or the step, never a secret.

export type OpaqueErrorCode =
  | 'INVALID_MESSAGE'
  | 'ENVELOPE_RECOVERY_FAILED'
  | 'SERVER_AUTHENTICATION_FAILED'
  | 'CLIENT_AUTHENTICATION_FAILED'
  | 'INCONSISTENT_KEY_OPERATION';

export class OpaqueError extends Error {
  readonly code: OpaqueErrorCode;
  constructor(code: OpaqueErrorCode, message: string) {
    super(message);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** A message (or one of its fields) is malformed: wrong length, not a valid point or scalar. */
export class InvalidMessage extends OpaqueError {
  readonly field: string;
  constructor(field: string, reason: string) {
    super('INVALID_MESSAGE', `invalid ${field}: ${reason}`);
    this.field = field;
  }
}

/** The client could not open its envelope: wrong password (or a server that is not the one registered). */
export class EnvelopeRecoveryError extends OpaqueError {
  constructor() {
    super('ENVELOPE_RECOVERY_FAILED', 'envelope recovery failed: wrong password or server');
  }
}

/** The client's check of the server MAC failed (RFC 9807 ServerAuthenticationError). */
export class ServerAuthenticationError extends OpaqueError {
  constructor() {
    super('SERVER_AUTHENTICATION_FAILED', 'server authentication failed');
  }
}

/** The server's check of the client MAC (KE3) failed (RFC 9807 ClientAuthenticationError). */
export class ClientAuthenticationError extends OpaqueError {
  constructor() {
    super('CLIENT_AUTHENTICATION_FAILED', 'client authentication failed');
  }
}

/**
 * Two x-only Diffie-Hellman answers for the same key did not fit together: the key operation
 * (a token, usually) returned something that is not x(k·P). Never a client's fault.
 */
export class InconsistentKeyOperation extends OpaqueError {
  constructor(message: string) {
    super('INCONSISTENT_KEY_OPERATION', message);
  }
}

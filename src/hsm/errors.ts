// Typed errors of the HSM layer. Every message is safe to log: no PIN, no key material, no
// plaintext ever goes into one. PKCS#11 failures carry the failing function and return code.

import { ckrName } from './ckr.js';

export interface Pkcs11Failure {
  /** PKCS#11 function that failed, e.g. `C_DeriveKey`. */
  readonly fn: string;
  /** Return value, e.g. 0x63. */
  readonly rv: number;
  /** Symbolic name, e.g. `CKR_KEY_TYPE_INCONSISTENT`. */
  readonly ckr: string;
}

export type HsmErrorCode =
  | 'NON_EXPORTABLE_KEY'
  | 'KEY_NOT_FOUND'
  | 'AMBIGUOUS_KEY'
  | 'KEY_EXISTS'
  | 'AUTHENTICATION_FAILED'
  | 'INVALID_POINT'
  | 'INVALID_ARGUMENT'
  | 'TOKEN_UNAVAILABLE'
  | 'TOKEN_NOT_FOUND'
  | 'LOGIN_FAILED'
  | 'MECHANISM_UNSUPPORTED'
  | 'WRONG_KEY_TYPE'
  | 'INVALID_URI'
  | 'DRIVER_CLOSED'
  | 'PKCS11_ERROR';

export class HsmError extends Error {
  readonly code: HsmErrorCode;
  readonly pkcs11: Pkcs11Failure | undefined;

  constructor(code: HsmErrorCode, message: string, pkcs11?: Pkcs11Failure, options?: { cause?: unknown }) {
    super(pkcs11 ? `${message}: ${describePkcs11(pkcs11)}` : message, options);
    this.code = code;
    this.pkcs11 = pkcs11;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

export function describePkcs11(f: Pkcs11Failure): string {
  return `${f.fn} failed: ${f.ckr} (0x${f.rv.toString(16)})`;
}

/** A secret value was asked for (read, attribute flip, wrap) and the key does not allow it. */
export class NonExportableKey extends HsmError {
  constructor(message: string, pkcs11?: Pkcs11Failure) {
    super('NON_EXPORTABLE_KEY', message, pkcs11);
  }
}

/** No key matches the label/id asked for. */
export class KeyNotFound extends HsmError {
  constructor(message: string) {
    super('KEY_NOT_FOUND', message);
  }
}

/** More than one key matches where exactly one was required. */
export class AmbiguousKey extends HsmError {
  readonly count: number;
  constructor(message: string, count: number) {
    super('AMBIGUOUS_KEY', `${message} (${count} matches)`);
    this.count = count;
  }
}

/** A key with this label already exists; generation refuses to shadow it. */
export class KeyExists extends HsmError {
  constructor(message: string) {
    super('KEY_EXISTS', message);
  }
}

/** An AEAD tag (or other integrity check done by the token) did not verify. */
export class AuthenticationFailed extends HsmError {
  constructor(message: string, pkcs11?: Pkcs11Failure) {
    super('AUTHENTICATION_FAILED', message, pkcs11);
  }
}

/** A peer EC point is malformed, off the curve, the identity, or not canonically encoded. */
export class InvalidPoint extends HsmError {
  constructor(message: string) {
    super('INVALID_POINT', message);
  }
}

/** A caller-supplied argument is out of range (length, label, type). */
export class InvalidArgument extends HsmError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message);
  }
}

/** The token cannot serve right now (device gone, sessions lost twice, pool exhausted). */
export class TokenUnavailable extends HsmError {
  constructor(message: string, pkcs11?: Pkcs11Failure, options?: { cause?: unknown }) {
    super('TOKEN_UNAVAILABLE', message, pkcs11, options);
  }
}

/** No slot holds a token that matches the URI. */
export class TokenNotFound extends HsmError {
  constructor(message: string) {
    super('TOKEN_NOT_FOUND', message);
  }
}

/** The PIN was refused, or the token is locked. The PIN itself is never echoed. */
export class LoginFailed extends HsmError {
  constructor(message: string, pkcs11?: Pkcs11Failure) {
    super('LOGIN_FAILED', message, pkcs11);
  }
}

/** The token lacks a mechanism (or key type) the operation needs. */
export class MechanismUnsupported extends HsmError {
  constructor(message: string, pkcs11?: Pkcs11Failure) {
    super('MECHANISM_UNSUPPORTED', message, pkcs11);
  }
}

/** The key exists but its type or usage does not allow this operation. */
export class WrongKeyType extends HsmError {
  constructor(message: string, pkcs11?: Pkcs11Failure) {
    super('WRONG_KEY_TYPE', message, pkcs11);
  }
}

/** The HSM URI could not be parsed or names something unsupported. */
export class InvalidUri extends HsmError {
  constructor(message: string) {
    super('INVALID_URI', message);
  }
}

/** The driver was closed; no further operations are accepted. */
export class DriverClosed extends HsmError {
  constructor() {
    super('DRIVER_CLOSED', 'HSM driver is closed');
  }
}

/** Any other PKCS#11 failure, with its function and return code. */
export class Pkcs11CallFailed extends HsmError {
  constructor(message: string, pkcs11: Pkcs11Failure) {
    super('PKCS11_ERROR', message, pkcs11);
  }
}

export function pkcs11Failure(fn: string, rv: number): Pkcs11Failure {
  return { fn, rv, ckr: ckrName(rv) };
}

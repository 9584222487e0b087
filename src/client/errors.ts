// Typed errors of the client SDK. `status` is the HTTP status the node answered with, or undefined
// when the failure was found on the client (a wrong password, a key that is not the pinned one).
// Messages never carry a password, a secret, a key or a token: only codes, fields and counts.

export type VaultClientErrorCode =
  | 'invalid_argument'
  | 'network_error'
  | 'protocol_error'
  | 'pinned_key_mismatch'
  | 'server_authentication_failed'
  | 'wrong_password'
  | 'authentication_failed'
  | 'session_invalid'
  | 'locked'
  | 'unauthorized'
  | 'not_found'
  | 'invalid_request'
  | 'rate_limited'
  | 'unavailable'
  | 'server_error';

export class VaultClientError extends Error {
  constructor(
    readonly code: VaultClientErrorCode,
    readonly status: number | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** The caller passed something the vault would refuse anyway (bad user id, secret size, pinned key). */
export class InvalidArgument extends VaultClientError {
  constructor(message: string) {
    super('invalid_argument', undefined, message);
  }
}

/** `fetch` itself failed: no HTTP answer at all (DNS, TLS, connection reset, CORS). */
export class NetworkError extends VaultClientError {
  constructor(options?: { cause?: unknown }) {
    super('network_error', undefined, 'the vault could not be reached', options);
  }
}

/** The node answered something this SDK cannot read: bad JSON, a missing field, a wrong length. */
export class ProtocolError extends VaultClientError {
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super('protocol_error', status, message, options);
  }
}

/** What the node presented is not what the client pins: nothing was uploaded or trusted. */
export class PinnedKeyMismatch extends VaultClientError {
  constructor(readonly field: 'ake' | 'hpke' | 'fleetId') {
    super('pinned_key_mismatch', undefined, `the vault's ${field} does not match the pinned value`);
  }
}

/** The server's MAC in KE2 did not verify (RFC 9807 ServerAuthenticationError): not our vault, or tampering. */
export class ServerAuthenticationFailed extends VaultClientError {
  constructor(options?: { cause?: unknown }) {
    super('server_authentication_failed', undefined, 'the vault failed to authenticate itself', options);
  }
}

/**
 * The password did not open the envelope (found on the client, after KE2). The server has already
 * counted the attempt; `attemptsRemaining` is what it reported in the recovery start response.
 */
export class WrongPassword extends VaultClientError {
  constructor(readonly attemptsRemaining: number, options?: { cause?: unknown }) {
    super('wrong_password', undefined, `wrong password: ${attemptsRemaining} attempts remaining`, options);
  }
}

/** The node refused KE3 (401 authentication_failed). The attempt stays counted. */
export class AuthenticationFailed extends VaultClientError {
  constructor(readonly attemptsRemaining: number | undefined, status = 401) {
    super('authentication_failed', status, `authentication failed${attemptsRemaining === undefined ? '' : `: ${attemptsRemaining} attempts remaining`}`);
  }
}

/** The recovery session expired or was overtaken by a later attempt (401 session_invalid): start again. */
export class SessionInvalid extends VaultClientError {
  constructor(status = 401) {
    super('session_invalid', status, 'the recovery session is no longer valid');
  }
}

/** Too many wrong guesses: the node destroyed the backup key (423). */
export class Locked extends VaultClientError {
  constructor(status = 423) {
    super('locked', status, 'too many failed attempts: the backup key was destroyed');
  }
}

/** The account-service token was refused (401 or 403 from the node's auth check). */
export class Unauthorized extends VaultClientError {
  constructor(status: number, readonly serverCode: string | undefined) {
    super('unauthorized', status, `the vault refused the access token (${status}${serverCode ? ` ${serverCode}` : ''})`);
  }
}

/** Nothing registered under this user (404). */
export class NotFound extends VaultClientError {
  constructor(status = 404) {
    super('not_found', status, 'no registration for this user');
  }
}

/** The node rejected the request as malformed (400): a bug in this SDK or a version mismatch. */
export class InvalidRequest extends VaultClientError {
  constructor(status: number, readonly serverCode: string | undefined) {
    super('invalid_request', status, `the vault rejected the request${serverCode ? ` (${serverCode})` : ''}`);
  }
}

/** Slow down (429). `retryAfter` in seconds when the node said so. */
export class RateLimited extends VaultClientError {
  constructor(readonly retryAfter: number | undefined, status = 429) {
    super('rate_limited', status, `rate limited${retryAfter === undefined ? '' : `: retry after ${retryAfter} s`}`);
  }
}

/** The node cannot serve now (503); nothing was released (a recovery start may have counted its attempt). Retry later or elsewhere. */
export class VaultUnavailable extends VaultClientError {
  constructor(status = 503) {
    super('unavailable', status, 'the vault is unavailable');
  }
}

/** Any other non-success status (500 record_tampered, 502, …). */
export class ServerError extends VaultClientError {
  constructor(status: number, readonly serverCode: string | undefined) {
    super('server_error', status, `the vault failed (${status}${serverCode ? ` ${serverCode}` : ''})`);
  }
}

// Errors the HTTP layer itself raises (auth, limits, bad input). Like VaultError they carry their
// status and the JSON body; messages are short, fixed strings, never request content.

export type HttpErrorCode =
  | 'invalid_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'unavailable'
  | 'internal';

export class HttpError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly code: HttpErrorCode,
    message: string,
    /** Extra response headers (WWW-Authenticate, Retry-After). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  override get name(): string {
    return this.constructor.name;
  }

  toJSON(): Record<string, unknown> {
    return { error: this.code, message: this.message };
  }
}

/** 401: missing, malformed, expired or unverifiable token. The reason is one fixed phrase. */
export const unauthorized = (reason: string): HttpError =>
  new HttpError(401, 'unauthorized', reason, { 'www-authenticate': 'Bearer realm="hsm-vault", error="invalid_token"' });

/** 403: a valid token for another user or another operation. */
export const forbidden = (reason: string): HttpError =>
  new HttpError(403, 'forbidden', reason, { 'www-authenticate': 'Bearer realm="hsm-vault", error="insufficient_scope"' });

export const tooManyRequests = (retryAfterSeconds: number): HttpError =>
  new HttpError(429, 'rate_limited', 'too many requests; retry later', { 'retry-after': String(retryAfterSeconds) });

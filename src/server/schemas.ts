// JSON schemas of every request body, path parameter and success response of the node.
// Bodies refuse unknown fields; binary fields are canonical base64url without padding with the
// exact byte lengths DESIGN.md and RFC 9807 (P256-SHA256) fix, so ajv rejects a wrong size before
// any handler decodes it.

import { USER_ID_PATTERN } from '../vault/service.js';
import { HttpError } from './http-errors.js';

const B64URL_CHAR = '[A-Za-z0-9_-]';

/**
 * Canonical unpadded base64url: whole quads, then optionally 2 chars (1 byte, last char's low 4
 * bits zero) or 3 chars (2 bytes, last char's low 2 bits zero). Non-canonical spellings would let
 * two strings decode to the same bytes; refusing them keeps one encoding per value.
 */
const CANONICAL_B64URL = `^(?:${B64URL_CHAR}{4})*(?:${B64URL_CHAR}[AQgw]|${B64URL_CHAR}{2}[AEIMQUYcgkosw048])?$`;

/** Characters of unpadded base64url for n bytes. */
export const encodedLength = (bytes: number): number => Math.ceil((bytes * 4) / 3);

export interface BinaryField {
  readonly type: 'string';
  readonly pattern: string;
  readonly minLength: number;
  readonly maxLength: number;
}

/** A base64url field of minBytes..maxBytes bytes (exact when equal). */
export function binaryField(minBytes: number, maxBytes: number = minBytes): BinaryField {
  return { type: 'string', pattern: CANONICAL_B64URL, minLength: encodedLength(minBytes), maxLength: encodedLength(maxBytes) };
}

/** Byte sizes of each binary field (RFC 9807 with P256-SHA256; DESIGN.md for the rest). */
export const FIELD_BYTES = {
  /** RegistrationRequest: blinded element, compressed P-256. */
  registrationRequest: 33,
  /** RegistrationRecord: client public key 33 + masking key 32 + envelope (nonce 32 + tag 32). */
  record: 129,
  /** HPKE DHKEM(P-256) encapsulated key, uncompressed. */
  enc: 65,
  /** HPKE ciphertext of the 16..64-byte secret plus the 16-byte GCM tag. */
  uploadCiphertext: { min: 16 + 16, max: 64 + 16 },
  /** KE1: blinded element 33 + client nonce 32 + client ephemeral key 33. */
  ke1: 98,
  /** KE3: client MAC. */
  ke3: 32,
  /** Sealed recovery session state. */
  session: { min: 1, max: 512 },
} as const;

export const MAX_ATTEMPTS = { min: 1, max: 100 } as const;

export const userParams = {
  type: 'object',
  additionalProperties: false,
  required: ['user'],
  properties: { user: { type: 'string', pattern: USER_ID_PATTERN.source, minLength: 1, maxLength: 128 } },
} as const;

const strictObject = (properties: Record<string, unknown>, required: readonly string[]) =>
  ({ type: 'object', additionalProperties: false, required, properties }) as const;

export const registrationStartBody = strictObject({ request: binaryField(FIELD_BYTES.registrationRequest) }, ['request']);

export const registrationFinishBody = strictObject(
  {
    record: binaryField(FIELD_BYTES.record),
    enc: binaryField(FIELD_BYTES.enc),
    ciphertext: binaryField(FIELD_BYTES.uploadCiphertext.min, FIELD_BYTES.uploadCiphertext.max),
    maxAttempts: { type: 'integer', minimum: MAX_ATTEMPTS.min, maximum: MAX_ATTEMPTS.max },
  },
  ['record', 'enc', 'ciphertext'],
);

export const recoveryStartBody = strictObject({ ke1: binaryField(FIELD_BYTES.ke1) }, ['ke1']);

export const recoveryFinishBody = strictObject(
  { ke3: binaryField(FIELD_BYTES.ke3), session: binaryField(FIELD_BYTES.session.min, FIELD_BYTES.session.max) },
  ['ke3', 'session'],
);

const b64 = { type: 'string' } as const;
const object = (properties: Record<string, unknown>) => ({ type: 'object', required: Object.keys(properties), properties }) as const;

/** Success bodies; fast-json-stringify drops anything not listed, so nothing extra leaks out. */
export const responses = {
  fleet: object({ fleetId: { type: 'string' }, keys: object({ ake: b64, hpke: b64, signing: b64 }), bundle: {} }),
  registrationStart: object({ response: b64 }),
  registrationFinish: object({ maxAttempts: { type: 'integer' } }),
  recoveryStart: object({ ke2: b64, session: b64, attemptsRemaining: { type: 'integer' } }),
  recoveryFinish: object({ nonce: b64, ciphertext: b64 }),
} as const;

/** Decodes a field the schema already checked; the length check is a second line of defence. */
export function decodeField(value: string, minBytes: number, maxBytes: number = minBytes): Uint8Array {
  const bytes = Buffer.from(value, 'base64url');
  if (bytes.length < minBytes || bytes.length > maxBytes) throw new HttpError(400, 'invalid_request', 'a binary field has the wrong length');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

export const encodeField = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');

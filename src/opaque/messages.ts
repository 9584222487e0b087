// RFC 9807 §5 and §6 wire structures for P256-SHA256, with exact lengths. Parsing is strict:
// every length is checked, every point is a valid compressed non-identity P-256 point, and every
// failure is InvalidMessage naming the field. Serialization is plain concatenation.

import { concat } from './bytes.js';
import { InvalidMessage } from './errors.js';
import { type Point, deserializeElement, serializeElement } from './group.js';

export const Nn = 32; // nonce
export const Nseed = 32; // private key seed
export const Noe = 33; // serialized OPRF element
export const Npk = 33; // serialized public key
export const Nsk = 32; // serialized private key
export const Nm = 32; // MAC
export const Nh = 32; // hash
export const Nok = 32; // OPRF private key
export const Ne = Nn + Nm; // envelope

export const SIZES = {
  registrationRequest: Noe,
  registrationResponse: Noe + Npk,
  registrationRecord: Npk + Nh + Ne,
  ke1: Noe + Nn + Npk,
  credentialResponse: Noe + Nn + Npk + Nn + Nm,
  ke2: Noe + Nn + Npk + Nn + Nm + Nn + Npk + Nm,
  ke3: Nm,
} as const;

/** Decodes a compressed element strictly; the server passes a faster one (OpenSSL's). */
export type ElementDecoder = (bytes: Uint8Array, field: string) => Point;

function bytesOf(value: unknown, field: string, length: number): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new InvalidMessage(field, 'not bytes');
  if (value.length !== length) throw new InvalidMessage(field, `expected ${length} bytes, got ${value.length}`);
  return value;
}

/** Reads fixed-size fields off a message in order. */
class Reader {
  private offset = 0;
  constructor(private readonly bytes: Uint8Array) {}
  take(length: number): Uint8Array {
    const out = this.bytes.slice(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }
}

export interface Envelope {
  readonly nonce: Uint8Array; // Nn
  readonly authTag: Uint8Array; // Nm
}

export const serializeEnvelope = (e: Envelope): Uint8Array => concat(e.nonce, e.authTag);

export function parseEnvelope(bytes: Uint8Array, field = 'envelope'): Envelope {
  const r = new Reader(bytesOf(bytes, field, Ne));
  return { nonce: r.take(Nn), authTag: r.take(Nm) };
}

// ---- registration ---------------------------------------------------------------------------

export interface RegistrationRequest {
  readonly blindedMessage: Point;
}

export const serializeRegistrationRequest = (m: RegistrationRequest): Uint8Array => serializeElement(m.blindedMessage);

export function parseRegistrationRequest(bytes: Uint8Array, decode: ElementDecoder = deserializeElement): RegistrationRequest {
  return { blindedMessage: decode(bytesOf(bytes, 'registration request', SIZES.registrationRequest), 'registration request blinded_message') };
}

export interface RegistrationResponse {
  readonly evaluatedMessage: Point;
  readonly serverPublicKey: Uint8Array; // Npk, validated
}

export const serializeRegistrationResponse = (m: RegistrationResponse): Uint8Array => concat(serializeElement(m.evaluatedMessage), m.serverPublicKey);

export function parseRegistrationResponse(bytes: Uint8Array): RegistrationResponse {
  const r = new Reader(bytesOf(bytes, 'registration response', SIZES.registrationResponse));
  const evaluatedMessage = deserializeElement(r.take(Noe), 'registration response evaluated_message');
  const serverPublicKey = r.take(Npk);
  deserializeElement(serverPublicKey, 'registration response server_public_key');
  return { evaluatedMessage, serverPublicKey };
}

export interface RegistrationRecord {
  readonly clientPublicKey: Uint8Array; // Npk, validated
  readonly maskingKey: Uint8Array; // Nh
  readonly envelope: Envelope;
}

export const serializeRegistrationRecord = (m: RegistrationRecord): Uint8Array => concat(m.clientPublicKey, m.maskingKey, serializeEnvelope(m.envelope));

export function parseRegistrationRecord(bytes: Uint8Array, decode: ElementDecoder = deserializeElement): RegistrationRecord {
  const r = new Reader(bytesOf(bytes, 'registration record', SIZES.registrationRecord));
  const clientPublicKey = r.take(Npk);
  decode(clientPublicKey, 'registration record client_public_key');
  return { clientPublicKey, maskingKey: r.take(Nh), envelope: parseEnvelope(r.take(Ne), 'registration record envelope') };
}

// ---- login ----------------------------------------------------------------------------------

export interface KE1 {
  readonly blindedMessage: Point; // credential_request
  readonly clientNonce: Uint8Array; // Nn
  readonly clientPublicKeyshare: Point;
}

export const serializeKE1 = (m: KE1): Uint8Array => concat(serializeElement(m.blindedMessage), m.clientNonce, serializeElement(m.clientPublicKeyshare));

export function parseKE1(bytes: Uint8Array, decode: ElementDecoder = deserializeElement): KE1 {
  const r = new Reader(bytesOf(bytes, 'KE1', SIZES.ke1));
  const blindedMessage = decode(r.take(Noe), 'KE1 blinded_message');
  const clientNonce = r.take(Nn);
  const clientPublicKeyshare = decode(r.take(Npk), 'KE1 client_public_keyshare');
  return { blindedMessage, clientNonce, clientPublicKeyshare };
}

export interface CredentialResponse {
  readonly evaluatedMessage: Point;
  readonly maskingNonce: Uint8Array; // Nn
  readonly maskedResponse: Uint8Array; // Npk + Nn + Nm
}

export const serializeCredentialResponse = (m: CredentialResponse): Uint8Array => concat(serializeElement(m.evaluatedMessage), m.maskingNonce, m.maskedResponse);

export interface KE2 {
  readonly credentialResponse: CredentialResponse;
  readonly serverNonce: Uint8Array; // Nn
  readonly serverPublicKeyshare: Point;
  readonly serverMac: Uint8Array; // Nm
}

export const serializeKE2 = (m: KE2): Uint8Array =>
  concat(serializeCredentialResponse(m.credentialResponse), m.serverNonce, serializeElement(m.serverPublicKeyshare), m.serverMac);

export function parseKE2(bytes: Uint8Array): KE2 {
  const r = new Reader(bytesOf(bytes, 'KE2', SIZES.ke2));
  const evaluatedMessage = deserializeElement(r.take(Noe), 'KE2 evaluated_message');
  const maskingNonce = r.take(Nn);
  const maskedResponse = r.take(Npk + Nn + Nm);
  const serverNonce = r.take(Nn);
  const serverPublicKeyshare = deserializeElement(r.take(Npk), 'KE2 server_public_keyshare');
  const serverMac = r.take(Nm);
  return { credentialResponse: { evaluatedMessage, maskingNonce, maskedResponse }, serverNonce, serverPublicKeyshare, serverMac };
}

export interface KE3 {
  readonly clientMac: Uint8Array; // Nm
}

export const serializeKE3 = (m: KE3): Uint8Array => m.clientMac;

export function parseKE3(bytes: Uint8Array): KE3 {
  return { clientMac: bytesOf(bytes, 'KE3', SIZES.ke3).slice() };
}

// Cloudflare Plexi witness signatures (github.com/cloudflare/plexi, plexi_core), the verifier's
// half: the signed message, response parsing and verification. Browser-safe: src/fleet and the
// SDK's fleet-update check both verify witness signatures with these functions; signing and
// serving the JSON form are src/fleet/plexi.ts's.
//
// Ciphersuite 0x0001 "ProtobufEd25519": Ed25519 over the protobuf encoding of
// (plexi_core/src/proto/specs/types.proto, proto2):
//   message Epoch            { required uint64 inner = 1; }
//   message SignatureMessage { required uint32 version = 1;   // the ciphersuite
//                              required string namespace = 2;
//                              required uint64 timestamp = 3; // milliseconds since the epoch
//                              required Epoch  epoch = 4;
//                              required bytes  digest = 5; }
// prost writes proto2 `required` fields always (even zero or empty), in field-number order,
// so the encoding below is deterministic: tags 0x08, 0x12, 0x18, 0x22 (0x08 inside), 0x2a.
// Ciphersuite 0x0002 (bincode) is not supported here.
//
// JSON SignatureResponse (serde, plexi_core/src/lib.rs):
//   {"version":1,"ciphersuite":1,"namespace":"…","timestamp":<u64>,"epoch":<u64>,
//    "digest":"<hex>","signature":"<hex>","key_id":<u8>?,"serialized_message":"<hex>"|null?}
// `version` and `ciphersuite` mirror each other (Plexi reads `version` first); key_id is the
// last byte of the Ed25519 public key (plexi_core/src/crypto.rs). Plexi verifies with
// ed25519-dalek `verify_strict`.

import { UINT64_MAX, concatBytes, constantTimeEqual, decodeHex, utf8 } from './bytes.js';
import { ED25519_PUBLIC_KEY_SIZE, ED25519_SIGNATURE_SIZE, verifyEd25519 } from './ed25519.js';
import { FleetError } from './errors.js';

export const PLEXI_CIPHERSUITE_PROTOBUF_ED25519 = 0x0001;
export const PLEXI_CIPHERSUITE_BINCODE_ED25519 = 0x0002;

export interface PlexiSignatureMessage {
  readonly ciphersuite: number;
  readonly namespace: string;
  /** Milliseconds since the Unix epoch. */
  readonly timestamp: bigint;
  readonly epoch: bigint;
  readonly digest: Uint8Array;
}

export interface PlexiSignatureResponse extends PlexiSignatureMessage {
  readonly signature: Uint8Array;
  /** Last byte of the witness public key, when the witness sent it. */
  readonly keyId?: number;
  /** The bytes the witness says it signed, when it sent them. */
  readonly serializedMessage?: Uint8Array;
}

/** JSON shape exchanged with a Plexi witness. */
export interface PlexiSignatureResponseJson {
  version: number;
  ciphersuite: number;
  namespace: string;
  timestamp: number;
  epoch: number;
  digest: string;
  signature: string;
  key_id?: number;
  serialized_message?: string | null;
}

/** Deterministic protobuf encoding of SignatureMessage (ciphersuite 0x0001 only). */
export function encodeSignatureMessage(message: PlexiSignatureMessage): Uint8Array {
  checkPlexiMessage(message);
  const epoch = concatBytes(Uint8Array.of(0x08), varint(message.epoch));
  const namespace = utf8(message.namespace);
  return concatBytes(
    Uint8Array.of(0x08), varint(BigInt(message.ciphersuite)),
    Uint8Array.of(0x12), varint(BigInt(namespace.length)), namespace,
    Uint8Array.of(0x18), varint(message.timestamp),
    Uint8Array.of(0x22), varint(BigInt(epoch.length)), epoch,
    Uint8Array.of(0x2a), varint(BigInt(message.digest.length)), message.digest,
  );
}

/** Plexi's key ID: the last byte of the Ed25519 public key. */
export function plexiKeyId(publicKey: Uint8Array): number {
  if (publicKey.length !== ED25519_PUBLIC_KEY_SIZE) throw new FleetError('INVALID_ARGUMENT', 'Ed25519 public key must be 32 bytes');
  return publicKey[ED25519_PUBLIC_KEY_SIZE - 1] as number;
}

/**
 * Verifies a witness signature response against the witness public key. Throws
 * PLEXI_UNSUPPORTED, PLEXI_KEY_MISMATCH, PLEXI_MALFORMED or PLEXI_INVALID_SIGNATURE.
 */
export function verifyPlexiSignature(response: PlexiSignatureResponse, publicKey: Uint8Array): void {
  const message = encodeSignatureMessage(response);
  if (response.keyId !== undefined && response.keyId !== plexiKeyId(publicKey)) {
    throw new FleetError('PLEXI_KEY_MISMATCH', `key_id ${response.keyId} does not name this witness key`);
  }
  if (response.serializedMessage !== undefined && !constantTimeEqual(response.serializedMessage, message)) {
    throw new FleetError('PLEXI_MALFORMED', 'serialized_message differs from the encoding of the signed fields');
  }
  if (!verifyEd25519(publicKey, message, response.signature)) {
    throw new FleetError('PLEXI_INVALID_SIGNATURE', `witness signature does not verify for namespace ${response.namespace}`);
  }
}

/** Parses and validates a JSON SignatureResponse (a string or an already parsed value). */
export function parsePlexiResponse(input: string | unknown): PlexiSignatureResponse {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch {
      throw malformed('response is not JSON');
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('response must be a JSON object');
  const json = value as Record<string, unknown>;
  const allowed = new Set(['version', 'ciphersuite', 'namespace', 'timestamp', 'epoch', 'digest', 'signature', 'key_id', 'serialized_message']);
  for (const key of Object.keys(json)) if (!allowed.has(key)) throw malformed(`unknown field "${key}"`);

  const version = optionalUint(json, 'version', 0xffffffff);
  const suite = optionalUint(json, 'ciphersuite', 0xffffffff);
  if (version === undefined && suite === undefined) throw malformed('either version or ciphersuite must be present');
  if (version !== undefined && suite !== undefined && version !== suite) throw malformed('version and ciphersuite disagree');
  const ciphersuite = (version ?? suite) as number;
  if (ciphersuite !== PLEXI_CIPHERSUITE_PROTOBUF_ED25519) {
    throw new FleetError('PLEXI_UNSUPPORTED', `ciphersuite 0x${ciphersuite.toString(16).padStart(4, '0')} is not supported`);
  }
  // A lone surrogate can never be signed (serde refuses it too): refuse it here, not at verification.
  if (typeof json.namespace !== 'string' || !json.namespace.isWellFormed()) throw malformed('namespace must be a string');
  const timestamp = requiredUint(json, 'timestamp');
  const epoch = requiredUint(json, 'epoch');
  const digest = hexField(json, 'digest');
  const signature = hexField(json, 'signature');
  if (signature.length !== ED25519_SIGNATURE_SIZE) throw malformed('signature must be 64 bytes');
  const keyId = optionalUint(json, 'key_id', 0xff);
  const serialized = json.serialized_message;
  let serializedMessage: Uint8Array | undefined;
  if (serialized !== undefined && serialized !== null) serializedMessage = hexField(json, 'serialized_message');

  return {
    ciphersuite,
    namespace: json.namespace,
    timestamp: BigInt(timestamp),
    epoch: BigInt(epoch),
    digest,
    signature,
    ...(keyId === undefined ? {} : { keyId }),
    ...(serializedMessage === undefined ? {} : { serializedMessage }),
  };
}

/** The fields Plexi can sign: ciphersuite 0x0001, a well-formed namespace, uint64 numbers. */
export function checkPlexiMessage(m: PlexiSignatureMessage): void {
  if (m.ciphersuite !== PLEXI_CIPHERSUITE_PROTOBUF_ED25519) {
    throw new FleetError('PLEXI_UNSUPPORTED', `ciphersuite 0x${m.ciphersuite.toString(16).padStart(4, '0')} is not supported`);
  }
  if (!m.namespace.isWellFormed()) throw malformed('namespace is not valid Unicode');
  for (const [name, v] of [['timestamp', m.timestamp], ['epoch', m.epoch]] as const) {
    if (v < 0n || v > UINT64_MAX) throw malformed(`${name} must be a uint64`);
  }
}

// --- helpers ---

/** Protobuf base-128 varint of an unsigned 64-bit value. */
function varint(value: bigint): Uint8Array {
  const out: number[] = [];
  let v = value;
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return Uint8Array.from(out);
}

function requiredUint(json: Record<string, unknown>, key: string): number {
  const v = json[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw malformed(`${key} must be a non-negative integer below 2^53`);
  }
  return v;
}

function optionalUint(json: Record<string, unknown>, key: string, max: number): number | undefined {
  if (json[key] === undefined) return undefined;
  const v = json[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw malformed(`${key} must be an integer in [0, ${max}]`);
  return v;
}

function hexField(json: Record<string, unknown>, key: string): Uint8Array {
  const v = json[key];
  const bytes = typeof v === 'string' ? decodeHex(v) : undefined;
  if (bytes === undefined) throw malformed(`${key} must be a hex string`);
  return bytes;
}

function malformed(reason: string): FleetError {
  return new FleetError('PLEXI_MALFORMED', `malformed Plexi signature response: ${reason}`);
}

// C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint) note bodies, and C2SP
// tlog-cosignature (https://c2sp.org/tlog-cosignature) Ed25519 cosignatures, type 0x04: the
// verifier's half (parsing and checking). Browser-safe: src/fleet and the SDK's fleet-update
// check both read checkpoints with these functions; formatting and cosigning are
// src/fleet/checkpoint.ts's.
//
// Checkpoint body: at least three non-empty newline-terminated lines:
//   <origin>\n<tree size, ASCII decimal, no leading zeroes>\n<base64 root hash>\n[<extension>\n]*
// The root is a 32-byte RFC 6962 SHA-256 root (our logs use nothing else).
//
// cosignature/v1: the signature bytes after the key ID are
//   timestamp (u64 big-endian, POSIX seconds, <= 2^63 - 1) || Ed25519 signature (64 bytes)
// over the message
//   "cosignature/v1\n" || "time " || <timestamp decimal> || "\n" || <whole checkpoint body>
// and the key ID is SHA-256(<name> || "\n" || 0x04 || 32-byte public key)[:4].

import { CANONICAL_DECIMAL, INT64_MAX, decodeBase64, readUint64BigEndian, utf8 } from './bytes.js';
import { ED25519_PUBLIC_KEY_SIZE, ED25519_SIGNATURE_SIZE, verifyEd25519 } from './ed25519.js';
import { FleetError } from './errors.js';
import { HASH_SIZE } from './merkle.js';
import {
  type NoteVerifier,
  type OpenedNote,
  SIGNATURE_TYPE_COSIGNATURE_V1,
  type VerifierKey,
  checkKeyName,
  computeKeyId,
  decodeVerifierKey,
  openNote,
} from './signed-note.js';

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  readonly extensions: readonly string[];
}

/** Parses a checkpoint note text (the signed part of the note, final newline included). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw checkpointMalformed('checkpoint must end in a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw checkpointMalformed('checkpoint needs origin, size and root hash lines');
  if (lines.some((l) => l.length === 0)) throw checkpointMalformed('checkpoint lines must be non-empty');
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  if (!CANONICAL_DECIMAL.test(sizeLine)) throw checkpointMalformed('tree size must be decimal with no leading zeroes');
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) throw checkpointMalformed('tree size exceeds 2^53 - 1');
  const rootHash = decodeBase64(rootLine);
  if (rootHash === undefined || rootHash.length !== HASH_SIZE) throw checkpointMalformed('root hash must be base64 of 32 bytes');
  return { origin, size, rootHash, extensions };
}

/** Opens a signed checkpoint note and parses its body; optionally requires the origin. */
export function openCheckpoint(
  note: string | Uint8Array,
  verifiers: readonly NoteVerifier[],
  expectedOrigin?: string,
): OpenedNote & { readonly checkpoint: Checkpoint } {
  const opened = openNote(note, verifiers);
  const checkpoint = parseCheckpoint(opened.text);
  if (expectedOrigin !== undefined && checkpoint.origin !== expectedOrigin) {
    throw checkpointMalformed(`origin "${checkpoint.origin}" is not "${expectedOrigin}"`);
  }
  return { ...opened, checkpoint };
}

// --- tlog-cosignature, Ed25519 (type 0x04) ---

export const COSIGNATURE_V1_HEADER = 'cosignature/v1\n';
export const COSIGNATURE_SIZE = 8 + ED25519_SIGNATURE_SIZE;

export interface Cosignature {
  /** POSIX seconds. */
  readonly timestamp: bigint;
  readonly signature: Uint8Array;
}

/** SHA-256(<name> || "\n" || 0x04 || public key)[:4]. */
export function cosignatureKeyId(name: string, publicKey: Uint8Array): number {
  return computeKeyId(name, SIGNATURE_TYPE_COSIGNATURE_V1, publicKey);
}

/** The signed message: header line, `time <timestamp>` line, then the whole checkpoint body. */
export function cosignedMessage(timestamp: bigint, checkpointText: string): Uint8Array {
  checkCosignatureTimestamp(timestamp);
  parseCheckpoint(checkpointText);
  return utf8(`${COSIGNATURE_V1_HEADER}time ${timestamp.toString()}\n${checkpointText}`);
}

/** Splits the bytes after the key ID into timestamp and Ed25519 signature. */
export function parseCosignature(bytes: Uint8Array): Cosignature {
  if (bytes.length !== COSIGNATURE_SIZE) {
    throw new FleetError('COSIGNATURE_MALFORMED', `cosignature is ${bytes.length} bytes, not ${COSIGNATURE_SIZE}`);
  }
  const timestamp = readUint64BigEndian(bytes, 0);
  if (timestamp > INT64_MAX) throw new FleetError('COSIGNATURE_MALFORMED', 'cosignature timestamp exceeds 2^63 - 1');
  return { timestamp, signature: bytes.slice(8) };
}

export interface CosignatureVerifierOptions {
  /** When set, cosignatures more than `maxFutureSeconds` after `now()` (POSIX seconds) fail. */
  readonly now?: () => bigint;
  readonly maxFutureSeconds?: bigint;
}

/**
 * A NoteVerifier for a cosigner's Ed25519 key. It only accepts notes whose text is a
 * checkpoint; read the timestamp with parseCosignature on the verified signature.
 */
export function cosignatureVerifier(
  name: string,
  publicKey: Uint8Array,
  options: CosignatureVerifierOptions = {},
): NoteVerifier & VerifierKey {
  checkKeyName(name);
  if (publicKey.length !== ED25519_PUBLIC_KEY_SIZE) throw new FleetError('NOTE_INVALID_KEY', 'Ed25519 public key must be 32 bytes');
  const key = Uint8Array.from(publicKey);
  return {
    name,
    keyId: cosignatureKeyId(name, key),
    type: SIGNATURE_TYPE_COSIGNATURE_V1,
    publicKey: key,
    verify(message, bytes) {
      let cosig: Cosignature;
      let signed: Uint8Array;
      try {
        cosig = parseCosignature(bytes);
        signed = cosignedMessage(cosig.timestamp, new TextDecoder().decode(message));
      } catch {
        return false;
      }
      if (options.now !== undefined && cosig.timestamp > options.now() + (options.maxFutureSeconds ?? 0n)) return false;
      return verifyEd25519(key, signed, cosig.signature);
    },
  };
}

/** Parses a type-0x04 verifier key `<name>+<hex key ID>+<base64(0x04 || public key)>`. */
export function parseCosignatureVerifierKey(vkey: string, options?: CosignatureVerifierOptions): NoteVerifier & VerifierKey {
  const decoded = decodeVerifierKey(vkey);
  if (decoded.type !== SIGNATURE_TYPE_COSIGNATURE_V1) {
    throw new FleetError('NOTE_INVALID_KEY', 'verifier key is not a cosignature/v1 (0x04) key');
  }
  return cosignatureVerifier(decoded.name, decoded.publicKey, options);
}

// --- helpers (also used by the formatting and cosigning side, src/fleet/checkpoint.ts) ---

export function checkCosignatureTimestamp(timestamp: bigint): void {
  if (timestamp < 0n || timestamp > INT64_MAX) {
    throw new FleetError('COSIGNATURE_MALFORMED', 'cosignature timestamp must be in [0, 2^63 - 1]');
  }
}

export function checkpointMalformed(reason: string): FleetError {
  return new FleetError('CHECKPOINT_MALFORMED', `malformed checkpoint: ${reason}`);
}

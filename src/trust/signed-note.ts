// C2SP signed-note (https://c2sp.org/signed-note), the verifier's half: parsing, key IDs,
// verifier keys and opening (verifying) a note. Browser-safe: src/fleet and the SDK's
// fleet-update check both read notes with these functions; signing is src/fleet/signed-note.ts.
//
// A note is a UTF-8 text ending in a newline, a blank line, then one or more lines
// `— <key name> <base64(key ID || signature)>`. Parsing and opening follow the spec and
// golang.org/x/mod/sumdb/note, the reference implementation:
// - the note is valid UTF-8 with no control character but newline;
// - the text is everything up to and including the newline before the LAST blank line;
// - the signature block is non-empty, each line ends in a newline, starts with U+2014 U+0020,
//   names a valid key (non-empty, no Unicode space, no `+`) and carries base64 of 4+n bytes,
//   n >= 1; at most 100 signature lines;
// - signatures from unknown (name, key ID) pairs are ignored; a known key's signature must
//   verify or the whole note is rejected; at least one known signature is required;
// - repeated signatures by one known key are dropped after the first.
// Our base64 is stricter than Go's: non-canonical spellings are rejected.

import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, decodeBase64, decodeUtf8, encodeBase64, utf8 } from './bytes.js';
import { ED25519_PUBLIC_KEY_SIZE, verifyEd25519 } from './ed25519.js';
import { FleetError } from './errors.js';

/** Signature type bytes assigned by signed-note (the ones this code speaks). */
export const SIGNATURE_TYPE_ED25519 = 0x01;
export const SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04;

/** Checks signatures by one (name, key ID) pair. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  /** `message` is the note text's UTF-8 bytes; `signature` excludes the key ID. */
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  /** Signature bytes after the 4-byte key ID. */
  readonly signature: Uint8Array;
  /** The base64 field exactly as it appeared on the line. */
  readonly base64: string;
}

export interface ParsedNote {
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

export interface OpenedNote {
  readonly text: string;
  /** Signatures by known keys, all verified. Never empty. */
  readonly verified: readonly NoteSignature[];
  /** Signatures by unknown keys, ignored (duplicates dropped). */
  readonly unverified: readonly NoteSignature[];
}

/** A decoded verifier key string `<name>+<hex key ID>+<base64(type || public key)>`. */
export interface VerifierKey {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  readonly publicKey: Uint8Array;
}

export const MAX_SIGNATURES = 100;
/** Starts every signature line (the signer writes it too). */
export const NOTE_SIGNATURE_PREFIX = '\u2014 ';

/** Key names are non-empty and contain no Unicode space and no `+`. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && name.isWellFormed() && !/[\p{White_Space}+]/u.test(name);
}

/** key ID = SHA-256(key name || 0x0A || signature type || public key)[:4], big-endian. */
export function computeKeyId(name: string, type: number, publicKey: Uint8Array): number {
  const digest = sha256(concatBytes(utf8(name), Uint8Array.of(0x0a, type), publicKey));
  return new DataView(digest.buffer, digest.byteOffset, 4).getUint32(0, false);
}

/** Ed25519 note key ID: SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]. */
export function ed25519KeyId(name: string, publicKey: Uint8Array): number {
  return computeKeyId(name, SIGNATURE_TYPE_ED25519, publicKey);
}

/** Parses the structure of a signed note without verifying anything. */
export function parseNote(note: string | Uint8Array): ParsedNote {
  const msg = typeof note === 'string' ? note : decodeUtf8(note);
  if (msg === undefined || !msg.isWellFormed()) throw noteMalformed('note is not valid UTF-8');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(msg)) throw noteMalformed('note contains a control character');

  const split = msg.lastIndexOf('\n\n');
  if (split < 0) throw noteMalformed('note has no blank line before its signatures');
  const text = msg.slice(0, split + 1);
  let block = msg.slice(split + 2);
  if (block.length === 0 || !block.endsWith('\n')) throw noteMalformed('signature block is empty or lacks a final newline');

  const signatures: NoteSignature[] = [];
  while (block.length > 0) {
    const end = block.indexOf('\n');
    const line = block.slice(0, end);
    block = block.slice(end + 1);
    if (!line.startsWith(NOTE_SIGNATURE_PREFIX)) throw noteMalformed('signature line does not start with "— "');
    const rest = line.slice(NOTE_SIGNATURE_PREFIX.length);
    const space = rest.indexOf(' ');
    const name = space < 0 ? rest : rest.slice(0, space);
    const b64 = space < 0 ? '' : rest.slice(space + 1);
    const bytes = decodeBase64(b64);
    if (!isValidKeyName(name) || b64 === '' || bytes === undefined || bytes.length < 5) {
      throw noteMalformed('signature line is malformed');
    }
    if (signatures.length === MAX_SIGNATURES) throw noteMalformed(`more than ${MAX_SIGNATURES} signatures`);
    const keyId = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
    signatures.push({ name, keyId, signature: bytes.slice(4), base64: b64 });
  }
  return { text, signatures };
}

/**
 * Opens a note: parses it, verifies every signature by a known key, ignores unknown keys.
 * Throws NOTE_MALFORMED, NOTE_INVALID_SIGNATURE (a known key's signature fails) or
 * NOTE_UNVERIFIED (no known key signed it).
 */
export function openNote(note: string | Uint8Array, verifiers: readonly NoteVerifier[]): OpenedNote {
  const known = verifierIndex(verifiers);
  const { text, signatures } = parseNote(note);
  const message = utf8(text);
  const verified: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  const seenKnown = new Set<string>();
  const seenUnknown = new Set<string>();
  for (const sig of signatures) {
    const id = noteKeyLabel(sig.name, sig.keyId);
    const verifier = known.get(id);
    if (verifier === undefined) {
      const line = `${sig.name} ${sig.base64}`;
      if (!seenUnknown.has(line)) {
        seenUnknown.add(line);
        unverified.push(sig);
      }
      continue;
    }
    if (seenKnown.has(id)) continue;
    seenKnown.add(id);
    if (!verifier.verify(message, sig.signature)) {
      throw new FleetError('NOTE_INVALID_SIGNATURE', `invalid signature for key ${id}`);
    }
    verified.push(sig);
  }
  if (verified.length === 0) throw new FleetError('NOTE_UNVERIFIED', 'note has no verifiable signatures');
  return { text, verified, unverified };
}

// --- verifier keys ---

/** Decodes `<name>+<hex key ID>+<base64(type || key)>` and checks its key ID. */
export function decodeVerifierKey(vkey: string): VerifierKey {
  const parts = splitNoteKey(vkey);
  if (parts === undefined) throw invalidNoteKey('verifier key must be <name>+<hex key ID>+<base64 key>');
  const [name, idHex, keyB64] = parts;
  const { type, key } = decodeKeyMaterial(name, idHex, keyB64);
  return { name, keyId: Number.parseInt(idHex, 16), type, publicKey: key };
}

/** Parses an Ed25519 (type 0x01) verifier key into a NoteVerifier. */
export function parseVerifierKey(vkey: string): NoteVerifier & VerifierKey {
  const decoded = decodeVerifierKey(vkey);
  if (decoded.type !== SIGNATURE_TYPE_ED25519) {
    throw invalidNoteKey(`verifier key type 0x${decoded.type.toString(16).padStart(2, '0')} is not a note Ed25519 key`);
  }
  return ed25519NoteVerifier(decoded.name, decoded.publicKey);
}

export function ed25519NoteVerifier(name: string, publicKey: Uint8Array): NoteVerifier & VerifierKey {
  checkKeyName(name);
  if (publicKey.length !== ED25519_PUBLIC_KEY_SIZE) throw invalidNoteKey('Ed25519 public key must be 32 bytes');
  const key = Uint8Array.from(publicKey);
  return {
    name,
    keyId: ed25519KeyId(name, key),
    type: SIGNATURE_TYPE_ED25519,
    publicKey: key,
    verify: (message, signature) => verifyEd25519(key, message, signature),
  };
}

/** `<name>+<8 lowercase hex>+<base64(type || public key)>`. */
export function formatVerifierKey(name: string, type: number, publicKey: Uint8Array): string {
  checkKeyName(name);
  return `${noteKeyLabel(name, computeKeyId(name, type, publicKey))}+${encodeBase64(concatBytes(Uint8Array.of(type), publicKey))}`;
}

// --- helpers (the exported ones also serve the signing side, src/fleet/signed-note.ts) ---

function verifierIndex(verifiers: readonly NoteVerifier[]): Map<string, NoteVerifier> {
  const index = new Map<string, NoteVerifier>();
  for (const v of verifiers) {
    const id = noteKeyLabel(v.name, v.keyId);
    if (index.has(id)) throw new FleetError('NOTE_AMBIGUOUS_KEY', `more than one verifier for key ${id}`);
    index.set(id, v);
  }
  return index;
}

/** Splits `<name>+<hex key ID>+<base64>` at its first two plus signs (base64 may contain `+`). */
export function splitNoteKey(text: string): [string, string, string] | undefined {
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (second < 0) return undefined;
  return [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
}

function decodeKeyMaterial(name: string, idHex: string, keyB64: string): { type: number; key: Uint8Array } {
  checkKeyName(name);
  const bytes = decodeBase64(keyB64);
  if (bytes === undefined || bytes.length < 2) throw invalidNoteKey('key material is not base64(type || key)');
  const type = bytes[0] as number;
  const key = bytes.slice(1);
  if (type !== SIGNATURE_TYPE_ED25519 && type !== SIGNATURE_TYPE_COSIGNATURE_V1) {
    throw invalidNoteKey(`unsupported signature type 0x${type.toString(16).padStart(2, '0')}`);
  }
  if (key.length !== ED25519_PUBLIC_KEY_SIZE) throw invalidNoteKey('Ed25519 public key must be 32 bytes');
  checkKeyIdField(idHex, computeKeyId(name, type, key), name);
  return { type, key };
}

export function checkKeyIdField(idHex: string, expected: number, name: string): void {
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw invalidNoteKey('key ID must be 8 hex digits');
  if (Number.parseInt(idHex, 16) !== expected) throw invalidNoteKey(`key ID ${idHex} does not match key ${name}`);
}

export function checkKeyName(name: string): void {
  if (!isValidKeyName(name)) throw invalidNoteKey('key name must be non-empty with no space and no "+"');
}

/** `<name>+<8 lowercase hex key ID>`: how a key is named in messages and matched. */
export function noteKeyLabel(name: string, keyId: number): string {
  return `${name}+${keyId.toString(16).padStart(8, '0')}`;
}

export function noteMalformed(reason: string): FleetError {
  return new FleetError('NOTE_MALFORMED', `malformed note: ${reason}`);
}

export function invalidNoteKey(reason: string): FleetError {
  return new FleetError('NOTE_INVALID_KEY', reason);
}

// C2SP signed-note (https://c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank
// line, then one or more lines `— <key name> <base64(key ID || signature)>`. Parsing and
// opening follow the spec and golang.org/x/mod/sumdb/note, the reference implementation:
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
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { concatBytes, decodeBase64, decodeUtf8, encodeBase64, utf8 } from './bytes.js';
import { ED25519_PUBLIC_KEY_SIZE, verifyEd25519 } from './ed25519.js';
import { FleetError } from './errors.js';

/** Signature type bytes assigned by signed-note (the ones this code speaks). */
export const SIGNATURE_TYPE_ED25519 = 0x01;
export const SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04;

/** Signs a note's text. `sign` is async so the key can live in an HSM. */
export interface NoteSigner {
  readonly name: string;
  /** uint32 key ID, written big-endian before the signature. */
  readonly keyId: number;
  /** Returns the signature bytes (without the key ID) over the note text's UTF-8 bytes. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

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
const SIGNATURE_PREFIX = '\u2014 ';
const SIGNER_KEY_PREFIX = 'PRIVATE+KEY+';

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
  if (msg === undefined || !msg.isWellFormed()) throw malformed('note is not valid UTF-8');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(msg)) throw malformed('note contains a control character');

  const split = msg.lastIndexOf('\n\n');
  if (split < 0) throw malformed('note has no blank line before its signatures');
  const text = msg.slice(0, split + 1);
  let block = msg.slice(split + 2);
  if (block.length === 0 || !block.endsWith('\n')) throw malformed('signature block is empty or lacks a final newline');

  const signatures: NoteSignature[] = [];
  while (block.length > 0) {
    const end = block.indexOf('\n');
    const line = block.slice(0, end);
    block = block.slice(end + 1);
    if (!line.startsWith(SIGNATURE_PREFIX)) throw malformed('signature line does not start with "— "');
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(' ');
    const name = space < 0 ? rest : rest.slice(0, space);
    const b64 = space < 0 ? '' : rest.slice(space + 1);
    const bytes = decodeBase64(b64);
    if (!isValidKeyName(name) || b64 === '' || bytes === undefined || bytes.length < 5) {
      throw malformed('signature line is malformed');
    }
    if (signatures.length === MAX_SIGNATURES) throw malformed(`more than ${MAX_SIGNATURES} signatures`);
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
    const id = keyLabel(sig.name, sig.keyId);
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

/** Signs `text` (which must end in a newline) with every signer, in order. */
export async function signNote(text: string, signers: readonly NoteSigner[]): Promise<string> {
  checkText(text);
  const lines = await signatureLines(text, signers);
  return `${text}\n${lines.join('')}`;
}

/**
 * Adds signatures to an already signed note (a witness cosigning a checkpoint). Existing
 * lines are kept except those by the same (name, key ID) as a new signer. Nothing is
 * verified here: open the result, or the input first.
 */
export async function addNoteSignatures(note: string, signers: readonly NoteSigner[]): Promise<string> {
  const { text, signatures } = parseNote(note);
  const replaced = new Set(signers.map((s) => keyLabel(s.name, s.keyId)));
  const kept = signatures
    .filter((s) => !replaced.has(keyLabel(s.name, s.keyId)))
    .map((s) => `${SIGNATURE_PREFIX}${s.name} ${s.base64}\n`);
  const added = await signatureLines(text, signers);
  return `${text}\n${kept.join('')}${added.join('')}`;
}

// --- verifier and signer keys ---

/** Decodes `<name>+<hex key ID>+<base64(type || key)>` and checks its key ID. */
export function decodeVerifierKey(vkey: string): VerifierKey {
  const parts = splitKey(vkey, 3);
  if (parts === undefined) throw invalidKey('verifier key must be <name>+<hex key ID>+<base64 key>');
  const [name, idHex, keyB64] = parts;
  const { type, key } = decodeKeyMaterial(name, idHex, keyB64);
  return { name, keyId: Number.parseInt(idHex, 16), type, publicKey: key };
}

/** Parses an Ed25519 (type 0x01) verifier key into a NoteVerifier. */
export function parseVerifierKey(vkey: string): NoteVerifier & VerifierKey {
  const decoded = decodeVerifierKey(vkey);
  if (decoded.type !== SIGNATURE_TYPE_ED25519) {
    throw invalidKey(`verifier key type 0x${decoded.type.toString(16).padStart(2, '0')} is not a note Ed25519 key`);
  }
  return ed25519NoteVerifier(decoded.name, decoded.publicKey);
}

export function ed25519NoteVerifier(name: string, publicKey: Uint8Array): NoteVerifier & VerifierKey {
  checkName(name);
  if (publicKey.length !== ED25519_PUBLIC_KEY_SIZE) throw invalidKey('Ed25519 public key must be 32 bytes');
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
  checkName(name);
  const id = computeKeyId(name, type, publicKey);
  return `${name}+${hex8(id)}+${encodeBase64(concatBytes(Uint8Array.of(type), publicKey))}`;
}

/**
 * A note signer from an Ed25519 signer (an HSM key, say): the key ID is derived from the
 * name and public key.
 */
export function ed25519NoteSigner(
  name: string,
  signer: { readonly publicKey: Uint8Array; sign(message: Uint8Array): Promise<Uint8Array> },
): NoteSigner {
  checkName(name);
  if (signer.publicKey.length !== ED25519_PUBLIC_KEY_SIZE) throw invalidKey('Ed25519 public key must be 32 bytes');
  return { name, keyId: ed25519KeyId(name, signer.publicKey), sign: (message) => signer.sign(message) };
}

/**
 * Parses a golang.org/x/mod signer key `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`
 * into a software NoteSigner. For tests and development only: real fleets sign in a token.
 */
export function parseSignerKey(skey: string): NoteSigner & { readonly publicKey: Uint8Array } {
  if (!skey.startsWith(SIGNER_KEY_PREFIX)) throw invalidKey('signer key must start with PRIVATE+KEY+');
  const parts = splitKey(skey.slice(SIGNER_KEY_PREFIX.length), 3);
  if (parts === undefined) throw invalidKey('signer key must be PRIVATE+KEY+<name>+<hex key ID>+<base64 key>');
  const [name, idHex, keyB64] = parts;
  const bytes = decodeBase64(keyB64);
  if (bytes === undefined || bytes.length !== 33 || bytes[0] !== SIGNATURE_TYPE_ED25519) {
    throw invalidKey('signer key material must be base64(0x01 || 32-byte seed)');
  }
  const seed = bytes.slice(1);
  const publicKey = ed25519.getPublicKey(seed);
  checkKeyIdField(idHex, ed25519KeyId(name, publicKey), name);
  return { name, keyId: ed25519KeyId(name, publicKey), publicKey, sign: async (message) => ed25519.sign(message, seed) };
}

/** Generates a software Ed25519 note key pair as (signer key, verifier key) strings. */
export function generateNoteKey(name: string, seed: Uint8Array = randomBytes(32)): { skey: string; vkey: string } {
  checkName(name);
  if (seed.length !== 32) throw new FleetError('INVALID_ARGUMENT', 'Ed25519 seed must be 32 bytes');
  const publicKey = ed25519.getPublicKey(seed);
  const id = hex8(ed25519KeyId(name, publicKey));
  return {
    skey: `${SIGNER_KEY_PREFIX}${name}+${id}+${encodeBase64(concatBytes(Uint8Array.of(SIGNATURE_TYPE_ED25519), seed))}`,
    vkey: formatVerifierKey(name, SIGNATURE_TYPE_ED25519, publicKey),
  };
}

// --- helpers ---

async function signatureLines(text: string, signers: readonly NoteSigner[]): Promise<string[]> {
  const message = utf8(text);
  const lines: string[] = [];
  for (const signer of signers) {
    checkName(signer.name);
    if (!Number.isInteger(signer.keyId) || signer.keyId < 0 || signer.keyId > 0xffffffff) {
      throw new FleetError('INVALID_ARGUMENT', 'key ID must be a uint32');
    }
    const signature = await signer.sign(message);
    if (signature.length === 0) throw new FleetError('INVALID_ARGUMENT', `signer ${signer.name} returned no signature`);
    const id = new Uint8Array(4);
    new DataView(id.buffer).setUint32(0, signer.keyId, false);
    lines.push(`${SIGNATURE_PREFIX}${signer.name} ${encodeBase64(concatBytes(id, signature))}\n`);
  }
  if (lines.length === 0) throw new FleetError('INVALID_ARGUMENT', 'a note needs at least one signer');
  return lines;
}

function checkText(text: string): void {
  if (!text.isWellFormed()) throw malformed('note text is not valid Unicode');
  if (!text.endsWith('\n')) throw malformed('note text must end in a newline');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) throw malformed('note text contains a control character');
}

function verifierIndex(verifiers: readonly NoteVerifier[]): Map<string, NoteVerifier> {
  const index = new Map<string, NoteVerifier>();
  for (const v of verifiers) {
    const id = keyLabel(v.name, v.keyId);
    if (index.has(id)) throw new FleetError('NOTE_AMBIGUOUS_KEY', `more than one verifier for key ${id}`);
    index.set(id, v);
  }
  return index;
}

/** Splits at the first `count - 1` plus signs; the last part (base64) may itself contain `+`. */
function splitKey(text: string, count: number): [string, string, string] | undefined {
  const parts: string[] = [];
  let rest = text;
  for (let i = 0; i < count - 1; i++) {
    const plus = rest.indexOf('+');
    if (plus < 0) return undefined;
    parts.push(rest.slice(0, plus));
    rest = rest.slice(plus + 1);
  }
  parts.push(rest);
  return parts as [string, string, string];
}

function decodeKeyMaterial(name: string, idHex: string, keyB64: string): { type: number; key: Uint8Array } {
  checkName(name);
  const bytes = decodeBase64(keyB64);
  if (bytes === undefined || bytes.length < 2) throw invalidKey('key material is not base64(type || key)');
  const type = bytes[0] as number;
  const key = bytes.slice(1);
  if (type !== SIGNATURE_TYPE_ED25519 && type !== SIGNATURE_TYPE_COSIGNATURE_V1) {
    throw invalidKey(`unsupported signature type 0x${type.toString(16).padStart(2, '0')}`);
  }
  if (key.length !== ED25519_PUBLIC_KEY_SIZE) throw invalidKey('Ed25519 public key must be 32 bytes');
  checkKeyIdField(idHex, computeKeyId(name, type, key), name);
  return { type, key };
}

function checkKeyIdField(idHex: string, expected: number, name: string): void {
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw invalidKey('key ID must be 8 hex digits');
  if (Number.parseInt(idHex, 16) !== expected) throw invalidKey(`key ID ${idHex} does not match key ${name}`);
}

function checkName(name: string): void {
  if (!isValidKeyName(name)) throw invalidKey('key name must be non-empty with no space and no "+"');
}

function keyLabel(name: string, keyId: number): string {
  return `${name}+${hex8(keyId)}`;
}

function hex8(id: number): string {
  return id.toString(16).padStart(8, '0');
}

function malformed(reason: string): FleetError {
  return new FleetError('NOTE_MALFORMED', `malformed note: ${reason}`);
}

function invalidKey(reason: string): FleetError {
  return new FleetError('NOTE_INVALID_KEY', reason);
}

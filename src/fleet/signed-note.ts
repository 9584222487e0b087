// C2SP signed-note (https://c2sp.org/signed-note), the signer's half: signing and cosigning note
// texts, signer keys. Parsing, key IDs, verifier keys and opening a note are the browser-safe
// src/trust/signed-note.ts's (the SDK verifies checkpoints with them) and are re-exported here.

import { ed25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from 'node:crypto';
import {
  NOTE_SIGNATURE_PREFIX,
  SIGNATURE_TYPE_ED25519,
  checkKeyIdField,
  checkKeyName,
  ed25519KeyId,
  formatVerifierKey,
  invalidNoteKey,
  noteKeyLabel,
  noteMalformed,
  parseNote,
  splitNoteKey,
} from '../trust/signed-note.js';
import { concatBytes, decodeBase64, encodeBase64, utf8 } from './bytes.js';
import { ED25519_PUBLIC_KEY_SIZE } from './ed25519.js';
import { FleetError } from './errors.js';

export { MAX_SIGNATURES, SIGNATURE_TYPE_COSIGNATURE_V1, SIGNATURE_TYPE_ED25519, computeKeyId, decodeVerifierKey, ed25519KeyId } from '../trust/signed-note.js';
export { ed25519NoteVerifier, formatVerifierKey, isValidKeyName, openNote, parseNote, parseVerifierKey } from '../trust/signed-note.js';
export type { NoteSignature, NoteVerifier, OpenedNote, ParsedNote, VerifierKey } from '../trust/signed-note.js';

/** Signs a note's text. `sign` is async so the key can live in an HSM. */
export interface NoteSigner {
  readonly name: string;
  /** uint32 key ID, written big-endian before the signature. */
  readonly keyId: number;
  /** Returns the signature bytes (without the key ID) over the note text's UTF-8 bytes. */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

const SIGNER_KEY_PREFIX = 'PRIVATE+KEY+';

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
  const replaced = new Set(signers.map((s) => noteKeyLabel(s.name, s.keyId)));
  const kept = signatures
    .filter((s) => !replaced.has(noteKeyLabel(s.name, s.keyId)))
    .map((s) => `${NOTE_SIGNATURE_PREFIX}${s.name} ${s.base64}\n`);
  const added = await signatureLines(text, signers);
  return `${text}\n${kept.join('')}${added.join('')}`;
}

// --- signer keys ---

/**
 * A note signer from an Ed25519 signer (an HSM key, say): the key ID is derived from the
 * name and public key.
 */
export function ed25519NoteSigner(
  name: string,
  signer: { readonly publicKey: Uint8Array; sign(message: Uint8Array): Promise<Uint8Array> },
): NoteSigner {
  checkKeyName(name);
  if (signer.publicKey.length !== ED25519_PUBLIC_KEY_SIZE) throw invalidNoteKey('Ed25519 public key must be 32 bytes');
  return { name, keyId: ed25519KeyId(name, signer.publicKey), sign: (message) => signer.sign(message) };
}

/**
 * Parses a golang.org/x/mod signer key `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`
 * into a software NoteSigner. For tests and development only: real fleets sign in a token.
 */
export function parseSignerKey(skey: string): NoteSigner & { readonly publicKey: Uint8Array } {
  if (!skey.startsWith(SIGNER_KEY_PREFIX)) throw invalidNoteKey('signer key must start with PRIVATE+KEY+');
  const parts = splitNoteKey(skey.slice(SIGNER_KEY_PREFIX.length));
  if (parts === undefined) throw invalidNoteKey('signer key must be PRIVATE+KEY+<name>+<hex key ID>+<base64 key>');
  const [name, idHex, keyB64] = parts;
  const bytes = decodeBase64(keyB64);
  if (bytes === undefined || bytes.length !== 33 || bytes[0] !== SIGNATURE_TYPE_ED25519) {
    throw invalidNoteKey('signer key material must be base64(0x01 || 32-byte seed)');
  }
  const seed = bytes.slice(1);
  const publicKey = ed25519.getPublicKey(seed);
  checkKeyIdField(idHex, ed25519KeyId(name, publicKey), name);
  return { name, keyId: ed25519KeyId(name, publicKey), publicKey, sign: async (message) => ed25519.sign(message, seed) };
}

/** Generates a software Ed25519 note key pair as (signer key, verifier key) strings. */
export function generateNoteKey(name: string, seed: Uint8Array = randomBytes(32)): { skey: string; vkey: string } {
  checkKeyName(name);
  if (seed.length !== 32) throw new FleetError('INVALID_ARGUMENT', 'Ed25519 seed must be 32 bytes');
  const publicKey = ed25519.getPublicKey(seed);
  return {
    skey: `${SIGNER_KEY_PREFIX}${noteKeyLabel(name, ed25519KeyId(name, publicKey))}+${encodeBase64(concatBytes(Uint8Array.of(SIGNATURE_TYPE_ED25519), seed))}`,
    vkey: formatVerifierKey(name, SIGNATURE_TYPE_ED25519, publicKey),
  };
}

// --- helpers ---

async function signatureLines(text: string, signers: readonly NoteSigner[]): Promise<string[]> {
  const message = utf8(text);
  const lines: string[] = [];
  for (const signer of signers) {
    checkKeyName(signer.name);
    if (!Number.isInteger(signer.keyId) || signer.keyId < 0 || signer.keyId > 0xffffffff) {
      throw new FleetError('INVALID_ARGUMENT', 'key ID must be a uint32');
    }
    const signature = await signer.sign(message);
    if (signature.length === 0) throw new FleetError('INVALID_ARGUMENT', `signer ${signer.name} returned no signature`);
    const id = new Uint8Array(4);
    new DataView(id.buffer).setUint32(0, signer.keyId, false);
    lines.push(`${NOTE_SIGNATURE_PREFIX}${signer.name} ${encodeBase64(concatBytes(id, signature))}\n`);
  }
  if (lines.length === 0) throw new FleetError('INVALID_ARGUMENT', 'a note needs at least one signer');
  return lines;
}

function checkText(text: string): void {
  if (!text.isWellFormed()) throw noteMalformed('note text is not valid Unicode');
  if (!text.endsWith('\n')) throw noteMalformed('note text must end in a newline');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) throw noteMalformed('note text contains a control character');
}

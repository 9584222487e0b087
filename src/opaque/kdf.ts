// RFC 9807 §4 / §6.4.2: Extract, Expand (HKDF-SHA256), MAC (HMAC-SHA256), Hash (SHA-256), and
// the key schedule's Expand-Label / Derive-Secret. Pure; runs in browsers.

import { sha256 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { expand as hkdfExpand, extract as hkdfExtract } from '@noble/hashes/hkdf.js';
import { concat, i2osp, utf8 } from './bytes.js';

export const Nh = 32; // hash output
export const Nm = 32; // MAC output
export const Nx = 32; // KDF output (Extract)

export const hash = (data: Uint8Array): Uint8Array => sha256(data);
export const mac = (key: Uint8Array, data: Uint8Array): Uint8Array => hmac(sha256, key, data);
export const extract = (salt: Uint8Array, ikm: Uint8Array): Uint8Array => hkdfExtract(sha256, ikm, salt);
export const expand = (prk: Uint8Array, info: Uint8Array, length: number): Uint8Array => hkdfExpand(sha256, prk, info, length);

/**
 * HKDF-Expand's first block is HMAC(prk, info || 0x01): how a token that can only HMAC (with the
 * PRK held as its HMAC key) computes Expand for outputs of up to Nh bytes.
 */
export function expandFirstBlockInput(info: Uint8Array): Uint8Array {
  return concat(info, Uint8Array.of(1));
}

/** Expand-Label(Secret, Label, Context, Length) with the "OPAQUE-" label prefix. */
export function expandLabel(secret: Uint8Array, label: string, context: Uint8Array, length: number): Uint8Array {
  const fullLabel = utf8(`OPAQUE-${label}`);
  const customLabel = concat(i2osp(length, 2), i2osp(fullLabel.length, 1), fullLabel, i2osp(context.length, 1), context);
  return expand(secret, customLabel, length);
}

/** Derive-Secret(Secret, Label, Transcript-Hash) = Expand-Label(Secret, Label, Transcript-Hash, Nx). */
export function deriveSecret(secret: Uint8Array, label: string, transcriptHash: Uint8Array): Uint8Array {
  return expandLabel(secret, label, transcriptHash, Nx);
}

// Base64url without padding (RFC 4648 §5), the encoding of every binary field on the vault's HTTP
// API. Written out by hand: `Buffer` is Node-only and `btoa`/`atob` work on binary strings, which
// is slower and easy to get wrong; this file runs unchanged in browsers.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const DECODE: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < ALPHABET.length; i++) table[ALPHABET.charCodeAt(i)] = i;
  return table;
})();

export function encodeBase64url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]! + ALPHABET[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += ALPHABET[(n >> 18) & 63]! + ALPHABET[(n >> 12) & 63]! + ALPHABET[(n >> 6) & 63]!;
  }
  return out;
}

/** Thrown for anything but canonical unpadded base64url; callers turn it into their own error. */
export class Base64urlError extends Error {
  override readonly name = 'Base64urlError';
}

/**
 * Strict decoding: rejects padding, whitespace, the standard alphabet's '+' and '/', an impossible
 * length (4n+1) and non-zero trailing bits, so every byte string has exactly one accepted spelling.
 */
export function decodeBase64url(text: string): Uint8Array {
  if (text.length % 4 === 1) throw new Base64urlError('invalid base64url length');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const digit = code < 128 ? DECODE[code]! : -1;
    if (digit < 0) throw new Base64urlError(`invalid base64url character at offset ${i}`);
    value = (value << 6) | digit;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (value >> bits) & 0xff;
    }
    value &= (1 << bits) - 1;
  }
  if (value !== 0) throw new Base64urlError('non-canonical base64url: trailing bits set');
  return out;
}

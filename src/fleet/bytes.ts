// Strict encodings shared by the fleet modules. Every decoder rejects anything but the one
// canonical spelling of a value, so two different strings never decode to the same bytes
// (which would let a signed text be altered without touching its signature).

import { timingSafeEqual } from 'node:crypto';

const BASE64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64_URL = /^[A-Za-z0-9_-]*$/;
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** Standard base64 (RFC 4648 §4) with padding; `undefined` unless `text` is its canonical form. */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (!BASE64_STD.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  // Non-zero trailing bits are a second spelling of the same bytes: refuse them.
  if (bytes.toString('base64') !== text) return undefined;
  return new Uint8Array(bytes);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** base64url (RFC 4648 §5) without padding; `undefined` unless `text` is its canonical form. */
export function decodeBase64Url(text: string): Uint8Array | undefined {
  if (!BASE64_URL.test(text) || text.length % 4 === 1) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) return undefined;
  return new Uint8Array(bytes);
}

export function encodeBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

/** Hex in either case (as Rust's `hex` crate accepts); `undefined` on odd length or a bad digit. */
export function decodeHex(text: string): Uint8Array | undefined {
  if (!HEX.test(text)) return undefined;
  return new Uint8Array(Buffer.from(text, 'hex'));
}

export function encodeHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** Constant-time equality for digests, roots and tags. Different lengths are simply unequal. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

/** Decodes UTF-8, `undefined` on any invalid sequence. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

export const UINT64_MAX = (1n << 64n) - 1n;
export const INT64_MAX = (1n << 63n) - 1n;

export function uint64BigEndian(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value, false);
  return out;
}

export function readUint64BigEndian(bytes: Uint8Array, offset: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(offset, false);
}

/** ASCII decimal with no leading zeroes ("0" itself allowed), as tlog formats require. */
export const CANONICAL_DECIMAL = /^(?:0|[1-9][0-9]*)$/;

// Byte helpers with RFC 9807's names: I2OSP, concat, xor, and a constant-time comparison.
// No Node-only imports: the client path runs in browsers too.

export function i2osp(value: number, length: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value >= 256 ** length) throw new RangeError(`I2OSP: ${value} does not fit in ${length} bytes`);
  const out = new Uint8Array(length);
  for (let i = length - 1, v = value; i >= 0; i--, v = Math.floor(v / 256)) out[i] = v % 256;
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length !== b.length) throw new RangeError('xor: lengths differ');
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Constant-time for equal lengths (MACs and tags always are); different lengths are unequal. */
export function ctEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

const encoder = new TextEncoder();
export const utf8 = (text: string): Uint8Array => encoder.encode(text);

/** Length-prefixed with a 2-byte length, as RFC 9807 serializes identities and context. */
export function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  return concat(i2osp(bytes.length, 2), bytes);
}

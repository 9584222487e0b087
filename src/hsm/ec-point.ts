// EC point handling shared by both backends: software validation of every peer point before a
// token sees it, and strict decoding of CKA_EC_POINT (DER OCTET STRING or raw, by structure).

import { ECDH } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { InvalidPoint, TokenUnavailable } from './errors.js';

const Fp = p256.Point.Fp;
const B = p256.Point.CURVE().b;
const P_BYTES = Buffer.from(Fp.ORDER.toString(16).padStart(64, '0'), 'hex');

function bytesToBigInt(bytes: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`);
}

/** A 32-byte big-endian field element is canonical when it is below p. */
function belowP(coordinate: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(coordinate.buffer, coordinate.byteOffset, 32), P_BYTES) < 0;
}

/**
 * Validates a P-256 peer point (33-byte compressed or 65-byte uncompressed SEC1) and returns its
 * 65-byte uncompressed form. Rejects wrong lengths, hybrid/unknown prefixes, coordinates >= p,
 * points off the curve and the identity (which has no SEC1 encoding we accept).
 * Cost matters here (it precedes every ECDH, ~400 µs on SoftHSM2): the uncompressed check is the
 * curve equation in noble's field arithmetic (~6 µs, where Point.fromBytes takes ~15 µs: it also
 * builds and checks a projective point); decompression goes to OpenSSL (~35 µs, where noble's
 * square root takes ~95 µs).
 */
export function validateP256Point(point: Uint8Array): Uint8Array {
  if (!(point instanceof Uint8Array)) throw new InvalidPoint('peer point must be bytes');
  const prefix = point[0];
  if (point.length === 65) {
    if (prefix !== 0x04) throw new InvalidPoint('uncompressed P-256 point must start with 0x04');
    if (!belowP(point.subarray(1, 33)) || !belowP(point.subarray(33))) {
      throw new InvalidPoint('P-256 point coordinate is not canonical (>= p)');
    }
    // y² = x³ − 3x + b. The identity has no affine coordinates, so no 65-byte encoding of it can
    // pass (x = y = 0 would need b = 0).
    const x = bytesToBigInt(point.subarray(1, 33));
    const y = bytesToBigInt(point.subarray(33));
    if (!Fp.eql(Fp.sqr(y), Fp.add(Fp.mul(Fp.sub(Fp.sqr(x), 3n), x), B))) throw new InvalidPoint('P-256 point is not on the curve');
    return point.slice();
  }
  if (point.length === 33) {
    if (prefix !== 0x02 && prefix !== 0x03) throw new InvalidPoint('compressed P-256 point must start with 0x02 or 0x03');
    if (!belowP(point.subarray(1))) throw new InvalidPoint('P-256 point coordinate is not canonical (>= p)');
    let uncompressed: Buffer;
    try {
      uncompressed = ECDH.convertKey(point, 'prime256v1', undefined, undefined, 'uncompressed') as Buffer;
    } catch {
      throw new InvalidPoint('P-256 point is not on the curve');
    }
    return new Uint8Array(uncompressed.buffer, uncompressed.byteOffset, 65).slice();
  }
  throw new InvalidPoint(`P-256 point must be 33 or 65 bytes, got ${point.length}`);
}

/** DER OCTET STRING wrapping of a raw point (what CKA_EC_POINT holds per PKCS#11 v2.40+). */
export function derWrapOctetString(raw: Uint8Array): Uint8Array {
  if (raw.length > 127) throw new InvalidPoint('point too long for short-form DER');
  const out = new Uint8Array(raw.length + 2);
  out[0] = 0x04;
  out[1] = raw.length;
  out.set(raw, 2);
  return out;
}

/**
 * Decodes CKA_EC_POINT. A DER OCTET STRING (04 len point) is recognised by its structure: tag
 * 0x04, a length byte equal to the remaining length, and a content of an expected point size.
 * Anything else must itself be a raw point of an expected size. Ambiguity cannot arise for our
 * sizes (65/33/32 bytes): a raw 65-byte point starts 04 but its second byte would have to be 63.
 */
export function decodeEcPoint(value: Uint8Array, expectedRawLengths: readonly number[], accept: 'der' | 'raw' | 'either'): Uint8Array {
  const looksDer =
    value.length >= 2 && value[0] === 0x04 && value[1] === value.length - 2 && expectedRawLengths.includes(value.length - 2);
  if (looksDer && accept !== 'raw') return value.slice(2);
  if (!looksDer && accept !== 'der' && expectedRawLengths.includes(value.length)) return value.slice();
  throw new TokenUnavailable(`token returned a CKA_EC_POINT of unexpected form (${value.length} bytes, expected ${accept})`);
}

/** Low-S normalisation of an r||s ECDSA signature over P-256 (tokens may return high S). */
export function normalizeLowS(signature: Uint8Array): Uint8Array {
  if (signature.length !== 64) throw new TokenUnavailable(`token returned a ${signature.length}-byte ECDSA signature, expected 64`);
  const n = p256.Point.Fn.ORDER;
  const s = bytesToBigInt(signature.subarray(32));
  if (s <= n >> 1n) return signature;
  const out = signature.slice();
  let low = n - s;
  for (let i = 63; i >= 32; i--) {
    out[i] = Number(low & 0xffn);
    low >>= 8n;
  }
  return out;
}

// The prime-order group of OPRF(P-256, SHA-256) (RFC 9497 §4.3): elements are P-256 points
// serialized compressed (33 bytes, Ne), scalars are 32 big-endian bytes (Ns) in [1, n-1] for keys.
// Deserialization is strict: exact length, compressed prefix, canonical coordinate, on the
// curve, not the identity. Every failure is InvalidMessage naming the field.

import { p256, p256_hasher } from '@noble/curves/nist.js';
import { hash_to_field } from '@noble/curves/abstract/hash-to-curve.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { InvalidMessage } from './errors.js';

export type Point = InstanceType<typeof p256.Point>;
export const Point = p256.Point;
export const G: Point = p256.Point.BASE;
export const ORDER: bigint = p256.Point.Fn.ORDER;
const Fn = p256.Point.Fn;
const P_FIELD = p256.Point.Fp.ORDER;

export const Ne = 33;
export const Ns = 32;

export function serializeElement(point: Point): Uint8Array {
  if (point.is0()) throw new InvalidMessage('element', 'the identity has no serialization');
  return point.toBytes(true);
}

export function deserializeElement(bytes: Uint8Array, field = 'element'): Point {
  if (!(bytes instanceof Uint8Array) || bytes.length !== Ne) throw new InvalidMessage(field, `expected ${Ne} bytes`);
  if (bytes[0] !== 0x02 && bytes[0] !== 0x03) throw new InvalidMessage(field, 'not a compressed point');
  if (bytesToBigInt(bytes.subarray(1)) >= P_FIELD) throw new InvalidMessage(field, 'coordinate is not canonical');
  let point: Point;
  try {
    point = Point.fromBytes(bytes);
    point.assertValidity();
  } catch {
    throw new InvalidMessage(field, 'not a point on P-256');
  }
  if (point.is0()) throw new InvalidMessage(field, 'the identity');
  return point;
}

export function serializeScalar(scalar: bigint): Uint8Array {
  return Fn.toBytes(Fn.create(scalar));
}

/** A private key scalar: 32 bytes, in [1, n-1]. */
export function deserializeScalar(bytes: Uint8Array, field = 'scalar'): bigint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== Ns) throw new InvalidMessage(field, `expected ${Ns} bytes`);
  const value = bytesToBigInt(bytes);
  if (value === 0n || value >= ORDER) throw new InvalidMessage(field, 'scalar out of range');
  return value;
}

/** Big-endian bytes as an integer (0 for no bytes). */
export const bytesToBigInt = (bytes: Uint8Array): bigint => bytesToNumberBE(bytes);

export const scalarInverse = (s: bigint): bigint => Fn.inv(s);
export const scalarMul = (a: bigint, b: bigint): bigint => Fn.mul(a, b);

/** HashToGroup: hash_to_curve with suite P256_XMD:SHA-256_SSWU_RO_ (RFC 9380). */
export function hashToGroup(input: Uint8Array, dst: Uint8Array): Point {
  return p256_hasher.hashToCurve(input, { DST: dst }) as Point;
}

/** HashToScalar: hash_to_field over the scalar field, expand_message_xmd with SHA-256, L = 48. */
export function hashToScalar(input: Uint8Array, dst: Uint8Array): bigint {
  const [[scalar]] = hash_to_field(input, 1, { DST: dst, p: ORDER, m: 1, k: 128, expand: 'xmd', hash: sha256 }) as bigint[][] as [[bigint]];
  return scalar;
}

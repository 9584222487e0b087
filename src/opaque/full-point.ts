// Full Diffie-Hellman points from x-only ECDH (server side; Node only).
//
// PKCS#11 tokens (CKM_ECDH1_DERIVE, CKD_NULL) and node:crypto's ECDH both return only x(k·P),
// while OPAQUE's DiffieHellman is the whole point k·P. A second query settles the sign of y:
// x(k·(P+G)) = x(k·P + K), with K = k·G public. Of the two points with abscissa x(k·P), exactly
// one, added to K, has that abscissa (the other would need 2·K or 2·k·P to be the identity, which
// a prime-order group without cofactor rules out). P = ±G are the only inputs where P+G cannot
// be queried or the answer is K itself; their answers are ±K. Callers pass validated points, so
// the identity never reaches a key.

import { ECDH, createECDH } from 'node:crypto';
import { InconsistentKeyOperation } from './errors.js';
import { G, Point, bytesToBigInt } from './group.js';

/** x(k·P) for a 65-byte uncompressed P, with a key held elsewhere (a token, or node:crypto). */
export type XOnlyDh = (peerUncompressed: Uint8Array) => Promise<Uint8Array> | Uint8Array;

const Fp = Point.Fp;

/** The point with abscissa x and even y (OpenSSL's decompression: ~3x noble's square root). */
function liftX(x: Uint8Array): Point {
  let uncompressed: Buffer;
  try {
    uncompressed = ECDH.convertKey(Buffer.concat([Buffer.of(0x02), x]), 'prime256v1', undefined, undefined, 'uncompressed') as Buffer;
  } catch {
    throw new InconsistentKeyOperation('ECDH returned an abscissa that is not on P-256');
  }
  // OpenSSL checked the point is on the curve: skip noble's second check.
  return Point.fromAffine({ x: bytesToBigInt(uncompressed.subarray(1, 33)), y: bytesToBigInt(uncompressed.subarray(33)) });
}

/** x(point) == x without a field inversion: X == x·Z in projective coordinates. */
function hasAbscissa(point: Point, x: bigint): boolean {
  return !point.is0() && Fp.eql(point.X, Fp.mul(x, point.Z));
}

/** 0x04 || x || y without noble's validity re-check (the point is a sum of valid points). */
function uncompressed(point: Point): Uint8Array {
  const { x, y } = point.toAffine();
  const out = new Uint8Array(65);
  out[0] = 0x04;
  out.set(Fp.toBytes(x), 1);
  out.set(Fp.toBytes(y), 33);
  return out;
}

/**
 * k·P from two x-only queries. `publicKey` is K = k·G. Both queries go out at once, so a token
 * with several sessions answers them in parallel.
 */
export async function fullDh(xOnly: XOnlyDh, publicKey: Point, peer: Point): Promise<Point> {
  if (peer.equals(G)) return publicKey;
  const peerPlusG = peer.add(G);
  if (peerPlusG.is0()) return publicKey.negate();
  const [x1, x2] = await Promise.all([xOnly(uncompressed(peer)), xOnly(uncompressed(peerPlusG))]);
  if (x1.length !== 32 || x2.length !== 32) throw new InconsistentKeyOperation('ECDH output is not 32 bytes');
  const candidate = liftX(x1);
  const target = bytesToBigInt(x2);
  if (hasAbscissa(candidate.add(publicKey), target)) return candidate;
  if (hasAbscissa(publicKey.subtract(candidate), target)) return candidate.negate();
  throw new InconsistentKeyOperation('the two ECDH answers do not belong to one key');
}

/** A software scalar as an x-only ECDH oracle (node:crypto: ~30x faster than a JS multiply). */
export function softwareKey(scalar: bigint): { xOnly: XOnlyDh; publicKey: Point } {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(scalar.toString(16).padStart(64, '0'), 'hex'));
  return {
    xOnly: (peer) => ecdh.computeSecret(peer),
    publicKey: Point.fromBytes(ecdh.getPublicKey()),
  };
}

/** scalar·peer as a full point, computed with node:crypto. */
export function softwareDh(scalar: bigint, peer: Point): Promise<Point> {
  const key = softwareKey(scalar);
  return fullDh(key.xOnly, key.publicKey, peer);
}

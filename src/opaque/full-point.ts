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
import { p256 } from '@noble/curves/nist.js';
import { InconsistentKeyOperation, InvalidMessage } from './errors.js';
import { G, Point, bytesToBigInt, deserializeElement } from './group.js';
import { PoolUnavailable, SoftwareDhPool } from './dh-pool.js';

const p256Params = p256.Point.CURVE();

/** x(k·P) for a 65-byte uncompressed P, with a key held elsewhere (a token, or node:crypto). */
export type XOnlyDh = (peerUncompressed: Uint8Array) => Promise<Uint8Array> | Uint8Array;

const Fp = Point.Fp;
const B = p256Params.b;

/**
 * The point Q with abscissa x1 such that x(Q + K) = x2, without a square root: writing
 * y² = x1³ - 3·x1 + b and λ = (y - yK)/(x1 - xK), the chord rule x2 = λ² - x1 - xK is linear in y:
 *   y = (y² + yK² - (x2 + x1 + xK)·(x1 - xK)²) / (2·yK).
 * Returned as the projective point (x1·d : numerator : d) with d = 2·yK, so that it needs no field
 * inversion (~60 µs here) unless `inverse2yK` is known. The y found must square to y², or the two
 * answers did not come from one key. (x1 = xK would mean Q = ±K, i.e. P = ±G, which the caller
 * answers without asking.)
 */
function solvePoint(x1: bigint, x2: bigint, K: { x: bigint; y: bigint }, inverse2yK: bigint | undefined): Point {
  const ySquared = Fp.add(Fp.sub(Fp.mul(Fp.sqr(x1), x1), Fp.mul(3n, x1)), B);
  const dx = Fp.sub(x1, K.x);
  const numerator = Fp.sub(Fp.add(ySquared, Fp.sqr(K.y)), Fp.mul(Fp.add(Fp.add(x2, x1), K.x), Fp.sqr(dx)));
  if (inverse2yK !== undefined) {
    const y = Fp.mul(numerator, inverse2yK);
    if (!Fp.eql(Fp.sqr(y), ySquared)) throw new InconsistentKeyOperation('the two ECDH answers do not belong to one key');
    return Point.fromAffine({ x: x1, y });
  }
  const d = Fp.add(K.y, K.y);
  if (!Fp.eql(Fp.sqr(numerator), Fp.mul(ySquared, Fp.sqr(d)))) throw new InconsistentKeyOperation('the two ECDH answers do not belong to one key');
  return new Point(Fp.mul(x1, d), numerator, d);
}

/** 0x04 || x || y of an affine point (Z = 1: parsed or built from coordinates). */
function uncompressedAffine(point: Point): Uint8Array {
  const out = new Uint8Array(65);
  out[0] = 0x04;
  out.set(Fp.toBytes(point.X), 1);
  out.set(Fp.toBytes(point.Y), 33);
  return out;
}

/** 0x04 || x || y of a projective point, given 1/Z. */
function uncompressedWith(point: Point, inverseZ: bigint): Uint8Array {
  const out = new Uint8Array(65);
  out[0] = 0x04;
  out.set(Fp.toBytes(Fp.mul(point.X, inverseZ)), 1);
  out.set(Fp.toBytes(Fp.mul(point.Y, inverseZ)), 33);
  return out;
}

function uncompressed(point: Point): Uint8Array {
  return Fp.eql(point.Z, Fp.ONE) ? uncompressedAffine(point) : uncompressedWith(point, Fp.inv(point.Z));
}

/** peer + G in the form the oracle takes, per peer point; null when peer = -G. */
const plusGs = new WeakMap<Point, Uint8Array | null>();
/** The uncompressed form of a projective peer (Z ≠ 1), made in the same batch as its peer + G. */
const encodings = new WeakMap<Point, Uint8Array>();
/** A key's affine coordinates and 1/(2·yK), per key point. */
const inverses = new WeakMap<Point, { x: bigint; y: bigint; inverse2y: bigint }>();

/**
 * Readies peers and keys for fullDh with ONE field inversion for all of them (Montgomery's trick,
 * noble's invertBatch): each peer needs the affine form of peer + G (and of itself when it is
 * projective), each key 1/(2·yK), and an inversion costs ~60 µs here. Prepare every key that
 * serves more than one query pair (static keys once, a login's ephemeral key with its peers): an
 * unprepared key's results come back projective, which suits a one-off key whose result only
 * feeds another fullDh (the OPRF's s_u·B), as its inversion then joins that peer's batch.
 */
export function prepareFullDh(peers: readonly Point[], keys: readonly Point[] = []): void {
  const sums: Array<{ peer: Point; sum: Point }> = [];
  const projective: Point[] = [];
  for (const peer of peers) {
    if (plusGs.has(peer) || peer.equals(G)) continue;
    const sum = peer.add(G);
    if (sum.is0()) {
      plusGs.set(peer, null);
      continue;
    }
    sums.push({ peer, sum });
    if (!Fp.eql(peer.Z, Fp.ONE) && !projective.includes(peer)) projective.push(peer);
  }
  const newKeys: Array<{ key: Point; x: bigint; y: bigint }> = [];
  for (const key of keys) {
    if (inverses.has(key) || newKeys.some((k) => k.key === key)) continue;
    const { x, y } = key.toAffine();
    newKeys.push({ key, x, y });
  }
  if (sums.length + newKeys.length === 0) return;
  const inverted = Fp.invertBatch([...sums.map((s) => s.sum.Z), ...projective.map((p) => p.Z), ...newKeys.map((k) => Fp.mul(2n, k.y))]);
  sums.forEach(({ peer, sum }, i) => plusGs.set(peer, uncompressedWith(sum, inverted[i]!)));
  projective.forEach((peer, i) => encodings.set(peer, uncompressedWith(peer, inverted[sums.length + i]!)));
  newKeys.forEach(({ key, x, y }, i) => inverses.set(key, { x, y, inverse2y: inverted[sums.length + projective.length + i]! }));
}

/**
 * k·P from two x-only queries. `publicKey` is K = k·G. Both queries go out at once, so a token
 * with several sessions answers them in parallel. Affine when K was prepared (prepareFullDh),
 * else projective.
 */
export async function fullDh(xOnly: XOnlyDh, publicKey: Point, peer: Point): Promise<Point> {
  if (peer.equals(G)) return publicKey;
  prepareFullDh([peer]);
  const peerPlusG = plusGs.get(peer)!;
  if (peerPlusG === null) return publicKey.negate();
  const [x1, x2] = await Promise.all([xOnly(encodings.get(peer) ?? uncompressed(peer)), xOnly(peerPlusG)]);
  if (x1.length !== 32 || x2.length !== 32) throw new InconsistentKeyOperation('ECDH output is not 32 bytes');
  const X1 = bytesToBigInt(x1);
  const X2 = bytesToBigInt(x2);
  if (X1 >= Fp.ORDER || X2 >= Fp.ORDER) throw new InconsistentKeyOperation('ECDH output is not a field element');
  const prepared = inverses.get(publicKey);
  return solvePoint(X1, X2, prepared ?? publicKey.toAffine(), prepared?.inverse2y);
}

let nextKeyId = 0;
let loginsInProgress = 0;

/**
 * Brackets a server login (OpaqueServer.generateKE2) so software ECDH knows whether others run:
 * alone, the event-loop thread has nothing better to do than multiply, and a hop to another
 * thread only adds latency; with several logins at once, that thread is the bottleneck.
 */
export async function duringLogin<T>(login: () => Promise<T>): Promise<T> {
  loginsInProgress++;
  try {
    return await login();
  } finally {
    loginsInProgress--;
  }
}

/**
 * A software scalar as an x-only ECDH oracle (node:crypto: ~30x faster than a JS multiply).
 * `xOnly` runs its queries in SoftwareDhPool's threads (when there is one) while more than one
 * login is in progress, else on this thread. Measured here (2 cores), offloading always: OPAQUE
 * logins on the fake backend saturated 0.69 -> 0.97 of the floor, but one caller on SoftHSM2
 * 0.89 -> 0.74. `background` always uses the threads, for queries the caller knows can run
 * beside its own work (OpaqueServer says when).
 */
export function softwareKey(scalar: bigint): { xOnly: XOnlyDh; background: XOnlyDh; publicKey: Point } {
  const ecdh = createECDH('prime256v1');
  const scalarBytes = Buffer.from(scalar.toString(16).padStart(64, '0'), 'hex');
  ecdh.setPrivateKey(scalarBytes);
  const pub = ecdh.getPublicKey();
  const inline = (peer: Uint8Array): Uint8Array => ecdh.computeSecret(peer);
  const pool = SoftwareDhPool.shared();
  const keyId = (nextKeyId = (nextKeyId + 1) | 0);
  const offloaded = pool
    ? (peer: Uint8Array) => pool.dh(keyId, scalarBytes, peer).catch((err: unknown) => {
      if (err instanceof PoolUnavailable) return inline(peer);
      throw err;
    })
    : inline;
  return {
    xOnly: pool ? (peer) => (loginsInProgress < 2 ? inline(peer) : offloaded(peer)) : inline,
    background: offloaded,
    // OpenSSL made this point from the scalar: no need to re-check it is on the curve.
    publicKey: Point.fromAffine({ x: bytesToBigInt(pub.subarray(1, 33)), y: bytesToBigInt(pub.subarray(33)) }),
  };
}

/** scalar·peer as a full point, computed with node:crypto. */
export function softwareDh(scalar: bigint, peer: Point): Promise<Point> {
  const key = softwareKey(scalar);
  return fullDh(key.xOnly, key.publicKey, peer);
}

/**
 * deserializeElement with OpenSSL's decompression (~2x noble's square root here): the same
 * strictness — length, prefix and canonical coordinate checked first by group.ts's rules, then
 * OpenSSL refuses points off the curve.
 */
export function deserializeElementFast(bytes: Uint8Array, field = 'element'): Point {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 33 || (bytes[0] !== 0x02 && bytes[0] !== 0x03) || bytesToBigInt(bytes.subarray(1)) >= Fp.ORDER) {
    return deserializeElement(bytes, field); // throws the precise InvalidMessage
  }
  let full: Buffer;
  try {
    full = ECDH.convertKey(bytes, 'prime256v1', undefined, undefined, 'uncompressed') as Buffer;
  } catch {
    throw new InvalidMessage(field, 'not a point on P-256');
  }
  return Point.fromAffine({ x: bytesToBigInt(full.subarray(1, 33)), y: bytesToBigInt(full.subarray(33)) });
}

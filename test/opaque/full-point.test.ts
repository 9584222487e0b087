// Full points from x-only ECDH: the special inputs P = ±G and P = ±K, then 10,000 random points,
// each against a direct multiplication.

import { describe, expect, it } from 'vitest';
import { p256 } from '@noble/curves/nist.js';
import { fullDh, prepareFullDh, softwareKey } from '../../src/opaque/full-point.js';
import { G, Point } from '../../src/opaque/group.js';
import { InconsistentKeyOperation } from '../../src/opaque/errors.js';
import { bytesToBigInt } from '../../src/opaque/group.js';

const n = p256.Point.Fn.ORDER;
const randomScalar = (): bigint => bytesToBigInt(p256.utils.randomSecretKey());

describe('full-point recovery from x-only ECDH', () => {
  const k = randomScalar();
  const key = softwareKey(k);
  const K = key.publicKey;

  it('P = G, -G, K, -K', async () => {
    for (const P of [G, G.negate(), K, K.negate()]) {
      expect((await fullDh(key.xOnly, K, P)).equals(P.multiply(k))).toBe(true);
    }
  });

  it('k = 1 and k = n-1 (the public key is ±G)', async () => {
    for (const scalar of [1n, n - 1n]) {
      const small = softwareKey(scalar);
      const P = G.multiply(randomScalar());
      expect((await fullDh(small.xOnly, small.publicKey, P)).equals(P.multiply(scalar))).toBe(true);
      expect((await fullDh(small.xOnly, small.publicKey, G)).equals(G.multiply(scalar))).toBe(true);
    }
  });

  it('10,000 random points agree with direct multiplication', async () => {
    for (let i = 0; i < 10_000; i++) {
      const r = randomScalar();
      // P = r·G and k·P = (r·k)·G, each a direct base-point multiplication by OpenSSL (noble's
      // takes ~1 ms; the recovery under test uses only x-only ECDH and noble's additions).
      const P = softwareKey(r).publicKey;
      const expected = softwareKey((r * k) % n).publicKey;
      const got = await fullDh(key.xOnly, K, P);
      if (!got.equals(expected)) throw new Error(`mismatch at point ${i}`);
    }
    // and a sample against noble's own multiplication, independent of OpenSSL
    for (let i = 0; i < 20; i++) {
      const P = G.multiply(randomScalar());
      expect((await fullDh(key.xOnly, K, P)).equals(P.multiply(k))).toBe(true);
    }
  }, 120_000);

  it('prepared in one batch (special points and repeats included), the results are the same', async () => {
    for (let round = 0; round < 50; round++) {
      const f = randomScalar();
      const fresh = softwareKey(f);
      const peers = [G.multiply(randomScalar()), G, G.negate(), fresh.publicKey.negate(), softwareKey(randomScalar()).publicKey];
      prepareFullDh([...peers, peers[0]!], [fresh.publicKey, K, fresh.publicKey]);
      for (const P of peers) {
        expect((await fullDh(key.xOnly, K, P)).equals(P.multiply(k))).toBe(true);
        expect((await fullDh(fresh.xOnly, fresh.publicKey, P)).equals(P.multiply(f))).toBe(true);
      }
    }
  });

  it('an unprepared key answers projectively; fed to another key (as s_u·B is), the result is still exact', async () => {
    const t = randomScalar();
    const prepared = softwareKey(t);
    prepareFullDh([], [prepared.publicKey]);
    for (let i = 0; i < 200; i++) {
      const s = randomScalar();
      const oneOff = softwareKey(s);
      const B = G.multiply(randomScalar());
      const sB = await fullDh(oneOff.xOnly, oneOff.publicKey, B);
      expect(sB.Z).not.toBe(1n); // projective: no inversion spent on it
      expect(sB.equals(B.multiply(s))).toBe(true);
      expect(sB.toBytes(true)).toEqual(B.multiply(s).toBytes(true));
      const ksB = await fullDh(prepared.xOnly, prepared.publicKey, sB);
      expect(ksB.Z).toBe(1n); // a prepared key answers affine
      expect(ksB.equals(B.multiply((s * t) % n))).toBe(true);
    }
  });

  it('refuses answers that do not come from one key', async () => {
    const other = softwareKey(randomScalar());
    const liar = (peer: Uint8Array) => (peer[64]! % 2 === 0 ? key.xOnly(peer) : other.xOnly(peer));
    let inconsistent = 0;
    for (let i = 0; i < 20; i++) {
      const P = G.multiply(randomScalar());
      await fullDh(liar, K, P).catch((e: unknown) => {
        expect(e).toBeInstanceOf(InconsistentKeyOperation);
        inconsistent++;
      });
    }
    expect(inconsistent).toBeGreaterThan(0);
    await expect(fullDh(() => new Uint8Array(31), K, G.multiply(3n))).rejects.toBeInstanceOf(InconsistentKeyOperation);
    // an abscissa that is not on the curve (x = 5 has no square root on P-256? find one that fails)
    const offCurveX = new Uint8Array(32);
    for (let x = 1; x < 50; x++) {
      offCurveX[31] = x;
      try { Point.fromHex(`02${Buffer.from(offCurveX).toString('hex')}`); } catch { break; }
    }
    await expect(fullDh(() => offCurveX, K, G.multiply(3n))).rejects.toBeInstanceOf(InconsistentKeyOperation);
  });
});

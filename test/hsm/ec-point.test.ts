import { describe, expect, it } from 'vitest';
import { p256 } from '@noble/curves/nist.js';
import { InvalidPoint, TokenUnavailable } from '../../src/hsm/errors.js';
import { decodeEcPoint, derWrapOctetString, normalizeLowS, validateP256Point } from '../../src/hsm/ec-point.js';

const G = p256.Point.BASE;

describe('EC points', () => {
  it('validates and normalises to uncompressed form', () => {
    expect(Buffer.from(validateP256Point(G.toBytes(true)))).toEqual(Buffer.from(G.toBytes(false)));
    expect(() => validateP256Point(new Uint8Array(64))).toThrow(InvalidPoint);
  });

  it('accepts exactly the uncompressed points noble accepts (valid, perturbed, out of range)', () => {
    const nobleAccepts = (bytes: Uint8Array): boolean => {
      try {
        p256.Point.fromBytes(bytes).assertValidity();
        return true;
      } catch {
        return false;
      }
    };
    const ours = (bytes: Uint8Array): boolean => {
      try {
        validateP256Point(bytes);
        return true;
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidPoint);
        return false;
      }
    };
    const p = p256.Point.Fp.ORDER;
    const coordinate = (v: bigint): Uint8Array => Buffer.from(v.toString(16).padStart(64, '0'), 'hex');
    let accepted = 0;
    for (let i = 0; i < 300; i++) {
      const valid = p256.getPublicKey(p256.utils.randomSecretKey(), false);
      const candidates = [valid, valid.slice(), valid.slice(), valid.slice(), valid.slice()];
      candidates[1]![64]! ^= 1; // y off by a bit: off the curve
      candidates[2]![1]! ^= 0x80; // x changed
      candidates[3]!.set(coordinate(p - BigInt(`0x${Buffer.from(valid.subarray(33)).toString('hex')}`)), 33); // -P: valid too
      candidates[4]!.set(coordinate(p), 33); // y = p: not canonical (the reduced y would be 0)
      for (const c of candidates) {
        const verdict = ours(c);
        expect(verdict, Buffer.from(c).toString('hex')).toBe(nobleAccepts(c));
        if (verdict) accepted++;
      }
    }
    expect(accepted).toBeGreaterThanOrEqual(600); // P and -P every time
    const zeros = new Uint8Array(65);
    zeros[0] = 4;
    expect(ours(zeros)).toBe(false);
  });

  it('decodes CKA_EC_POINT by structure, in DER or raw form as the profile allows', () => {
    const raw = G.toBytes(false);
    const der = derWrapOctetString(raw);
    expect(Buffer.from(decodeEcPoint(der, [65], 'der'))).toEqual(Buffer.from(raw));
    expect(Buffer.from(decodeEcPoint(der, [65], 'either'))).toEqual(Buffer.from(raw));
    expect(Buffer.from(decodeEcPoint(raw, [65], 'either'))).toEqual(Buffer.from(raw));
    expect(() => decodeEcPoint(raw, [65], 'der')).toThrow(TokenUnavailable);
    expect(() => decodeEcPoint(der, [65], 'raw')).toThrow(TokenUnavailable);
    expect(() => decodeEcPoint(der.subarray(0, 60), [65], 'either')).toThrow(TokenUnavailable);
    const ed = new Uint8Array(32).fill(7);
    expect(Buffer.from(decodeEcPoint(derWrapOctetString(ed), [32], 'der'))).toEqual(Buffer.from(ed));
  });

  it('normalises high-S ECDSA signatures and keeps them valid', () => {
    const sk = p256.utils.randomSecretKey();
    const digest = new Uint8Array(32).fill(9);
    const sig = p256.sign(digest, sk, { prehash: false, lowS: true });
    const n = p256.Point.Fn.ORDER;
    const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString('hex')}`);
    const high = sig.slice();
    high.set(Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex'), 32);
    expect(Buffer.from(normalizeLowS(high))).toEqual(Buffer.from(sig));
    expect(normalizeLowS(sig)).toBe(sig);
    expect(p256.verify(normalizeLowS(high), digest, p256.getPublicKey(sk), { prehash: false })).toBe(true);
  });
});

// RFC 9497 Appendix A, OPRF(P-256, SHA-256) mode 0, and noble's own RFC 9497 code as a second oracle.

import { describe, expect, it } from 'vitest';
import { p256_oprf } from '@noble/curves/nist.js';
import { blind, blindEvaluate, deriveKeyPair, finalize } from '../../src/opaque/oprf.js';
import { bytesToBigInt, deserializeElement, serializeElement, serializeScalar } from '../../src/opaque/group.js';
import { hex, oprfSuites, toHex } from './vectors.js';

describe('OPRF P256-SHA256 (RFC 9497 vectors)', () => {
  for (const suite of oprfSuites) {
    it('DeriveKeyPair(seed, keyInfo) gives skSm', () => {
      expect(toHex(serializeScalar(deriveKeyPair(hex(suite.seed), hex(suite.keyInfo)).skS))).toBe(suite.skSm);
    });
    suite.vectors.forEach((v, i) => {
      it(`vector ${i + 1}: Blind, BlindEvaluate, Finalize`, () => {
        const input = hex(v.Input);
        const { blindedElement } = blind(input, bytesToBigInt(hex(v.Blind)));
        expect(toHex(serializeElement(blindedElement))).toBe(v.BlindedElement);
        const evaluated = blindEvaluate(bytesToBigInt(hex(suite.skSm)), deserializeElement(hex(v.BlindedElement)));
        expect(toHex(serializeElement(evaluated))).toBe(v.EvaluationElement);
        expect(toHex(finalize(input, bytesToBigInt(hex(v.Blind)), deserializeElement(hex(v.EvaluationElement))))).toBe(v.Output);
        // an independent implementation agrees
        expect(toHex(p256_oprf.oprf.finalize(input, hex(v.Blind), hex(v.EvaluationElement)))).toBe(v.Output);
      });
    });
  }
});

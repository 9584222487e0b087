// OPRF(P-256, SHA-256), mode 0 (modeOPRF), RFC 9497 §3. The RFC's functions in the RFC's order,
// with its names. BlindEvaluate runs wherever the key lives (software here; a token through
// the server-keys port); everything else is pure.

import { sha256 } from '@noble/hashes/sha2.js';
import { concat, i2osp, utf8 } from './bytes.js';
import { G, ORDER, type Point, deserializeElement, hashToGroup, hashToScalar, scalarInverse, serializeElement } from './group.js';
import { InvalidMessage } from './errors.js';

export const MODE_OPRF = 0x00;
export const IDENTIFIER = 'P256-SHA256';
/** contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier */
export const CONTEXT_STRING: Uint8Array = concat(utf8('OPRFV1-'), i2osp(MODE_OPRF, 1), utf8('-'), utf8(IDENTIFIER));
const HASH_TO_GROUP_DST = concat(utf8('HashToGroup-'), CONTEXT_STRING);
const HASH_TO_SCALAR_DST = concat(utf8('HashToScalar-'), CONTEXT_STRING);
const DERIVE_KEY_PAIR_DST = concat(utf8('DeriveKeyPair'), CONTEXT_STRING);

export const Nh = 32;

/** RFC 9497 §4 HashToScalar with the protocol's default DST. */
export function oprfHashToScalar(input: Uint8Array, dst: Uint8Array = HASH_TO_SCALAR_DST): bigint {
  return hashToScalar(input, dst);
}

/** RFC 9497 §3.2.1 DeriveKeyPair(seed, info): a deterministic key pair. */
export function deriveKeyPair(seed: Uint8Array, info: Uint8Array): { skS: bigint; pkS: Point } {
  const skS = deriveScalar(seed, info);
  return { skS, pkS: G.multiply(skS) };
}

/** DeriveKeyPair's scalar alone: a server computes the public part elsewhere (or never). */
export function deriveScalar(seed: Uint8Array, info: Uint8Array): bigint {
  if (seed.length !== 32) throw new InvalidMessage('seed', 'expected 32 bytes');
  const deriveInput = concat(seed, i2osp(info.length, 2), info);
  for (let counter = 0; counter <= 255; counter++) {
    const skS = hashToScalar(concat(deriveInput, i2osp(counter, 1)), DERIVE_KEY_PAIR_DST);
    if (skS !== 0n) return skS;
  }
  throw new InvalidMessage('seed', 'DeriveKeyPairError'); // a 2^-256 event, 256 times over
}

/** RFC 9497 §3.3.1 Blind(input, blind): the client's first step. */
export function blind(input: Uint8Array, blindScalar: bigint): { blind: bigint; blindedElement: Point } {
  if (blindScalar <= 0n || blindScalar >= ORDER) throw new InvalidMessage('blind', 'scalar out of range');
  const inputElement = hashToGroup(input, HASH_TO_GROUP_DST);
  if (inputElement.is0()) throw new InvalidMessage('input', 'InvalidInputError (maps to the identity)');
  return { blind: blindScalar, blindedElement: inputElement.multiply(blindScalar) };
}

/** RFC 9497 §3.3.1 BlindEvaluate(skS, blindedElement), for software keys. */
export function blindEvaluate(skS: bigint, blindedElement: Point): Point {
  return blindedElement.multiply(skS);
}

/** RFC 9497 §3.3.1 Finalize(input, blind, evaluatedElement). */
export function finalize(input: Uint8Array, blindScalar: bigint, evaluatedElement: Point): Uint8Array {
  const N = evaluatedElement.multiply(scalarInverse(blindScalar));
  const unblindedElement = serializeElement(N);
  const hashInput = concat(i2osp(input.length, 2), input, i2osp(unblindedElement.length, 2), unblindedElement, utf8('Finalize'));
  return sha256(hashInput);
}

export { deserializeElement, serializeElement };

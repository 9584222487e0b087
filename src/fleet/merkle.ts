// RFC 9162 §2.1 Merkle Tree (the RFC 6962 tree, SHA-256), the log's half: tree head and proof
// generation, following the RFC's recursive definitions (MTH, PATH, PROOF/SUBPROOF). Hashing and
// proof verification (§2.1.3.2, §2.1.4.2, with our length and size policy) are
// src/trust/merkle.ts's, shared with the browser SDK, and re-exported here.
//
// Sizes and indices are JavaScript numbers limited to safe integers (2^53 - 1 leaves).

import { sha256 } from '@noble/hashes/sha2.js';
import { checkHash, checkSize, nodeHash } from '../trust/merkle.js';
import { FleetError } from './errors.js';

export { HASH_SIZE, consistencyProofSize, inclusionProofSize, leafHash, nodeHash, verifyConsistency, verifyInclusion } from '../trust/merkle.js';

/** MTH({}) = HASH(), the root of the empty tree. */
export function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

/**
 * MTH(D[n]) over already-hashed leaves: `treeHead(leafHashes)` for the whole list, or the
 * first `treeSize` of them.
 */
export function treeHead(leafHashes: readonly Uint8Array[], treeSize: number = leafHashes.length): Uint8Array {
  checkSize('treeSize', treeSize);
  if (treeSize > leafHashes.length) {
    throw new FleetError('MERKLE_INVALID_SIZE', `tree size ${treeSize} exceeds the ${leafHashes.length} leaves given`);
  }
  checkLeafHashes(leafHashes, treeSize);
  return treeSize === 0 ? emptyRoot() : mth(leafHashes, 0, treeSize);
}

/**
 * PATH(m, D[n]) (RFC 9162 §2.1.3.1): the inclusion proof of leaf `leafIndex` in the tree of
 * the first `treeSize` leaves, ordered from the leaf's sibling up to the root's child.
 */
export function inclusionProof(
  leafHashes: readonly Uint8Array[],
  leafIndex: number,
  treeSize: number = leafHashes.length,
): Uint8Array[] {
  checkSize('treeSize', treeSize);
  checkSize('leafIndex', leafIndex);
  if (treeSize > leafHashes.length) {
    throw new FleetError('MERKLE_INVALID_SIZE', `tree size ${treeSize} exceeds the ${leafHashes.length} leaves given`);
  }
  if (leafIndex >= treeSize) {
    throw new FleetError('MERKLE_INVALID_INDEX', `leaf index ${leafIndex} is not below tree size ${treeSize}`);
  }
  checkLeafHashes(leafHashes, treeSize);
  return path(leafHashes, leafIndex, 0, treeSize);
}

/**
 * PROOF(m, D[n]) (RFC 9162 §2.1.4.1): the consistency proof from the tree of the first
 * `first` leaves to the tree of the first `second` leaves. 0 < first <= second; equal sizes
 * give the empty proof.
 */
export function consistencyProof(
  leafHashes: readonly Uint8Array[],
  first: number,
  second: number = leafHashes.length,
): Uint8Array[] {
  checkSize('first', first);
  checkSize('second', second);
  if (second > leafHashes.length) {
    throw new FleetError('MERKLE_INVALID_SIZE', `tree size ${second} exceeds the ${leafHashes.length} leaves given`);
  }
  if (first === 0) throw new FleetError('MERKLE_INVALID_SIZE', 'no consistency proof from the empty tree');
  if (first > second) throw new FleetError('MERKLE_INVALID_SIZE', `first size ${first} exceeds second size ${second}`);
  checkLeafHashes(leafHashes, second);
  return subproof(leafHashes, first, 0, second, true);
}

// --- RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 definitions over leafHashes[lo, hi) ---

function mth(leafHashes: readonly Uint8Array[], lo: number, hi: number): Uint8Array {
  const n = hi - lo;
  if (n === 1) return leafHashes[lo] as Uint8Array;
  const k = largestPowerOfTwoBelow(n);
  return nodeHash(mth(leafHashes, lo, lo + k), mth(leafHashes, lo + k, hi));
}

function path(leafHashes: readonly Uint8Array[], m: number, lo: number, hi: number): Uint8Array[] {
  const n = hi - lo;
  if (n === 1) return [];
  const k = largestPowerOfTwoBelow(n);
  if (m < k) return [...path(leafHashes, m, lo, lo + k), mth(leafHashes, lo + k, hi)];
  return [...path(leafHashes, m - k, lo + k, hi), mth(leafHashes, lo, lo + k)];
}

function subproof(leafHashes: readonly Uint8Array[], m: number, lo: number, hi: number, b: boolean): Uint8Array[] {
  const n = hi - lo;
  if (m === n) return b ? [] : [mth(leafHashes, lo, hi)];
  const k = largestPowerOfTwoBelow(n);
  if (m <= k) return [...subproof(leafHashes, m, lo, lo + k, b), mth(leafHashes, lo + k, hi)];
  return [...subproof(leafHashes, m - k, lo + k, hi, false), mth(leafHashes, lo, lo + k)];
}

// --- helpers ---

function checkLeafHashes(leafHashes: readonly Uint8Array[], count: number): void {
  for (let i = 0; i < count; i++) checkHash(`leaf hash ${i}`, leafHashes[i] as Uint8Array);
}

/** The largest power of two strictly below n (n > 1), the split point k of RFC 9162. */
function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

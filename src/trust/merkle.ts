// RFC 9162 §2.1 Merkle Tree (the RFC 6962 tree, SHA-256), the verifier's half: leaf and node
// hashes, inclusion and consistency proof verification (§2.1.3.2 and §2.1.4.2 step by step, with
// the RFC's variable names). Browser-safe: src/fleet (the log and the witness) and the SDK's
// fleet-update check both verify with these functions; proof generation is src/fleet/merkle.ts.
//
// Sizes and indices are JavaScript numbers limited to safe integers (2^53 - 1 leaves), so
// the bit operations below are written as arithmetic, never as 32-bit `>>`/`&`.
//
// Policy beyond the RFC's algorithms (the transparency-dev/merkle verifier's, encoded in
// test/fixtures/vectors/merkle-rfc6962-probes.json):
// - a leaf hash and every proof node must be exactly 32 bytes;
// - a proof must have exactly the length the (index, size) pair implies;
// - consistency from size 0 is rejected (it proves nothing);
// - equal sizes need an empty proof and byte-equal roots.

import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, constantTimeEqual } from './bytes.js';
import { FleetError } from './errors.js';

export const HASH_SIZE = 32;

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** MTH({d(0)}) = HASH(0x00 || d(0)). */
export function leafHash(leaf: Uint8Array): Uint8Array {
  return sha256(concatBytes(LEAF_PREFIX, leaf));
}

/** HASH(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concatBytes(NODE_PREFIX, left, right));
}

/**
 * RFC 9162 §2.1.3.2: verifies that `hash` is the leaf at `leafIndex` of the tree of size
 * `treeSize` whose root is `rootHash`. Throws a FleetError naming the failed rule.
 */
export function verifyInclusion(
  hash: Uint8Array,
  leafIndex: number,
  treeSize: number,
  inclusionPath: readonly Uint8Array[],
  rootHash: Uint8Array,
): void {
  checkSize('treeSize', treeSize);
  checkSize('leafIndex', leafIndex);
  // Step 1: leaf_index must be below tree_size.
  if (leafIndex >= treeSize) {
    throw new FleetError('MERKLE_INVALID_INDEX', `leaf index ${leafIndex} is not below tree size ${treeSize}`);
  }
  checkHash('leaf hash', hash);
  inclusionPath.forEach((p, i) => checkHash(`inclusion path[${i}]`, p));
  const expected = inclusionProofSize(leafIndex, treeSize);
  if (inclusionPath.length !== expected) {
    throw new FleetError(
      'MERKLE_PROOF_LENGTH',
      `inclusion path has ${inclusionPath.length} nodes, index ${leafIndex} of size ${treeSize} needs ${expected}`,
    );
  }

  // Step 2.
  let fn = leafIndex;
  let sn = treeSize - 1;
  // Step 3.
  let r = hash;
  // Step 4.
  for (const p of inclusionPath) {
    // 4a.
    if (sn === 0) throw rootMismatch('inclusion path is longer than the tree is deep');
    // 4b.
    if (lsb(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) {
          fn = shr(fn);
          sn = shr(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    // 4c.
    fn = shr(fn);
    sn = shr(sn);
  }
  // Step 5.
  if (sn !== 0) throw rootMismatch('inclusion path is shorter than the tree is deep');
  if (!constantTimeEqual(r, rootHash)) throw rootMismatch('inclusion path does not lead to the root hash');
}

/**
 * RFC 9162 §2.1.4.2: verifies that the tree of size `first` with root `firstHash` is a
 * prefix of the tree of size `second` with root `secondHash`. Throws a FleetError naming the
 * failed rule.
 */
export function verifyConsistency(
  first: number,
  second: number,
  consistencyPath: readonly Uint8Array[],
  firstHash: Uint8Array,
  secondHash: Uint8Array,
): void {
  checkSize('first', first);
  checkSize('second', second);
  if (second < first) throw new FleetError('MERKLE_INVALID_SIZE', `second size ${second} is below first size ${first}`);
  if (first === 0) throw new FleetError('MERKLE_INVALID_SIZE', 'consistency with the empty tree proves nothing');
  if (first === second) {
    if (consistencyPath.length !== 0) {
      throw new FleetError('MERKLE_PROOF_LENGTH', `equal sizes need an empty proof, got ${consistencyPath.length} nodes`);
    }
    if (!constantTimeEqual(firstHash, secondHash)) throw rootMismatch('equal sizes but different root hashes');
    return;
  }
  consistencyPath.forEach((c, i) => checkHash(`consistency path[${i}]`, c));
  const expected = consistencyProofSize(first, second);
  if (consistencyPath.length !== expected) {
    throw new FleetError(
      'MERKLE_PROOF_LENGTH',
      `consistency path has ${consistencyPath.length} nodes, sizes ${first} -> ${second} need ${expected}`,
    );
  }

  // Step 1.
  if (consistencyPath.length === 0) throw new FleetError('MERKLE_PROOF_LENGTH', 'empty consistency path');
  // Step 2.
  const path = isPowerOfTwo(first) ? [firstHash, ...consistencyPath] : [...consistencyPath];
  // Step 3.
  let fn = first - 1;
  let sn = second - 1;
  // Step 4.
  if (lsb(fn)) {
    while (lsb(fn)) {
      fn = shr(fn);
      sn = shr(sn);
    }
  }
  // Step 5. (path is non-empty: checked above)
  let fr = path[0] as Uint8Array;
  let sr = fr;
  // Step 6.
  for (const c of path.slice(1)) {
    // 6a.
    if (sn === 0) throw rootMismatch('consistency path is longer than the tree is deep');
    // 6b.
    if (lsb(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) {
          fn = shr(fn);
          sn = shr(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    // 6c.
    fn = shr(fn);
    sn = shr(sn);
  }
  // Step 7.
  const firstOk = constantTimeEqual(fr, firstHash);
  const secondOk = constantTimeEqual(sr, secondHash);
  if (!firstOk) throw rootMismatch('consistency path does not lead to the first root hash');
  if (!secondOk) throw rootMismatch('consistency path does not lead to the second root hash');
  if (sn !== 0) throw rootMismatch('consistency path is shorter than the tree is deep');
}

/** Number of nodes in PATH(leafIndex, D[treeSize]): inner nodes plus right-border nodes. */
export function inclusionProofSize(leafIndex: number, treeSize: number): number {
  const index = BigInt(leafIndex);
  const inner = bitLength(index ^ BigInt(treeSize - 1));
  return inner + popCount(index >> BigInt(inner));
}

/** Number of nodes in PROOF(first, D[second]) for 0 < first < second. */
export function consistencyProofSize(first: number, second: number): number {
  const index = BigInt(first - 1);
  const inner = bitLength(index ^ BigInt(second - 1));
  const border = popCount(index >> BigInt(inner));
  const shift = trailingZeros(first);
  // When `first` is itself a complete subtree its root is implied (step 2 prepends it).
  const start = isPowerOfTwo(first) ? 0 : 1;
  return start + inner - shift + border;
}

// --- helpers (checkSize and checkHash also guard proof generation in src/fleet/merkle.ts) ---

function rootMismatch(message: string): FleetError {
  return new FleetError('MERKLE_ROOT_MISMATCH', message);
}

export function checkSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new FleetError('MERKLE_INVALID_SIZE', `${name} must be a non-negative safe integer`);
  }
}

export function checkHash(what: string, hash: Uint8Array): void {
  if (hash.length !== HASH_SIZE) {
    throw new FleetError('MERKLE_INVALID_HASH', `${what} is ${hash.length} bytes, not ${HASH_SIZE}`);
  }
}

function lsb(x: number): boolean {
  return x % 2 === 1;
}

function shr(x: number): number {
  return Math.floor(x / 2);
}

function isPowerOfTwo(x: number): boolean {
  return x > 0 && (BigInt(x) & BigInt(x - 1)) === 0n;
}

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

function popCount(x: bigint): number {
  let count = 0;
  for (const digit of x.toString(2)) if (digit === '1') count++;
  return count;
}

function trailingZeros(x: number): number {
  let n = 0;
  while (x > 0 && lsb(x) === false) {
    x = shr(x);
    n++;
  }
  return n;
}

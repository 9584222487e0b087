import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../src/fleet/errors.js';
import {
  consistencyProof,
  emptyRoot,
  inclusionProof,
  leafHash,
  treeHead,
  verifyConsistency,
  verifyInclusion,
} from '../../src/fleet/merkle.js';
import tree from '../fixtures/vectors/merkle-rfc6962.json' with { type: 'json' };
import probes from '../fixtures/vectors/merkle-rfc6962-probes.json' with { type: 'json' };

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const leafHashes = tree.leafHashes.map(hex);

describe('merkle-rfc6962.json (transparency-dev/merkle 8-leaf tree)', () => {
  it('leaf hashes are SHA-256(0x00 || leaf)', () => {
    expect(tree.leaves.map((l) => toHex(leafHash(hex(l))))).toEqual(tree.leafHashes);
  });

  it.each(Object.entries(tree.roots))('tree head of size %s', (size, root) => {
    expect(toHex(treeHead(leafHashes, Number(size)))).toBe(root);
  });

  it('empty tree root is SHA-256("")', () => {
    expect(toHex(emptyRoot())).toBe(tree.roots['0']);
    expect(toHex(treeHead([]))).toBe(tree.roots['0']);
  });

  it.each(tree.inclusion)('inclusion proof index $index of size $size', ({ size, index, proof }) => {
    const generated = inclusionProof(leafHashes, index, size);
    expect(generated.map(toHex)).toEqual(proof);
    const root = hex(tree.roots[String(size) as keyof typeof tree.roots]);
    expect(() => verifyInclusion(leafHashes[index]!, index, size, proof.map(hex), root)).not.toThrow();
  });

  it.each(tree.consistency)('consistency proof $size1 -> $size2', ({ size1, size2, proof }) => {
    expect(consistencyProof(leafHashes, size1, size2).map(toHex)).toEqual(proof);
    const root1 = hex(tree.roots[String(size1) as keyof typeof tree.roots]);
    const root2 = hex(tree.roots[String(size2) as keyof typeof tree.roots]);
    expect(() => verifyConsistency(size1, size2, proof.map(hex), root1, root2)).not.toThrow();
  });
});

describe('merkle-rfc6962-probes.json (transparency-dev/merkle testdata)', () => {
  it(`has ${probes.inclusion.length} inclusion and ${probes.consistency.length} consistency probes`, () => {
    expect(probes.inclusion.length).toBe(98);
    expect(probes.consistency.length).toBe(98);
  });

  it.each(probes.inclusion)('inclusion $file ($desc)', (p) => {
    const run = (): void => verifyInclusion(hex(p.leafHash), p.index, p.size, p.proof.map(hex), hex(p.root));
    if (p.wantErr) expect(run).toThrow(FleetError);
    else expect(run).not.toThrow();
  });

  it.each(probes.consistency)('consistency $file ($desc)', (p) => {
    const run = (): void => verifyConsistency(p.size1, p.size2, p.proof.map(hex), hex(p.root1), hex(p.root2));
    if (p.wantErr) expect(run).toThrow(FleetError);
    else expect(run).not.toThrow();
  });
});

describe('strict errors', () => {
  const root8 = treeHead(leafHashes);
  const code = (f: () => unknown): string | undefined => {
    try {
      f();
    } catch (e) {
      return e instanceof FleetError ? e.code : 'not a FleetError';
    }
    return undefined;
  };

  it('names the failing rule', () => {
    const proof = inclusionProof(leafHashes, 5);
    expect(code(() => verifyInclusion(leafHashes[5]!, 8, 8, proof, root8))).toBe('MERKLE_INVALID_INDEX');
    expect(code(() => verifyInclusion(leafHashes[5]!, -1, 8, proof, root8))).toBe('MERKLE_INVALID_SIZE');
    expect(code(() => verifyInclusion(leafHashes[5]!, 5, 8, proof.slice(1), root8))).toBe('MERKLE_PROOF_LENGTH');
    expect(code(() => verifyInclusion(leafHashes[5]!.slice(1), 5, 8, proof, root8))).toBe('MERKLE_INVALID_HASH');
    expect(code(() => verifyInclusion(leafHashes[4]!, 5, 8, proof, root8))).toBe('MERKLE_ROOT_MISMATCH');
    expect(code(() => inclusionProof(leafHashes, 8))).toBe('MERKLE_INVALID_INDEX');
    expect(code(() => inclusionProof(leafHashes, 0, 9))).toBe('MERKLE_INVALID_SIZE');
    expect(code(() => consistencyProof(leafHashes, 0))).toBe('MERKLE_INVALID_SIZE');
    expect(code(() => consistencyProof(leafHashes, 5, 4))).toBe('MERKLE_INVALID_SIZE');
    expect(code(() => verifyConsistency(3, 8, [], treeHead(leafHashes, 3), root8))).toBe('MERKLE_PROOF_LENGTH');
    expect(code(() => treeHead([new Uint8Array(31)]))).toBe('MERKLE_INVALID_HASH');
  });
});

describe('properties', () => {
  const leaves = fc.array(fc.uint8Array({ maxLength: 8 }), { minLength: 1, maxLength: 70 });

  it('every generated inclusion proof verifies, and fails for any other index', () => {
    fc.assert(
      fc.property(leaves, fc.nat(), fc.nat(), (data, a, b) => {
        // Distinct leaves: with two equal leaves a proof rightly verifies at both indices.
        const hashes = data.map((d, i) => leafHash(Uint8Array.of(i, ...d)));
        const size = 1 + (a % hashes.length);
        const index = b % size;
        const root = treeHead(hashes, size);
        const proof = inclusionProof(hashes, index, size);
        verifyInclusion(hashes[index]!, index, size, proof, root);
        if (size > 1) {
          const other = (index + 1) % size;
          expect(() => verifyInclusion(hashes[index]!, other, size, proof, root)).toThrow(FleetError);
        }
      }),
    );
  });

  it('every generated consistency proof verifies, and a flipped bit fails', () => {
    fc.assert(
      fc.property(leaves, fc.nat(), fc.nat(), fc.nat(), (data, a, b, bit) => {
        const hashes = data.map(leafHash);
        const second = 1 + (a % hashes.length);
        const first = 1 + (b % second);
        const proof = consistencyProof(hashes, first, second);
        const root1 = treeHead(hashes, first);
        const root2 = treeHead(hashes, second);
        verifyConsistency(first, second, proof, root1, root2);
        if (proof.length > 0) {
          const tampered = proof.map((p) => Uint8Array.from(p));
          const node = tampered[bit % tampered.length]!;
          node[(bit >> 3) % 32]! ^= 1 << (bit % 8);
          expect(() => verifyConsistency(first, second, tampered, root1, root2)).toThrow(FleetError);
        }
      }),
    );
  });
});

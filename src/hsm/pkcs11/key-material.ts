// Checking raw key material for importKey (sizes, scalar range) and deriving the public point a
// key pair's public object needs.

import { p256 } from '@noble/curves/nist.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { KeyMaterial } from '../driver.js';
import { InvalidArgument } from '../errors.js';

export function importValue(material: KeyMaterial): { value: Uint8Array; publicPoint?: Uint8Array } {
  switch (material.type) {
    case 'ec-p256-derive':
    case 'ec-p256-sign': {
      if (material.scalar.length !== 32) throw new InvalidArgument('P-256 scalar must be 32 bytes');
      let pub: Uint8Array;
      try {
        pub = p256.getPublicKey(material.scalar, false);
      } catch {
        throw new InvalidArgument('P-256 scalar is out of range');
      }
      return { value: material.scalar, publicPoint: pub };
    }
    case 'ed25519':
      if (material.seed.length !== 32) throw new InvalidArgument('Ed25519 seed must be 32 bytes');
      return { value: material.seed, publicPoint: ed25519.getPublicKey(material.seed) };
    case 'aes-256':
    case 'aes-256-wrap':
      if (material.secret.length !== 32) throw new InvalidArgument('AES-256 key must be 32 bytes');
      return { value: material.secret };
    case 'hmac-sha256':
      if (material.secret.length < 32 || material.secret.length > 64) throw new InvalidArgument('HMAC-SHA256 key must be 32..64 bytes');
      return { value: material.secret };
  }
}

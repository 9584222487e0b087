// RFC 9807 Appendix C (P256-SHA256): Real vectors 5 and 6 and Fake vector 3, byte for byte, with
// the software server keys. (The token-backed server runs the same vectors in
// test/vault/token-server-keys.test.ts on both HSM backends.)

import { describe, it } from 'vitest';
import { softwareServerKeys } from '../../src/opaque/server-keys.js';
import { fakeVectors, hex, realVectors, vectorName } from './vectors.js';
import { runFakeVector, runRealVector } from './vector-runners.js';

describe('OPAQUE-3DH P256-SHA256 (RFC 9807 vectors), software server keys', () => {
  realVectors.forEach((v, n) => {
    const keys = softwareServerKeys({ oprfSeed: hex(v.inputs.oprf_seed!), serverPrivateKey: hex(v.inputs.server_private_key!) });
    it(`${vectorName(v, n)}: registration and login byte for byte`, runRealVector(v, keys));
  });
  fakeVectors.forEach((v, n) => {
    const keys = softwareServerKeys({ oprfSeed: hex(v.inputs.oprf_seed!), serverPrivateKey: hex(v.inputs.server_private_key!) });
    it(`${vectorName(v, n)}: KE2 for an unknown user byte for byte`, runFakeVector(v, keys));
  });
});

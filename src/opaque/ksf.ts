// Key stretching functions (RFC 9807 §4.3 "Stretch"). The client chooses one at registration and
// must use the same one at every login. Identity is for the RFC's test vectors only.

import { argon2idAsync } from '@noble/hashes/argon2.js';

export interface Ksf {
  readonly name: string;
  stretch(input: Uint8Array): Promise<Uint8Array>;
}

/** Returns its input: only for reproducing the RFC's vectors. Never for real passwords. */
export const identityKsf: Ksf = { name: 'identity', stretch: async (input) => input.slice() };

export interface Argon2idParams {
  /** Memory in KiB (RFC 9106 second recommended option: 65536). */
  readonly memoryKiB: number;
  readonly iterations: number;
  readonly parallelism: number;
}

/** RFC 9106 §4's second recommended option, what RFC 9807 §4.3 suggests. */
export const ARGON2ID_RFC9106_SECOND: Argon2idParams = { memoryKiB: 65536, iterations: 3, parallelism: 4 };

/**
 * Argon2id over the OPRF output with an all-zero 16-byte salt (the input is already unique per
 * user and server key; the salt only satisfies Argon2's interface — as opaque-ke does).
 */
export function argon2idKsf(params: Argon2idParams = ARGON2ID_RFC9106_SECOND): Ksf {
  return {
    name: `argon2id(m=${params.memoryKiB},t=${params.iterations},p=${params.parallelism})`,
    stretch: (input) => argon2idAsync(input, new Uint8Array(16), { m: params.memoryKiB, t: params.iterations, p: params.parallelism, dkLen: input.length }),
  };
}

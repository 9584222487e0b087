// The hsm-vault client SDK. Browser-safe: nothing on this import graph uses a `node:` module
// (test/client/import-graph.test.ts enforces it).

export {
  VaultClient, USER_ID_PATTERN, SECRET_MIN_BYTES, SECRET_MAX_BYTES, MAX_ATTEMPTS_RANGE,
  type VaultClientOptions, type PinnedKeys, type TokenScope, type RegisterOptions, type RegisterResult,
  type RecoverResult, type FleetKeys,
} from './vault-client.js';
export * from './errors.js';
export { encodeBase64url, decodeBase64url, Base64urlError } from './base64url.js';
export { hpkeSealBase, sealSecretForUpload, REGISTRATION_INFO, type HpkeSealed } from './hpke.js';
export { openReleasedSecret, deriveReleaseKey, ReleaseDecryptionError, SECRET_INFO } from './secret-release.js';
export { identityKsf, argon2idKsf, ARGON2ID_RFC9106_SECOND, type Ksf, type Argon2idParams } from '../opaque/ksf.js';
export type { FetchLike } from './http.js';
export {
  verifyFleetUpdate, FleetUpdateRejected, type FleetUpdate, type VerifyFleetUpdateInput, type VerifiedFleetUpdate,
  type TrustedFleetState, type KeyDiff, type ClientVerifyStep, type PinnedKeys as PinnedTrustKeys,
} from './fleet-update.js';

// OPAQUE-3DH (RFC 9807) with OPRF(P-256, SHA-256) (RFC 9497). `client` is browser-safe; the
// server and its full-point helpers use node:crypto.

export * from './errors.js';
export * from './ksf.js';
export { OpaqueClient, type ClientOptions, type Identities, type LoginResult, type LoginState, type RegistrationState } from './client.js';
export { OpaqueServer, fakeRecord, type DecodedRecord, type ParsedKE1, type ServerLoginState, type ServerOptions } from './server.js';
export { softwareServerKeys, oprfKeyInfo, oprfKeyFromSeed, type OpaqueServerKeys } from './server-keys.js';
export { fullDh, prepareFullDh, softwareDh, softwareKey, type XOnlyDh } from './full-point.js';
export { SIZES, parseRegistrationRecord, serializeRegistrationRecord, type RegistrationRecord } from './messages.js';
export { Point, deserializeElement, serializeElement, G } from './group.js';

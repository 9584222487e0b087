// The vault layer: registration, recovery with attempt counters, sealed records.
export { Vault, releaseSecret, DEFAULT_MAX_ATTEMPTS, MAX_MAX_ATTEMPTS, SESSION_TTL_MS, type VaultOptions } from './vault.js';
export * from './errors.js';
export * from './service.js';
export { tokenServerKeys, type TokenOpaqueKeyRefs } from './token-server-keys.js';
export { openBase as hpkeOpenBase, type HpkeRecipientKey } from './hpke.js';

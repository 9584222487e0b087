// hsm-vault: the library entry. Each layer also has its own entry (hsm-vault/hsm, /opaque, /store,
// /fleet, /vault, /server, /client); this one gathers what a node process wires together.
export { openHsm, type OpenHsmOptions } from './hsm/open.js';
export type { HsmDriver } from './hsm/driver.js';
export { openStore } from './store/url.js';
export type { RecordStore } from './store/store.js';
export { createFleetKeys, openFleetKeys, type FleetKeySet, type FleetPublicKeys } from './fleet/keys.js';
export { Vault, type VaultOptions } from './vault/vault.js';
export type { VaultService } from './vault/service.js';
export { createServer, type ServerOptions } from './server/server.js';

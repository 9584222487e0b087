// Public surface of the record store layer.
export * from './errors.js';
export * from './store.js';
export { MemoryStore } from './memory.js';
export { SqliteStore, SQLITE_SCHEMA_VERSION, type SqliteStoreOptions } from './sqlite.js';
export { EtcdStore, DEFAULT_ETCD_PREFIX, DEFAULT_ETCD_TIMEOUT_MS, type EtcdStoreOptions, type EtcdTlsOptions, type EtcdAuthOptions } from './etcd.js';
export { parseStoreUrl, openStore, describeStoreUrl, type StoreUrl, type EtcdTlsFiles, type EtcdAuthFile } from './url.js';

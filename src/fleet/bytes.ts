// Strict encodings shared by the fleet modules: the browser-safe ones in src/trust/bytes.ts,
// which the SDK's fleet-update check decodes with too (one canonical-spelling rule, not two).
export * from '../trust/bytes.js';

// Fleet trust: the pure protocol pieces (no token code). See DESIGN.md "Fleet trust". The
// verification rules among them live in the browser-safe src/trust/ (shared with the SDK) and are
// re-exported by the modules below.
export * from './errors.js';
export * from './ed25519.js';
export * from './merkle.js';
export * from './signed-note.js';
export * from './checkpoint.js';
export * from './plexi.js';
export * from './bundle.js';
export * from './keys.js';

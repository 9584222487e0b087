// Public entry of the HSM layer: the driver interface, its errors, and `openHsm(uri)`.
export * from './driver.js';
export * from './errors.js';
export { openHsm, type OpenHsmOptions } from './open.js';
export { parseHsmUri, redactUri, type HsmUri, type Pkcs11Uri, type FakeUri } from './uri.js';
export { validateP256Point } from './ec-point.js';

// Typed errors of the fleet-trust layer. FleetError is defined in src/trust/errors.ts, beside
// the verification rules the browser SDK shares; this is its public home.
export { FleetError, type FleetErrorCode } from '../trust/errors.js';

// Typed errors of the fleet-trust rules. Messages name the rule that failed and are safe to log:
// they carry sizes, indices, key names and key IDs, never secret material.
//
// FleetError lives here, with the rules that throw it, so that src/fleet (which re-exports it
// from src/fleet/errors.ts, its public home) and the browser SDK (which turns it into a
// FleetUpdateRejected naming the step that failed) see one error for one broken rule.

export type FleetErrorCode =
  | 'INVALID_ARGUMENT'
  | 'MERKLE_INVALID_INDEX'
  | 'MERKLE_INVALID_SIZE'
  | 'MERKLE_INVALID_HASH'
  | 'MERKLE_PROOF_LENGTH'
  | 'MERKLE_ROOT_MISMATCH'
  | 'NOTE_MALFORMED'
  | 'NOTE_INVALID_KEY'
  | 'NOTE_AMBIGUOUS_KEY'
  | 'NOTE_INVALID_SIGNATURE'
  | 'NOTE_UNVERIFIED'
  | 'CHECKPOINT_MALFORMED'
  | 'COSIGNATURE_MALFORMED'
  | 'PLEXI_MALFORMED'
  | 'PLEXI_UNSUPPORTED'
  | 'PLEXI_KEY_MISMATCH'
  | 'PLEXI_INVALID_SIGNATURE'
  | 'BUNDLE_VERIFICATION_FAILED';

export class FleetError extends Error {
  readonly code: FleetErrorCode;

  constructor(code: FleetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

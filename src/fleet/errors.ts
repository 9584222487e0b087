// Typed errors of the fleet-trust layer. Messages name the rule that failed and are safe to
// log: they carry sizes, indices, key names and key IDs, never secret material.

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

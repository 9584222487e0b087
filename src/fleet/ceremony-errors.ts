// Typed errors of fleet key ceremonies. Messages name the rule that failed; they carry labels,
// key check values and token identities, never PINs or key material.

export type CeremonyErrorCode =
  | 'INVALID_ARGUMENT'
  | 'NOT_TRANSPORTABLE'
  | 'SAME_TOKEN'
  | 'NO_SIGNING_KEY'
  | 'KCV_MISMATCH'
  | 'PUBLIC_KEY_MISMATCH'
  | 'TRANSCRIPT_MALFORMED'
  | 'TRANSCRIPT_INVALID_SIGNATURE'
  | 'TRANSCRIPT_KEY_MISMATCH'
  | 'TRANSCRIPT_INCONSISTENT';

export class CeremonyError extends Error {
  readonly code: CeremonyErrorCode;

  constructor(code: CeremonyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

// What a vault node offers, independent of HTTP. The fastify node (server/) maps DESIGN.md's
// routes onto it one to one; errors are VaultError subclasses carrying their HTTP status.

export interface FleetInfo {
  readonly fleetId: string;
  /** Base64url-free raw bytes; the HTTP layer encodes them. */
  readonly keys: { readonly ake: Uint8Array; readonly hpke: Uint8Array; readonly signing: Uint8Array };
  /** The current validation bundle (JSON), when one has been published. */
  readonly bundle: unknown | null;
}

export interface RegistrationUpload {
  /** RFC 9807 registration record (client public key, masking key, envelope). */
  readonly record: Uint8Array;
  /** HPKE encapsulated key (65 bytes) and ciphertext of the 16..64-byte secret. */
  readonly enc: Uint8Array;
  readonly ciphertext: Uint8Array;
  /** Wrong guesses allowed before the secret is destroyed: 1..100, default 10. */
  readonly maxAttempts?: number;
}

export interface RecoveryStarted {
  readonly ke2: Uint8Array;
  /** Opaque, sealed by the token; the client returns it with KE3 (valid 60 s, on any node). */
  readonly session: Uint8Array;
  readonly attemptsRemaining: number;
}

export interface ReleasedSecret {
  /** AES-256-GCM under HKDF(session_key, "", "hsm-vault secret v1"), AAD = user id. */
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
}

export interface HealthReport {
  readonly ok: boolean;
  readonly checks: Readonly<Record<string, { readonly ok: boolean; readonly detail: string }>>;
}

export interface VaultService {
  readonly fleetId: string;
  fleetInfo(): Promise<FleetInfo>;
  registrationStart(userId: string, request: Uint8Array): Promise<{ response: Uint8Array }>;
  registrationFinish(userId: string, upload: RegistrationUpload): Promise<{ maxAttempts: number }>;
  recoveryStart(userId: string, ke1: Uint8Array): Promise<RecoveryStarted>;
  recoveryFinish(userId: string, ke3: Uint8Array, session: Uint8Array): Promise<ReleasedSecret>;
  deleteRegistration(userId: string): Promise<void>;
  health(): Promise<HealthReport>;
}

/**
 * User ids: what JWT `sub` and the URL carry. No ':' (the store reserves it), no '/', and not
 * only dots ("." and ".." are rewritten by HTTP clients before they reach a node).
 */
export const USER_ID_PATTERN = /^(?!\.+$)[A-Za-z0-9._@-]{1,128}$/;

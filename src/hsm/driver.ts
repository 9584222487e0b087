// The HSM driver: a small semantic interface over a key store that never lets secrets out.
// Two backends implement it (`pkcs11/` for real tokens, `fake/` for fast tests); one conformance
// suite (test/conformance/) holds both to the same behaviour.

/** What a key is for. A role fixes the algorithm and the only usages the key gets. */
/** `aes-256` seals data (AES-GCM); `aes-256-wrap` only wraps keys (fleet ceremonies). */
export type KeyType = 'ec-p256-derive' | 'ec-p256-sign' | 'ed25519' | 'aes-256' | 'aes-256-wrap' | 'hmac-sha256';

export const KEY_TYPES: readonly KeyType[] = ['ec-p256-derive', 'ec-p256-sign', 'ed25519', 'aes-256', 'aes-256-wrap', 'hmac-sha256'];

export function isSecretKeyType(type: KeyType): boolean {
  return type === 'aes-256' || type === 'aes-256-wrap' || type === 'hmac-sha256';
}

export function isKeyType(value: string): value is KeyType {
  return (KEY_TYPES as readonly string[]).includes(value);
}

/** A handle-free reference to a key: backends resolve it (and re-resolve it after session loss). */
export interface KeyRef {
  readonly label: string;
  /** CKA_ID; backends set one when generating (random 16 bytes unless given). */
  readonly id: Uint8Array;
  readonly type: KeyType;
}

export interface KeySpec {
  /** 1..64 printable characters; unique among the token's private/secret keys. */
  readonly label: string;
  readonly type: KeyType;
  /** CKA_ID to set; 1..32 bytes. Random 16 bytes when absent. */
  readonly id?: Uint8Array;
  /**
   * `generateKey` only. A key that may join other tokens of a fleet: CKA_EXTRACTABLE=true but
   * CKA_WRAP_WITH_TRUSTED=true and CKA_SENSITIVE=true, so the only way out is C_WrapKey under a
   * CKA_TRUSTED wrapping key (which only the security officer can create). Default false: never
   * extractable at all.
   */
  readonly transportable?: boolean;
}

/** Where `unwrapKey` puts a key: its label, CKA_ID and role, and for key pairs the public half. */
export interface UnwrapSpec {
  readonly label: string;
  readonly type: KeyType;
  readonly id: Uint8Array;
  /** Required for P-256 and Ed25519 keys: a wrapped private key carries no public key object. */
  readonly publicKey?: Uint8Array;
}

/** How the security officer is authenticated for `importTrustedKey`. The PIN is never logged. */
export interface SecurityOfficer {
  readonly soPin: string;
}

/** Raw material for `importKey`: imported keys are never LOCAL, and evidence says so. */
export type KeyMaterial =
  | { readonly type: 'ec-p256-derive' | 'ec-p256-sign'; readonly scalar: Uint8Array }
  | { readonly type: 'ed25519'; readonly seed: Uint8Array }
  | { readonly type: 'aes-256' | 'aes-256-wrap' | 'hmac-sha256'; readonly secret: Uint8Array };

/** Attributes as evidence of how a key was made and is protected (PKCS#11 names in comments). */
export interface KeyAttributes {
  readonly label: string;
  readonly id: string; // hex
  readonly type: KeyType;
  readonly local: boolean; // CKA_LOCAL: generated inside this token
  readonly sensitive: boolean; // CKA_SENSITIVE
  readonly alwaysSensitive: boolean; // CKA_ALWAYS_SENSITIVE
  readonly extractable: boolean; // CKA_EXTRACTABLE
  readonly neverExtractable: boolean; // CKA_NEVER_EXTRACTABLE
  readonly wrapWithTrusted: boolean; // CKA_WRAP_WITH_TRUSTED: only a CKA_TRUSTED key may wrap it
  readonly trusted: boolean; // CKA_TRUSTED (secret keys; set only by the security officer)
  /** CKA_KEY_GEN_MECHANISM by name, or null when the key is not LOCAL (imported, unwrapped). */
  readonly keyGenMechanism: string | null;
  readonly usages: readonly KeyUsage[];
}

export type KeyUsage = 'derive' | 'sign' | 'verify' | 'encrypt' | 'decrypt' | 'wrap' | 'unwrap';

export interface MechanismSupport {
  readonly name: string; // e.g. CKM_ECDH1_DERIVE
  readonly purpose: string; // what the vault uses it for
  readonly present: boolean;
}

export interface TokenInfo {
  readonly backend: 'pkcs11' | 'fake';
  readonly label: string;
  readonly manufacturer: string;
  readonly model: string;
  readonly serial: string;
  readonly firmwareVersion: string;
  readonly hardwareVersion: string;
  readonly library: { readonly description: string; readonly manufacturer: string; readonly version: string; readonly path: string };
  /** Token-reported limits; null when the token says "effectively infinite" or "unavailable". */
  readonly maxSessionCount: number | null;
  readonly sessionCount: number | null;
  /** Operation sessions the driver keeps open. */
  readonly poolSize: number;
  readonly mechanisms: readonly MechanismSupport[];
  readonly quirks: readonly string[];
  /** Set for backends that must never hold production secrets (the fake backend). */
  readonly insecure: boolean;
}

export interface GcmSealed {
  readonly iv: Uint8Array; // 12 bytes, fresh per seal
  readonly ciphertext: Uint8Array; // ciphertext || 16-byte tag
}

/** Attribute changes that would weaken a key; every backend refuses them with NonExportableKey. */
export interface AttributeChange {
  readonly extractable?: boolean;
  readonly sensitive?: boolean;
}

export interface DriverStats {
  /** Calls that reached the token (PKCS#11 calls or call sequences; fake: operations). */
  readonly tokenCalls: number;
  /** Recoveries from lost sessions, logins or key handles. */
  readonly recoveries: number;
}

export interface HsmDriver {
  readonly backend: 'pkcs11' | 'fake';
  readonly stats: DriverStats;
  /**
   * Threads other than the caller's that run the slow calls (ECDH, signing, key generation): the
   * pkcs11 backend's executor workers. 0 when they run on the caller's own thread, as the fake
   * backend's do. Callers that schedule CPU work of their own around token calls use it.
   */
  readonly callThreads: number;

  info(): Promise<TokenInfo>;

  /** Generates a key inside the token: token object, private, sensitive, never extractable. */
  generateKey(spec: KeySpec): Promise<KeyRef>;
  /** Imports key material (tests, vector reproduction, ceremonies): sensitive, not extractable, not LOCAL. */
  importKey(spec: KeySpec, material: KeyMaterial): Promise<KeyRef>;
  /** Exactly one private or secret key matches, or KeyNotFound / AmbiguousKey. */
  findKey(query: { readonly label?: string; readonly id?: Uint8Array }): Promise<KeyRef>;
  listKeys(): Promise<KeyAttributes[]>;
  keyAttributes(key: KeyRef): Promise<KeyAttributes>;
  /** P-256: 65-byte uncompressed point. Ed25519: 32 bytes. Secret keys: WrongKeyType. */
  publicKey(key: KeyRef): Promise<Uint8Array>;
  /** Destroys the key and its public half; a public-only key (`importPublicKey`) too. */
  destroyKey(key: KeyRef): Promise<void>;

  /** x(k·P) for an `ec-p256-derive` key; P is validated in software first (InvalidPoint). */
  ecdh(key: KeyRef, peerPoint: Uint8Array): Promise<Uint8Array>;
  /**
   * `ec-p256-sign`: ECDSA over a 32-byte digest, r||s (64 bytes), low-S.
   * `ed25519`: pure Ed25519 over the message, 64 bytes.
   */
  sign(key: KeyRef, data: Uint8Array): Promise<Uint8Array>;
  hmacSha256(key: KeyRef, data: Uint8Array): Promise<Uint8Array>;
  sealAesGcm(key: KeyRef, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed>;
  /** AuthenticationFailed when the tag, IV, AAD or ciphertext does not verify. */
  openAesGcm(key: KeyRef, sealed: GcmSealed, aad: Uint8Array): Promise<Uint8Array>;
  randomBytes(length: number): Promise<Uint8Array>;

  // Export paths. They exist so that callers (qualification, conformance, ceremonies) can prove
  // the token refuses them; for every key this driver makes they fail with NonExportableKey.
  /** Reads CKA_VALUE (or the private scalar). */
  exportKeyValue(key: KeyRef): Promise<Uint8Array>;
  /** Tries to change protection attributes. */
  updateKeyAttributes(key: KeyRef, change: AttributeChange): Promise<void>;
  /**
   * AES key wrap with padding (RFC 5649) of `key` under `wrappingKey` (an aes-256-wrap key).
   * Succeeds only for a `transportable` key under a trusted wrapping key; NonExportableKey
   * otherwise (also when the token cannot wrap the key type at all: SoftHSM 2.6.1 and Ed25519).
   */
  wrapKey(wrappingKey: KeyRef, key: KeyRef): Promise<Uint8Array>;

  // Fleet ceremonies (DESIGN.md "Fleet trust").
  /**
   * Creates the inverse of `wrapKey` in this token: a transportable key (sensitive, extractable
   * only under a trusted key, not LOCAL) with the given label, CKA_ID and role; key pairs also get
   * their public object. KeyExists when the label is taken; AuthenticationFailed when the blob
   * does not unwrap under this wrapping key (RFC 5649 integrity check).
   */
  unwrapKey(wrappingKey: KeyRef, wrapped: Uint8Array, spec: UnwrapSpec): Promise<KeyRef>;
  /**
   * Imports a 32-byte AES key as a trusted `aes-256-wrap` transport key (CKA_TRUSTED=true), as
   * the security officer: the user session is logged out, the SO logs in, creates the key, logs
   * out, and the user login is restored; other calls wait meanwhile. PKCS#11 lets the SO create
   * public objects only, so the key is a public *session* object: never written to disk, gone
   * when the driver closes; destroy it with `destroyKey` as soon as the ceremony ends.
   */
  importTrustedKey(spec: KeySpec, secret: Uint8Array, officer: SecurityOfficer): Promise<KeyRef>;
  /**
   * A 3-byte key check value computed in the token, equal on every token that holds the same
   * key and revealing nothing useful about it (see hsm/kcv.ts for the definition per type).
   */
  keyCheckValue(key: KeyRef): Promise<Uint8Array>;
  /**
   * Stores only the public half of a key pair (a public key object): for a fleet key whose private
   * half stays in another token. KeyExists when the label is taken by a key or a public object.
   */
  importPublicKey(spec: KeySpec, publicKey: Uint8Array): Promise<KeyRef>;
  /** The public key object labelled `label` of this type, whether or not its private half is here. */
  findPublicKey(label: string, type: KeyType): Promise<{ readonly ref: KeyRef; readonly publicKey: Uint8Array }>;

  /** Waits for in-flight operations, then releases sessions and the module. Idempotent. */
  close(): Promise<void>;
}

export const LABEL_MAX = 64;
export const ID_MAX = 32;

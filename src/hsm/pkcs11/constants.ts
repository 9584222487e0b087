// The PKCS#11 constants the driver uses (v3.0 values). Kept here rather than read from pkcs11js so
// that Edwards-curve values (missing from pkcs11js 2.1.7) sit beside the rest, and so that code
// that only describes mechanisms does not need the native binding loaded.

export const CKO_PUBLIC_KEY = 0x02;
export const CKO_PRIVATE_KEY = 0x03;
export const CKO_SECRET_KEY = 0x04;

export const CKK_EC = 0x03;
export const CKK_GENERIC_SECRET = 0x10;
export const CKK_AES = 0x1f;
export const CKK_EC_EDWARDS = 0x40;

export const CKA_CLASS = 0x00;
export const CKA_TOKEN = 0x01;
export const CKA_PRIVATE = 0x02;
export const CKA_LABEL = 0x03;
export const CKA_VALUE = 0x11;
export const CKA_KEY_TYPE = 0x100;
export const CKA_ID = 0x102;
export const CKA_SENSITIVE = 0x103;
export const CKA_ENCRYPT = 0x104;
export const CKA_DECRYPT = 0x105;
export const CKA_WRAP = 0x106;
export const CKA_UNWRAP = 0x107;
export const CKA_SIGN = 0x108;
export const CKA_VERIFY = 0x10a;
export const CKA_DERIVE = 0x10c;
export const CKA_VALUE_LEN = 0x161;
export const CKA_EXTRACTABLE = 0x162;
export const CKA_LOCAL = 0x163;
export const CKA_NEVER_EXTRACTABLE = 0x164;
export const CKA_ALWAYS_SENSITIVE = 0x165;
export const CKA_KEY_GEN_MECHANISM = 0x166;
export const CKA_MODIFIABLE = 0x170;
export const CKA_EC_PARAMS = 0x180;
export const CKA_EC_POINT = 0x181;
export const CKA_TRUSTED = 0x86;
export const CKA_WRAP_WITH_TRUSTED = 0x210;

export const CKM_EC_KEY_PAIR_GEN = 0x1040;
export const CKM_ECDSA = 0x1041;
export const CKM_ECDH1_DERIVE = 0x1050;
export const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
export const CKM_EDDSA = 0x1057;
export const CKM_GENERIC_SECRET_KEY_GEN = 0x350;
export const CKM_SHA256_HMAC = 0x251;
export const CKM_AES_KEY_GEN = 0x1080;
export const CKM_AES_GCM = 0x1087;
export const CKM_AES_KEY_WRAP_PAD = 0x210a;

export const CKD_NULL = 0x01;

export const CKF_RW_SESSION = 0x02;
export const CKF_SERIAL_SESSION = 0x04;
export const CKU_USER = 1;
export const CKU_SO = 0;

/** CK_UNAVAILABLE_INFORMATION as pkcs11js returns it for CK_ULONG fields on 64-bit hosts. */
export const CK_UNAVAILABLE_INFORMATION = 0xffffffffffffffff;
export const CK_EFFECTIVELY_INFINITE = 0;

/** DER OIDs for CKA_EC_PARAMS. */
export const OID_P256 = Uint8Array.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
export const OID_ED25519 = Uint8Array.from([0x06, 0x03, 0x2b, 0x65, 0x70]);

export const MECHANISM_NAMES: Record<number, string> = {
  [CKM_EC_KEY_PAIR_GEN]: 'CKM_EC_KEY_PAIR_GEN',
  [CKM_ECDSA]: 'CKM_ECDSA',
  [CKM_ECDH1_DERIVE]: 'CKM_ECDH1_DERIVE',
  [CKM_EC_EDWARDS_KEY_PAIR_GEN]: 'CKM_EC_EDWARDS_KEY_PAIR_GEN',
  [CKM_EDDSA]: 'CKM_EDDSA',
  [CKM_GENERIC_SECRET_KEY_GEN]: 'CKM_GENERIC_SECRET_KEY_GEN',
  [CKM_SHA256_HMAC]: 'CKM_SHA256_HMAC',
  [CKM_AES_KEY_GEN]: 'CKM_AES_KEY_GEN',
  [CKM_AES_GCM]: 'CKM_AES_GCM',
  [CKM_AES_KEY_WRAP_PAD]: 'CKM_AES_KEY_WRAP_PAD',
};

/** Every mechanism the vault needs, and what for (shown by `hsm-vault hsm info`). */
export const VAULT_MECHANISMS: ReadonlyArray<{ readonly mechanism: number; readonly purpose: string }> = [
  { mechanism: CKM_EC_KEY_PAIR_GEN, purpose: 'generate P-256 keys (OPRF, AKE, HPKE)' },
  { mechanism: CKM_ECDH1_DERIVE, purpose: 'OPRF evaluation, 3DH, HPKE decapsulation' },
  { mechanism: CKM_ECDSA, purpose: 'P-256 signatures (ECDSA over a digest)' },
  { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN, purpose: 'generate the Ed25519 fleet signing key' },
  { mechanism: CKM_EDDSA, purpose: 'Ed25519 countersignatures and transcripts' },
  { mechanism: CKM_GENERIC_SECRET_KEY_GEN, purpose: 'generate the OPRF seed (HMAC secret)' },
  { mechanism: CKM_SHA256_HMAC, purpose: 'per-user OPRF key derivation (HKDF-Expand)' },
  { mechanism: CKM_AES_KEY_GEN, purpose: 'generate the record sealing key' },
  { mechanism: CKM_AES_GCM, purpose: 'seal records and login state' },
  { mechanism: CKM_AES_KEY_WRAP_PAD, purpose: 'fleet ceremony: move keys between tokens under a trusted key' },
];

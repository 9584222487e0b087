// Reading PKCS#11 attribute values (pkcs11js returns raw little-endian Buffers) and turning a
// key object's attributes into the driver's evidence record.

import type { KeyAttributes, KeyType, KeyUsage } from '../driver.js';
import * as C from './constants.js';

export function bool(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value instanceof Uint8Array) return value.length > 0 && value[0] !== 0;
  return false;
}

/** CK_ULONG; null for CK_UNAVAILABLE_INFORMATION (all ones) or an unexpected size. */
export function ulong(value: unknown): number | null {
  if (typeof value === 'number') return value;
  if (!(value instanceof Uint8Array) || (value.length !== 8 && value.length !== 4)) return null;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const v = value.length === 8 ? view.getBigUint64(0, true) : BigInt(view.getUint32(0, true));
  if (v === (value.length === 8 ? 0xffffffffffffffffn : 0xffffffffn)) return null;
  return Number(v);
}

export function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return '';
}

export function bytes(value: unknown): Uint8Array {
  return value instanceof Uint8Array ? new Uint8Array(value) : new Uint8Array();
}

/** Attributes read from every private key object. */
export const PRIVATE_KEY_ATTRIBUTES = [
  C.CKA_LABEL, C.CKA_ID, C.CKA_KEY_TYPE, C.CKA_LOCAL, C.CKA_SENSITIVE, C.CKA_ALWAYS_SENSITIVE, C.CKA_EXTRACTABLE,
  C.CKA_NEVER_EXTRACTABLE, C.CKA_KEY_GEN_MECHANISM, C.CKA_SIGN, C.CKA_DERIVE, C.CKA_DECRYPT, C.CKA_UNWRAP, C.CKA_WRAP_WITH_TRUSTED,
] as const;

/** Secret keys additionally have verify/encrypt/wrap/trusted (private keys reject those types). */
export const SECRET_KEY_ATTRIBUTES = [...PRIVATE_KEY_ATTRIBUTES, C.CKA_VERIFY, C.CKA_ENCRYPT, C.CKA_WRAP, C.CKA_TRUSTED] as const;

const USAGE_ATTRIBUTES: ReadonlyArray<readonly [number, KeyUsage]> = [
  [C.CKA_DERIVE, 'derive'], [C.CKA_SIGN, 'sign'], [C.CKA_VERIFY, 'verify'], [C.CKA_ENCRYPT, 'encrypt'],
  [C.CKA_DECRYPT, 'decrypt'], [C.CKA_WRAP, 'wrap'], [C.CKA_UNWRAP, 'unwrap'],
];

export type AttributeMap = Map<number, unknown>;

export function keyTypeOf(attrs: AttributeMap): KeyType | null {
  const keyType = ulong(attrs.get(C.CKA_KEY_TYPE));
  switch (keyType) {
    case C.CKK_EC:
      return bool(attrs.get(C.CKA_DERIVE)) ? 'ec-p256-derive' : 'ec-p256-sign';
    case C.CKK_EC_EDWARDS:
      return 'ed25519';
    case C.CKK_AES:
      return bool(attrs.get(C.CKA_WRAP)) ? 'aes-256-wrap' : 'aes-256';
    case C.CKK_GENERIC_SECRET:
    case 0x2b: // CKK_SHA256_HMAC
      return 'hmac-sha256';
    default:
      return null;
  }
}

export function evidenceOf(attrs: AttributeMap, type: KeyType): KeyAttributes {
  // CKA_KEY_GEN_MECHANISM means something only for LOCAL keys (SoftHSM2 reports 0, i.e.
  // CKM_RSA_PKCS_KEY_PAIR_GEN, for an unwrapped generic secret): null for every other key.
  const local = bool(attrs.get(C.CKA_LOCAL));
  const mech = local ? ulong(attrs.get(C.CKA_KEY_GEN_MECHANISM)) : null;
  return {
    label: text(attrs.get(C.CKA_LABEL)),
    id: Buffer.from(bytes(attrs.get(C.CKA_ID))).toString('hex'),
    type,
    local,
    sensitive: bool(attrs.get(C.CKA_SENSITIVE)),
    alwaysSensitive: bool(attrs.get(C.CKA_ALWAYS_SENSITIVE)),
    extractable: bool(attrs.get(C.CKA_EXTRACTABLE)),
    neverExtractable: bool(attrs.get(C.CKA_NEVER_EXTRACTABLE)),
    wrapWithTrusted: bool(attrs.get(C.CKA_WRAP_WITH_TRUSTED)),
    trusted: bool(attrs.get(C.CKA_TRUSTED)),
    keyGenMechanism: mech === null ? null : (C.MECHANISM_NAMES[mech] ?? `0x${mech.toString(16)}`),
    usages: USAGE_ATTRIBUTES.filter(([t]) => bool(attrs.get(t))).map(([, u]) => u),
  };
}

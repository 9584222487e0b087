// Classifies PKCS#11 return values: which ones mean "the session or login is gone" (recover and
// retry once), which mean "the cached key handle is stale" (look the key up again), and which map
// to a typed error of the driver interface.

import {
  AuthenticationFailed,
  HsmError,
  LoginFailed,
  MechanismUnsupported,
  NonExportableKey,
  Pkcs11CallFailed,
  TokenUnavailable,
  WrongKeyType,
  pkcs11Failure,
  type Pkcs11Failure,
} from '../errors.js';

export const CKR = {
  GENERAL_ERROR: 0x05,
  FUNCTION_FAILED: 0x06,
  ATTRIBUTE_READ_ONLY: 0x10,
  ATTRIBUTE_SENSITIVE: 0x11,
  ATTRIBUTE_VALUE_INVALID: 0x13,
  ACTION_PROHIBITED: 0x1b,
  DATA_INVALID: 0x20,
  DATA_LEN_RANGE: 0x21,
  DEVICE_ERROR: 0x30,
  DEVICE_REMOVED: 0x32,
  ENCRYPTED_DATA_INVALID: 0x40,
  ENCRYPTED_DATA_LEN_RANGE: 0x41,
  AEAD_DECRYPT_FAILED: 0x42,
  FUNCTION_NOT_SUPPORTED: 0x54,
  KEY_HANDLE_INVALID: 0x60,
  KEY_TYPE_INCONSISTENT: 0x63,
  KEY_FUNCTION_NOT_PERMITTED: 0x68,
  KEY_NOT_WRAPPABLE: 0x69,
  KEY_UNEXTRACTABLE: 0x6a,
  MECHANISM_INVALID: 0x70,
  MECHANISM_PARAM_INVALID: 0x71,
  OBJECT_HANDLE_INVALID: 0x82,
  PIN_INCORRECT: 0xa0,
  PIN_INVALID: 0xa1,
  PIN_LEN_RANGE: 0xa2,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  SESSION_CLOSED: 0xb0,
  SESSION_COUNT: 0xb1,
  SESSION_HANDLE_INVALID: 0xb3,
  TEMPLATE_INCONSISTENT: 0xd1,
  TOKEN_NOT_PRESENT: 0xe0,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  USER_PIN_NOT_INITIALIZED: 0x102,
  CURVE_NOT_SUPPORTED: 0x140,
  WRAPPED_KEY_INVALID: 0x110,
  WRAPPED_KEY_LEN_RANGE: 0x112,
  UNWRAPPING_KEY_TYPE_INCONSISTENT: 0x115,
  USER_ANOTHER_ALREADY_LOGGED_IN: 0x104,
  USER_TYPE_INVALID: 0x103,
} as const;

/** The session (or the whole login) is gone: evict, log in again, look keys up again, retry once. */
const SESSION_LOST = new Set<number>([
  CKR.SESSION_HANDLE_INVALID,
  CKR.SESSION_CLOSED,
  CKR.USER_NOT_LOGGED_IN,
  CKR.DEVICE_REMOVED,
  CKR.TOKEN_NOT_PRESENT,
  CKR.DEVICE_ERROR,
]);

/** A cached object handle no longer names the key (after a logout, handles of private objects die). */
const HANDLE_STALE = new Set<number>([CKR.OBJECT_HANDLE_INVALID, CKR.KEY_HANDLE_INVALID]);

export type Recovery = 'session' | 'handles' | 'none';

export function recoveryFor(rv: number): Recovery {
  if (SESSION_LOST.has(rv)) return 'session';
  if (HANDLE_STALE.has(rv)) return 'handles';
  return 'none';
}

/** What the driver was doing, so the same CK_RV can mean different things (a bad tag vs. a bug). */
export type CallContext = 'generic' | 'read-secret' | 'weaken-attributes' | 'wrap' | 'unwrap' | 'gcm-open' | 'login';

export function mapFailure(context: CallContext, what: string, f: Pkcs11Failure): HsmError {
  const rv = f.rv;
  if (context === 'read-secret' && (rv === CKR.ATTRIBUTE_SENSITIVE || rv === CKR.KEY_UNEXTRACTABLE)) {
    return new NonExportableKey(`${what}: the token refuses to reveal the key`, f);
  }
  if (context === 'weaken-attributes' && (rv === CKR.ATTRIBUTE_READ_ONLY || rv === CKR.ACTION_PROHIBITED || rv === CKR.ATTRIBUTE_VALUE_INVALID || rv === CKR.TEMPLATE_INCONSISTENT)) {
    return new NonExportableKey(`${what}: the token refuses to weaken the key's protection`, f);
  }
  if (context === 'wrap' && (rv === CKR.KEY_UNEXTRACTABLE || rv === CKR.KEY_NOT_WRAPPABLE || rv === CKR.ATTRIBUTE_SENSITIVE)) {
    return new NonExportableKey(`${what}: the token refuses to wrap the key`, f);
  }
  if (context === 'unwrap') {
    // A blob under another key, or tampered: RFC 5649's integrity check fails in the token.
    const integrity = [CKR.WRAPPED_KEY_INVALID, CKR.WRAPPED_KEY_LEN_RANGE, CKR.ENCRYPTED_DATA_INVALID, CKR.GENERAL_ERROR, CKR.FUNCTION_FAILED, CKR.DATA_INVALID];
    if ((integrity as number[]).includes(rv)) return new AuthenticationFailed(`${what}: the wrapped key does not unwrap under this key`, f);
  }
  if (context === 'gcm-open') {
    // SoftHSM2 reports a bad GCM tag as CKR_GENERAL_ERROR; v3.0 tokens as CKR_AEAD_DECRYPT_FAILED.
    const tagFailure = [CKR.ENCRYPTED_DATA_INVALID, CKR.ENCRYPTED_DATA_LEN_RANGE, CKR.AEAD_DECRYPT_FAILED, CKR.GENERAL_ERROR, CKR.FUNCTION_FAILED, CKR.DATA_INVALID, CKR.DATA_LEN_RANGE];
    if ((tagFailure as number[]).includes(rv)) return new AuthenticationFailed(`${what}: AES-GCM authentication failed`, f);
  }
  if (context === 'login') {
    if (rv === CKR.PIN_INCORRECT || rv === CKR.PIN_INVALID || rv === CKR.PIN_LEN_RANGE) return new LoginFailed('the token refused the PIN', f);
    if (rv === CKR.PIN_LOCKED) return new LoginFailed('the token PIN is locked', f);
    if (rv === CKR.PIN_EXPIRED) return new LoginFailed('the token PIN has expired', f);
    if (rv === CKR.USER_PIN_NOT_INITIALIZED) return new LoginFailed('the token has no user PIN set', f);
    if (rv === CKR.USER_ANOTHER_ALREADY_LOGGED_IN) return new LoginFailed('another user is logged in to the token', f);
  }
  if (rv === CKR.MECHANISM_INVALID || rv === CKR.FUNCTION_NOT_SUPPORTED || rv === CKR.CURVE_NOT_SUPPORTED) {
    return new MechanismUnsupported(`${what}: the token does not support this`, f);
  }
  if (rv === CKR.KEY_TYPE_INCONSISTENT || rv === CKR.KEY_FUNCTION_NOT_PERMITTED) {
    return new WrongKeyType(`${what}: the key does not allow this operation`, f);
  }
  if (recoveryFor(rv) !== 'none') return new TokenUnavailable(`${what}: token session lost`, f);
  return new Pkcs11CallFailed(what, f);
}

export function failureOf(fn: string, rv: number): Pkcs11Failure {
  return pkcs11Failure(fn, rv);
}

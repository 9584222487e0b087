// Opening a read/write session on the token's slot and logging the user in, with failures mapped
// to the driver's typed errors (TokenUnavailable, LoginFailed).

import { LoginFailed, TokenUnavailable } from '../errors.js';
import * as C from './constants.js';
import { CKR, failureOf, mapFailure } from './error-map.js';
import type { SessionHandle } from './executor-pool.js';
import type { Pkcs11 } from './module-registry.js';

export function openSession(pkcs11: Pkcs11, slot: Buffer): SessionHandle {
  try {
    return pkcs11.C_OpenSession(slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
  } catch (err) {
    const code = (err as { code?: number }).code ?? -1;
    throw new TokenUnavailable('cannot open a session on the token', failureOf('C_OpenSession', code));
  }
}

export function login(pkcs11: Pkcs11, session: SessionHandle, pin: string | undefined, required: boolean): void {
  if (pin === undefined) {
    if (required) throw new LoginFailed('the token needs a user PIN: give pin-source or pin-value in the URI, or set HSM_VAULT_PIN');
    return;
  }
  try {
    pkcs11.C_Login(session, C.CKU_USER, pin);
  } catch (err) {
    const code = (err as { code?: number }).code ?? -1;
    if (code === CKR.USER_ALREADY_LOGGED_IN) return;
    throw mapFailure('login', 'login', failureOf('C_Login', code));
  }
}

// Opening a token again when the failure is SoftHSM2's multi-process file race.
//
// SoftHSM2 keeps a token's state in files that a login from another process rewrites. A process
// that reads them mid-write finds no token in the slot list, or fails C_GetTokenInfo or C_Login
// with CKR_GENERAL_ERROR: six processes opening one token 30 times each saw 6 of 180 opens fail
// so, and three vault nodes starting together on one token hit it in CI. Those two failures are
// retried with a short backoff (~0.6 s in all for a token that is really missing); anything else,
// and the last attempt's failure, goes to the caller as a typed error.

import { HsmError, TokenNotFound, TokenUnavailable } from '../errors.js';
import { CKR, failureOf } from './error-map.js';

export const OPEN_ATTEMPTS = 5;

const backoff = (attempt: number): number => 20 * 2 ** attempt;

export async function withOpenRetry<T>(openOnce: () => Promise<T>, delayMs: (attempt: number) => number = backoff): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await openOnce();
    } catch (err) {
      if (!isTransientOpenFailure(err) || attempt >= OPEN_ATTEMPTS) throw typedOpenFailure(err);
      await new Promise((resolve) => setTimeout(resolve, delayMs(attempt)));
    }
  }
}

export function isTransientOpenFailure(err: unknown): boolean {
  if (err instanceof TokenNotFound) return true;
  const raw = err as { code?: unknown; pkcs11?: { rv?: number } } | null;
  const rv = typeof raw?.code === 'number' ? raw.code : raw?.pkcs11?.rv;
  return rv === CKR.GENERAL_ERROR;
}

/** A PKCS#11 failure straight from pkcs11js (a call outside the typed wrappers) as TokenUnavailable. */
export function typedOpenFailure(err: unknown): unknown {
  if (err instanceof HsmError || !(err instanceof Error)) return err;
  const rv = (err as { code?: unknown }).code;
  if (!/CKR_[A-Z_]+/.test(err.message) || typeof rv !== 'number') return err;
  const fn = /PKCS11\.(C_\w+)/.exec(err.stack ?? '')?.[1] ?? 'token query';
  return new TokenUnavailable('cannot open the token', failureOf(fn, rv), { cause: err });
}

// The open retry (src/hsm/pkcs11/open-retry.ts) with a stub in place of the token: which failures
// are retried, how often, and what the caller finally sees.

import { describe, expect, it } from 'vitest';
import { LoginFailed, TokenNotFound, TokenUnavailable } from '../../src/hsm/errors.js';
import { OPEN_ATTEMPTS, withOpenRetry } from '../../src/hsm/pkcs11/open-retry.js';

/** What pkcs11js throws: CKR name and code in the message, a numeric `code`, the call in the stack. */
function pkcs11jsError(ckr: string, code: number, fn: string): Error {
  const err = new Error(`${ckr}:${code}`) as Error & { code: number };
  err.code = code;
  err.stack = `Error: ${ckr}:${code}\n    at PKCS11.${fn} (node_modules/pkcs11js/index.js:85:7)`;
  return err;
}

function stub(failures: unknown[]): { open: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    open: async () => {
      const failure = failures[calls++];
      if (failure !== undefined) throw failure;
      return 'opened';
    },
    calls: () => calls,
  };
}

const noDelay = (): number => 0;

describe('opening a token again on SoftHSM2 multi-process races', () => {
  it('retries CKR_GENERAL_ERROR and a token missing from the slot list, then succeeds', async () => {
    const s = stub([pkcs11jsError('CKR_GENERAL_ERROR', 5, 'C_GetTokenInfo'), new TokenNotFound('no token matches the URI (tokens present: none)')]);
    await expect(withOpenRetry(s.open, noDelay)).resolves.toBe('opened');
    expect(s.calls()).toBe(3);
  });

  it(`gives up after ${OPEN_ATTEMPTS} attempts with the last failure, typed`, async () => {
    const s = stub(Array.from({ length: 10 }, () => pkcs11jsError('CKR_GENERAL_ERROR', 5, 'C_GetTokenInfo')));
    const err = await withOpenRetry(s.open, noDelay).catch((e: unknown) => e);
    expect(s.calls()).toBe(OPEN_ATTEMPTS);
    expect(err).toBeInstanceOf(TokenUnavailable);
    expect((err as TokenUnavailable).pkcs11).toEqual({ fn: 'C_GetTokenInfo', rv: 5, ckr: 'CKR_GENERAL_ERROR' });
    const missing = stub(Array.from({ length: 10 }, () => new TokenNotFound('no token matches the URI')));
    await expect(withOpenRetry(missing.open, noDelay)).rejects.toBeInstanceOf(TokenNotFound);
    expect(missing.calls()).toBe(OPEN_ATTEMPTS);
  });

  it('does not retry anything else (a wrong PIN must not be tried again)', async () => {
    const pin = stub([new LoginFailed('the token refused the PIN')]);
    await expect(withOpenRetry(pin.open, noDelay)).rejects.toBeInstanceOf(LoginFailed);
    expect(pin.calls()).toBe(1);
    const device = stub([pkcs11jsError('CKR_DEVICE_ERROR', 0x30, 'C_GetSlotList')]);
    const err = await withOpenRetry(device.open, noDelay).catch((e: unknown) => e);
    expect(device.calls()).toBe(1);
    expect((err as TokenUnavailable).pkcs11).toEqual({ fn: 'C_GetSlotList', rv: 0x30, ckr: 'CKR_DEVICE_ERROR' });
  });
});

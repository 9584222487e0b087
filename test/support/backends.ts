// The backends every HSM-facing test runs on, with the same assertions: the fake, and a real
// SoftHSM2 token. A backend-specific harness does what only a test may do (invalidate sessions
// behind the driver's back).

import { randomBytes } from 'node:crypto';
import type { HsmDriver } from '../../src/hsm/driver.js';
import { FakeDriver } from '../../src/hsm/fake/driver.js';
import { Pkcs11Driver } from '../../src/hsm/pkcs11/driver.js';
import { parseHsmUri } from '../../src/hsm/uri.js';
import { skipOrRequire } from './requirement.js';

export interface Harness {
  /** Invalidates every session of the driver's module behind its back. */
  closeAllSessions(): void;
  /** Logs the application out from another session. */
  logoutElsewhere(): void;
}

export interface Backend {
  readonly name: 'fake' | 'softhsm2';
  open(): Promise<{ driver: HsmDriver; harness: Harness }>;
}

export const fakeBackend: Backend = {
  name: 'fake',
  async open() {
    const driver = await FakeDriver.open();
    return {
      driver,
      harness: {
        closeAllSessions: () => driver.faults.loseSessions(1),
        logoutElsewhere: () => driver.faults.loseSessions(1),
      },
    };
  },
};

export function softHsmUri(): string | undefined {
  return process.env.HSM_VAULT_TEST_SOFTHSM_URI;
}

export const softHsmBackend: Backend = {
  name: 'softhsm2',
  async open() {
    const uri = softHsmUri();
    if (!uri) throw new Error('SoftHSM2 token not prepared by global setup');
    const parsed = parseHsmUri(uri);
    if (parsed.scheme !== 'pkcs11') throw new Error('SoftHSM2 URI must be pkcs11:');
    // The suites issue 1,000 calls at once while other test files load both cores: a call may
    // wait longer than a server's default 5 s for a session without anything being wrong.
    const driver = await Pkcs11Driver.open(parsed, { borrowTimeoutMs: 60_000 });
    const { pkcs11, slot } = driver.rawModule;
    return {
      driver,
      harness: {
        // Between calls, as a token reset does: under a call in flight SoftHSM2 crashes.
        closeAllSessions: () => driver.whileIdle(() => pkcs11.C_CloseAllSessions(slot)),
        logoutElsewhere: () => {
          const s = pkcs11.C_OpenSession(slot, 0x06);
          try {
            pkcs11.C_Logout(s);
          } finally {
            pkcs11.C_CloseSession(s);
          }
        },
      },
    };
  },
};

/** Backends to run: the fake always; SoftHSM2 when present (required when HSM_VAULT_REQUIRE_SOFTHSM=1). */
export function backends(): Backend[] {
  const list: Backend[] = [fakeBackend];
  if (softHsmUri()) list.push(softHsmBackend);
  return list;
}

/**
 * Declares the reason SoftHSM2 tests are not running: a skipped test with the reason locally, a
 * failing test when the real token is required (CI).
 */
export function reportMissingSoftHsm(): void {
  if (softHsmUri()) return;
  skipOrRequire('softhsm2', 'HSM_VAULT_REQUIRE_SOFTHSM', process.env.HSM_VAULT_TEST_SOFTHSM_MISSING ?? 'SoftHSM2 token not available');
}

/** A label unique to this test run, so tests never collide on a shared token. */
export function uniqueLabel(prefix: string): string {
  return `t-${prefix}-${randomBytes(5).toString('hex')}`;
}

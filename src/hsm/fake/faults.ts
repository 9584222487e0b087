// Fault injection for resilience tests: fail the next N token operations, or a share of them,
// with a chosen error; or simulate lost sessions, which the fake recovers from exactly once per
// call like the PKCS#11 backend does.

import type { HsmError } from '../errors.js';

export type ErrorFactory = () => HsmError;

export class FaultInjector {
  private nextCount = 0;
  private nextError: ErrorFactory | undefined;
  private share = 0;
  private shareError: ErrorFactory | undefined;
  private random: () => number = Math.random;
  /** Operations that will see one lost session each (then recover). */
  private lostSessions = 0;
  /** Injected faults so far, for assertions. */
  injected = 0;
  recoveries = 0;

  /** The next `count` operations fail with `error()`. */
  failNext(count: number, error: ErrorFactory): void {
    this.nextCount = count;
    this.nextError = error;
  }

  /** Each operation fails with probability `share` (0..1); `random` makes it reproducible. */
  failShare(share: number, error: ErrorFactory, random: () => number = Math.random): void {
    this.share = share;
    this.shareError = error;
    this.random = random;
  }

  /** The next `operations` calls find their session gone and recover once (like C_CloseAllSessions). */
  loseSessions(operations: number): void {
    this.lostSessions = operations;
  }

  clear(): void {
    this.nextCount = 0;
    this.share = 0;
    this.lostSessions = 0;
    this.nextError = undefined;
    this.shareError = undefined;
  }

  /** Throws an injected error, or returns whether this call lost its session. */
  check(): 'ok' | 'session-lost' {
    if (this.nextCount > 0 && this.nextError) {
      this.nextCount--;
      this.injected++;
      throw this.nextError();
    }
    if (this.share > 0 && this.shareError && this.random() < this.share) {
      this.injected++;
      throw this.shareError();
    }
    if (this.lostSessions > 0) {
      this.lostSessions--;
      this.injected++;
      return 'session-lost';
    }
    return 'ok';
  }
}

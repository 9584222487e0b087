// A test double for the HTTP layer: a VaultService that records what the server passed it and
// answers with canned values or a queued error. It does no vault work at all; tests using it
// assert only on the HTTP layer's own behaviour.

import type { FleetInfo, HealthReport, RecoveryStarted, RegistrationUpload, ReleasedSecret, VaultService } from '../../src/vault/service.js';

export type Call =
  | { op: 'fleetInfo' }
  | { op: 'registrationStart'; userId: string; request: Uint8Array }
  | { op: 'registrationFinish'; userId: string; upload: RegistrationUpload }
  | { op: 'recoveryStart'; userId: string; ke1: Uint8Array }
  | { op: 'recoveryFinish'; userId: string; ke3: Uint8Array; session: Uint8Array }
  | { op: 'deleteRegistration'; userId: string }
  | { op: 'health' };

const filled = (length: number, byte: number): Uint8Array => new Uint8Array(length).fill(byte);

export class RecordingVault implements VaultService {
  readonly calls: Call[] = [];
  /** Thrown (once) by the next vault call, whatever it is. */
  nextError: unknown = undefined;
  /** Makes the next vault call never settle. */
  hangNext = false;
  healthReport: HealthReport = { ok: true, checks: { token: { ok: true, detail: 'logged in' }, store: { ok: true, detail: 'sqlite' } } };
  fleet: FleetInfo = { fleetId: 'test-fleet', keys: { ake: filled(33, 2), hpke: filled(65, 4), signing: filled(32, 7) }, bundle: { version: 1 } };

  constructor(readonly fleetId = 'test-fleet') {}

  private async answer<T>(call: Call, value: T): Promise<T> {
    this.calls.push(call);
    if (this.hangNext) {
      this.hangNext = false;
      return new Promise<T>(() => {});
    }
    if (this.nextError !== undefined) {
      const err = this.nextError;
      this.nextError = undefined;
      throw err;
    }
    return value;
  }

  fleetInfo(): Promise<FleetInfo> {
    return this.answer({ op: 'fleetInfo' }, this.fleet);
  }
  registrationStart(userId: string, request: Uint8Array): Promise<{ response: Uint8Array }> {
    return this.answer({ op: 'registrationStart', userId, request }, { response: filled(65, 9) });
  }
  registrationFinish(userId: string, upload: RegistrationUpload): Promise<{ maxAttempts: number }> {
    return this.answer({ op: 'registrationFinish', userId, upload }, { maxAttempts: upload.maxAttempts ?? 10 });
  }
  recoveryStart(userId: string, ke1: Uint8Array): Promise<RecoveryStarted> {
    return this.answer({ op: 'recoveryStart', userId, ke1 }, { ke2: filled(320, 1), session: filled(200, 3), attemptsRemaining: 9 });
  }
  recoveryFinish(userId: string, ke3: Uint8Array, session: Uint8Array): Promise<ReleasedSecret> {
    return this.answer({ op: 'recoveryFinish', userId, ke3, session }, { nonce: filled(12, 5), ciphertext: filled(48, 6) });
  }
  deleteRegistration(userId: string): Promise<void> {
    return this.answer({ op: 'deleteRegistration', userId }, undefined);
  }
  health(): Promise<HealthReport> {
    return this.answer({ op: 'health' }, this.healthReport);
  }
}

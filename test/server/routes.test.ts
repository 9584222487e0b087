// HTTP mapping of each route: bodies decoded and passed on, answers encoded, VaultErrors turned
// into their status and JSON, headers on every answer. The vault behind is RecordingVault.

import { afterEach, describe, expect, it } from 'vitest';
import { AuthenticationFailed, InvalidRequest, Locked, RecordTampered, RegistrationNotFound, SessionInvalid, VaultUnavailable } from '../../src/vault/errors.js';
import { RELAXED_LIMITS, ROUTES, harness, tokenFor, validBodies, type Harness } from './support.js';

let h: Harness;
afterEach(async () => h?.app.close());

const post = async (route: keyof typeof ROUTES, body: unknown, user = 'alice') =>
  h.app.inject({ method: 'POST', url: ROUTES[route].path(user), headers: { authorization: `Bearer ${await tokenFor(h.keys, user, ROUTES[route].scope)}` }, payload: body as object });

describe('routes', () => {
  it('GET /v1/fleet needs no token and encodes keys as base64url', async () => {
    h = await harness();
    const res = await h.app.inject({ method: 'GET', url: '/v1/fleet' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      fleetId: 'test-fleet',
      keys: { ake: Buffer.alloc(33, 2).toString('base64url'), hpke: Buffer.alloc(65, 4).toString('base64url'), signing: Buffer.alloc(32, 7).toString('base64url') },
      bundle: { version: 1 },
    });
    expect(res.json().keys.hpke).not.toMatch(/[=+/]/);
  });

  it('registration start and finish pass decoded bytes and answer JSON', async () => {
    h = await harness();
    const start = await post('registrationStart', validBodies.registrationStart());
    expect(start.statusCode).toBe(200);
    expect(start.json()).toEqual({ response: Buffer.alloc(65, 9).toString('base64url') });
    expect(h.vault.calls[0]).toEqual({ op: 'registrationStart', userId: 'alice', request: new Uint8Array(33).fill(1) });

    const finish = await post('registrationFinish', validBodies.registrationFinish());
    expect(finish.statusCode).toBe(200);
    expect(finish.json()).toEqual({ maxAttempts: 5 });
    const call = h.vault.calls[1];
    expect(call?.op).toBe('registrationFinish');
    if (call?.op === 'registrationFinish') {
      expect(call.upload.record.length).toBe(129);
      expect(call.upload.enc.length).toBe(65);
      expect(call.upload.ciphertext.length).toBe(48);
      expect(call.upload.maxAttempts).toBe(5);
    }
    const { maxAttempts: _, ...withoutMax } = validBodies.registrationFinish();
    const defaulted = await post('registrationFinish', withoutMax);
    expect(defaulted.json()).toEqual({ maxAttempts: 10 });
    const last = h.vault.calls.at(-1);
    expect(last?.op === 'registrationFinish' && 'maxAttempts' in last.upload).toBe(false);
  });

  it('recovery start and finish', async () => {
    h = await harness();
    const start = await post('recoveryStart', validBodies.recoveryStart());
    expect(start.statusCode).toBe(200);
    expect(start.json()).toEqual({ ke2: Buffer.alloc(320, 1).toString('base64url'), session: Buffer.alloc(200, 3).toString('base64url'), attemptsRemaining: 9 });
    const finish = await post('recoveryFinish', validBodies.recoveryFinish());
    expect(finish.statusCode).toBe(200);
    expect(finish.json()).toEqual({ nonce: Buffer.alloc(12, 5).toString('base64url'), ciphertext: Buffer.alloc(48, 6).toString('base64url') });
    const call = h.vault.calls[1];
    expect(call?.op === 'recoveryFinish' && call.ke3.length === 32 && call.session.length === 200).toBe(true);
  });

  it('DELETE answers 204, and 404 when nothing is registered', async () => {
    h = await harness();
    const auth = { authorization: `Bearer ${await tokenFor(h.keys, 'bob', 'delete')}` };
    const res = await h.app.inject({ method: 'DELETE', url: '/v1/registrations/bob', headers: auth });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect(h.vault.calls).toEqual([{ op: 'deleteRegistration', userId: 'bob' }]);
    h.vault.nextError = new RegistrationNotFound();
    const missing = await h.app.inject({ method: 'DELETE', url: '/v1/registrations/bob', headers: auth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual({ error: 'not_found', message: 'no registration for this user' });
    const withBody = await h.app.inject({ method: 'DELETE', url: '/v1/registrations/bob', headers: auth, payload: { x: 1 } });
    expect(withBody.statusCode).toBe(400);
  });

  it.each([
    [new AuthenticationFailed(3), 401, { error: 'authentication_failed', attemptsRemaining: 3 }],
    [new Locked(), 423, { error: 'locked', message: 'too many failed attempts: the backup key was destroyed' }],
    [new SessionInvalid('expired'), 401, { error: 'session_invalid', message: 'recovery session is not valid: expired' }],
    [new InvalidRequest('KE1 is not on the curve'), 400, { error: 'invalid_request', message: 'KE1 is not on the curve' }],
    [new VaultUnavailable('store quorum lost'), 503, { error: 'unavailable', message: 'store quorum lost' }],
    [new RecordTampered('record failed its integrity check'), 502, { error: 'record_tampered', message: 'record failed its integrity check' }],
  ])('VaultError %s maps to its status and toJSON()', async (error, status, body) => {
    h = await harness();
    h.vault.nextError = error;
    const res = await post('recoveryFinish', validBodies.recoveryFinish());
    expect(res.statusCode).toBe(status);
    expect(res.json()).toEqual(body);
  });

  it('an unexpected error is a bare 500 internal, with the detail only in the log', async () => {
    h = await harness();
    h.vault.nextError = new TypeError('driver exploded at line 42');
    const res = await post('recoveryStart', validBodies.recoveryStart());
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'internal' });
    expect(res.body).not.toContain('exploded');
    expect(h.logs.text).toContain('driver exploded at line 42');
  });

  it('a vault call that hangs answers 503 after the timeout', async () => {
    h = await harness({ vaultTimeoutMs: 50 });
    h.vault.hangNext = true;
    const res = await post('recoveryStart', validBodies.recoveryStart());
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toBe('unavailable');
  });

  it('every answer carries no-store and security headers and a request id', async () => {
    h = await harness();
    for (const res of [
      await h.app.inject({ method: 'GET', url: '/v1/fleet' }),
      await post('recoveryStart', { bad: 1 }),
      await h.app.inject({ method: 'GET', url: '/nope' }),
      await h.app.inject({ method: 'GET', url: '/healthz' }),
    ]) {
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
    const given = await h.app.inject({ method: 'GET', url: '/v1/fleet', headers: { 'x-request-id': 'trace-123' } });
    expect(given.headers['x-request-id']).toBe('trace-123');
    const hostile = await h.app.inject({ method: 'GET', url: '/v1/fleet', headers: { 'x-request-id': 'a\tb"}{' } });
    expect(hostile.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('unknown routes and methods answer JSON 404', async () => {
    h = await harness();
    for (const [method, url] of [['GET', '/'], ['PUT', '/v1/fleet'], ['GET', '/v1/registrations/alice/start'], ['POST', '/v1/recoveries/alice']] as const) {
      const res = await h.app.inject({ method, url });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toEqual({ error: 'not_found', message: 'no such route' });
    }
  });

  it('/healthz is 200 or 503 from VaultService.health(), and 503 when it throws or hangs', async () => {
    h = await harness({ healthTimeoutMs: 50, rateLimits: RELAXED_LIMITS });
    let res = await h.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ok: true, checks: h.vault.healthReport.checks });
    h.vault.healthReport = { ok: false, checks: { store: { ok: false, detail: 'quorum lost' } } };
    res = await h.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().ok).toBe(false);
    h.vault.nextError = new Error('boom');
    res = await h.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(503);
    h.vault.hangNext = true;
    res = await h.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(503);
  });
});

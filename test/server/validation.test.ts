// Body, path and transport validation: each bad input is a 4xx JSON {error, message}, and the
// vault is never called.

import { afterEach, describe, expect, it } from 'vitest';
import { binaryField, encodedLength } from '../../src/server/schemas.js';
import { RELAXED_LIMITS, ROUTES, b64, harness, tokenFor, validBodies, type Harness, type RouteName } from './support.js';

let h: Harness;
afterEach(async () => h?.app.close());

async function send(route: RouteName, payload: unknown, opts: { user?: string; contentType?: string; raw?: boolean } = {}) {
  const user = opts.user ?? 'alice';
  return h.app.inject({
    method: 'POST',
    url: ROUTES[route].path(user),
    headers: { authorization: `Bearer ${await tokenFor(h.keys, decodeURIComponent(user), ROUTES[route].scope)}`, 'content-type': opts.contentType ?? 'application/json' },
    payload: opts.raw ? (payload as string) : JSON.stringify(payload),
  });
}

describe('request validation', () => {
  it('base64url patterns are exact and canonical', () => {
    const re = new RegExp(binaryField(1, 100).pattern, 'u');
    for (let n = 0; n <= 40; n++) {
      const s = Buffer.alloc(n, 0xff).toString('base64url');
      expect(re.test(s)).toBe(true);
      expect(s.length).toBe(encodedLength(n));
    }
    expect(re.test('AB')).toBe(false); // non-canonical: trailing bits set
    expect(re.test('AQ')).toBe(true);
    expect(re.test('AQ==')).toBe(false);
    expect(re.test('A+/A')).toBe(false);
    expect(re.test('A')).toBe(false);
  });

  it.each([
    ['registrationStart', { request: b64(32) }],
    ['registrationStart', { request: b64(34) }],
    ['registrationStart', { request: `${b64(33)}=` }],
    ['registrationStart', { request: Buffer.alloc(33, 1).toString('base64') .replace(/A/, '+') }],
    ['registrationStart', { request: 33 }],
    ['registrationStart', { request: null }],
    ['registrationStart', {}],
    ['registrationStart', []],
    ['registrationStart', 'string'],
    ['registrationStart', { ...validBodies.registrationStart(), extra: 1 }],
    ['registrationFinish', { ...validBodies.registrationFinish(), record: b64(128) }],
    ['registrationFinish', { ...validBodies.registrationFinish(), enc: b64(33) }],
    ['registrationFinish', { ...validBodies.registrationFinish(), ciphertext: b64(81) }],
    ['registrationFinish', { ...validBodies.registrationFinish(), ciphertext: b64(31) }],
    ['registrationFinish', { ...validBodies.registrationFinish(), maxAttempts: 0 }],
    ['registrationFinish', { ...validBodies.registrationFinish(), maxAttempts: 101 }],
    ['registrationFinish', { ...validBodies.registrationFinish(), maxAttempts: 2.5 }],
    ['registrationFinish', { ...validBodies.registrationFinish(), maxAttempts: '5' }],
    ['registrationFinish', { ...validBodies.registrationFinish(), maxAttempts: true }],
    ['recoveryStart', { ke1: b64(97) }],
    ['recoveryStart', { ke1: b64(99) }],
    ['recoveryStart', { ke1: [b64(98)] }],
    ['recoveryFinish', { ke3: b64(31), session: b64(10) }],
    ['recoveryFinish', { ke3: b64(32), session: '' }],
    ['recoveryFinish', { ke3: b64(32), session: b64(513) }],
    ['recoveryFinish', { ke3: b64(32) }],
  ] as [RouteName, unknown][])('%s refuses %j', async (route, body) => {
    h = await harness({ rateLimits: RELAXED_LIMITS });
    const res = await send(route, body);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toBe('invalid_request');
    expect(typeof res.json().message).toBe('string');
    expect(h.vault.calls).toEqual([]);
  });

  it('accepts the boundary sizes', async () => {
    h = await harness({ rateLimits: RELAXED_LIMITS });
    for (const body of [
      { ...validBodies.registrationFinish(), ciphertext: b64(32), maxAttempts: 1 },
      { ...validBodies.registrationFinish(), ciphertext: b64(80), maxAttempts: 100 },
    ]) expect((await send('registrationFinish', body)).statusCode).toBe(200);
    for (const session of [b64(1), b64(512)]) expect((await send('recoveryFinish', { ke3: b64(32), session })).statusCode).toBe(200);
  });

  it('refuses bad user ids in the path', async () => {
    h = await harness({ rateLimits: RELAXED_LIMITS });
    for (const user of ['a%3Ab', 'a%2Fb', 'a%20b', 'x'.repeat(129), '%C3%A9', 'a%00']) {
      const res = await send('recoveryStart', validBodies.recoveryStart(), { user });
      expect([400, 404], user).toContain(res.statusCode);
      expect(res.json().error).toMatch(/invalid_request|not_found/);
    }
    expect((await send('recoveryStart', validBodies.recoveryStart(), { user: 'x'.repeat(128) })).statusCode).toBe(200);
    expect((await send('recoveryStart', validBodies.recoveryStart(), { user: 'a.b_c-d@e' })).statusCode).toBe(200);
    expect(h.vault.calls).toHaveLength(2);
  });

  it('refuses non-JSON, empty, oversized and poisoned bodies without echoing them', async () => {
    h = await harness({ rateLimits: RELAXED_LIMITS });
    const cases: [string, string, number][] = [
      ['{"ke1": "secret-looking-value"', 'application/json', 400],
      ['', 'application/json', 400],
      ['ke1=abc', 'application/x-www-form-urlencoded', 415],
      ['hello', 'text/plain', 415],
      [JSON.stringify({ ke1: 'A'.repeat(9000) }), 'application/json', 413],
      ['{"__proto__": {"x": 1}, "ke1": "AA"}', 'application/json', 400],
      ['{"constructor": {"prototype": {"x": 1}}}', 'application/json', 400],
      ['null', 'application/json', 400],
      ['12', 'application/json', 400],
    ];
    for (const [payload, contentType, status] of cases) {
      const res = await send('recoveryStart', payload, { contentType, raw: true });
      expect(res.statusCode, payload.slice(0, 40)).toBe(status);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).not.toContain('secret-looking-value');
      expect(typeof res.json().error).toBe('string');
    }
    expect(h.vault.calls).toEqual([]);
    expect(h.logs.text).not.toContain('secret-looking-value');
  });
});

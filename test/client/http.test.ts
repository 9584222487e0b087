import { describe, expect, it } from 'vitest';
import { InvalidRequest, Locked, NotFound, ServerError, Unauthorized, VaultUnavailable } from '../../src/client/errors.js';
import { errorFromResponse, retryAfterSeconds } from '../../src/client/http.js';

describe('errorFromResponse', () => {
  it.each([
    [400, { error: 'invalid_request' }, InvalidRequest],
    [404, { error: 'not_found' }, NotFound],
    [423, {}, Locked],
    [500, { error: 'record_tampered' }, ServerError],
    [502, {}, ServerError],
    [503, {}, VaultUnavailable],
    [403, {}, Unauthorized],
  ] as const)('%i %j', (status, body, type) => {
    const error = errorFromResponse(status, body);
    expect(error).toBeInstanceOf(type);
    expect(error.status).toBe(status);
  });

  it('keeps the server code but not the server message', () => {
    const error = errorFromResponse(500, { error: 'record_tampered', message: 'detail from the node' });
    expect(error).toMatchObject({ serverCode: 'record_tampered' });
    expect(error.message).not.toContain('detail from the node');
  });
});

describe('retryAfterSeconds', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delta-seconds, an HTTP-date, then the JSON fallback', () => {
    expect(retryAfterSeconds('30', undefined, now)).toBe(30);
    expect(retryAfterSeconds('Thu, 01 Jan 2026 00:00:12 GMT', undefined, now)).toBe(12);
    expect(retryAfterSeconds('Wed, 31 Dec 2025 23:59:00 GMT', undefined, now)).toBe(0);
    expect(retryAfterSeconds(null, 5, now)).toBe(5);
    expect(retryAfterSeconds('soon', 'later', now)).toBeUndefined();
    expect(retryAfterSeconds(null, -1, now)).toBeUndefined();
  });
});

// Rate limits: token buckets per client IP (every /v1 route) and per user (every authenticated
// route; recovery starts tighter). 429 JSON with Retry-After; buckets refill with time.

import { afterEach, describe, expect, it } from 'vitest';
import { TokenBuckets } from '../../src/server/rate-limit.js';
import { RELAXED_LIMITS, harness, tokenFor, validBodies, type Harness } from './support.js';

let h: Harness;
afterEach(async () => h?.app.close());

describe('TokenBuckets', () => {
  it('allows a burst, then refills at the rate', () => {
    let now = 0;
    const buckets = new TokenBuckets({ perSecond: 2, burst: 3 }, () => now);
    expect([1, 2, 3, 4].map(() => buckets.take('a').allowed)).toEqual([true, true, true, false]);
    expect(buckets.take('a').retryAfterSeconds).toBe(1);
    expect(buckets.take('b').allowed).toBe(true);
    now += 500;
    expect(buckets.take('a').allowed).toBe(true);
    expect(buckets.take('a').allowed).toBe(false);
    now += 60_000;
    expect([1, 2, 3, 4].map(() => buckets.take('a').allowed)).toEqual([true, true, true, false]);
  });

  it('gives the wait for slow rates in whole seconds', () => {
    const now = 0;
    const buckets = new TokenBuckets({ perSecond: 5 / 60, burst: 1 }, () => now);
    buckets.take('u');
    expect(buckets.take('u')).toEqual({ allowed: false, retryAfterSeconds: 12 });
  });

  it('keeps at most maxKeys buckets', () => {
    let now = 0;
    const buckets = new TokenBuckets({ perSecond: 1, burst: 2 }, () => now, 100);
    for (let i = 0; i < 1000; i++) {
      now += 1;
      buckets.take(`ip-${i}`);
      expect(buckets.size).toBeLessThanOrEqual(100);
    }
  });

  it('refuses nonsense limits', () => {
    expect(() => new TokenBuckets({ perSecond: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new TokenBuckets({ perSecond: 1, burst: 0.5 })).toThrow(RangeError);
  });
});

describe('HTTP rate limits', () => {
  it('limits each client IP across /v1, with 429 JSON and Retry-After', async () => {
    let now = 1_000_000;
    h = await harness({ now: () => now, rateLimits: { ...RELAXED_LIMITS, perIp: { perSecond: 1, burst: 3 } } });
    const from = (ip: string) => h.app.inject({ method: 'GET', url: '/v1/fleet', remoteAddress: ip });
    expect([(await from('10.0.0.1')).statusCode, (await from('10.0.0.1')).statusCode, (await from('10.0.0.1')).statusCode]).toEqual([200, 200, 200]);
    const limited = await from('10.0.0.1');
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBe('1');
    expect(limited.json()).toEqual({ error: 'rate_limited', message: 'too many requests; retry later' });
    expect((await from('10.0.0.2')).statusCode).toBe(200);
    // Health and metrics are not limited (monitoring must see a node under attack).
    for (let i = 0; i < 5; i++) expect((await h.app.inject({ method: 'GET', url: '/healthz', remoteAddress: '10.0.0.1' })).statusCode).toBe(200);
    now += 1000;
    expect((await from('10.0.0.1')).statusCode).toBe(200);
  });

  it('the IP limit applies before the token is checked', async () => {
    h = await harness({ rateLimits: { ...RELAXED_LIMITS, perIp: { perSecond: 0.001, burst: 1 } } });
    const bad = () => h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/start', remoteAddress: '10.9.9.9', payload: validBodies.recoveryStart() });
    expect((await bad()).statusCode).toBe(401);
    expect((await bad()).statusCode).toBe(429);
  });

  it('limits recovery starts per user (default 5 per minute), across IPs', async () => {
    let now = 5_000_000;
    h = await harness({ now: () => now, rateLimits: { perIp: RELAXED_LIMITS.perIp, perUser: RELAXED_LIMITS.perUser } });
    const start = async (user: string, ip: string) =>
      h.app.inject({ method: 'POST', url: `/v1/recoveries/${user}/start`, remoteAddress: ip, headers: { authorization: `Bearer ${await tokenFor(h.keys, user, 'recover', { now })}` }, payload: validBodies.recoveryStart() });
    for (let i = 0; i < 5; i++) expect((await start('alice', `10.0.0.${i}`)).statusCode).toBe(200);
    const limited = await start('alice', '10.0.1.1');
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBe(12);
    expect((await start('bob', '10.0.1.1')).statusCode).toBe(200);
    // finish is not counted against the start budget
    const finish = await h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/finish', headers: { authorization: `Bearer ${await tokenFor(h.keys, 'alice', 'recover', { now })}` }, payload: validBodies.recoveryFinish() });
    expect(finish.statusCode).toBe(200);
    now += 12_000;
    expect((await start('alice', '10.0.1.1')).statusCode).toBe(200);
    expect(h.vault.calls.filter((c) => c.op === 'recoveryStart')).toHaveLength(7);
  });

  it('limits all authenticated calls per user; unauthenticated calls do not spend a user budget', async () => {
    h = await harness({ rateLimits: { ...RELAXED_LIMITS, perUser: { perSecond: 0.001, burst: 2 } } });
    const anonymous = () => h.app.inject({ method: 'DELETE', url: '/v1/registrations/carol' });
    for (let i = 0; i < 5; i++) expect((await anonymous()).statusCode).toBe(401);
    const del = async () => h.app.inject({ method: 'DELETE', url: '/v1/registrations/carol', headers: { authorization: `Bearer ${await tokenFor(h.keys, 'carol', 'delete')}` } });
    expect((await del()).statusCode).toBe(204);
    expect((await del()).statusCode).toBe(204);
    expect((await del()).statusCode).toBe(429);
  });

  it('behind a trusted proxy, limits the forwarded client address', async () => {
    h = await harness({ trustProxy: ['10.0.0.254'], rateLimits: { ...RELAXED_LIMITS, perIp: { perSecond: 0.001, burst: 1 } } });
    const via = (client: string, proxy = '10.0.0.254') => h.app.inject({ method: 'GET', url: '/v1/fleet', remoteAddress: proxy, headers: { 'x-forwarded-for': client } });
    expect((await via('192.0.2.1')).statusCode).toBe(200);
    expect((await via('192.0.2.2')).statusCode).toBe(200);
    expect((await via('192.0.2.1')).statusCode).toBe(429);
    // An untrusted sender cannot pick its own address.
    expect((await via('192.0.2.3', '10.0.0.9')).statusCode).toBe(200);
    expect((await via('192.0.2.4', '10.0.0.9')).statusCode).toBe(429);
  });
});

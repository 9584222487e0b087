// /metrics: a registry per server, request counts and durations by route pattern, recovery and
// registration outcomes, lockouts, auth failures — and no user id anywhere in it.

import { afterEach, describe, expect, it } from 'vitest';
import { Histogram, Registry } from 'prom-client';
import { ServerMetrics, timed } from '../../src/server/metrics.js';
import { AuthenticationFailed, Locked } from '../../src/vault/errors.js';
import { RELAXED_LIMITS, ROUTES, harness, tokenFor, validBodies, type Harness } from './support.js';

let h: Harness;
let other: Harness | undefined;
afterEach(async () => {
  await h?.app.close();
  await other?.app.close();
  other = undefined;
});

const scrape = async (x: Harness) => (await x.app.inject({ method: 'GET', url: '/metrics' })).body;
const post = async (route: keyof typeof ROUTES, body: unknown, user: string) =>
  h.app.inject({ method: 'POST', url: ROUTES[route].path(user), headers: { authorization: `Bearer ${await tokenFor(h.keys, user, ROUTES[route].scope)}` }, payload: body as object });

describe('/metrics', () => {
  it('counts requests, outcomes and lockouts without naming users', async () => {
    h = await harness({ rateLimits: RELAXED_LIMITS });
    await post('recoveryStart', validBodies.recoveryStart(), 'user-secret-name');
    await post('recoveryFinish', validBodies.recoveryFinish(), 'user-secret-name');
    h.vault.nextError = new AuthenticationFailed(2);
    await post('recoveryFinish', validBodies.recoveryFinish(), 'user-secret-name');
    h.vault.nextError = new AuthenticationFailed(0);
    await post('recoveryFinish', validBodies.recoveryFinish(), 'user-secret-name');
    h.vault.nextError = new Locked();
    await post('recoveryFinish', validBodies.recoveryFinish(), 'user-secret-name');
    await post('registrationStart', validBodies.registrationStart(), 'user-secret-name');
    await post('registrationFinish', validBodies.registrationFinish(), 'user-secret-name');
    await h.app.inject({ method: 'POST', url: '/v1/recoveries/user-secret-name/start', payload: validBodies.recoveryStart() });
    await h.app.inject({ method: 'GET', url: '/no/such/user-secret-name' });

    const text = await scrape(h);
    expect(res(text)).toBeDefined();
    expect(text).toContain('hsm_vault_recoveries_total{outcome="started"} 1');
    expect(text).toContain('hsm_vault_recoveries_total{outcome="success"} 1');
    expect(text).toContain('hsm_vault_recoveries_total{outcome="authentication_failed"} 2');
    expect(text).toContain('hsm_vault_recoveries_total{outcome="locked"} 1');
    expect(text).toContain('hsm_vault_lockouts_total 1');
    expect(text).toContain('hsm_vault_registrations_total{outcome="started"} 1');
    expect(text).toContain('hsm_vault_registrations_total{outcome="registered"} 1');
    expect(text).toContain('hsm_vault_auth_failures_total{status="401"} 1');
    expect(text).toContain('hsm_vault_http_requests_total{route="/v1/recoveries/:user/finish",method="POST",status="401"} 2');
    expect(text).toContain('hsm_vault_http_requests_total{route="/v1/recoveries/:user/finish",method="POST",status="423"} 1');
    expect(text).toContain('hsm_vault_http_requests_total{route="unmatched",method="GET",status="404"} 1');
    expect(text).toMatch(/hsm_vault_http_request_duration_seconds_bucket\{le="0.005",route="\/v1\/recoveries\/:user\/start",method="POST"\}/);
    expect(text).toMatch(/hsm_vault_vault_call_duration_seconds_count\{operation="recoveryFinish"\} 4/);
    expect(text).toMatch(/hsm_vault_jwt_verify_duration_seconds_count \d+/);
    expect(text).not.toContain('user-secret-name');
  });

  it('each server has its own registry', async () => {
    h = await harness({ rateLimits: RELAXED_LIMITS });
    other = await harness({ rateLimits: RELAXED_LIMITS });
    await h.app.inject({ method: 'GET', url: '/v1/fleet' });
    expect(await scrape(h)).toContain('hsm_vault_http_requests_total{route="/v1/fleet",method="GET",status="200"} 1');
    expect(await scrape(other)).not.toContain('route="/v1/fleet"');
    const res = await h.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
  });

  it('timed() records driver and store calls by method and result', async () => {
    const registry = new Registry();
    const metrics = new ServerMetrics({ registry });
    class Store {
      #rows = 1;
      async get(): Promise<number> {
        return this.#rows;
      }
      async fail(): Promise<never> {
        throw new Error('down');
      }
      sync(): number {
        return this.#rows;
      }
    }
    const store = timed(new Store(), metrics.storeOpDuration);
    expect(await store.get()).toBe(1);
    await expect(store.fail()).rejects.toThrow('down');
    expect(store.sync()).toBe(1);
    expect(store).toBeInstanceOf(Store);
    const text = await registry.metrics();
    expect(text).toContain('hsm_vault_store_operation_duration_seconds_count{operation="get",result="ok"} 1');
    expect(text).toContain('hsm_vault_store_operation_duration_seconds_count{operation="fail",result="error"} 1');
    expect(text).not.toContain('operation="sync"');
    expect(metrics.hsmOpDuration).toBeInstanceOf(Histogram);
  });
});

function res(text: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith('hsm_vault_http_requests_total'));
}

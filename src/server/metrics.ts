// Prometheus metrics of one node, in a registry the node owns (never prom-client's global one, so
// two servers in a process, or a test, never share counters). Labels are bounded sets: route
// patterns, not URLs; outcomes, never user ids — an unknown user's recovery looks like any other.

import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type RecoveryOutcome = 'started' | 'success' | 'authentication_failed' | 'locked' | 'session_invalid' | 'error';
export type RegistrationOutcome = 'started' | 'registered' | 'deleted' | 'error';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class ServerMetrics {
  readonly registry: Registry;
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly httpDuration: Histogram<'route' | 'method'>;
  readonly registrations: Counter<'outcome'>;
  readonly recoveries: Counter<'outcome'>;
  readonly lockouts: Counter;
  readonly authFailures: Counter<'status'>;
  readonly rateLimited: Counter<'limit'>;
  readonly tokenVerifyDuration: Histogram;
  readonly vaultCallDuration: Histogram<'operation'>;
  readonly hsmOpDuration: Histogram<'operation' | 'result'>;
  readonly storeOpDuration: Histogram<'operation' | 'result'>;

  constructor(options: { registry?: Registry; processMetrics?: boolean } = {}) {
    const registry = (this.registry = options.registry ?? new Registry());
    if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'hsm_vault_' });
    const r = [registry];
    this.httpRequests = new Counter({ name: 'hsm_vault_http_requests_total', help: 'HTTP requests by route pattern, method and status', labelNames: ['route', 'method', 'status'], registers: r });
    this.httpDuration = new Histogram({ name: 'hsm_vault_http_request_duration_seconds', help: 'HTTP request duration', labelNames: ['route', 'method'], buckets: LATENCY_BUCKETS, registers: r });
    this.registrations = new Counter({ name: 'hsm_vault_registrations_total', help: 'registration steps by outcome (started, registered, deleted, error)', labelNames: ['outcome'], registers: r });
    this.recoveries = new Counter({
      name: 'hsm_vault_recoveries_total',
      help: 'recovery steps by outcome (started, success, authentication_failed, locked, session_invalid, error); unknown users are not told apart',
      labelNames: ['outcome'],
      registers: r,
    });
    this.lockouts = new Counter({ name: 'hsm_vault_lockouts_total', help: 'failed recoveries that used the last attempt (the secret was destroyed)', registers: r });
    this.authFailures = new Counter({ name: 'hsm_vault_auth_failures_total', help: 'requests refused by bearer-token checks (401 invalid token, 403 wrong user or scope)', labelNames: ['status'], registers: r });
    this.rateLimited = new Counter({ name: 'hsm_vault_rate_limited_total', help: 'requests refused with 429 by limiter', labelNames: ['limit'], registers: r });
    this.tokenVerifyDuration = new Histogram({ name: 'hsm_vault_jwt_verify_duration_seconds', help: 'bearer JWT verification time', buckets: LATENCY_BUCKETS, registers: r });
    this.vaultCallDuration = new Histogram({ name: 'hsm_vault_vault_call_duration_seconds', help: 'time in the vault layer per operation (token, store and protocol work)', labelNames: ['operation'], buckets: LATENCY_BUCKETS, registers: r });
    this.hsmOpDuration = new Histogram({ name: 'hsm_vault_hsm_operation_duration_seconds', help: 'HSM driver call time by method and result', labelNames: ['operation', 'result'], buckets: LATENCY_BUCKETS, registers: r });
    this.storeOpDuration = new Histogram({ name: 'hsm_vault_store_operation_duration_seconds', help: 'record store call time by method and result', labelNames: ['operation', 'result'], buckets: LATENCY_BUCKETS, registers: r });
  }
}

/**
 * Wraps an object so each method that returns a promise is timed into `histogram` under its
 * method name. Used on the HSM driver and the record store before the vault opens them, which
 * gives token and store latency without the vault knowing about metrics.
 */
export function timed<T extends object>(target: T, histogram: Histogram<'operation' | 'result'>): T {
  const wrappers = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(obj, prop) {
      const value: unknown = Reflect.get(obj, prop, obj);
      if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'constructor') return value;
      let wrapper = wrappers.get(prop);
      if (wrapper === undefined) {
        const fn = value as (...args: unknown[]) => unknown;
        wrapper = function (this: unknown, ...args: unknown[]): unknown {
          const start = process.hrtime.bigint();
          const result = fn.apply(obj, args);
          if (result instanceof Promise) {
            const done = (outcome: 'ok' | 'error') => histogram.observe({ operation: prop, result: outcome }, Number(process.hrtime.bigint() - start) / 1e9);
            result.then(() => done('ok'), () => done('error'));
          }
          return result;
        };
        wrappers.set(prop, wrapper);
      }
      return wrapper;
    },
  });
}

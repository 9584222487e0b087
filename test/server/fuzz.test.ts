// Property tests: random and mutated JSON bodies, random paths and raw bytes never make the node
// answer 5xx, crash or hang, and it still serves afterwards. Any 200 must carry exactly-sized
// decoded fields to the vault.

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELAXED_LIMITS, ROUTES, harness, tokenFor, validBodies, type Harness, type RouteName } from './support.js';

let h: Harness;
const tokens = new Map<string, string>();
beforeAll(async () => {
  h = await harness({ rateLimits: RELAXED_LIMITS, logger: false });
  for (const route of Object.keys(ROUTES) as RouteName[]) tokens.set(route, await tokenFor(h.keys, 'alice', ROUTES[route].scope, { expiresIn: 600 }));
});
afterAll(async () => h.app.close());

const routeName = fc.constantFrom(...(Object.keys(ROUTES) as RouteName[]));
const NUM_RUNS = 150;

async function post(route: RouteName, payload: string, contentType = 'application/json', user = 'alice') {
  return h.app.inject({
    method: 'POST',
    url: ROUTES[route].path(user),
    headers: { authorization: `Bearer ${tokens.get(route)!}`, 'content-type': contentType },
    payload,
  });
}

function expectSane(status: number, body: string): void {
  expect(status).toBeGreaterThanOrEqual(200);
  expect(status).toBeLessThan(500);
  expect(() => (body === '' ? null : JSON.parse(body))).not.toThrow();
}

/** Change one thing in a valid body: drop, add, retype or edit a field. */
const mutated = (route: RouteName) =>
  fc
    .tuple(
      fc.constantFrom('drop', 'add', 'retype', 'edit', 'truncate', 'extend'),
      fc.nat(),
      fc.jsonValue({ maxDepth: 2 }),
      fc.string({ maxLength: 4 }),
      fc.string({ unit: 'binary', maxLength: 12 }),
    )
    .map(([how, pick, value, name, text]) => {
      const body: Record<string, unknown> = { ...validBodies[route]() };
      const keys = Object.keys(body);
      const key = keys[pick % keys.length]!;
      if (how === 'drop') delete body[key];
      if (how === 'add') body[`x${name}`] = value;
      if (how === 'retype') body[key] = value;
      const current = String(body[key] ?? '');
      if (how === 'edit') body[key] = `${current.slice(0, pick % (current.length + 1))}${text}${current.slice((pick % (current.length + 1)) + 1)}`;
      if (how === 'truncate') body[key] = current.slice(0, pick % (current.length + 1));
      if (how === 'extend') body[key] = `${current}${text}`;
      return body;
    });

describe('fuzzed input never yields 5xx', () => {
  it('random JSON values as bodies', async () => {
    await fc.assert(
      fc.asyncProperty(routeName, fc.jsonValue({ maxDepth: 3 }), async (route, value) => {
        const res = await post(route, JSON.stringify(value));
        expectSane(res.statusCode, res.body);
        expect(res.statusCode).toBeGreaterThanOrEqual(400);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('mutated valid bodies', async () => {
    await fc.assert(
      fc.asyncProperty(routeName.chain((route) => fc.tuple(fc.constant(route), mutated(route))), async ([route, body]) => {
        const before = h.vault.calls.length;
        const res = await post(route, JSON.stringify(body));
        expectSane(res.statusCode, res.body);
        if (res.statusCode === 200) {
          const call = h.vault.calls[before]!;
          if (call.op === 'recoveryStart') expect(call.ke1.length).toBe(98);
          if (call.op === 'recoveryFinish') expect(call.ke3.length).toBe(32);
          if (call.op === 'registrationStart') expect(call.request.length).toBe(33);
          if (call.op === 'registrationFinish') expect([call.upload.record.length, call.upload.enc.length]).toEqual([129, 65]);
        } else {
          expect(h.vault.calls.length).toBe(before);
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('raw bytes with random content types', async () => {
    await fc.assert(
      fc.asyncProperty(
        routeName,
        fc.string({ unit: 'binary', maxLength: 300 }),
        fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/octet-stream', 'multipart/form-data', ''),
        async (route, payload, contentType) => {
          const res = await post(route, payload, contentType);
          expectSane(res.statusCode, res.body);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('random paths, methods and user segments', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS'),
        fc.oneof(
          fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)),
          fc.string({ maxLength: 200 }).map((u) => `/v1/recoveries/${encodeURIComponent(u)}/start`),
          fc.string({ unit: 'binary', maxLength: 40 }).map((u) => `/v1/registrations/${encodeURIComponent(u)}`),
        ),
        fc.option(fc.oneof(fc.constant('{}'), fc.constant('{bad'), fc.json()), { nil: null }),
        async (method, url, body) => {
          const res = await h.app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${tokens.get('recoveryStart')!}` }, payload: body === null ? undefined : body, ...(body === null ? {} : { headers: { authorization: `Bearer ${tokens.get('recoveryStart')!}`, 'content-type': 'application/json' } }) });
          expect(res.statusCode).toBeLessThan(500);
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('random authorization headers', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ maxLength: 300 }).map((s) => `Bearer ${s}`), fc.base64String().map((s) => `Bearer ${s}.${s}.${s}`)), async (header) => {
        const res = await h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/start', headers: { authorization: header.replace(/[\r\n\0]/g, '') }, payload: validBodies.recoveryStart() });
        expect(res.statusCode).toBe(401);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('is still up afterwards', async () => {
    expect((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await post('recoveryStart', JSON.stringify(validBodies.recoveryStart()))).statusCode).toBe(200);
  });
});

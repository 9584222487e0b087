// What the node writes to its log: one line per request naming the route pattern and status, and
// nothing from the Authorization header or the body — not on success, refusal or failure.

import { describe, expect, it } from 'vitest';
import { AuthenticationFailed } from '../../src/vault/errors.js';
import { RELAXED_LIMITS, harness, tokenFor } from './support.js';

describe('logs', () => {
  it('never contain tokens or body fields', async () => {
    const h = await harness({ rateLimits: RELAXED_LIMITS });
    const token = await tokenFor(h.keys, 'alice', 'recover');
    const signature = token.split('.')[2]!;
    const ke1 = Buffer.alloc(98, 0x5a).toString('base64url');
    const ke3 = Buffer.alloc(32, 0x6b).toString('base64url');
    const session = Buffer.alloc(100, 0x7c).toString('base64url');
    const auth = { authorization: `Bearer ${token}` };
    await h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/start', headers: auth, payload: { ke1 } });
    h.vault.nextError = new AuthenticationFailed(1);
    await h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/finish', headers: auth, payload: { ke3, session } });
    h.vault.nextError = new Error('unexpected');
    await h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/finish', headers: auth, payload: { ke3, session } });
    await h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/finish', headers: auth, payload: { ke3, session, extra: ke1 } });
    await h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/finish', headers: { ...auth, 'content-type': 'application/json' }, payload: `{"ke3":"${ke3}", "session": ` });
    await h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/start', headers: { authorization: `Bearer ${token}garbage` }, payload: { ke1 } });
    await h.app.inject({ method: 'POST', url: '/v1/recoveries/bob/start', headers: auth, payload: { ke1 } });
    await h.app.close();

    const text = h.logs.text;
    expect(h.logs.lines.length).toBeGreaterThan(7);
    for (const secret of [token, signature, ke1, ke3, session, 'Bearer']) expect(text).not.toContain(secret);
    const lines = h.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = lines.filter((l) => l.msg === 'request');
    expect(requests.map((l) => l.status)).toEqual([200, 401, 500, 400, 400, 401, 403]);
    expect(requests.every((l) => typeof l.reqId === 'string' && l.route === '/v1/recoveries/:user/start' || l.route === '/v1/recoveries/:user/finish')).toBe(true);
  });
});

// VaultClient against an in-process network double (fake-node.ts): the real OPAQUE server math,
// canned HTTP answers where a test needs one. Assertions are about what the SDK does and sends.

import { p256 } from '@noble/curves/nist.js';
import { describe, expect, it } from 'vitest';
import {
  AuthenticationFailed, InvalidArgument, Locked, NotFound, PinnedKeyMismatch, ProtocolError, RateLimited,
  ServerAuthenticationFailed, SessionInvalid, Unauthorized, VaultClient, VaultUnavailable, WrongPassword, identityKsf,
  type TokenScope,
} from '../../src/client/index.js';
import { type FakeNode, cannedJson, createFakeNode } from './fake-node.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const BASE = 'https://vault.test/';

function clientFor(node: FakeNode, overrides: { ake?: Uint8Array; hpke?: Uint8Array; fleetId?: string } = {}) {
  const tokens: Array<{ scope: TokenScope; userId: string }> = [];
  const client = new VaultClient({
    baseUrl: BASE,
    fleetId: overrides.fleetId ?? node.fleetId,
    pinnedKeys: { ake: overrides.ake ?? node.keys.ake, hpke: overrides.hpke ?? node.keys.hpke },
    ksf: identityKsf,
    fetch: node.fetch,
    getToken: async (scope, userId) => {
      tokens.push({ scope, userId });
      return `jwt-${scope}-${userId}`;
    },
  });
  return { client, tokens };
}

const otherAkeKey = (): Uint8Array => p256.getPublicKey(p256.utils.randomSecretKey(), true);
const paths = (node: FakeNode): string[] => node.requests.map((r) => `${r.method} ${r.path}`);

describe('VaultClient register and recover', () => {
  it('registers, uploads the secret sealed to the pinned HPKE key, and recovers it', async () => {
    const node = await createFakeNode();
    const { client, tokens } = clientFor(node);
    const secret = globalThis.crypto.getRandomValues(new Uint8Array(32));
    const registered = await client.register('alice@example.com', utf8('correct horse'), secret, { maxAttempts: 5 });
    expect(registered.maxAttempts).toBe(5);
    expect(registered.exportKey.length).toBe(32);
    expect(node.secrets.get('alice@example.com')).toEqual(secret);

    const recovered = await client.recover('alice@example.com', utf8('correct horse'));
    expect(recovered.secret).toEqual(secret);
    expect(recovered.exportKey).toEqual(registered.exportKey);

    expect(paths(node)).toEqual([
      'POST /v1/registrations/alice%40example.com/start',
      'POST /v1/registrations/alice%40example.com/finish',
      'POST /v1/recoveries/alice%40example.com/start',
      'POST /v1/recoveries/alice%40example.com/finish',
    ]);
    expect(tokens).toEqual([{ scope: 'register', userId: 'alice@example.com' }, { scope: 'recover', userId: 'alice@example.com' }]);
    for (const r of node.requests) {
      expect(r.headers.authorization).toMatch(/^Bearer jwt-(register|recover)-alice@example\.com$/);
      expect(r.headers['content-type']).toBe('application/json');
    }
    // Binary fields are unpadded base64url; maxAttempts is sent as given.
    const finish = node.requests[1]!.body!;
    expect(Object.keys(finish).sort()).toEqual(['ciphertext', 'enc', 'maxAttempts', 'record']);
    for (const field of ['record', 'enc', 'ciphertext']) expect(finish[field]).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(String(finish.enc), 'base64url').length).toBe(65);
    expect(finish.maxAttempts).toBe(5);
  });

  it('omits maxAttempts when not given and reports the node default', async () => {
    const node = await createFakeNode();
    const { client } = clientFor(node);
    const result = await client.register('bob', utf8('pw'), new Uint8Array(16));
    expect(result.maxAttempts).toBe(10);
    expect(node.requests[1]!.body).not.toHaveProperty('maxAttempts');
  });

  it('refuses to upload when the registration response carries a server key other than the pinned one', async () => {
    const node = await createFakeNode();
    const { client } = clientFor(node, { ake: otherAkeKey() });
    await expect(client.register('alice', utf8('pw'), new Uint8Array(32))).rejects.toThrow(PinnedKeyMismatch);
    expect(paths(node)).toEqual(['POST /v1/registrations/alice/start']);
    expect(node.secrets.size).toBe(0);
  });

  it('a wrong password is WrongPassword with the start response attemptsRemaining; KE3 is never sent', async () => {
    const node = await createFakeNode();
    const { client } = clientFor(node);
    await client.register('alice', utf8('right'), new Uint8Array(16), { maxAttempts: 3 });
    node.requests.length = 0;
    const error = await client.recover('alice', utf8('tr0ub4dor&3')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WrongPassword);
    expect((error as WrongPassword).attemptsRemaining).toBe(2);
    expect((error as WrongPassword).status).toBeUndefined();
    expect((error as Error).message).not.toContain('tr0ub4dor');
    expect(paths(node)).toEqual(['POST /v1/recoveries/alice/start']);
  });

  it('locks after the allowed guesses (423 -> Locked)', async () => {
    const node = await createFakeNode();
    const { client } = clientFor(node);
    await client.register('alice', utf8('right'), new Uint8Array(16), { maxAttempts: 1 });
    await expect(client.recover('alice', utf8('wrong'))).rejects.toThrow(WrongPassword);
    const error = await client.recover('alice', utf8('right')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Locked);
    expect((error as Locked).status).toBe(423);
  });

  it('refuses to send KE3 when the recovered server key is not the pinned one', async () => {
    const node = await createFakeNode();
    await clientFor(node).client.register('alice', utf8('pw'), new Uint8Array(16));
    node.requests.length = 0;
    const { client } = clientFor(node, { ake: otherAkeKey() });
    await expect(client.recover('alice', utf8('pw'))).rejects.toThrow(PinnedKeyMismatch);
    expect(paths(node)).toEqual(['POST /v1/recoveries/alice/start']);
  });

  it('a KE2 whose server MAC does not verify is ServerAuthenticationFailed and KE3 is not sent', async () => {
    const node = await createFakeNode();
    const { client } = clientFor(node);
    await client.register('alice', utf8('pw'), new Uint8Array(16));
    node.requests.length = 0;
    const original = node.fetch;
    const tampering: typeof fetch = async (input, init) => {
      const response = await original(input, init);
      if (!String(input).endsWith('/recoveries/alice/start')) return response;
      const body = (await response.json()) as Record<string, unknown>;
      const ke2 = new Uint8Array(Buffer.from(String(body.ke2), 'base64url'));
      ke2[ke2.length - 1]! ^= 1;
      return cannedJson(200, { ...body, ke2: Buffer.from(ke2).toString('base64url') });
    };
    const tamperedClient = new VaultClient({
      baseUrl: BASE, fleetId: node.fleetId, pinnedKeys: { ake: node.keys.ake, hpke: node.keys.hpke }, ksf: identityKsf,
      fetch: tampering, getToken: async () => 'jwt',
    });
    await expect(tamperedClient.recover('alice', utf8('pw'))).rejects.toThrow(ServerAuthenticationFailed);
    expect(paths(node)).toEqual(['POST /v1/recoveries/alice/start']);
  });

  it('a released ciphertext that does not decrypt is a ProtocolError', async () => {
    const node = await createFakeNode();
    const { client } = clientFor(node);
    await client.register('alice', utf8('pw'), new Uint8Array(16));
    node.override('POST', '/v1/recoveries/alice/finish', () =>
      cannedJson(200, { nonce: Buffer.alloc(12).toString('base64url'), ciphertext: Buffer.alloc(32).toString('base64url') }));
    await expect(client.recover('alice', utf8('pw'))).rejects.toThrow(ProtocolError);
  });

  it('deleteRegistration sends DELETE with the delete-scoped token and no JSON content type', async () => {
    const node = await createFakeNode();
    const { client, tokens } = clientFor(node);
    await client.register('carol', utf8('pw'), new Uint8Array(16));
    await client.deleteRegistration('carol');
    const last = node.requests.at(-1)!;
    expect(`${last.method} ${last.path}`).toBe('DELETE /v1/registrations/carol');
    expect(last.headers.authorization).toBe('Bearer jwt-delete-carol');
    expect(last.headers['content-type']).toBeUndefined();
    expect(tokens.at(-1)).toEqual({ scope: 'delete', userId: 'carol' });
    await expect(client.deleteRegistration('carol')).rejects.toThrow(NotFound);
  });
});

describe('VaultClient input checks (nothing is sent)', () => {
  it.each([
    ['a user id with a slash', 'a/b', 16, undefined],
    ['a user id with a colon', 'a:b', 16, undefined],
    ['an empty user id', '', 16, undefined],
    ['a 15-byte secret', 'u', 15, undefined],
    ['a 65-byte secret', 'u', 65, undefined],
    ['maxAttempts 0', 'u', 16, 0],
    ['maxAttempts 101', 'u', 16, 101],
    ['maxAttempts 2.5', 'u', 16, 2.5],
  ])('register refuses %s', async (_name, user, secretLength, maxAttempts) => {
    const node = await createFakeNode();
    const { client, tokens } = clientFor(node);
    await expect(client.register(user, utf8('pw'), new Uint8Array(secretLength), maxAttempts === undefined ? {} : { maxAttempts }))
      .rejects.toThrow(InvalidArgument);
    expect(node.requests).toEqual([]);
    expect(tokens).toEqual([]);
  });

  it('the constructor refuses malformed pinned keys', async () => {
    const node = await createFakeNode();
    expect(() => clientFor(node, { ake: node.keys.hpke })).toThrow(InvalidArgument);
    expect(() => clientFor(node, { hpke: node.keys.ake })).toThrow(InvalidArgument);
    const offCurve = node.keys.hpke.slice();
    offCurve[64]! ^= 1;
    expect(() => clientFor(node, { hpke: offCurve })).toThrow(InvalidArgument);
  });
});

describe('VaultClient.fleet', () => {
  it('returns the keys when they match the pinned ones', async () => {
    const node = await createFakeNode();
    const fleet = await clientFor(node).client.fleet();
    expect(fleet.fleetId).toBe(node.fleetId);
    expect(fleet.keys).toEqual(node.keys);
    expect(fleet.bundle).toBeNull();
    expect(node.requests[0]!.headers.authorization).toBeUndefined();
  });

  it.each([
    ['ake', { ake: otherAkeKey() }],
    ['hpke', { hpke: p256.getPublicKey(p256.utils.randomSecretKey(), false) }],
    ['fleetId', { fleetId: 'another-fleet' }],
  ] as const)('reports a %s mismatch as PinnedKeyMismatch', async (field, overrides) => {
    const node = await createFakeNode();
    const error = await clientFor(node, overrides).client.fleet().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PinnedKeyMismatch);
    expect((error as PinnedKeyMismatch).field).toBe(field);
  });

  it('a malformed fleet answer is a ProtocolError', async () => {
    const node = await createFakeNode();
    node.override('GET', '/v1/fleet', () => cannedJson(200, { fleetId: node.fleetId, keys: { ake: 'AAAA', hpke: 'AAAA', signing: 'AAAA' } }));
    await expect(clientFor(node).client.fleet()).rejects.toThrow(ProtocolError);
  });
});

describe('VaultClient maps HTTP answers to typed errors', () => {
  const cases: Array<[string, 'start' | 'finish', () => Response, new (...args: never[]) => Error, Record<string, unknown>]> = [
    ['423 locked at start', 'start', () => cannedJson(423, { error: 'locked' }), Locked, { status: 423 }],
    ['401 authentication_failed at finish', 'finish', () => cannedJson(401, { error: 'authentication_failed', attemptsRemaining: 4 }), AuthenticationFailed, { status: 401, attemptsRemaining: 4 }],
    ['401 session_invalid at finish', 'finish', () => cannedJson(401, { error: 'session_invalid' }), SessionInvalid, { status: 401 }],
    ['401 from the token check', 'start', () => cannedJson(401, { error: 'unauthorized', message: 'jwt expired' }), Unauthorized, { status: 401 }],
    ['403 from the token check', 'start', () => cannedJson(403, { error: 'forbidden' }), Unauthorized, { status: 403 }],
    ['429 with Retry-After seconds', 'start', () => cannedJson(429, { error: 'rate_limited' }, { 'retry-after': '7' }), RateLimited, { status: 429, retryAfter: 7 }],
    ['429 without Retry-After', 'start', () => cannedJson(429, {}), RateLimited, { status: 429, retryAfter: undefined }],
    ['503 unavailable', 'start', () => cannedJson(503, { error: 'unavailable' }), VaultUnavailable, { status: 503 }],
    ['503 with an HTML body', 'finish', () => new Response('<html>bad gateway</html>', { status: 503 }), VaultUnavailable, { status: 503 }],
    ['200 with a non-JSON body', 'start', () => new Response('not json', { status: 200 }), ProtocolError, {}],
    ['200 with a JSON array', 'start', () => cannedJson(200, [1, 2]), ProtocolError, {}],
    ['200 without ke2', 'start', () => cannedJson(200, { session: 'AAAA', attemptsRemaining: 3 }), ProtocolError, {}],
    ['200 with a short ke2', 'start', () => cannedJson(200, { ke2: 'AAAA', session: 'AAAA', attemptsRemaining: 3 }), ProtocolError, {}],
    ['200 with padded base64', 'finish', () => cannedJson(200, { nonce: 'AAAAAAAAAAAAAAAA==', ciphertext: 'AAAA' }), ProtocolError, {}],
    ['200 with a 13-byte nonce', 'finish', () => cannedJson(200, { nonce: Buffer.alloc(13).toString('base64url'), ciphertext: Buffer.alloc(32).toString('base64url') }), ProtocolError, {}],
  ];

  it.each(cases)('%s', async (_name, step, answer, type, properties) => {
    const node = await createFakeNode();
    const { client } = clientFor(node);
    const password = utf8('hunter2-password');
    await client.register('dave', password.slice(), new Uint8Array(16));
    node.override('POST', `/v1/recoveries/dave/${step}`, answer);
    const error = await client.recover('dave', password.slice()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(type);
    expect(error).toMatchObject(properties);
    expect((error as Error).message).not.toContain('hunter2');
    if (step === 'start') expect(paths(node).filter((p) => p.endsWith('/finish') && p.includes('recoveries'))).toEqual([]);
  });

  it('a network failure is a NetworkError without status', async () => {
    const client = new VaultClient({
      baseUrl: BASE, fleetId: 'f', pinnedKeys: { ake: otherAkeKey(), hpke: p256.getPublicKey(p256.utils.randomSecretKey(), false) },
      ksf: identityKsf, fetch: async () => { throw new TypeError('fetch failed'); }, getToken: async () => 'jwt',
    });
    const error = await client.fleet().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'network_error', status: undefined });
  });
});

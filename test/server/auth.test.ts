// Bearer-token rules: EdDSA and ES256 only, keys from JWKS or PEM files, aud = fleet id, sub = the
// path's user, the route's scope, exp required and at most 10 minutes out. 401 for a bad token,
// 403 for a good token used for another user or operation.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportPKCS8, generateKeyPair } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { JwtKeyError, loadJwtKeys } from '../../src/server/auth.js';
import { createServer } from '../../src/server/server.js';
import { RecordingVault } from './recording-vault.js';
import { harness, mintToken, testKeys, tokenFor, validBodies, type Harness } from './support.js';

let h: Harness;
afterEach(async () => h?.app.close());

const recover = (authorization: string | undefined, user = 'alice') =>
  h.app.inject({ method: 'POST', url: `/v1/recoveries/${user}/start`, headers: authorization === undefined ? {} : { authorization }, payload: validBodies.recoveryStart() });

describe('bearer tokens', () => {
  it('accepts EdDSA and ES256 tokens, with or without kid', async () => {
    h = await harness();
    for (const spec of [{ alg: 'EdDSA' as const }, { alg: 'ES256' as const }, { alg: 'ES256' as const, kid: null }, { alg: 'EdDSA' as const, issuedAt: null }]) {
      const res = await recover(`Bearer ${await tokenFor(h.keys, 'alice', 'recover', spec)}`);
      expect(res.statusCode, JSON.stringify(spec)).toBe(200);
    }
  });

  it('refuses missing, malformed and foreign tokens with 401 and a short reason', async () => {
    h = await harness();
    const good = await tokenFor(h.keys, 'alice', 'recover');
    const cases: [string | undefined, string][] = [
      [undefined, 'missing bearer token'],
      [`Basic ${Buffer.from('a:b').toString('base64')}`, 'malformed authorization header'],
      ['Bearer', 'malformed authorization header'],
      ['Bearer not-a-jwt', 'malformed token'],
      [`Bearer ${good}x`, 'invalid signature'],
      [`Bearer ${good.split('.').slice(0, 2).join('.')}.`, 'malformed token'],
      [`Bearer ${'a'.repeat(5000)}.b.c`, 'malformed token'],
      [`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { key: h.keys.stranger.privateKey, kid: null })}`, 'invalid signature'],
      [`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { aud: 'other-fleet' })}`, 'wrong audience'],
      [`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { aud: undefined })}`, 'wrong audience'],
      [`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { expiresIn: -120 })}`, 'token expired'],
      [`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { expiresIn: 601 + 30 })}`, 'token lifetime too long'],
      [`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { issuedAt: -300, expiresIn: 400 })}`, 'token lifetime too long'],
      [`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { issuedAt: 3600, expiresIn: 3700 })}`, 'token issued in the future'],
      [`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { issuedAt: 120, expiresIn: 300 })}`, 'token issued in the future'],
      [`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { kid: 'unknown-kid' })}`, 'no key for this token'],
      [`Bearer ${await tokenFor(h.keys, 'alice', undefined as unknown as string)}`, 'invalid claims'],
      [`Bearer ${await tokenFor(h.keys, undefined as unknown as string, 'recover')}`, 'invalid claims'],
    ];
    for (const [header, reason] of cases) {
      const res = await recover(header);
      expect(res.statusCode, reason).toBe(401);
      expect(res.json(), reason).toEqual({ error: 'unauthorized', message: reason });
      expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    }
    expect(h.vault.calls).toEqual([]);
  });

  it('refuses HS256, RS256 and unsigned tokens', async () => {
    h = await harness();
    const claims = { sub: 'alice', scope: 'recover', aud: 'test-fleet' };
    const hs = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new Uint8Array(32));
    const rsa = await generateKeyPair('RS256');
    const rs = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(rsa.privateKey);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ ...claims, exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.`;
    for (const token of [hs, rs]) {
      const res = await recover(`Bearer ${token}`);
      expect(res.statusCode).toBe(401);
      expect(res.json().message).toBe('algorithm not accepted');
    }
    expect((await recover(`Bearer ${none}`)).statusCode).toBe(401);
  });

  it('answers 403 for another user or a missing scope', async () => {
    h = await harness();
    const forBob = await recover(`Bearer ${await tokenFor(h.keys, 'bob', 'recover')}`);
    expect(forBob.statusCode).toBe(403);
    expect(forBob.json()).toEqual({ error: 'forbidden', message: 'token is for another user' });
    const wrongScope = await recover(`Bearer ${await tokenFor(h.keys, 'alice', 'register')}`);
    expect(wrongScope.statusCode).toBe(403);
    expect(wrongScope.json()).toEqual({ error: 'forbidden', message: 'token lacks scope "recover"' });
    const del = await h.app.inject({ method: 'DELETE', url: '/v1/registrations/alice', headers: { authorization: `Bearer ${await tokenFor(h.keys, 'alice', 'recover')}` } });
    expect(del.statusCode).toBe(403);
    const reg = await h.app.inject({ method: 'POST', url: '/v1/registrations/alice/start', headers: { authorization: `Bearer ${await tokenFor(h.keys, 'alice', 'delete')}` }, payload: validBodies.registrationStart() });
    expect(reg.statusCode).toBe(403);
    // RFC 8693: a space-separated scope list carrying the route's scope is enough.
    expect((await recover(`Bearer ${await tokenFor(h.keys, 'alice', 'register recover')}`)).statusCode).toBe(200);
    expect(h.vault.calls.map((c) => c.op)).toEqual(['recoveryStart']);
  });

  it('checks the token before the body: an unauthenticated bad body is 401, not 400', async () => {
    h = await harness();
    const res = await h.app.inject({ method: 'POST', url: '/v1/recoveries/alice/start', payload: '{not json' , headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(401);
  });

  it('tolerates small clock skew only', async () => {
    const now = Date.now();
    h = await harness({ now: () => now });
    expect((await recover(`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { now: now - 320_000, expiresIn: 300 })}`)).statusCode).toBe(200);
    expect((await recover(`Bearer ${await tokenFor(h.keys, 'alice', 'recover', { now: now - 340_000, expiresIn: 300 })}`)).statusCode).toBe(401);
  });

  it('loads keys from PEM files and refuses private keys and other key types', async () => {
    const keys = await testKeys();
    expect(loadJwtKeys(keys.pemPath).map((k) => k.alg)).toEqual(['EdDSA', 'ES256']);
    expect(loadJwtKeys(`${keys.pemPath},${keys.jwksPath}`)).toHaveLength(4);
    const vault = new RecordingVault();
    const app = await createServer(vault, { jwt: { keys: keys.pemPath }, logger: false });
    const res = await app.inject({ method: 'POST', url: '/v1/recoveries/alice/start', headers: { authorization: `Bearer ${await tokenFor(keys, 'alice', 'recover', { alg: 'ES256', kid: null })}` }, payload: validBodies.recoveryStart() });
    expect(res.statusCode).toBe(200);
    await app.close();

    const priv = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const privPath = join(keys.dir, 'private.pem');
    writeFileSync(privPath, await exportPKCS8(priv.privateKey));
    expect(() => loadJwtKeys(privPath)).toThrow(JwtKeyError);
    const jwkPriv = join(keys.dir, 'private.json');
    writeFileSync(jwkPriv, JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'AAAA', d: 'BBBB' }));
    expect(() => loadJwtKeys(jwkPriv)).toThrow(/private key/);
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const { exportSPKI } = await import('jose');
    const rsaPath = join(keys.dir, 'rsa.pem');
    writeFileSync(rsaPath, await exportSPKI(rsa.publicKey));
    expect(() => loadJwtKeys(rsaPath)).toThrow(/only Ed25519/);
    expect(() => loadJwtKeys(join(keys.dir, 'missing.pem'))).toThrow(/ENOENT/);
    await expect(createServer(vault, { jwt: { keys: privPath }, logger: false })).rejects.toThrow(JwtKeyError);
  });

  it('mintToken sanity: the harness tokens are what the server expects', async () => {
    const keys = await testKeys();
    const token = await mintToken(keys, { sub: 'x', scope: 'recover', aud: 'test-fleet' });
    expect(token.split('.')).toHaveLength(3);
  });
});

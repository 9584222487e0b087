// A network double for the client tests: answers DESIGN.md's routes in process with the real
// OPAQUE server (software keys), an HPKE receiver with a known key pair and the secret-release
// encryption written with node:crypto. It records every request so tests can assert what the SDK
// sent (and did not send). Not the HTTP node: end-to-end tests against that live elsewhere.

import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { Aes256Gcm, CipherSuite, DhkemP256HkdfSha256, HkdfSha256 } from '@hpke/core';
import { p256 } from '@noble/curves/nist.js';
import { ClientAuthenticationError, OpaqueServer, type ServerLoginState, softwareServerKeys } from '../../src/opaque/index.js';

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
const unb64 = (text: unknown): Uint8Array => new Uint8Array(Buffer.from(String(text), 'base64url'));
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

export const hpkeSuite = new CipherSuite({ kem: new DhkemP256HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Record<string, unknown> | undefined;
}

export interface FakeNode {
  readonly fetch: typeof fetch;
  readonly requests: RecordedRequest[];
  readonly fleetId: string;
  readonly keys: { ake: Uint8Array; hpke: Uint8Array; signing: Uint8Array };
  /** Secrets as the node decrypted them from the HPKE upload. */
  readonly secrets: Map<string, Uint8Array>;
  /** Replace the answer of one route (method + path) with a canned response. */
  override(method: string, path: string, answer: () => Response): void;
}

interface Stored { record: Uint8Array; secret: Uint8Array; maxAttempts: number; remaining: number }

export async function createFakeNode(options: { fleetId?: string; akePrivateKey?: Uint8Array } = {}): Promise<FakeNode> {
  const fleetId = options.fleetId ?? 'fleet-test';
  const serverPrivateKey = options.akePrivateKey ?? p256.utils.randomSecretKey();
  const opaque = new OpaqueServer(softwareServerKeys({ oprfSeed: randomBytes(32), serverPrivateKey }));
  const hpkeKeyPair = await hpkeSuite.kem.generateKeyPair();
  const keys = {
    ake: opaque.publicKey,
    hpke: new Uint8Array(await hpkeSuite.kem.serializePublicKey(hpkeKeyPair.publicKey)),
    signing: new Uint8Array(randomBytes(32)),
  };
  const records = new Map<string, Stored>();
  const sessions = new Map<string, { user: string; state: ServerLoginState }>();
  const secrets = new Map<string, Uint8Array>();
  const requests: RecordedRequest[] = [];
  const overrides = new Map<string, () => Response>();

  const json = (status: number, body: unknown): Response =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

  async function route(method: string, path: string, body: Record<string, unknown>): Promise<Response> {
    if (method === 'GET' && path === '/v1/fleet') {
      return json(200, { fleetId, keys: { ake: b64(keys.ake), hpke: b64(keys.hpke), signing: b64(keys.signing) }, bundle: null });
    }
    const match = /^\/v1\/(registrations|recoveries)\/([^/]+)(?:\/(start|finish))?$/.exec(path);
    if (!match) return json(404, { error: 'not_found' });
    const [, kind, encodedUser, step] = match;
    const user = decodeURIComponent(encodedUser!);
    const credentialId = utf8(user);
    if (kind === 'registrations' && method === 'DELETE' && step === undefined) {
      if (!records.delete(user)) return json(404, { error: 'not_found' });
      return new Response(null, { status: 204 });
    }
    if (kind === 'registrations' && step === 'start') {
      return json(200, { response: b64(await opaque.createRegistrationResponse(unb64(body.request), credentialId)) });
    }
    if (kind === 'registrations' && step === 'finish') {
      const record = unb64(body.record);
      opaque.parseRecord(record);
      const secret = new Uint8Array(await hpkeSuite.open(
        { recipientKey: hpkeKeyPair, enc: unb64(body.enc), info: utf8('hsm-vault registration v1') }, unb64(body.ciphertext), utf8(user),
      ));
      const maxAttempts = typeof body.maxAttempts === 'number' ? body.maxAttempts : 10;
      records.set(user, { record, secret, maxAttempts, remaining: maxAttempts });
      secrets.set(user, secret);
      return json(200, { maxAttempts });
    }
    const stored = records.get(user);
    if (kind === 'recoveries' && step === 'start') {
      if (!stored) return json(404, { error: 'not_found' });
      if (stored.remaining === 0) return json(423, { error: 'locked' });
      stored.remaining -= 1; // counted before KE2 leaves
      const { ke2, state } = await opaque.generateKE2(unb64(body.ke1), opaque.parseRecord(stored.record), credentialId);
      const session = b64(randomBytes(24));
      sessions.set(session, { user, state });
      return json(200, { ke2: b64(ke2), session, attemptsRemaining: stored.remaining });
    }
    if (kind === 'recoveries' && step === 'finish') {
      const session = sessions.get(String(body.session));
      if (!stored || !session || session.user !== user) return json(401, { error: 'session_invalid' });
      sessions.delete(String(body.session));
      let sessionKey: Uint8Array;
      try {
        sessionKey = opaque.finish(session.state, unb64(body.ke3));
      } catch (error) {
        if (error instanceof ClientAuthenticationError) return json(401, { error: 'authentication_failed', attemptsRemaining: stored.remaining });
        throw error;
      }
      stored.remaining = stored.maxAttempts;
      const key = Buffer.from(hkdfSync('sha256', sessionKey, new Uint8Array(0), 'hsm-vault secret v1', 32));
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      cipher.setAAD(Buffer.from(user, 'utf8'));
      const ciphertext = Buffer.concat([cipher.update(stored.secret), cipher.final(), cipher.getAuthTag()]);
      return json(200, { nonce: b64(nonce), ciphertext: b64(ciphertext) });
    }
    return json(404, { error: 'not_found' });
  }

  const fetchDouble = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const method = init?.method ?? 'GET';
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as Record<string, unknown>) : undefined;
    requests.push({ method, path: url.pathname, headers, body });
    const override = overrides.get(`${method} ${url.pathname}`);
    if (override) return override();
    return route(method, url.pathname, body ?? {});
  };

  return {
    fetch: fetchDouble as typeof fetch,
    requests,
    fleetId,
    keys,
    secrets,
    override: (method, path, answer) => overrides.set(`${method} ${path}`, answer),
  };
}

export function cannedJson(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

// Shared test plumbing for the HTTP node: JWT signing keys made with jose (EdDSA and ES256)
// whose public halves go to a temporary JWKS file, token minting, and log capture.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type CryptoKey } from 'jose';
import type { FastifyInstance } from 'fastify';
import { createServer, type ServerOptions } from '../../src/server/server.js';
import { RecordingVault } from './recording-vault.js';

export interface SigningKeys {
  readonly eddsa: { privateKey: CryptoKey; kid: string };
  readonly es256: { privateKey: CryptoKey; kid: string };
  /** A key the server does not know. */
  readonly stranger: { privateKey: CryptoKey };
  readonly dir: string;
  readonly jwksPath: string;
  readonly pemPath: string;
}

export async function makeSigningKeys(): Promise<SigningKeys> {
  const ed = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const stranger = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-server-test-'));
  const jwksPath = join(dir, 'jwks.json');
  writeFileSync(jwksPath, JSON.stringify({ keys: [{ ...(await exportJWK(ed.publicKey)), kid: 'ed-1', alg: 'EdDSA', use: 'sig' }, { ...(await exportJWK(ec.publicKey)), kid: 'ec-1' }] }));
  const pemPath = join(dir, 'keys.pem');
  writeFileSync(pemPath, `${await exportSPKI(ed.publicKey)}\n${await exportSPKI(ec.publicKey)}\n`);
  return { eddsa: { privateKey: ed.privateKey, kid: 'ed-1' }, es256: { privateKey: ec.privateKey, kid: 'ec-1' }, stranger: { privateKey: stranger.privateKey }, dir, jwksPath, pemPath };
}

export interface TokenSpec {
  sub?: string | undefined;
  scope?: string | undefined;
  aud?: string | undefined;
  /** Seconds from now (default 300). */
  expiresIn?: number | undefined;
  /** Seconds relative to now (default 0). */
  issuedAt?: number | null | undefined;
  alg?: 'EdDSA' | 'ES256';
  key?: CryptoKey;
  kid?: string | null;
  now?: number;
  extra?: Record<string, unknown>;
}

export async function mintToken(keys: SigningKeys, spec: TokenSpec = {}): Promise<string> {
  const alg = spec.alg ?? 'EdDSA';
  const own = alg === 'EdDSA' ? keys.eddsa : keys.es256;
  const nowSeconds = Math.floor((spec.now ?? Date.now()) / 1000);
  const claims: Record<string, unknown> = { ...spec.extra };
  if (spec.scope !== undefined) claims.scope = spec.scope;
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, ...(spec.kid === null ? {} : { kid: spec.kid ?? own.kid }) });
  if (spec.sub !== undefined) jwt = jwt.setSubject(spec.sub);
  if (spec.aud !== undefined) jwt = jwt.setAudience(spec.aud);
  if (spec.issuedAt !== null) jwt = jwt.setIssuedAt(nowSeconds + (spec.issuedAt ?? 0));
  jwt = jwt.setExpirationTime(nowSeconds + (spec.expiresIn ?? 300));
  return jwt.sign(spec.key ?? own.privateKey);
}

/** A token that passes every check for `user` and `scope` unless spec overrides something. */
export const tokenFor = (keys: SigningKeys, user: string, scope: string, spec: TokenSpec = {}): Promise<string> =>
  mintToken(keys, { sub: user, scope, aud: 'test-fleet', ...spec });

export class LogCapture {
  readonly lines: string[] = [];
  write(line: string): void {
    this.lines.push(line);
  }
  get text(): string {
    return this.lines.join('');
  }
}

export interface Harness {
  readonly app: FastifyInstance;
  readonly vault: RecordingVault;
  readonly keys: SigningKeys;
  readonly logs: LogCapture;
}

let sharedKeys: Promise<SigningKeys> | undefined;
export const testKeys = (): Promise<SigningKeys> => (sharedKeys ??= makeSigningKeys());

export async function harness(options: Partial<ServerOptions> = {}, vault = new RecordingVault()): Promise<Harness> {
  const keys = await testKeys();
  const logs = new LogCapture();
  const app = await createServer(vault, { jwt: { keys: keys.jwksPath }, logger: { level: 'debug', stream: logs }, ...options });
  return { app, vault, keys, logs };
}

export const b64 = (length: number, byte = 1): string => Buffer.alloc(length, byte).toString('base64url');

/** A valid body for each POST route. */
export const validBodies = {
  registrationStart: () => ({ request: b64(33) }),
  registrationFinish: () => ({ record: b64(129), enc: b64(65), ciphertext: b64(48), maxAttempts: 5 }),
  recoveryStart: () => ({ ke1: b64(98) }),
  recoveryFinish: () => ({ ke3: b64(32), session: b64(200) }),
};

export const ROUTES = {
  registrationStart: { path: (u: string) => `/v1/registrations/${u}/start`, scope: 'register' },
  registrationFinish: { path: (u: string) => `/v1/registrations/${u}/finish`, scope: 'register' },
  recoveryStart: { path: (u: string) => `/v1/recoveries/${u}/start`, scope: 'recover' },
  recoveryFinish: { path: (u: string) => `/v1/recoveries/${u}/finish`, scope: 'recover' },
} as const;
export type RouteName = keyof typeof ROUTES;

/** Unlimited-enough limits, for tests that are not about limits. */
export const RELAXED_LIMITS = {
  perIp: { perSecond: 1e6, burst: 1e6 },
  perUser: { perSecond: 1e6, burst: 1e6 },
  recoveriesPerUser: { perSecond: 1e6, burst: 1e6 },
};

// Bearer-token checks. The account service signs short-lived JWTs (EdDSA or ES256) with claims
// sub = user id, aud = fleet id, scope = register | recover | delete, exp; the node holds only the
// public keys, read from a JWKS file or PEM file(s). Nothing here logs or echoes a token.

import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { forbidden, unauthorized } from './http-errors.js';

export type Scope = 'register' | 'recover' | 'delete';
export const ALGORITHMS = ['EdDSA', 'ES256'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

export interface VerificationKey {
  readonly alg: Algorithm;
  readonly kid?: string;
  readonly key: KeyObject;
}

export class JwtKeyError extends Error {
  override get name(): string {
    return 'JwtKeyError';
  }
}

/** An Ed25519 or P-256 public key; anything else (RSA, other curves, private keys) is refused. */
function classify(key: KeyObject, where: string): Algorithm {
  if (key.type !== 'public') throw new JwtKeyError(`${where}: not a public key (the node must hold public keys only)`);
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new JwtKeyError(`${where}: only Ed25519 (EdDSA) and P-256 (ES256) keys are accepted`);
}

function keysFromJwks(text: string, where: string): VerificationKey[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new JwtKeyError(`${where}: not valid JSON`);
  }
  const list = Array.isArray((parsed as { keys?: unknown }).keys) ? (parsed as { keys: unknown[] }).keys : [parsed];
  return list.map((jwk, i) => {
    const at = `${where} key ${i}`;
    if (typeof jwk !== 'object' || jwk === null) throw new JwtKeyError(`${at}: not a JWK object`);
    const { d, kid, alg, use } = jwk as { d?: unknown; kid?: unknown; alg?: unknown; use?: unknown };
    if (d !== undefined) throw new JwtKeyError(`${at}: holds a private key; give the node public keys only`);
    if (use !== undefined && use !== 'sig') throw new JwtKeyError(`${at}: "use" is not "sig"`);
    if (kid !== undefined && typeof kid !== 'string') throw new JwtKeyError(`${at}: "kid" is not a string`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
    } catch {
      throw new JwtKeyError(`${at}: not a usable public JWK`);
    }
    const keyAlg = classify(key, at);
    if (alg !== undefined && alg !== keyAlg) throw new JwtKeyError(`${at}: "alg" ${String(alg)} does not fit the key (${keyAlg})`);
    return kid === undefined ? { alg: keyAlg, key } : { alg: keyAlg, kid, key };
  });
}

function keysFromPem(text: string, where: string): VerificationKey[] {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) throw new JwtKeyError(`${where}: holds a private key; give the node public keys only`);
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  if (blocks.length === 0) throw new JwtKeyError(`${where}: no "BEGIN PUBLIC KEY" block`);
  return blocks.map((pem, i) => {
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch {
      throw new JwtKeyError(`${where} block ${i}: not a readable public key`);
    }
    return { alg: classify(key, `${where} block ${i}`), key };
  });
}

/**
 * Reads verification keys from files: each is a JWKS (`{"keys": [...]}`), a single JWK, or one or
 * more PEM SubjectPublicKeyInfo blocks. Several paths may be joined with commas.
 */
export function loadJwtKeys(paths: string | readonly string[]): VerificationKey[] {
  const list = (typeof paths === 'string' ? paths.split(',') : paths).map((p) => p.trim()).filter((p) => p !== '');
  if (list.length === 0) throw new JwtKeyError('no JWT key file given');
  const keys = list.flatMap((path) => {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new JwtKeyError(`cannot read JWT key file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    return text.trimStart().startsWith('{') ? keysFromJwks(text, path) : keysFromPem(text, path);
  });
  if (keys.length > 64) throw new JwtKeyError('more than 64 JWT verification keys');
  return keys;
}

export interface TokenPolicy {
  readonly keys: readonly VerificationKey[];
  /** Expected `aud`: the fleet id. */
  readonly audience: string;
  /** Expected `iss`, when the account service sets one. */
  readonly issuer?: string;
  /** Longest accepted lifetime, exp − iat (and exp − now), in seconds. */
  readonly maxLifetimeSeconds: number;
  readonly clockToleranceSeconds: number;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
}

export interface VerifiedToken {
  readonly sub: string;
  readonly scopes: ReadonlySet<string>;
}

/** Compact JWS of a few claims: anything much longer is not ours. */
const MAX_TOKEN_LENGTH = 4096;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function bearerToken(header: string | string[] | undefined): string {
  if (header === undefined) throw unauthorized('missing bearer token');
  if (typeof header !== 'string') throw unauthorized('malformed authorization header');
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match) throw unauthorized('malformed authorization header');
  const token = match[1]!;
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) throw unauthorized('malformed token');
  return token;
}

/** Verifies signature and claims; throws 401 HttpErrors with a fixed short reason. */
export async function verifyToken(token: string, policy: TokenPolicy): Promise<VerifiedToken> {
  let header: { alg?: unknown; kid?: unknown; crit?: unknown };
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw unauthorized('malformed token');
  }
  if (typeof header.alg !== 'string' || !(ALGORITHMS as readonly string[]).includes(header.alg)) throw unauthorized('algorithm not accepted');
  const candidates = policy.keys.filter((k) => k.alg === header.alg && (header.kid === undefined || k.kid === undefined || k.kid === header.kid));
  if (candidates.length === 0) throw unauthorized('no key for this token');

  const nowMs = policy.now();
  let payload: JWTPayload | undefined;
  for (const candidate of candidates) {
    try {
      ({ payload } = await jwtVerify(token, candidate.key, {
        algorithms: [candidate.alg],
        audience: policy.audience,
        ...(policy.issuer === undefined ? {} : { issuer: policy.issuer }),
        clockTolerance: policy.clockToleranceSeconds,
        requiredClaims: ['exp', 'sub', 'aud', 'scope'],
        currentDate: new Date(nowMs),
      }));
      break;
    } catch (err) {
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) continue;
      throw unauthorized(reasonFor(err));
    }
  }
  if (payload === undefined) throw unauthorized('invalid signature');

  const now = nowMs / 1000;
  const exp = payload.exp!;
  if (payload.iat !== undefined) {
    if (typeof payload.iat !== 'number' || payload.iat > now + policy.clockToleranceSeconds) throw unauthorized('token issued in the future');
    if (exp - payload.iat > policy.maxLifetimeSeconds) throw unauthorized('token lifetime too long');
  }
  if (exp - now > policy.maxLifetimeSeconds + policy.clockToleranceSeconds) throw unauthorized('token lifetime too long');
  if (typeof payload.sub !== 'string') throw unauthorized('invalid claims');
  if (typeof payload.scope !== 'string' || payload.scope.length > 256) throw unauthorized('invalid claims');
  // RFC 8693 §4.2: scope is a space-separated list.
  return { sub: payload.sub, scopes: new Set(payload.scope.split(' ').filter((s) => s !== '')) };
}

function reasonFor(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'wrong audience';
    if (err.claim === 'nbf') return 'token not yet valid';
    if (err.claim === 'iss') return 'wrong issuer';
    return 'invalid claims';
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not accepted';
  return 'invalid token';
}

/** The token must name the user in the path and carry the route's scope (else 403). */
export function authorize(token: VerifiedToken, user: unknown, scope: Scope): void {
  if (typeof user !== 'string' || token.sub !== user) throw forbidden('token is for another user');
  if (!token.scopes.has(scope)) throw forbidden(`token lacks scope "${scope}"`);
}

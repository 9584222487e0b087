// Development auth: a stand-in for the account service on a developer's machine. One Ed25519
// issuer key lives in the state directory (created once, 0600, never overwritten);
// `hsm-vault serve --dev-auth` accepts what it signs and `hsm-vault auth token` signs with it.
// Off unless asked for: nothing here runs without --dev-auth or the `auth token` command.
// The private key never leaves its file in printable form: callers get KeyObjects only.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, closeSync, fstatSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SignJWT } from 'jose';
import type { Scope, VerificationKey } from './auth.js';

export const DEV_AUTH_KEY_FILE = 'dev-auth-ed25519.pem';
/** Longest lifetime `auth token` signs: the node refuses anything over 10 minutes anyway. */
export const DEV_TOKEN_MAX_SECONDS = 600;
export const DEV_TOKEN_DEFAULT_SECONDS = 300;

export class DevAuthError extends Error {
  override get name(): string {
    return 'DevAuthError';
  }
}

export interface DevAuthKey {
  readonly path: string;
  /** True when this call made the key (first use of the state directory). */
  readonly created: boolean;
  /** `hsm-vault-dev-` and 16 hex digits of SHA-256 over the public key: the JWT `kid`. */
  readonly kid: string;
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

/**
 * Opens the dev issuer key of `stateDir`, creating it on first use. Creation is atomic: the key is
 * written to a private temporary file and hard-linked into place, so a concurrent creator or an
 * existing key always wins and nothing is ever overwritten.
 */
export function openDevAuthKey(stateDir: string): DevAuthKey {
  const dir = resolve(stateDir);
  const path = join(dir, DEV_AUTH_KEY_FILE);
  let created = false;
  if (!tryRead(path)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const temp = join(dir, `.${DEV_AUTH_KEY_FILE}.${process.pid}.${randomBytes(6).toString('hex')}`);
    const fd = openSync(temp, 'wx', 0o600);
    try {
      writeSync(fd, pem);
    } finally {
      closeSync(fd);
    }
    try {
      chmodSync(temp, 0o600); // the umask could only have narrowed it; make it exact
      linkSync(temp, path);
      created = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new DevAuthError(`cannot create the dev auth key ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    } finally {
      unlinkSync(temp);
    }
  }
  const privateKey = readPrivateKey(path);
  const publicKey = createPublicKey(privateKey);
  return { path, created, kid: kidOf(publicKey), publicKey, privateKey };
}

function tryRead(path: string): boolean {
  try {
    closeSync(openSync(path, 'r'));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new DevAuthError(`cannot read the dev auth key ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** Like ssh with its keys: a key file others can read is refused, not silently used. */
function readPrivateKey(path: string): KeyObject {
  let text: string;
  const fd = openSync(path, 'r');
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if (mode & 0o077) throw new DevAuthError(`dev auth key ${path} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); chmod 600 it or delete it`);
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch {
    throw new DevAuthError(`dev auth key ${path} is not a PEM private key; delete it to make a new one`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new DevAuthError(`dev auth key ${path} is not an Ed25519 key; delete it to make a new one`);
  return key;
}

function kidOf(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return `hsm-vault-dev-${createHash('sha256').update(spki).digest('hex').slice(0, 16)}`;
}

/** What `serve --dev-auth` adds to the node's JWT verification keys. */
export function devAuthVerificationKey(key: Pick<DevAuthKey, 'kid' | 'publicKey'>): VerificationKey {
  return { alg: 'EdDSA', kid: key.kid, key: key.publicKey };
}

export interface DevTokenRequest {
  readonly fleetId: string;
  readonly userId: string;
  readonly scope: Scope;
  /** 1..600, default 300. */
  readonly lifetimeSeconds?: number;
  /** Sets `iss`, for nodes started with --jwt-issuer. */
  readonly issuer?: string;
  /** Milliseconds since the epoch (tests). */
  readonly now?: number;
}

/** A compact JWS with sub, aud, scope, iat, exp (and jti), signed EdDSA with the dev key. */
export async function signDevToken(key: Pick<DevAuthKey, 'kid' | 'privateKey'>, request: DevTokenRequest): Promise<string> {
  const lifetime = request.lifetimeSeconds ?? DEV_TOKEN_DEFAULT_SECONDS;
  if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > DEV_TOKEN_MAX_SECONDS) {
    throw new DevAuthError(`token lifetime must be 1..${DEV_TOKEN_MAX_SECONDS} seconds`);
  }
  if (request.fleetId === '') throw new DevAuthError('fleet id must not be empty');
  if (request.userId === '') throw new DevAuthError('user id must not be empty');
  const iat = Math.floor((request.now ?? Date.now()) / 1000);
  const jwt = new SignJWT({ scope: request.scope, jti: randomBytes(8).toString('hex') })
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
    .setSubject(request.userId)
    .setAudience(request.fleetId)
    .setIssuedAt(iat)
    .setExpirationTime(iat + lifetime);
  if (request.issuer !== undefined) jwt.setIssuer(request.issuer);
  return jwt.sign(key.privateKey);
}

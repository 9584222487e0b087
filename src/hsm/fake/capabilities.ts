// What a fake token can pretend to lack. By default the fake behaves like a well-behaved token;
// these switches make it pose as a deficient one, so that qualification and resilience tests can
// prove they notice each deficiency. Every switch is off unless asked for.
//
// As URI query parameters (split off before `parseHsmUri`, which knows only path and token):
//   fake:?missing=CKM_EDDSA,CKM_AES_GCM&leaky=1&gcm-iv=token&max-sessions=4&fail-after=200

import { InvalidUri } from '../errors.js';
import { MECHANISM_NAMES, VAULT_MECHANISMS } from '../pkcs11/constants.js';

export interface FakeCapabilities {
  /** Mechanisms the token lacks: absent from info().mechanisms, operations needing them fail with MechanismUnsupported. */
  readonly missing?: readonly string[];
  /**
   * The token does not enforce non-exportability: exportKeyValue returns the value, attribute
   * weakening succeeds (and shows in keyAttributes), and wrapKey wraps any key under any wrapping key.
   */
  readonly leaky?: boolean;
  /**
   * 'token': the token writes its own GCM IV and ignores the caller's, as FIPS-mode tokens do.
   * The fake returns the IV a driver would have passed while the ciphertext is under the token's
   * own IV — what the PKCS#11 driver would see from such a token without the gcmIvFromToken quirk.
   */
  readonly gcmIv?: 'caller' | 'token';
  /** Sessions the token opens per application, the driver's own included; info() reports it too. */
  readonly maxSessions?: number;
  /** After this many token operations every call fails with TokenUnavailable (the token "dies"). */
  readonly failAfter?: number;
}

/** Vault mechanism names the fake can be told to lack. */
export const FAKE_MECHANISMS: readonly string[] = VAULT_MECHANISMS.map(({ mechanism }) => MECHANISM_NAMES[mechanism]!);

const CAPABILITY_PARAMS = new Set(['missing', 'leaky', 'gcm-iv', 'max-sessions', 'fail-after']);

function count(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) throw new InvalidUri(`fake URI attribute "${name}" must be an integer >= ${min}`);
  return n;
}

/** Validates capabilities given in code (constructor options) the same way as URI parameters. */
export function checkFakeCapabilities(caps: FakeCapabilities): FakeCapabilities {
  for (const m of caps.missing ?? []) {
    if (!FAKE_MECHANISMS.includes(m)) throw new InvalidUri(`fake: unknown mechanism "${m}" (one of ${FAKE_MECHANISMS.join(', ')})`);
  }
  if (caps.maxSessions !== undefined && (!Number.isInteger(caps.maxSessions) || caps.maxSessions < 1)) throw new InvalidUri('fake: maxSessions must be an integer >= 1');
  if (caps.failAfter !== undefined && (!Number.isInteger(caps.failAfter) || caps.failAfter < 0)) throw new InvalidUri('fake: failAfter must be an integer >= 0');
  return caps;
}

/**
 * Splits a `fake:` URI into the URI `parseHsmUri` accepts (path, token) and the capability
 * parameters. Other URIs come back unchanged with no capabilities.
 */
export function splitFakeUri(text: string): { uri: string; capabilities: FakeCapabilities } {
  if (!text.startsWith('fake:?')) return { uri: text, capabilities: {} };
  const kept: string[] = [];
  const caps: { -readonly [K in keyof FakeCapabilities]: FakeCapabilities[K] } = {};
  for (const pair of text.slice('fake:?'.length).split('&').filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    if (!CAPABILITY_PARAMS.has(name)) {
      kept.push(pair);
      continue;
    }
    const value = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1));
    switch (name) {
      case 'missing':
        caps.missing = value.split(',').map((m) => m.trim()).filter((m) => m !== '');
        break;
      case 'leaky':
        if (!['', '1', 'true', '0', 'false'].includes(value)) throw new InvalidUri('fake URI attribute "leaky" must be 1 or 0');
        caps.leaky = value === '' || value === '1' || value === 'true';
        break;
      case 'gcm-iv':
        if (value !== 'token' && value !== 'caller') throw new InvalidUri('fake URI attribute "gcm-iv" must be "token" or "caller"');
        caps.gcmIv = value;
        break;
      case 'max-sessions':
        caps.maxSessions = count(name, value, 1);
        break;
      case 'fail-after':
        caps.failAfter = count(name, value, 0);
        break;
    }
  }
  return { uri: kept.length ? `fake:?${kept.join('&')}` : 'fake:', capabilities: checkFakeCapabilities(caps) };
}

/** A short description for reports and warnings, e.g. "missing CKM_EDDSA; leaky". */
export function describeFakeCapabilities(caps: FakeCapabilities): string[] {
  const out: string[] = [];
  if (caps.missing?.length) out.push(`missing ${caps.missing.join(',')}`);
  if (caps.leaky) out.push('leaky');
  if (caps.gcmIv === 'token') out.push('gcm-iv=token');
  if (caps.maxSessions !== undefined) out.push(`max-sessions=${caps.maxSessions}`);
  if (caps.failAfter !== undefined) out.push(`fail-after=${caps.failAfter}`);
  return out;
}

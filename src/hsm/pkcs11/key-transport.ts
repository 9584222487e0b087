// Moving keys between the tokens of a fleet: wrapping and unwrapping under an AES key-wrap key,
// the security officer's import of a trusted wrapping key, and key check values that let two
// tokens compare keys without revealing them.

import { randomBytes } from 'node:crypto';
import type { HsmDriver, KeyRef, KeySpec, SecurityOfficer, UnwrapSpec } from '../driver.js';
import { InvalidArgument, KeyExists } from '../errors.js';
import { derWrapOctetString } from '../ec-point.js';
import { KCV_GCM_IV, KCV_INPUT, KCV_WRAP_SUBJECT, checkUnwrapPublicKey, kcvOf, keyPairKcv } from '../kcv.js';
import { checkData, checkSpec, requireType } from '../validate.js';
import { buf } from './buffers.js';
import * as C from './constants.js';
import { cacheKey, findKeyObjects, handleOf, labelTaken } from './key-lookup.js';
import { kcvSubjectTemplate, trustedWrapKeyTemplate, unwrapTemplates } from './templates.js';
import type { Handle, TokenContext } from './token-context.js';

export async function wrapKey(token: TokenContext, wrappingKey: KeyRef, key: KeyRef): Promise<Uint8Array> {
  requireType(wrappingKey, ['aes-256-wrap'], 'wrapKey');
  return token.guarded(`wrap "${key.label}"`, 'wrap', async () => {
    const wrapping = handleOf(token, wrappingKey);
    const target = handleOf(token, key);
    const out = await token.exec<Uint8Array>('slow', 'call', (session) => ({
      fn: 'C_WrapKey', args: [session, { mechanism: C.CKM_AES_KEY_WRAP_PAD }, wrapping, target, Buffer.alloc(4096)],
    }));
    return new Uint8Array(out);
  });
}

export async function unwrapKey(token: TokenContext, wrappingKey: KeyRef, wrapped: Uint8Array, spec: UnwrapSpec): Promise<KeyRef> {
  requireType(wrappingKey, ['aes-256-wrap'], 'unwrapKey');
  checkSpec(spec, { labelMax: token.quirks.labelMaxLength, idMax: token.quirks.idMaxLength });
  if (spec.id === undefined) throw new InvalidArgument('unwrapKey needs the key\'s CKA_ID');
  checkData(wrapped, 'wrapped key', 4096);
  const publicPoint = checkUnwrapPublicKey(spec.type, spec.publicKey);
  const id = new Uint8Array(spec.id);
  const blob = buf(wrapped);
  const t = unwrapTemplates(spec.type, spec.label, id, publicPoint ? derWrapOctetString(publicPoint) : undefined);
  return token.guarded(`unwrap "${spec.label}"`, 'unwrap', () => token.lease.serializeObjectWrites(async () => {
    if (await labelTaken(token, spec.label)) throw new KeyExists(`a key labelled "${spec.label}" already exists`);
    const wrapping = handleOf(token, wrappingKey);
    const priv = token.main<Handle>('C_UnwrapKey', { mechanism: C.CKM_AES_KEY_WRAP_PAD }, wrapping, blob, t.privateTemplate);
    if (t.publicTemplate) {
      try {
        token.main('C_CreateObject', t.publicTemplate);
      } catch (err) {
        try { token.main('C_DestroyObject', priv); } catch { /* leave nothing half-made */ }
        throw err;
      }
    }
    return { label: spec.label, id, type: spec.type };
  }), true);
}

export async function importTrustedKey(token: TokenContext, spec: KeySpec, secret: Uint8Array, officer: SecurityOfficer): Promise<KeyRef> {
  checkSpec(spec, { labelMax: token.quirks.labelMaxLength, idMax: token.quirks.idMaxLength });
  if (spec.type !== 'aes-256-wrap') throw new InvalidArgument('a trusted key is an aes-256-wrap key');
  if (!(secret instanceof Uint8Array) || secret.length !== 32) throw new InvalidArgument('AES-256 key must be 32 bytes');
  if (typeof officer?.soPin !== 'string' || officer.soPin.length === 0) throw new InvalidArgument('importing a trusted key needs the security officer PIN');
  const id = new Uint8Array(spec.id ?? randomBytes(Math.min(16, token.quirks.idMaxLength ?? 16)));
  const ref: KeyRef = { label: spec.label, id, type: spec.type };
  return token.exclusively(async () => {
    if (findKeyObjects(token, spec.label).length > 0 || [...token.sessionKeys.keys()].some((k) => k.startsWith(`${spec.label}\0`))) {
      throw new KeyExists(`a key labelled "${spec.label}" already exists`);
    }
    const handle = token.asSecurityOfficer(officer.soPin, () =>
      token.direct<Handle>('generic', `create trusted key "${spec.label}"`, 'C_CreateObject', trustedWrapKeyTemplate(spec.label, id, secret)));
    token.sessionKeys.set(cacheKey(ref), { handle, type: 'aes-256-wrap' });
    return ref;
  });
}

/** `driver` runs the HMAC and key-pair cases through its own public operations. */
export async function keyCheckValue(token: TokenContext, driver: HsmDriver, key: KeyRef): Promise<Uint8Array> {
  switch (key.type) {
    case 'hmac-sha256':
      return kcvOf(await driver.hmacSha256(key, KCV_INPUT));
    case 'aes-256':
      return token.guarded(`key check value of "${key.label}"`, 'generic', async () => {
        const handle = handleOf(token, key);
        const tag = await token.exec<Uint8Array>('cheap', 'encrypt', (session) => ({
          session, key: handle, iv: buf(KCV_GCM_IV), aad: buf(KCV_INPUT), data: buf(new Uint8Array()), outLength: 16,
        }));
        return kcvOf(tag);
      });
    case 'aes-256-wrap':
      return token.guarded(`key check value of "${key.label}"`, 'generic', async () => {
        const wrapping = handleOf(token, key);
        const subject = token.main<Handle>('C_CreateObject', kcvSubjectTemplate(KCV_WRAP_SUBJECT));
        try {
          return kcvOf(token.main<Uint8Array>('C_WrapKey', { mechanism: C.CKM_AES_KEY_WRAP_PAD }, wrapping, subject, Buffer.alloc(256)));
        } finally {
          try { token.main('C_DestroyObject', subject); } catch { /* a session object */ }
        }
      });
    default:
      return keyPairKcv(driver, key);
  }
}

// Finding key objects on the token by label and/or CKA_ID: exactly one or a specific error (none
// vs several), the object handle for a KeyRef (cached in the token context until handles go
// stale), and the public-key object of a key pair.

import type { KeyRef, KeyType } from '../driver.js';
import { AmbiguousKey, KeyNotFound, WrongKeyType } from '../errors.js';
import { type AttributeMap, PRIVATE_KEY_ATTRIBUTES, SECRET_KEY_ATTRIBUTES, keyTypeOf, text } from './attributes.js';
import { buf } from './buffers.js';
import * as C from './constants.js';
import type { Template } from './templates.js';
import type { Handle, TokenContext } from './token-context.js';

/** Private and secret key objects matching label and/or id. */
export function findKeyObjects(token: TokenContext, label?: string, id?: Uint8Array): Array<{ handle: Handle; cls: number }> {
  const found: Array<{ handle: Handle; cls: number }> = [];
  for (const cls of [C.CKO_PRIVATE_KEY, C.CKO_SECRET_KEY]) {
    // Token objects only: session-object copies of keys (quirk sessionKeyCopies) share labels.
    const template: Template = [{ type: C.CKA_CLASS, value: cls }, { type: C.CKA_TOKEN, value: true }];
    if (label !== undefined) template.push({ type: C.CKA_LABEL, value: label });
    if (id !== undefined) template.push({ type: C.CKA_ID, value: buf(id) });
    for (const handle of token.findHandles(template, 1024)) found.push({ handle, cls });
  }
  return found;
}

/**
 * Whether a token object (a key of either kind, or a public key) already has this label. One
 * search, run by a worker: SoftHSM2 walks every token object (re-checking its file), which takes
 * milliseconds on a full token, too long for the event loop (measured: 18 ms lag p99 while
 * generating keys, 1.7 ms after).
 */
export async function labelTaken(token: TokenContext, label: string): Promise<boolean> {
  const template: Template = [{ type: C.CKA_TOKEN, value: true }, { type: C.CKA_LABEL, value: label }];
  const found = await token.exec<Handle[]>('slow', 'find', (session) => ({ session, template, max: 1 }));
  return found.length > 0;
}

export function describe(token: TokenContext, handle: Handle, cls: number): { type: KeyType; attrs: AttributeMap } {
  const attrs = token.readAttributes(handle, cls === C.CKO_SECRET_KEY ? SECRET_KEY_ATTRIBUTES : PRIVATE_KEY_ATTRIBUTES);
  const type = keyTypeOf(attrs);
  if (!type) throw new WrongKeyType(`key "${text(attrs.get(C.CKA_LABEL))}" has a key type the vault does not use`);
  return { type, attrs };
}

export function exactlyOne(token: TokenContext, label: string | undefined, id: Uint8Array | undefined): { handle: Handle; cls: number } {
  const found = findKeyObjects(token, label, id);
  const what = label !== undefined ? `key "${label}"` : `key with id ${Buffer.from(id ?? []).toString('hex')}`;
  if (found.length === 0) throw new KeyNotFound(`${what} not found on the token`);
  if (found.length > 1) throw new AmbiguousKey(`${what} is not unique on the token`, found.length);
  return found[0]!;
}

export function cacheKey(key: KeyRef): string {
  return `${key.label}\0${Buffer.from(key.id).toString('hex')}`;
}

/** The private/secret object handle for a key reference (cached; re-found after recovery). */
export function handleOf(token: TokenContext, key: KeyRef): Handle {
  const k = cacheKey(key);
  const cached = token.keys.get(k) ?? token.sessionKeys.get(k);
  if (cached) {
    if (cached.type !== key.type) throw new WrongKeyType(`key "${key.label}" is ${cached.type}, not ${key.type}`);
    return cached.handle;
  }
  const { handle, cls } = exactlyOne(token, key.label, key.id);
  const { type } = describe(token, handle, cls);
  if (type !== key.type) throw new WrongKeyType(`key "${key.label}" is ${type}, not ${key.type}`);
  token.keys.set(k, { handle, type });
  return handle;
}

export function publicHandle(token: TokenContext, key: KeyRef): Handle {
  const handles = token.findHandles([
    { type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY },
    { type: C.CKA_LABEL, value: key.label },
    { type: C.CKA_ID, value: buf(key.id) },
  ]);
  if (handles.length === 0) throw new KeyNotFound(`public key "${key.label}" not found on the token`);
  if (handles.length > 1) throw new AmbiguousKey(`public key "${key.label}" is not unique`, handles.length);
  return handles[0]!;
}

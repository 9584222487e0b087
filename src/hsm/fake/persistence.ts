// File persistence for the fake backend. The file holds key material in the clear (mode 0600),
// which is why opening one emits an INSECURE warning. Writes are atomic (temp file + rename) so a
// crash never leaves a half-written key file.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isKeyType, type KeyType } from '../driver.js';
import { InvalidArgument } from '../errors.js';

export interface StoredFakeKey {
  readonly label: string;
  readonly id: string;
  readonly type: KeyType;
  readonly local: boolean;
  readonly value: string;
  /** Extractable only under a trusted key (CKA_WRAP_WITH_TRUSTED); absent in older files. */
  readonly transportable?: boolean;
}

const FORMAT = 'hsm-vault-fake-token/v1';

export function loadFakeKeys(path: string): StoredFakeKey[] {
  if (!existsSync(path)) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    throw new InvalidArgument(`fake token file ${path} is not valid JSON`);
  }
  const doc = parsed as { format?: unknown; keys?: unknown };
  if (doc.format !== FORMAT || !Array.isArray(doc.keys)) throw new InvalidArgument(`fake token file ${path} is not a ${FORMAT} file`);
  return doc.keys.map((k: Record<string, unknown>, i: number) => {
    if (typeof k.label !== 'string' || typeof k.id !== 'string' || typeof k.value !== 'string' || typeof k.type !== 'string' || !isKeyType(k.type)) {
      throw new InvalidArgument(`fake token file ${path}: key ${i} is malformed`);
    }
    return { label: k.label, id: k.id, type: k.type, local: k.local === true, value: k.value, transportable: k.transportable === true };
  });
}

export function saveFakeKeys(path: string, keys: readonly StoredFakeKey[]): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ format: FORMAT, warning: 'INSECURE: key material in the clear', keys }, null, 2), { mode: 0o600 });
  renameSync(tmp, path);
}

// Argument checks shared by both backends, so that both reject the same inputs the same way.

import { ID_MAX, LABEL_MAX, isKeyType, type KeyRef, type KeySpec, type KeyType } from './driver.js';
import { InvalidArgument, WrongKeyType } from './errors.js';

const LABEL_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

export const MAX_DATA = 64 * 1024;
export const MAX_RANDOM = 4096;

export function checkLabel(label: string, max = LABEL_MAX): void {
  if (typeof label !== 'string' || label.length === 0 || label.length > max) {
    throw new InvalidArgument(`key label must be 1..${max} characters`);
  }
  if (!LABEL_PATTERN.test(label)) {
    throw new InvalidArgument('key label must be printable ASCII without leading or trailing spaces');
  }
}

export function checkId(id: Uint8Array, max = ID_MAX): void {
  if (!(id instanceof Uint8Array) || id.length === 0 || id.length > max) throw new InvalidArgument(`key id must be 1..${max} bytes`);
}

export function checkSpec(spec: KeySpec, limits: { labelMax?: number | null; idMax?: number | null } = {}): void {
  if (typeof spec !== 'object' || spec === null) throw new InvalidArgument('key spec must be an object');
  if (!isKeyType(spec.type)) throw new InvalidArgument(`unknown key type "${String(spec.type)}"`);
  checkLabel(spec.label, Math.min(LABEL_MAX, limits.labelMax ?? LABEL_MAX));
  if (spec.id !== undefined) checkId(spec.id, Math.min(ID_MAX, limits.idMax ?? ID_MAX));
}

export function checkData(data: Uint8Array, what: string, max = MAX_DATA): void {
  if (!(data instanceof Uint8Array)) throw new InvalidArgument(`${what} must be bytes`);
  if (data.length > max) throw new InvalidArgument(`${what} is longer than ${max} bytes`);
}

export function requireType(key: KeyRef, allowed: readonly KeyType[], operation: string): void {
  if (!allowed.includes(key.type)) {
    throw new WrongKeyType(`${operation} needs a ${allowed.join(' or ')} key; "${key.label}" is ${key.type}`);
  }
}

export function checkRandomLength(length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > MAX_RANDOM) throw new InvalidArgument(`random length must be 1..${MAX_RANDOM}`);
}

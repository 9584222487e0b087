// HSM selection strings: PKCS#11 URIs (RFC 7512) for real tokens, `fake:` for the fake backend.
//   pkcs11:token=vault-dev;manufacturer=SoftHSM%20project?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin
//   fake:            fake:?path=/tmp/fake-token.json
// Parsing never touches the PIN's value beyond storing it; nothing here logs or echoes it.

import { readFileSync } from 'node:fs';
import { InvalidUri } from './errors.js';

export interface Pkcs11Uri {
  readonly scheme: 'pkcs11';
  // Path attributes (which token / object).
  readonly token?: string;
  readonly manufacturer?: string;
  readonly serial?: string;
  readonly model?: string;
  readonly slotId?: number;
  readonly object?: string;
  readonly id?: Uint8Array;
  // Query attributes (how to reach it).
  readonly modulePath?: string;
  readonly pinValue?: string;
  readonly pinSource?: string;
  /** NSS-style LibraryParameters / pReserved string for C_Initialize (vendor modules that need it). */
  readonly libraryParameters?: string;
  /** Named native-config profile to force instead of matching by token info. */
  readonly profile?: string;
  readonly poolSize?: number;
}

export interface FakeUri {
  readonly scheme: 'fake';
  /** Persist the fake token to this file (INSECURE: key material in the clear). */
  readonly path?: string;
  readonly label?: string;
}

export type HsmUri = Pkcs11Uri | FakeUri;

const PATH_ATTRS = new Set(['token', 'manufacturer', 'serial', 'model', 'slot-id', 'object', 'id', 'type', 'library-manufacturer', 'library-description', 'library-version', 'slot-description', 'slot-manufacturer']);
const QUERY_ATTRS = new Set(['module-path', 'module-name', 'pin-value', 'pin-source', 'x-library-parameters', 'x-profile', 'x-pool-size']);

function pctDecode(value: string, attr: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new InvalidUri(`bad percent-encoding in "${attr}"`);
  }
}

function pctDecodeBytes(value: string, attr: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '%') {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new InvalidUri(`bad percent-encoding in "${attr}"`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else {
      const code = c.charCodeAt(0);
      if (code > 0x7e) throw new InvalidUri(`non-ASCII character in "${attr}"`);
      out.push(code);
    }
  }
  return Uint8Array.from(out);
}

export function parseHsmUri(text: string): HsmUri {
  if (text === 'fake:' || text.startsWith('fake:')) return parseFakeUri(text);
  if (!text.startsWith('pkcs11:')) {
    throw new InvalidUri('HSM URI must start with "pkcs11:" (RFC 7512) or "fake:"');
  }
  const rest = text.slice('pkcs11:'.length);
  const q = rest.indexOf('?');
  const pathPart = q < 0 ? rest : rest.slice(0, q);
  const queryPart = q < 0 ? '' : rest.slice(q + 1);
  const uri: { -readonly [K in keyof Pkcs11Uri]: Pkcs11Uri[K] } = { scheme: 'pkcs11' };
  const seen = new Set<string>();

  for (const pair of pathPart.split(';').filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidUri(`path attribute "${pair.slice(0, 32)}" has no value`);
    const name = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    if (!PATH_ATTRS.has(name)) throw new InvalidUri(`unknown path attribute "${name}"`);
    if (seen.has(name)) throw new InvalidUri(`path attribute "${name}" given twice`);
    seen.add(name);
    switch (name) {
      case 'token': uri.token = pctDecode(raw, name); break;
      case 'manufacturer': uri.manufacturer = pctDecode(raw, name); break;
      case 'serial': uri.serial = pctDecode(raw, name); break;
      case 'model': uri.model = pctDecode(raw, name); break;
      case 'object': uri.object = pctDecode(raw, name); break;
      case 'id': uri.id = pctDecodeBytes(raw, name); break;
      case 'slot-id': {
        if (!/^[0-9]+$/.test(raw)) throw new InvalidUri('slot-id must be a decimal number');
        uri.slotId = Number(raw);
        break;
      }
      default: break; // accepted for compatibility, not used for selection
    }
  }

  for (const pair of queryPart.split('&').filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidUri(`query attribute "${pair.slice(0, 32)}" has no value`);
    const name = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    if (!QUERY_ATTRS.has(name)) throw new InvalidUri(`unknown query attribute "${name}"`);
    if (seen.has(name)) throw new InvalidUri(`query attribute "${name}" given twice`);
    seen.add(name);
    switch (name) {
      case 'module-path': uri.modulePath = pctDecode(raw, name); break;
      case 'module-name': throw new InvalidUri('module-name is not supported; give module-path');
      case 'pin-value': uri.pinValue = pctDecode(raw, name); break;
      case 'pin-source': uri.pinSource = pctDecode(raw, name); break;
      case 'x-library-parameters': uri.libraryParameters = pctDecode(raw, name); break;
      case 'x-profile': uri.profile = pctDecode(raw, name); break;
      case 'x-pool-size': {
        if (!/^[0-9]+$/.test(raw) || Number(raw) < 1 || Number(raw) > 64) throw new InvalidUri('x-pool-size must be 1..64');
        uri.poolSize = Number(raw);
        break;
      }
    }
  }
  if (uri.pinValue !== undefined && uri.pinSource !== undefined) {
    throw new InvalidUri('give pin-value or pin-source, not both');
  }
  return uri;
}

function parseFakeUri(text: string): FakeUri {
  const rest = text.slice('fake:'.length);
  if (rest !== '' && !rest.startsWith('?')) throw new InvalidUri('fake URI takes only query attributes: fake:?path=FILE');
  const uri: { -readonly [K in keyof FakeUri]: FakeUri[K] } = { scheme: 'fake' };
  for (const pair of rest.slice(1).split('&').filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    const name = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pctDecode(pair.slice(eq + 1), name);
    if (name === 'path' && value !== '') uri.path = value;
    else if (name === 'token' && value !== '') uri.label = value;
    else throw new InvalidUri(`unknown fake URI attribute "${name}"`);
  }
  return uri;
}

/**
 * Resolves the user PIN: pin-value, else pin-source (`file:PATH` or a bare path; trailing newline
 * dropped), else the given environment variable. Errors never include the PIN.
 */
export function resolvePin(uri: Pkcs11Uri, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (uri.pinValue !== undefined) return uri.pinValue;
  if (uri.pinSource !== undefined) {
    const src = uri.pinSource;
    if (/^[a-z][a-z0-9+.-]*:/i.test(src) && !src.startsWith('file:')) {
      throw new InvalidUri('pin-source supports only file: paths');
    }
    const path = src.startsWith('file:') ? src.slice('file:'.length).replace(/^\/\/(?=\/)/, '') : src;
    let content: string;
    try {
      content = readFileSync(path, 'utf8');
    } catch (err) {
      throw new InvalidUri(`cannot read pin-source file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    return content.replace(/\r?\n$/, '');
  }
  return env.HSM_VAULT_PIN;
}

/** The URI with any PIN value removed, for logs and reports. */
export function redactUri(text: string): string {
  return text.replace(/([?&]pin-value=)[^&]*/g, '$1***');
}

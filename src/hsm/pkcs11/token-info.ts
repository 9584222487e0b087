// What a token and its module say about themselves (CK_TOKEN_INFO, CK_INFO, the mechanism list),
// as the driver's TokenInfo record, and the helpers for their blank-padded strings and limits.

import type { TokenInfo } from '../driver.js';
import * as C from './constants.js';
import type { Pkcs11 } from './module-registry.js';
import { activeQuirks, type Quirks } from './profile.js';

export const trim = (s: string): string => s.replace(/[\s\0]+$/, '');
const version = (v: { major: number; minor: number }): string => `${v.major}.${v.minor}`;

export function sessionLimit(value: number): number | null {
  // 0 = CK_EFFECTIVELY_INFINITE; all ones (32- or 64-bit) = CK_UNAVAILABLE_INFORMATION.
  if (value === 0 || value >= 0xffffffff) return null;
  return value;
}

export function readTokenInfo(
  pkcs11: Pkcs11,
  slot: Buffer,
  driver: { readonly libraryPath: string; readonly poolSize: number; readonly quirks: Quirks; readonly profileName: string | undefined },
): TokenInfo {
  const t = pkcs11.C_GetTokenInfo(slot);
  const m = pkcs11.C_GetInfo();
  const present = new Set(pkcs11.C_GetMechanismList(slot));
  return {
    backend: 'pkcs11',
    label: trim(t.label),
    manufacturer: trim(t.manufacturerID),
    model: trim(t.model),
    serial: trim(t.serialNumber),
    firmwareVersion: version(t.firmwareVersion),
    hardwareVersion: version(t.hardwareVersion),
    library: { description: trim(m.libraryDescription), manufacturer: trim(m.manufacturerID), version: version(m.libraryVersion), path: driver.libraryPath },
    maxSessionCount: sessionLimit(t.maxSessionCount),
    sessionCount: sessionLimit(t.sessionCount),
    poolSize: driver.poolSize,
    mechanisms: C.VAULT_MECHANISMS.map(({ mechanism, purpose }) => ({ name: C.MECHANISM_NAMES[mechanism]!, purpose, present: present.has(mechanism) })),
    quirks: [...(driver.profileName ? [`profile=${driver.profileName}`] : []), ...activeQuirks(driver.quirks)],
    insecure: false,
  };
}

// Finding the one slot whose token a PKCS#11 URI names (token, manufacturer, serial, model,
// slot-id), or saying which tokens are there when none or several match.

import { InvalidUri, TokenNotFound } from '../errors.js';
import type { Pkcs11Uri } from '../uri.js';
import { ulong } from './attributes.js';
import type { Pkcs11 } from './module-registry.js';
import { trim } from './token-info.js';

export function findSlot(pkcs11: Pkcs11, uri: Pkcs11Uri): Buffer {
  const slots = pkcs11.C_GetSlotList(true);
  const matches: Buffer[] = [];
  const seen: string[] = [];
  for (const slot of slots) {
    const info = pkcs11.C_GetTokenInfo(slot);
    const label = trim(info.label);
    seen.push(label);
    if (uri.token !== undefined && label !== uri.token) continue;
    if (uri.manufacturer !== undefined && trim(info.manufacturerID) !== uri.manufacturer) continue;
    if (uri.serial !== undefined && trim(info.serialNumber) !== uri.serial) continue;
    if (uri.model !== undefined && trim(info.model) !== uri.model) continue;
    // slot-id narrows a match but never selects alone: SoftHSM2 renumbers slots between runs.
    if (uri.slotId !== undefined && ulong(slot) !== uri.slotId) continue;
    if (uri.token === undefined && uri.serial === undefined && (info.flags & 0x400) === 0) continue; // uninitialized
    matches.push(slot);
  }
  if (matches.length === 0) {
    throw new TokenNotFound(`no token matches the URI (tokens present: ${seen.filter((l) => l !== '').map((l) => `"${l}"`).join(', ') || 'none'})`);
  }
  if (matches.length > 1) throw new InvalidUri(`the URI matches ${matches.length} tokens; add token= or serial=`);
  return matches[0]!;
}

// RFC 9807 §6.4.2: the 3DH transcript (Preamble) and key schedule (DeriveKeys), shared by client
// and server. Pure; runs in browsers.

import { concat, lengthPrefixed, utf8 } from './bytes.js';
import { deriveSecret, extract, hash } from './kdf.js';
import { serializeElement, type Point } from './group.js';
import { serializeCredentialResponse, type CredentialResponse } from './messages.js';

export function preamble(
  clientIdentity: Uint8Array,
  ke1: Uint8Array,
  serverIdentity: Uint8Array,
  credentialResponse: CredentialResponse,
  serverNonce: Uint8Array,
  serverPublicKeyshare: Point,
  context: Uint8Array,
): Uint8Array {
  return concat(
    utf8('OPAQUEv1-'),
    lengthPrefixed(context),
    lengthPrefixed(clientIdentity),
    ke1,
    lengthPrefixed(serverIdentity),
    serializeCredentialResponse(credentialResponse),
    serverNonce,
    serializeElement(serverPublicKeyshare),
  );
}

export interface SessionKeys {
  readonly km2: Uint8Array;
  readonly km3: Uint8Array;
  readonly sessionKey: Uint8Array;
}

/** DeriveKeys(ikm, preamble). */
export function deriveKeys(ikm: Uint8Array, preambleBytes: Uint8Array): SessionKeys {
  const prk = extract(new Uint8Array(0), ikm);
  const preambleHash = hash(preambleBytes);
  const handshakeSecret = deriveSecret(prk, 'HandshakeSecret', preambleHash);
  const sessionKey = deriveSecret(prk, 'SessionKey', preambleHash);
  const km2 = deriveSecret(handshakeSecret, 'ServerMAC', new Uint8Array(0));
  const km3 = deriveSecret(handshakeSecret, 'ClientMAC', new Uint8Array(0));
  return { km2, km3, sessionKey };
}

// RFC 9807 §4: the client's envelope. Store makes it at registration, Recover opens it at login.
// Both derive the client's key pair from the randomized password and bind the server's public
// key and both identities through the envelope's MAC. Pure; runs in browsers.

import { concat, ctEqual, lengthPrefixed, utf8 } from './bytes.js';
import { EnvelopeRecoveryError } from './errors.js';
import { serializeElement } from './group.js';
import { expand, mac } from './kdf.js';
import { type Envelope, Nh, Nseed } from './messages.js';
import { deriveKeyPair } from './oprf.js';

const DH_KEY_PAIR_INFO = utf8('OPAQUE-DeriveDiffieHellmanKeyPair');

/** RFC 9807 §6.4.1 DeriveDiffieHellmanKeyPair(seed) for P-256: OPRF DeriveKeyPair with its own info. */
export function deriveDiffieHellmanKeyPair(seed: Uint8Array): { privateKey: bigint; publicKey: Uint8Array } {
  const { skS, pkS } = deriveKeyPair(seed, DH_KEY_PAIR_INFO);
  return { privateKey: skS, publicKey: serializeElement(pkS) };
}

export interface CleartextCredentials {
  readonly serverPublicKey: Uint8Array;
  readonly serverIdentity: Uint8Array;
  readonly clientIdentity: Uint8Array;
}

/** RFC 9807 §4.1.1 CreateCleartextCredentials: identities default to the public keys. */
export function createCleartextCredentials(
  serverPublicKey: Uint8Array,
  clientPublicKey: Uint8Array,
  serverIdentity?: Uint8Array,
  clientIdentity?: Uint8Array,
): CleartextCredentials {
  return { serverPublicKey, serverIdentity: serverIdentity ?? serverPublicKey, clientIdentity: clientIdentity ?? clientPublicKey };
}

export function serializeCleartextCredentials(c: CleartextCredentials): Uint8Array {
  return concat(c.serverPublicKey, lengthPrefixed(c.serverIdentity), lengthPrefixed(c.clientIdentity));
}

/** RFC 9807 §4.1.2 Store. */
export function store(
  randomizedPassword: Uint8Array,
  serverPublicKey: Uint8Array,
  envelopeNonce: Uint8Array,
  serverIdentity?: Uint8Array,
  clientIdentity?: Uint8Array,
): { envelope: Envelope; clientPublicKey: Uint8Array; maskingKey: Uint8Array; exportKey: Uint8Array } {
  const maskingKey = expand(randomizedPassword, utf8('MaskingKey'), Nh);
  const authKey = expand(randomizedPassword, concat(envelopeNonce, utf8('AuthKey')), Nh);
  const exportKey = expand(randomizedPassword, concat(envelopeNonce, utf8('ExportKey')), Nh);
  const seed = expand(randomizedPassword, concat(envelopeNonce, utf8('PrivateKey')), Nseed);
  const { publicKey: clientPublicKey } = deriveDiffieHellmanKeyPair(seed);
  const cleartext = createCleartextCredentials(serverPublicKey, clientPublicKey, serverIdentity, clientIdentity);
  const authTag = mac(authKey, concat(envelopeNonce, serializeCleartextCredentials(cleartext)));
  return { envelope: { nonce: envelopeNonce.slice(), authTag }, clientPublicKey, maskingKey, exportKey };
}

/** RFC 9807 §4.1.3 Recover: EnvelopeRecoveryError when the tag does not verify (constant time). */
export function recover(
  randomizedPassword: Uint8Array,
  serverPublicKey: Uint8Array,
  envelope: Envelope,
  serverIdentity?: Uint8Array,
  clientIdentity?: Uint8Array,
): { clientPrivateKey: bigint; cleartext: CleartextCredentials; exportKey: Uint8Array } {
  const authKey = expand(randomizedPassword, concat(envelope.nonce, utf8('AuthKey')), Nh);
  const exportKey = expand(randomizedPassword, concat(envelope.nonce, utf8('ExportKey')), Nh);
  const seed = expand(randomizedPassword, concat(envelope.nonce, utf8('PrivateKey')), Nseed);
  const { privateKey, publicKey } = deriveDiffieHellmanKeyPair(seed);
  const cleartext = createCleartextCredentials(serverPublicKey, publicKey, serverIdentity, clientIdentity);
  const expectedTag = mac(authKey, concat(envelope.nonce, serializeCleartextCredentials(cleartext)));
  if (!ctEqual(envelope.authTag, expectedTag)) throw new EnvelopeRecoveryError();
  return { clientPrivateKey: privateKey, cleartext, exportKey };
}

// Cloudflare Plexi witness signatures, the witness's half: signing (ciphersuite 0x0001) and the
// JSON form Plexi serves. The format, response parsing and verification are the browser-safe
// src/trust/plexi.ts's, shared with the SDK, and re-exported here.

import { PLEXI_CIPHERSUITE_PROTOBUF_ED25519, checkPlexiMessage, encodeSignatureMessage, plexiKeyId } from '../trust/plexi.js';
import type { PlexiSignatureMessage, PlexiSignatureResponse, PlexiSignatureResponseJson } from '../trust/plexi.js';
import { encodeHex } from './bytes.js';
import { ED25519_SIGNATURE_SIZE, type Ed25519Signer } from './ed25519.js';
import { FleetError } from './errors.js';

export { PLEXI_CIPHERSUITE_BINCODE_ED25519, PLEXI_CIPHERSUITE_PROTOBUF_ED25519, encodeSignatureMessage } from '../trust/plexi.js';
export { parsePlexiResponse, plexiKeyId, verifyPlexiSignature } from '../trust/plexi.js';
export type { PlexiSignatureMessage, PlexiSignatureResponse, PlexiSignatureResponseJson } from '../trust/plexi.js';

/** Signs as a Plexi witness would (ciphersuite 0x0001), through an async Ed25519 signer. */
export async function signPlexi(
  fields: Omit<PlexiSignatureMessage, 'ciphersuite'> & { readonly ciphersuite?: number },
  signer: Ed25519Signer,
): Promise<PlexiSignatureResponse> {
  const message: PlexiSignatureMessage = { ciphersuite: PLEXI_CIPHERSUITE_PROTOBUF_ED25519, ...fields };
  const signature = await signer.sign(encodeSignatureMessage(message));
  if (signature.length !== ED25519_SIGNATURE_SIZE) throw new FleetError('INVALID_ARGUMENT', 'signer returned a non-Ed25519 signature');
  return { ...message, digest: Uint8Array.from(message.digest), signature, keyId: plexiKeyId(signer.publicKey) };
}

/** The JSON form Plexi serves (`version` mirrors `ciphersuite`, bytes in lowercase hex). */
export function toPlexiJson(response: PlexiSignatureResponse): PlexiSignatureResponseJson {
  checkPlexiMessage(response);
  if (response.timestamp > BigInt(Number.MAX_SAFE_INTEGER) || response.epoch > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FleetError('INVALID_ARGUMENT', 'timestamp and epoch above 2^53 - 1 cannot be written as exact JSON numbers');
  }
  return {
    version: response.ciphersuite,
    ciphersuite: response.ciphersuite,
    namespace: response.namespace,
    timestamp: Number(response.timestamp),
    epoch: Number(response.epoch),
    digest: encodeHex(response.digest),
    signature: encodeHex(response.signature),
    ...(response.keyId === undefined ? {} : { key_id: response.keyId }),
    ...(response.serializedMessage === undefined ? {} : { serialized_message: encodeHex(response.serializedMessage) }),
  };
}

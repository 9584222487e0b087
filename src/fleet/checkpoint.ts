// C2SP tlog-checkpoint and tlog-cosignature, the log's and the witness's half: formatting a
// checkpoint body and producing cosignature/v1 signatures. Parsing, opening and cosignature
// verification (and the formats, described there) are the browser-safe src/trust/checkpoint.ts's,
// shared with the SDK, and re-exported here.

import { type Checkpoint, type Cosignature, checkCosignatureTimestamp, checkpointMalformed, cosignatureKeyId, cosignedMessage } from '../trust/checkpoint.js';
import { checkKeyName } from '../trust/signed-note.js';
import { concatBytes, encodeBase64, uint64BigEndian } from './bytes.js';
import { ED25519_SIGNATURE_SIZE, type Ed25519Signer } from './ed25519.js';
import { FleetError } from './errors.js';
import { HASH_SIZE } from './merkle.js';
import type { NoteSigner } from './signed-note.js';

export { COSIGNATURE_SIZE, COSIGNATURE_V1_HEADER, cosignatureKeyId, cosignatureVerifier, cosignedMessage } from '../trust/checkpoint.js';
export { openCheckpoint, parseCheckpoint, parseCosignature, parseCosignatureVerifierKey } from '../trust/checkpoint.js';
export type { Checkpoint, Cosignature, CosignatureVerifierOptions } from '../trust/checkpoint.js';

/** Formats a checkpoint body; refuses anything parseCheckpoint would refuse. */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  const { origin, size, rootHash, extensions } = checkpoint;
  if (origin.length === 0 || origin.includes('\n')) throw checkpointMalformed('origin must be one non-empty line');
  if (!Number.isSafeInteger(size) || size < 0) throw checkpointMalformed('tree size must be a non-negative safe integer');
  if (rootHash.length !== HASH_SIZE) throw checkpointMalformed('root hash must be 32 bytes');
  if (extensions.some((e) => e.length === 0 || e.includes('\n'))) throw checkpointMalformed('extension lines must be non-empty single lines');
  const text = [origin, String(size), encodeBase64(rootHash), ...extensions].map((l) => `${l}\n`).join('');
  return text;
}

export function encodeCosignature({ timestamp, signature }: Cosignature): Uint8Array {
  checkCosignatureTimestamp(timestamp);
  if (signature.length !== ED25519_SIGNATURE_SIZE) throw new FleetError('COSIGNATURE_MALFORMED', 'Ed25519 signature must be 64 bytes');
  return concatBytes(uint64BigEndian(timestamp), signature);
}

/**
 * A NoteSigner producing cosignature/v1 signatures with an Ed25519 key (an HSM key, say).
 * `now` gives the POSIX seconds to stamp; it defaults to the wall clock.
 */
export function cosignatureSigner(
  name: string,
  signer: Ed25519Signer,
  now: () => bigint = () => BigInt(Math.floor(Date.now() / 1000)),
): NoteSigner {
  checkKeyName(name);
  return {
    name,
    keyId: cosignatureKeyId(name, signer.publicKey),
    async sign(message) {
      const timestamp = now();
      const signature = await signer.sign(cosignedMessage(timestamp, new TextDecoder().decode(message)));
      return encodeCosignature({ timestamp, signature });
    },
  };
}

// The fleet witness: a separate party with its own Ed25519 key. It cosigns a log checkpoint
// (C2SP tlog-cosignature) only after checking the log grew consistently from the checkpoint it
// last signed for that origin, and signs the validation bundle digest (Plexi SignatureResponse)
// only for a bundle body it has seen included in that checkpoint.
//
// State directory:
//   <dir>/witness.key                 {"format":"hsm-vault-witness-key/v1","name":N,"seed":HEX} 0600
//   <dir>/logs/<hex SHA-256(origin)>.json
//                                     {"format":"hsm-vault-witness-log/v1","origin":O,"size":N,
//                                      "rootHash":B64,"checkpoint":NOTE,"signedAt":MS}
//   <dir>/lock                        held for the life of an open Witness (one signer per state)
// A log's state is written atomically (temp + fsync + rename) BEFORE any signature leaves, and
// every request is checked against it, so the witness never signs two different trees of one
// size, nor a tree smaller than one it signed, even across restarts.

import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleLogEntry } from '../trust/bundle.js';
import { constantTimeEqual, decodeBase64, decodeHex, encodeBase64, encodeHex, utf8 } from './bytes.js';
import { type BundleBody, bundleDigest, parseBundleBody } from './bundle.js';
import { type Checkpoint, cosignatureSigner, parseCheckpoint } from './checkpoint.js';
import { type Ed25519Signer, softwareEd25519Signer } from './ed25519.js';
import { leafHash, verifyConsistency, verifyInclusion } from './merkle.js';
import { type PlexiSignatureResponseJson, plexiKeyId, signPlexi, toPlexiJson } from './plexi.js';
import {
  type NoteVerifier,
  SIGNATURE_TYPE_COSIGNATURE_V1,
  addNoteSignatures,
  formatVerifierKey,
  isValidKeyName,
  openNote,
  parseNote,
  parseVerifierKey,
} from './signed-note.js';
import { LogStoreError, acquireLock, atomicWrite } from './log-store.js';

/** The log entry recorded for a validation bundle: its body's canonical JSON (src/trust/bundle.ts). */
export { bundleLogEntry };

export type WitnessErrorCode =
  | 'WITNESS_BAD_REQUEST'
  | 'WITNESS_UNKNOWN_LOG'
  | 'WITNESS_BAD_LOG_SIGNATURE'
  | 'WITNESS_FORK'
  | 'WITNESS_ROLLBACK'
  | 'WITNESS_INCONSISTENT'
  | 'WITNESS_NOT_INCLUDED'
  | 'WITNESS_STATE';

export class WitnessError extends Error {
  readonly code: WitnessErrorCode;

  constructor(code: WitnessErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return 'WitnessError';
  }
}

/** POST /v1/sign body. Hashes are standard base64. */
export interface WitnessSignRequest {
  /** The new checkpoint, a signed note carrying the log key's signature. */
  readonly checkpoint: string;
  /** PROOF(last signed size, new size); empty when the witness has signed nothing yet or sizes match. */
  readonly consistencyProof: readonly string[];
  /** Present to also get a Plexi signature over the bundle digest. */
  readonly bundle?: {
    readonly body: BundleBody;
    /** Index of the entry canonicalJson(body) in the checkpoint's tree. */
    readonly leafIndex: number;
    readonly inclusionProof: readonly string[];
    /** Plexi namespace; defaults to the body's fleet id. */
    readonly namespace?: string;
  };
}

export interface WitnessSignResponse {
  /** The checkpoint with this witness's cosignature line added. */
  readonly checkpoint: string;
  /** Just the cosignature line, `— <name> <base64>\n`. */
  readonly cosignature: string;
  /** Size of the tree this witness had signed before (0 if none). */
  readonly previousSize: number;
  readonly plexi?: PlexiSignatureResponseJson;
}

export interface WitnessLogState {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: string;
  readonly checkpoint: string;
  readonly signedAt: number;
}

export interface TrustedLog {
  readonly origin: string;
  /** The log's note verifier key `<name>+<id>+<base64(0x01 || key)>`. */
  readonly key: string;
}

export interface WitnessOptions {
  readonly logs: readonly TrustedLog[];
  /** Milliseconds since the epoch, for Plexi timestamps (seconds are derived for cosignatures). */
  readonly now?: () => number;
}

const KEY_FORMAT = 'hsm-vault-witness-key/v1';
const LOG_FORMAT = 'hsm-vault-witness-log/v1';

/** Creates `<dir>/witness.key` (refuses to overwrite one). Returns the public identity. */
export function generateWitnessKey(dir: string, name: string, seed: Uint8Array = randomBytes(32)): WitnessIdentity {
  if (!isValidKeyName(name)) throw new WitnessError('WITNESS_BAD_REQUEST', 'witness name must be non-empty with no space and no "+"');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'witness.key');
  if (existsSync(path)) throw new WitnessError('WITNESS_STATE', `${path} already exists; a witness key is never overwritten`);
  atomicWrite(dir, 'witness.key', utf8(`${JSON.stringify({ format: KEY_FORMAT, name, seed: encodeHex(seed) })}\n`), 0o600);
  chmodSync(path, 0o600);
  return identityOf(name, softwareEd25519Signer(seed).publicKey);
}

export interface WitnessIdentity {
  readonly name: string;
  /** Ed25519 public key, hex (what `witness verify-signature --key` takes). */
  readonly publicKey: string;
  /** Plexi key_id: the key's last byte. */
  readonly plexiKeyId: number;
  /** cosignature/v1 verifier key `<name>+<id>+<base64(0x04 || key)>`. */
  readonly cosignatureKey: string;
}

function identityOf(name: string, publicKey: Uint8Array): WitnessIdentity {
  return {
    name,
    publicKey: encodeHex(publicKey),
    plexiKeyId: plexiKeyId(publicKey),
    cosignatureKey: formatVerifierKey(name, SIGNATURE_TYPE_COSIGNATURE_V1, publicKey),
  };
}

export class Witness {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly name: string,
    private readonly signer: Ed25519Signer,
    private readonly logs: ReadonlyMap<string, NoteVerifier>,
    private readonly now: () => number,
    private readonly releaseLock: () => void,
  ) {}

  /** Opens the witness state in `dir` (its key must exist) and takes the directory lock. */
  static async open(dir: string, options: WitnessOptions): Promise<Witness> {
    const { name, seed } = readKeyFile(join(dir, 'witness.key'));
    const logs = new Map<string, NoteVerifier>();
    for (const log of options.logs) {
      if (logs.has(log.origin)) throw new WitnessError('WITNESS_BAD_REQUEST', `log ${log.origin} configured twice`);
      logs.set(log.origin, parseVerifierKey(log.key));
    }
    mkdirSync(join(dir, 'logs'), { recursive: true, mode: 0o700 });
    let release: () => void;
    try {
      release = await acquireLock(join(dir, 'lock'), 0);
    } catch (cause) {
      if (cause instanceof LogStoreError) throw new WitnessError('WITNESS_STATE', `witness state ${dir} is in use by another process`, { cause });
      throw cause;
    }
    return new Witness(dir, name, softwareEd25519Signer(seed), logs, options.now ?? Date.now, release);
  }

  get identity(): WitnessIdentity {
    return identityOf(this.name, this.signer.publicKey);
  }

  get publicKey(): Uint8Array {
    return this.signer.publicKey;
  }

  /** The last checkpoint this witness signed for `origin`, if any. */
  state(origin: string): WitnessLogState | undefined {
    const path = this.statePath(origin);
    if (!existsSync(path)) return undefined;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch (cause) {
      throw new WitnessError('WITNESS_STATE', `state file for ${origin} is not JSON`, { cause });
    }
    if (
      doc.format !== LOG_FORMAT || doc.origin !== origin || typeof doc.size !== 'number' || typeof doc.rootHash !== 'string' ||
      typeof doc.checkpoint !== 'string' || typeof doc.signedAt !== 'number'
    ) {
      throw new WitnessError('WITNESS_STATE', `state file for ${origin} is malformed`);
    }
    return { origin, size: doc.size, rootHash: doc.rootHash, checkpoint: doc.checkpoint, signedAt: doc.signedAt };
  }

  /** Verifies and signs; requests are serialized so each sees the state the previous one left. */
  sign(request: WitnessSignRequest): Promise<WitnessSignResponse> {
    const run = this.queue.then(() => this.signNow(request));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Releases the directory lock after in-flight requests finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.releaseLock();
  }

  private async signNow(request: WitnessSignRequest): Promise<WitnessSignResponse> {
    if (this.closed) throw new WitnessError('WITNESS_STATE', 'witness is closed');
    const { note, checkpoint, proof } = this.parseRequest(request);

    // 1. The log key this witness trusts for the origin signed the checkpoint.
    const verifier = this.logs.get(checkpoint.origin);
    if (verifier === undefined) throw new WitnessError('WITNESS_UNKNOWN_LOG', `no trusted log for origin "${checkpoint.origin}"`);
    try {
      openNote(note, [verifier]);
    } catch (cause) {
      throw new WitnessError('WITNESS_BAD_LOG_SIGNATURE', `checkpoint is not signed by the log key ${verifier.name}`, { cause });
    }

    // 2. The tree grew consistently from the last one signed: no fork, no rollback.
    const last = this.state(checkpoint.origin);
    const previousSize = last?.size ?? 0;
    if (last !== undefined) {
      const lastRoot = decodeBase64(last.rootHash) as Uint8Array;
      if (checkpoint.size < last.size) {
        throw new WitnessError('WITNESS_ROLLBACK', `checkpoint size ${checkpoint.size} is below the signed size ${last.size}`);
      }
      if (checkpoint.size === last.size) {
        if (!constantTimeEqual(lastRoot, checkpoint.rootHash)) {
          throw new WitnessError('WITNESS_FORK', `a different tree of size ${last.size} was already signed`);
        }
      } else if (last.size > 0) {
        try {
          verifyConsistency(last.size, checkpoint.size, proof, lastRoot, checkpoint.rootHash);
        } catch (cause) {
          throw new WitnessError('WITNESS_INCONSISTENT', `size ${checkpoint.size} is not consistent with signed size ${last.size}`, { cause });
        }
      }
    }

    // 3. The bundle body is an entry of this tree.
    const bundle = request.bundle === undefined ? undefined : this.checkBundle(request.bundle, checkpoint);

    // 4. Persist, then sign.
    const nowMs = this.now();
    const state: WitnessLogState = {
      origin: checkpoint.origin,
      size: checkpoint.size,
      rootHash: encodeBase64(checkpoint.rootHash),
      checkpoint: note,
      signedAt: nowMs,
    };
    atomicWrite(this.dir, join('logs', `${originFileName(checkpoint.origin)}`), utf8(`${JSON.stringify({ format: LOG_FORMAT, ...state })}\n`), 0o600);

    const cosigner = cosignatureSigner(this.name, this.signer, () => BigInt(Math.floor(nowMs / 1000)));
    const cosigned = await addNoteSignatures(note, [cosigner]);
    const cosignature = cosigned.slice(cosigned.lastIndexOf('\u2014 '));
    const response: WitnessSignResponse = { checkpoint: cosigned, cosignature, previousSize };
    if (bundle === undefined) return response;
    const plexi = await signPlexi({ namespace: bundle.namespace, timestamp: BigInt(nowMs), epoch: BigInt(bundle.body.epoch), digest: bundle.digest }, this.signer);
    return { ...response, plexi: toPlexiJson(plexi) };
  }

  private parseRequest(request: WitnessSignRequest): { note: string; checkpoint: Checkpoint; proof: Uint8Array[] } {
    if (typeof request !== 'object' || request === null) throw badRequest('request must be a JSON object');
    if (typeof request.checkpoint !== 'string') throw badRequest('checkpoint must be a signed note string');
    let checkpoint: Checkpoint;
    try {
      checkpoint = parseCheckpoint(parseNote(request.checkpoint).text);
    } catch (cause) {
      throw badRequest(`checkpoint does not parse: ${(cause as Error).message}`, cause);
    }
    return { note: request.checkpoint, checkpoint, proof: hashList(request.consistencyProof, 'consistencyProof') };
  }

  private checkBundle(bundle: NonNullable<WitnessSignRequest['bundle']>, checkpoint: Checkpoint): { body: BundleBody; digest: Uint8Array; namespace: string } {
    let body: BundleBody;
    try {
      body = parseBundleBody(bundle.body);
    } catch (cause) {
      throw badRequest(`bundle body: ${(cause as Error).message}`, cause);
    }
    if (!Number.isSafeInteger(bundle.leafIndex)) throw badRequest('bundle.leafIndex must be an integer');
    const namespace = bundle.namespace ?? body.fleetId;
    if (typeof namespace !== 'string' || namespace.length === 0) throw badRequest('bundle.namespace must be a non-empty string');
    try {
      verifyInclusion(leafHash(bundleLogEntry(body)), bundle.leafIndex, checkpoint.size, hashList(bundle.inclusionProof, 'inclusionProof'), checkpoint.rootHash);
    } catch (cause) {
      if (cause instanceof WitnessError) throw cause;
      throw new WitnessError('WITNESS_NOT_INCLUDED', `bundle body is not entry ${bundle.leafIndex} of the checkpoint`, { cause });
    }
    return { body, digest: bundleDigest(body), namespace };
  }

  private statePath(origin: string): string {
    return join(this.dir, 'logs', originFileName(origin));
  }
}

/** Decodes a list of base64 32-byte hashes. */
function hashList(value: unknown, what: string): Uint8Array[] {
  if (!Array.isArray(value)) throw badRequest(`${what} must be an array of base64 hashes`);
  return value.map((h, i) => {
    const bytes = typeof h === 'string' ? decodeBase64(h) : undefined;
    if (bytes === undefined || bytes.length !== 32) throw badRequest(`${what}[${i}] must be base64 of 32 bytes`);
    return bytes;
  });
}

function originFileName(origin: string): string {
  return `${encodeHex(sha256(utf8(origin)))}.json`;
}

function readKeyFile(path: string): { name: string; seed: Uint8Array } {
  if (!existsSync(path)) throw new WitnessError('WITNESS_STATE', `${path} not found: run \`hsm-vault witness keygen\` first`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw new WitnessError('WITNESS_STATE', `${path} is not JSON`, { cause });
  }
  const seed = typeof doc.seed === 'string' ? decodeHex(doc.seed) : undefined;
  if (doc.format !== KEY_FORMAT || typeof doc.name !== 'string' || !isValidKeyName(doc.name) || seed === undefined || seed.length !== 32) {
    throw new WitnessError('WITNESS_STATE', `${path} is not a ${KEY_FORMAT} file`);
  }
  return { name: doc.name, seed };
}

function badRequest(message: string, cause?: unknown): WitnessError {
  return new WitnessError('WITNESS_BAD_REQUEST', message, cause === undefined ? undefined : { cause });
}

// Client-side verification of a fleet update, for the SDK. Browser-safe: every rule it shares
// with src/fleet — bundle parsing, canonical JSON and checks, Plexi signatures, signed notes and
// checkpoints, cosignatures, Merkle proofs — comes from src/trust/, the one implementation both
// use (no node: import there either; test/client/import-graph.test.ts checks). What is left here
// is the client's own policy: which keys are pinned, the order of the steps, and rollback.
//
// A fleet update is a validation bundle plus its place in the audit log:
//   { bundle: {body, witness, operatorSignature},      (src/trust/bundle.ts format)
//     checkpoint: "<signed note: log signature + witness cosignature>",
//     leafIndex, inclusionProof: [base64],            (entry = canonical JSON of the body)
//     consistencyProof: [base64] }                    (from the last checkpoint the client saw)
// The client pins the witness key (which signs Plexi responses and cosigns checkpoints), the
// operator's countersigning key, the log's note key and origin. Checks, in order, each failure
// naming its step: parse, digest, witness-signature, witness-binding, countersignature,
// checkpoint-signature, checkpoint-cosignature, inclusion, consistency, validity, rollback. The
// result is the new trusted state and the key diff from the previous epoch.

import { type BundleBody, BundleCheckFailed, type FleetKeyRole, bundleLogEntry, checkBundle, checkValidity, keyChanges, parseBundle } from '../trust/bundle.js';
import { decodeBase64, encodeBase64, encodeHex, utf8 } from '../trust/bytes.js';
import { cosignatureVerifier, parseCheckpoint } from '../trust/checkpoint.js';
import { leafHash, verifyConsistency, verifyInclusion } from '../trust/merkle.js';
import { type NoteVerifier, type ParsedNote, parseNote, parseVerifierKey } from '../trust/signed-note.js';

export type ClientVerifyStep =
  | 'parse'
  | 'digest'
  | 'witness-signature'
  | 'witness-binding'
  | 'countersignature'
  | 'checkpoint-signature'
  | 'checkpoint-cosignature'
  | 'inclusion'
  | 'consistency'
  | 'validity'
  | 'rollback';

export class FleetUpdateRejected extends Error {
  readonly code = 'FLEET_UPDATE_REJECTED';
  readonly step: ClientVerifyStep;

  constructor(step: ClientVerifyStep, message: string) {
    super(`fleet update rejected at ${step}: ${message}`);
    this.step = step;
  }

  override get name(): string {
    return 'FleetUpdateRejected';
  }
}

/** For SDK callers checking log entries other than bundles (the same functions src/fleet uses). */
export { leafHash, verifyConsistency, verifyInclusion } from '../trust/merkle.js';

export type KeyRole = FleetKeyRole;
export type BundleBodyJson = BundleBody;

export interface FleetUpdate {
  readonly bundle: unknown;
  readonly checkpoint: string;
  readonly leafIndex: number;
  readonly inclusionProof: readonly string[];
  /** From `last.size` to the checkpoint's size; empty with no previous state or equal sizes. */
  readonly consistencyProof: readonly string[];
}

export interface PinnedKeys {
  /** Witness Ed25519 public key (32 bytes). */
  readonly witnessKey: Uint8Array;
  /** The witness's cosignature key name (the name on its checkpoint signature line). */
  readonly witnessName: string;
  /** The operator's countersigning Ed25519 key (the fleet signing key), 32 bytes. */
  readonly operatorKey: Uint8Array;
  /** The log's note verifier key `<name>+<hex id>+<base64(0x01 || key)>`. */
  readonly logKey: string;
  readonly origin: string;
  /** Plexi namespace; defaults to the body's fleet id. */
  readonly namespace?: string;
}

/** What a client keeps between updates (JSON-serializable). */
export interface TrustedFleetState {
  readonly origin: string;
  readonly size: number;
  /** base64 root hash at `size`. */
  readonly rootHash: string;
  readonly epoch: number;
  /** hex SHA-256 of the body's canonical JSON. */
  readonly digest: string;
  readonly body: BundleBodyJson;
}

export interface KeyDiff {
  readonly fromEpoch: number;
  readonly toEpoch: number;
  readonly changed: readonly { readonly role: KeyRole; readonly from: string; readonly to: string }[];
  readonly unchanged: readonly KeyRole[];
}

export interface VerifiedFleetUpdate {
  readonly state: TrustedFleetState;
  /** null on first contact (nothing to diff against). */
  readonly diff: KeyDiff | null;
  readonly body: BundleBodyJson;
}

export interface VerifyFleetUpdateInput extends FleetUpdate {
  readonly pinned: PinnedKeys;
  readonly last: TrustedFleetState | null;
  /** POSIX seconds. */
  readonly now: number;
}

export function verifyFleetUpdate(input: VerifyFleetUpdateInput): VerifiedFleetUpdate {
  const { pinned, last, now } = input;

  // parse
  const bundle = step('parse', () => parseBundle(input.bundle));
  const { body } = bundle;
  const inclusionPath = step('parse', () => hashes(input.inclusionProof, 'inclusionProof'));
  const consistencyPath = step('parse', () => hashes(input.consistencyProof, 'consistencyProof'));
  const note = step('parse', () => parseNote(input.checkpoint));
  const checkpoint = step('parse', () => parseCheckpoint(note.text));

  // digest, witness-signature, witness-binding, countersignature: the bundle checks, against the
  // pinned witness and operator keys (never the body's own signing key).
  const digest = step('digest', () => checkBundle(bundle, { witnessKey: pinned.witnessKey, operatorKey: pinned.operatorKey, namespace: pinned.namespace }));

  // checkpoint-signature: the pinned log key signed the checkpoint, for the pinned origin.
  if (checkpoint.origin !== pinned.origin) fail('checkpoint-signature', `origin "${checkpoint.origin}" is not "${pinned.origin}"`);
  const logKey = step('parse', () => parseVerifierKey(pinned.logKey));
  requireSignature(note, logKey, 'checkpoint-signature', `no signature by log key ${logKey.name}`, 'log signature does not verify');

  // checkpoint-cosignature: the pinned witness cosigned it (tlog-cosignature, type 0x04).
  const witness = step('checkpoint-cosignature', () => cosignatureVerifier(pinned.witnessName, pinned.witnessKey));
  requireSignature(note, witness, 'checkpoint-cosignature', `no cosignature by witness ${pinned.witnessName}`, 'cosignature does not verify');

  // inclusion: the body is an entry of the cosigned tree.
  step('inclusion', () => verifyInclusion(leafHash(bundleLogEntry(body)), input.leafIndex, checkpoint.size, inclusionPath, checkpoint.rootHash));

  // consistency: the cosigned tree extends the last one this client trusted.
  if (last !== null) {
    if (last.origin !== checkpoint.origin) fail('consistency', `last state is for origin "${last.origin}"`);
    const lastRoot = decodeBase64(last.rootHash);
    if (lastRoot?.length !== 32) fail('consistency', 'last root hash is not base64 of 32 bytes');
    if (checkpoint.size < last.size) fail('consistency', `log size ${checkpoint.size} is below the size ${last.size} already seen`);
    if (last.size > 0) step('consistency', () => verifyConsistency(last.size, checkpoint.size, consistencyPath, lastRoot, checkpoint.rootHash));
  }

  // validity
  step('validity', () => checkValidity(body, now));

  // rollback: never an older epoch, never a second bundle for one epoch.
  let diff: KeyDiff | null = null;
  if (last !== null) {
    if (body.fleetId !== last.body.fleetId) fail('rollback', `fleet "${body.fleetId}" is not "${last.body.fleetId}"`);
    if (body.epoch < last.epoch) fail('rollback', `epoch ${body.epoch} is older than the trusted epoch ${last.epoch}`);
    if (body.epoch === last.epoch && encodeHex(digest) !== last.digest) fail('rollback', `a different bundle for epoch ${body.epoch} was already trusted`);
    diff = { fromEpoch: last.epoch, toEpoch: body.epoch, ...keyChanges(last.body.keys, body.keys) };
  }

  const state: TrustedFleetState = {
    origin: checkpoint.origin,
    size: checkpoint.size,
    rootHash: encodeBase64(checkpoint.rootHash),
    epoch: body.epoch,
    digest: encodeHex(digest),
    body,
  };
  return { state, diff, body };
}

// --- helpers ---

function step<T>(name: ClientVerifyStep, body: () => T): T {
  try {
    return body();
  } catch (err) {
    if (err instanceof FleetUpdateRejected) throw err;
    // The shared bundle checks name the check that failed, with our step names.
    if (err instanceof BundleCheckFailed) throw new FleetUpdateRejected(err.check, err.message);
    throw new FleetUpdateRejected(name, err instanceof Error ? err.message : String(err));
  }
}

function fail(name: ClientVerifyStep, message: string): never {
  throw new FleetUpdateRejected(name, message);
}

/** The first signature line by `verifier`'s key must exist and verify over the note text. */
function requireSignature(note: ParsedNote, verifier: NoteVerifier, at: ClientVerifyStep, missing: string, invalid: string): void {
  const line = note.signatures.find((s) => s.name === verifier.name && s.keyId === verifier.keyId);
  if (line === undefined) fail(at, missing);
  if (!verifier.verify(utf8(note.text), line.signature)) fail(at, invalid);
}

function hashes(value: unknown, what: string): Uint8Array[] {
  if (!Array.isArray(value)) throw new Error(`${what} must be an array of base64 hashes`);
  return value.map((h, i) => {
    const bytes = typeof h === 'string' ? decodeBase64(h) : undefined;
    if (bytes?.length !== 32) throw new Error(`${what}[${i}] must be base64 of 32 bytes`);
    return bytes;
  });
}

// Validation bundle: a fleet's public keys and validity, witnessed and countersigned.
//
//   body      {fleetId, epoch, keys: {ake, hpke, signing}, notBefore, notAfter}
//   digest    SHA-256(canonicalJson(body))
//   witness   Plexi SignatureResponse (ciphersuite 0x0001) over {namespace, timestamp, epoch,
//             digest}; namespace = fleet id unless configured otherwise
//   operator  Ed25519 signature by the fleet signing key over the witness's 64 signature bytes
//
// Verification runs the steps of Meta's published verifier for these bundles
// (github.com/facebook/mbt, `eb-verify-namespace`: verify-digest -> verify-signature ->
// counter-signature "on Cloudflare's signature bytes"), bracketed by strict parsing first and
// the validity window last. A failure names its step.
//
// Canonical JSON (what the digest covers): RFC 8785 (JCS) restricted to what a body holds:
// objects, strings and integers in [0, 2^53 - 1]. Object keys sorted by UTF-16 code units,
// no whitespace, strings escaped as ECMAScript JSON.stringify does (JCS §3.2.2.2), integers in
// shortest decimal, the whole text UTF-8 encoded. Every key is required; unknown keys are
// rejected, so exactly one byte string corresponds to each body.
// Fleet keys are base64url without padding: `ake` the 33-byte compressed P-256 OPAQUE server
// key, `hpke` the 65-byte uncompressed P-256 upload key, `signing` the 32-byte Ed25519 key.
// notBefore/notAfter are POSIX seconds; a bundle is valid for notBefore <= now < notAfter.

import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { constantTimeEqual, decodeBase64Url, encodeBase64Url, utf8 } from './bytes.js';
import { ED25519_SIGNATURE_SIZE, type Ed25519Signer, isValidEd25519PublicKey, verifyEd25519 } from './ed25519.js';
import { FleetError } from './errors.js';
import { type PlexiSignatureResponse, type PlexiSignatureResponseJson, parsePlexiResponse, toPlexiJson, verifyPlexiSignature } from './plexi.js';

export interface FleetKeys {
  readonly ake: string;
  readonly hpke: string;
  readonly signing: string;
}

export interface BundleBody {
  readonly fleetId: string;
  readonly epoch: number;
  readonly keys: FleetKeys;
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface ValidationBundle {
  readonly body: BundleBody;
  readonly witness: PlexiSignatureResponseJson;
  /** base64url (no padding) Ed25519 signature over the witness signature bytes. */
  readonly operatorSignature: string;
}

export type BundleStep =
  | 'parse'
  | 'artifact-digest'
  | 'witness-signature'
  | 'witness-binding'
  | 'operator-countersignature'
  | 'validity';

export class BundleVerificationError extends FleetError {
  readonly step: BundleStep;

  constructor(step: BundleStep, message: string, options?: { cause?: unknown }) {
    super('BUNDLE_VERIFICATION_FAILED', `validation bundle ${step} failed: ${message}`, options);
    this.step = step;
  }
}

export interface VerifyBundleOptions {
  /** The witness's Ed25519 public key (pinned by the client). */
  readonly witnessKey: Uint8Array;
  /** The countersigning key; defaults to the body's own fleet signing key. */
  readonly operatorKey?: Uint8Array;
  /** POSIX seconds. */
  readonly now: number;
  /** Witness namespace; defaults to the body's fleet id. */
  readonly namespace?: string;
}

export interface VerifiedBundle {
  readonly body: BundleBody;
  readonly digest: Uint8Array;
  readonly witness: PlexiSignatureResponse;
  readonly keys: { readonly ake: Uint8Array; readonly hpke: Uint8Array; readonly signing: Uint8Array };
}

/** A witness: given what to sign, returns its Plexi signature response (e.g. an HTTP call). */
export type BundleWitness = (request: {
  readonly namespace: string;
  readonly epoch: bigint;
  readonly digest: Uint8Array;
}) => Promise<PlexiSignatureResponse>;

// --- canonical JSON and digest ---

type CanonicalValue = string | number | { readonly [key: string]: CanonicalValue };

/** RFC 8785 JCS over objects, strings and safe non-negative integers (see the file header). */
export function canonicalJson(value: CanonicalValue): string {
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new FleetError('INVALID_ARGUMENT', 'string is not valid Unicode');
    return JSON.stringify(value);
  }
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new FleetError('INVALID_ARGUMENT', 'numbers must be integers in [0, 2^53 - 1]');
    return String(value);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FleetError('INVALID_ARGUMENT', 'only objects, strings and integers are canonicalized');
  }
  // Default sort compares UTF-16 code units, as JCS §3.2.3 requires.
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${canonicalJson(k)}:${canonicalJson(value[k] as CanonicalValue)}`).join(',')}}`;
}

/** SHA-256 of the body's canonical JSON, UTF-8 encoded. */
export function bundleDigest(body: BundleBody): Uint8Array {
  return sha256(utf8(canonicalJson(parseBundleBody(body) as unknown as CanonicalValue)));
}

// --- parsing ---

/** Strictly validates a body: exact key sets, types, key encodings and curve points. */
export function parseBundleBody(value: unknown): BundleBody {
  const body = exactObject(value, 'body', ['fleetId', 'epoch', 'keys', 'notBefore', 'notAfter']);
  if (typeof body.fleetId !== 'string' || body.fleetId.length === 0 || !body.fleetId.isWellFormed()) {
    throw invalidBody('fleetId must be a non-empty string');
  }
  const epoch = safeUint(body.epoch, 'epoch');
  const notBefore = safeUint(body.notBefore, 'notBefore');
  const notAfter = safeUint(body.notAfter, 'notAfter');
  if (notAfter <= notBefore) throw invalidBody('notAfter must be after notBefore');
  const keys = exactObject(body.keys, 'keys', ['ake', 'hpke', 'signing']);
  decodeFleetKeys(keys);
  return {
    fleetId: body.fleetId,
    epoch,
    keys: { ake: keys.ake as string, hpke: keys.hpke as string, signing: keys.signing as string },
    notBefore,
    notAfter,
  };
}

function decodeFleetKeys(keys: Record<string, unknown>): VerifiedBundle['keys'] {
  const ake = keyBytes(keys.ake, 'ake', 33);
  const hpke = keyBytes(keys.hpke, 'hpke', 65);
  const signing = keyBytes(keys.signing, 'signing', 32);
  if ((ake[0] !== 0x02 && ake[0] !== 0x03) || !isP256Point(ake)) throw invalidBody('ake is not a compressed P-256 point');
  if (hpke[0] !== 0x04 || !isP256Point(hpke)) throw invalidBody('hpke is not an uncompressed P-256 point');
  if (!isValidEd25519PublicKey(signing)) throw invalidBody('signing is not an Ed25519 public key');
  return { ake, hpke, signing };
}

function parseBundle(value: unknown): { body: BundleBody; witness: PlexiSignatureResponse; operatorSignature: Uint8Array } {
  const bundle = exactObject(value, 'bundle', ['body', 'witness', 'operatorSignature']);
  const body = parseBundleBody(bundle.body);
  const witness = parsePlexiResponse(bundle.witness);
  const operatorSignature = typeof bundle.operatorSignature === 'string' ? decodeBase64Url(bundle.operatorSignature) : undefined;
  if (operatorSignature === undefined || operatorSignature.length !== ED25519_SIGNATURE_SIZE) {
    throw invalidBody('operatorSignature must be base64url of 64 bytes');
  }
  return { body, witness, operatorSignature };
}

// --- building and verifying ---

/**
 * Builds a bundle: digest, then the witness's signature, then the operator's countersignature
 * over the witness signature bytes (a token-held fleet signing key, through `operator`).
 */
export async function createBundle(
  body: BundleBody,
  parties: { readonly witness: BundleWitness; readonly operator: Ed25519Signer; readonly namespace?: string },
): Promise<ValidationBundle> {
  const parsed = parseBundleBody(body);
  const digest = bundleDigest(parsed);
  const namespace = parties.namespace ?? parsed.fleetId;
  const witness = await parties.witness({ namespace, epoch: BigInt(parsed.epoch), digest });
  if (witness.namespace !== namespace || witness.epoch !== BigInt(parsed.epoch) || !constantTimeEqual(witness.digest, digest)) {
    throw new FleetError('INVALID_ARGUMENT', 'the witness signed something other than this bundle');
  }
  const operatorSignature = await parties.operator.sign(witness.signature);
  return { body: parsed, witness: toPlexiJson(witness), operatorSignature: encodeBase64Url(operatorSignature) };
}

/** Verifies a bundle step by step; throws BundleVerificationError naming the failing step. */
export function verifyBundle(bundle: unknown, options: VerifyBundleOptions): VerifiedBundle {
  // parse
  let parsed: ReturnType<typeof parseBundle>;
  try {
    parsed = parseBundle(bundle);
  } catch (cause) {
    throw new BundleVerificationError('parse', cause instanceof Error ? cause.message : 'unparseable bundle', { cause });
  }
  const { body, witness, operatorSignature } = parsed;

  // artifact-digest: the witness signed the SHA-256 of exactly this body.
  const digest = bundleDigest(body);
  if (!constantTimeEqual(digest, witness.digest)) {
    throw new BundleVerificationError('artifact-digest', 'SHA-256 of the body differs from the witnessed digest');
  }

  // witness-signature
  try {
    verifyPlexiSignature(witness, options.witnessKey);
  } catch (cause) {
    throw new BundleVerificationError('witness-signature', cause instanceof Error ? cause.message : 'invalid', { cause });
  }

  // witness-binding: the witness signed it for this fleet's namespace and this epoch.
  const namespace = options.namespace ?? body.fleetId;
  if (witness.namespace !== namespace) {
    throw new BundleVerificationError('witness-binding', `witnessed namespace "${witness.namespace}" is not "${namespace}"`);
  }
  if (witness.epoch !== BigInt(body.epoch)) {
    throw new BundleVerificationError('witness-binding', `witnessed epoch ${witness.epoch} is not the body's epoch ${body.epoch}`);
  }

  // operator-countersignature: over the witness's signature bytes.
  const keys = decodeFleetKeys(body.keys as unknown as Record<string, unknown>);
  const operatorKey = options.operatorKey ?? keys.signing;
  if (!verifyEd25519(operatorKey, witness.signature, operatorSignature)) {
    throw new BundleVerificationError('operator-countersignature', 'countersignature over the witness signature does not verify');
  }

  // validity
  if (!Number.isSafeInteger(options.now)) throw new BundleVerificationError('validity', 'now must be an integer');
  if (options.now < body.notBefore) throw new BundleVerificationError('validity', 'bundle is not yet valid');
  if (options.now >= body.notAfter) throw new BundleVerificationError('validity', 'bundle has expired');

  return { body, digest, witness, keys };
}

// --- key history ---

export type FleetKeyRole = keyof FleetKeys;

export interface FleetKeyChange {
  readonly role: FleetKeyRole;
  readonly from: string;
  readonly to: string;
}

export interface FleetKeyDiff {
  readonly fleetId: string;
  readonly fromEpoch: number;
  readonly toEpoch: number;
  readonly changed: readonly FleetKeyChange[];
  readonly unchanged: readonly FleetKeyRole[];
}

/** What changed between two epochs of one fleet. The later epoch must be greater. */
export function diffFleetKeys(previous: BundleBody, next: BundleBody): FleetKeyDiff {
  if (previous.fleetId !== next.fleetId) {
    throw new FleetError('INVALID_ARGUMENT', `cannot diff fleet "${previous.fleetId}" against "${next.fleetId}"`);
  }
  if (next.epoch <= previous.epoch) {
    throw new FleetError('INVALID_ARGUMENT', `epoch ${next.epoch} does not follow epoch ${previous.epoch}`);
  }
  const roles: FleetKeyRole[] = ['ake', 'hpke', 'signing'];
  return {
    fleetId: next.fleetId,
    fromEpoch: previous.epoch,
    toEpoch: next.epoch,
    changed: roles.filter((r) => previous.keys[r] !== next.keys[r]).map((role) => ({ role, from: previous.keys[role], to: next.keys[role] })),
    unchanged: roles.filter((r) => previous.keys[r] === next.keys[r]),
  };
}

/** Sorts bodies by epoch, takes the oldest as baseline and diffs each epoch against the one before. */
export function fleetKeyHistory(bodies: readonly BundleBody[]): FleetKeyDiff[] {
  const sorted = [...bodies].sort((a, b) => a.epoch - b.epoch);
  return sorted.slice(1).map((next, i) => diffFleetKeys(sorted[i] as BundleBody, next));
}

// --- helpers ---

function exactObject(value: unknown, what: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidBody(`${what} must be an object`);
  const record = value as Record<string, unknown>;
  const present = Object.keys(record);
  for (const k of present) if (!keys.includes(k)) throw invalidBody(`${what} has unknown field "${k}"`);
  for (const k of keys) if (record[k] === undefined) throw invalidBody(`${what} lacks field "${k}"`);
  return record;
}

function safeUint(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidBody(`${what} must be an integer in [0, 2^53 - 1]`);
  }
  return value;
}

function keyBytes(value: unknown, role: string, size: number): Uint8Array {
  const bytes = typeof value === 'string' ? decodeBase64Url(value) : undefined;
  if (bytes === undefined || bytes.length !== size) throw invalidBody(`keys.${role} must be base64url of ${size} bytes`);
  return bytes;
}

function isP256Point(bytes: Uint8Array): boolean {
  try {
    p256.Point.fromBytes(bytes).assertValidity();
    return true;
  } catch {
    return false;
  }
}

function invalidBody(reason: string): FleetError {
  return new FleetError('INVALID_ARGUMENT', `invalid validation bundle: ${reason}`);
}

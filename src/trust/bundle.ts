// Validation bundle, the verifier's half: a fleet's public keys and validity, witnessed and
// countersigned. Browser-safe: src/fleet/bundle.ts (verifyBundle, the CLI, the witness) and the
// SDK's fleet-update check parse, canonicalize and check bundles with these functions; building
// a bundle is src/fleet/bundle.ts's.
//
//   body      {fleetId, epoch, keys: {ake, hpke, signing}, notBefore, notAfter}
//   digest    SHA-256(canonicalJson(body))
//   witness   Plexi SignatureResponse (ciphersuite 0x0001) over {namespace, timestamp, epoch,
//             digest}; namespace = fleet id unless configured otherwise
//   operator  Ed25519 signature by the fleet signing key over the witness's 64 signature bytes
//
// The checks are the steps of Meta's published verifier for these bundles
// (github.com/facebook/mbt, `eb-verify-namespace`: verify-digest -> verify-signature ->
// counter-signature "on Cloudflare's signature bytes"), after strict parsing, with the validity
// window a separate last check. checkBundle and checkValidity throw BundleCheckFailed naming the
// check; each caller maps it to its own error (BundleVerificationError, FleetUpdateRejected).
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
import { constantTimeEqual, decodeBase64Url, utf8 } from './bytes.js';
import { ED25519_SIGNATURE_SIZE, isValidEd25519PublicKey, verifyEd25519 } from './ed25519.js';
import { FleetError } from './errors.js';
import { type PlexiSignatureResponse, type PlexiSignatureResponseJson, parsePlexiResponse, verifyPlexiSignature } from './plexi.js';

export interface FleetKeys {
  readonly ake: string;
  readonly hpke: string;
  readonly signing: string;
}

export type FleetKeyRole = keyof FleetKeys;
const ROLES: readonly FleetKeyRole[] = ['ake', 'hpke', 'signing'];

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

/** A strictly parsed bundle, not yet checked. */
export interface ParsedBundle {
  readonly body: BundleBody;
  readonly keys: { readonly ake: Uint8Array; readonly hpke: Uint8Array; readonly signing: Uint8Array };
  readonly witness: PlexiSignatureResponse;
  readonly operatorSignature: Uint8Array;
}

export type BundleCheck = 'digest' | 'witness-signature' | 'witness-binding' | 'countersignature' | 'validity';

/** A check of checkBundle/checkValidity failed; callers map `check` to their own step names. */
export class BundleCheckFailed extends Error {
  readonly check: BundleCheck;

  constructor(check: BundleCheck, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.check = check;
  }

  override get name(): string {
    return 'BundleCheckFailed';
  }
}

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

/** The log entry recorded for a validation bundle: its body's canonical JSON (what the digest covers). */
export function bundleLogEntry(body: BundleBody): Uint8Array {
  return utf8(canonicalJson(parseBundleBody(body) as unknown as CanonicalValue));
}

/** SHA-256 of the body's canonical JSON, UTF-8 encoded. */
export function bundleDigest(body: BundleBody): Uint8Array {
  return sha256(bundleLogEntry(body));
}

// --- parsing ---

/** Strictly validates a body: exact key sets, types, key encodings and curve points. */
export function parseBundleBody(value: unknown): BundleBody {
  return parseBody(value).body;
}

/** Strictly parses a whole bundle: body (as parseBundleBody), witness response, countersignature. */
export function parseBundle(value: unknown): ParsedBundle {
  const bundle = exactObject(value, 'bundle', ['body', 'witness', 'operatorSignature']);
  const { body, keys } = parseBody(bundle.body);
  const witness = parsePlexiResponse(bundle.witness);
  const operatorSignature = typeof bundle.operatorSignature === 'string' ? decodeBase64Url(bundle.operatorSignature) : undefined;
  if (operatorSignature === undefined || operatorSignature.length !== ED25519_SIGNATURE_SIZE) {
    throw invalidBody('operatorSignature must be base64url of 64 bytes');
  }
  return { body, keys, witness, operatorSignature };
}

function parseBody(value: unknown): Pick<ParsedBundle, 'body' | 'keys'> {
  const body = exactObject(value, 'body', ['fleetId', 'epoch', 'keys', 'notBefore', 'notAfter']);
  if (typeof body.fleetId !== 'string' || body.fleetId.length === 0 || !body.fleetId.isWellFormed()) {
    throw invalidBody('fleetId must be a non-empty string');
  }
  const epoch = safeUint(body.epoch, 'epoch');
  const notBefore = safeUint(body.notBefore, 'notBefore');
  const notAfter = safeUint(body.notAfter, 'notAfter');
  if (notAfter <= notBefore) throw invalidBody('notAfter must be after notBefore');
  const keys = exactObject(body.keys, 'keys', ROLES);
  const ake = keyBytes(keys.ake, 'ake', 33);
  const hpke = keyBytes(keys.hpke, 'hpke', 65);
  const signing = keyBytes(keys.signing, 'signing', 32);
  if ((ake[0] !== 0x02 && ake[0] !== 0x03) || !isP256Point(ake)) throw invalidBody('ake is not a compressed P-256 point');
  if (hpke[0] !== 0x04 || !isP256Point(hpke)) throw invalidBody('hpke is not an uncompressed P-256 point');
  if (!isValidEd25519PublicKey(signing)) throw invalidBody('signing is not an Ed25519 public key');
  return {
    body: {
      fleetId: body.fleetId,
      epoch,
      keys: { ake: keys.ake as string, hpke: keys.hpke as string, signing: keys.signing as string },
      notBefore,
      notAfter,
    },
    keys: { ake, hpke, signing },
  };
}

// --- checks ---

/**
 * digest -> witness-signature -> witness-binding -> countersignature, against the pinned keys.
 * Returns the body's digest; throws BundleCheckFailed naming the failed check.
 */
export function checkBundle(
  bundle: ParsedBundle,
  pins: { readonly witnessKey: Uint8Array; readonly operatorKey: Uint8Array; readonly namespace?: string | undefined },
): Uint8Array {
  const { body, witness, operatorSignature } = bundle;

  // digest: the witness signed the SHA-256 of exactly this body.
  const digest = bundleDigest(body);
  if (!constantTimeEqual(digest, witness.digest)) throw new BundleCheckFailed('digest', 'SHA-256 of the body differs from the witnessed digest');

  // witness-signature (Plexi ciphersuite 0x0001)
  try {
    verifyPlexiSignature(witness, pins.witnessKey);
  } catch (cause) {
    throw new BundleCheckFailed('witness-signature', cause instanceof Error ? cause.message : 'invalid', { cause });
  }

  // witness-binding: the witness signed it for this fleet's namespace and this epoch.
  const namespace = pins.namespace ?? body.fleetId;
  if (witness.namespace !== namespace) {
    throw new BundleCheckFailed('witness-binding', `witnessed namespace "${witness.namespace}" is not "${namespace}"`);
  }
  if (witness.epoch !== BigInt(body.epoch)) {
    throw new BundleCheckFailed('witness-binding', `witnessed epoch ${witness.epoch} is not the body's epoch ${body.epoch}`);
  }

  // countersignature: the operator key over the witness's signature bytes.
  if (!verifyEd25519(pins.operatorKey, witness.signature, operatorSignature)) {
    throw new BundleCheckFailed('countersignature', 'countersignature over the witness signature does not verify');
  }
  return digest;
}

/** validity: notBefore <= now < notAfter, `now` in POSIX seconds. */
export function checkValidity(body: BundleBody, now: number): void {
  if (!Number.isSafeInteger(now)) throw new BundleCheckFailed('validity', 'now must be an integer');
  if (now < body.notBefore) throw new BundleCheckFailed('validity', 'bundle is not yet valid');
  if (now >= body.notAfter) throw new BundleCheckFailed('validity', 'bundle has expired');
}

// --- key changes ---

export interface FleetKeyChange {
  readonly role: FleetKeyRole;
  readonly from: string;
  readonly to: string;
}

/** Which keys differ between two bodies' key sets, and which do not (roles in ake, hpke, signing order). */
export function keyChanges(previous: FleetKeys, next: FleetKeys): { changed: FleetKeyChange[]; unchanged: FleetKeyRole[] } {
  return {
    changed: ROLES.filter((r) => previous[r] !== next[r]).map((role) => ({ role, from: previous[role], to: next[role] })),
    unchanged: ROLES.filter((r) => previous[r] === next[r]),
  };
}

// --- helpers ---

function exactObject(value: unknown, what: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidBody(`${what} must be an object`);
  const record = value as Record<string, unknown>;
  for (const k of Object.keys(record)) if (!keys.includes(k)) throw invalidBody(`${what} has unknown field "${k}"`);
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

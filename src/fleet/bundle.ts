// Validation bundle: a fleet's public keys and validity, witnessed and countersigned. This file
// builds bundles (digest, the witness's Plexi signature, the operator's countersignature through a
// token-held key) and runs verifyBundle; the format, canonical JSON, parsing and the checks
// themselves are the browser-safe src/trust/bundle.ts's (described there), which the SDK's
// fleet-update check runs too.
//
// verifyBundle: parse -> artifact-digest -> witness-signature -> witness-binding ->
// operator-countersignature -> validity, the steps of Meta's published verifier
// (github.com/facebook/mbt, `eb-verify-namespace`) bracketed by strict parsing first and the
// validity window last. A failure names its step.

import { BundleCheckFailed, bundleDigest, checkBundle, checkValidity, keyChanges, parseBundle, parseBundleBody } from '../trust/bundle.js';
import type { BundleBody, BundleCheck, FleetKeyChange, FleetKeyRole, ParsedBundle, ValidationBundle } from '../trust/bundle.js';
import { constantTimeEqual, encodeBase64Url } from './bytes.js';
import type { Ed25519Signer } from './ed25519.js';
import { FleetError } from './errors.js';
import { type PlexiSignatureResponse, toPlexiJson } from './plexi.js';

export { bundleDigest, canonicalJson, parseBundleBody } from '../trust/bundle.js';
export type { BundleBody, FleetKeyChange, FleetKeyRole, FleetKeys, ValidationBundle } from '../trust/bundle.js';

export type BundleStep =
  | 'parse'
  | 'artifact-digest'
  | 'witness-signature'
  | 'witness-binding'
  | 'operator-countersignature'
  | 'validity';

/** Our step name for each shared bundle check. */
const STEP: Readonly<Record<BundleCheck, BundleStep>> = {
  digest: 'artifact-digest',
  'witness-signature': 'witness-signature',
  'witness-binding': 'witness-binding',
  countersignature: 'operator-countersignature',
  validity: 'validity',
};

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
  let parsed: ParsedBundle;
  try {
    parsed = parseBundle(bundle);
  } catch (cause) {
    throw new BundleVerificationError('parse', cause instanceof Error ? cause.message : 'unparseable bundle', { cause });
  }
  const { body, keys, witness } = parsed;
  try {
    const digest = checkBundle(parsed, { witnessKey: options.witnessKey, operatorKey: options.operatorKey ?? keys.signing, namespace: options.namespace });
    checkValidity(body, options.now);
    return { body, digest, witness, keys };
  } catch (err) {
    if (!(err instanceof BundleCheckFailed)) throw err;
    throw new BundleVerificationError(STEP[err.check], err.message, err.cause === undefined ? undefined : { cause: err.cause });
  }
}

// --- key history ---

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
  return { fleetId: next.fleetId, fromEpoch: previous.epoch, toEpoch: next.epoch, ...keyChanges(previous.keys, next.keys) };
}

/** Sorts bodies by epoch, takes the oldest as baseline and diffs each epoch against the one before. */
export function fleetKeyHistory(bodies: readonly BundleBody[]): FleetKeyDiff[] {
  const sorted = [...bodies].sort((a, b) => a.epoch - b.epoch);
  return sorted.slice(1).map((next, i) => diffFleetKeys(sorted[i] as BundleBody, next));
}

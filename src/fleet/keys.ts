// The fleet's key set in a token: one key per role, labelled `<fleetId>/<role>`. Generated once,
// inside a token, by `hsm-vault fleet init`; found again by every node that serves the fleet.
// This module is the only place that knows the labels.

import type { HsmDriver, KeyRef, KeyType } from '../hsm/driver.js';
import { KeyExists, KeyNotFound } from '../hsm/errors.js';
import { p256 } from '@noble/curves/nist.js';
import { FleetError } from './errors.js';

export const FLEET_ROLES = {
  /** k_tok: the OPRF key (OPAQUE's per-user keys are k_tok · s_u). */
  oprf: 'ec-p256-derive',
  /** oprf_seed: HMAC key whose output per user gives s_u. */
  oprfSeed: 'hmac-sha256',
  /** The server's static OPAQUE (AKE) key. */
  ake: 'ec-p256-derive',
  /** HPKE receiver key for secret uploads (DHKEM(P-256)). */
  hpke: 'ec-p256-derive',
  /** Seals records and session states (AES-256-GCM). */
  sealing: 'aes-256',
  /** Countersigns validation bundles and signs evidence (Ed25519). */
  signing: 'ed25519',
} as const satisfies Record<string, KeyType>;

export type FleetRole = keyof typeof FLEET_ROLES;
export const ROLE_NAMES: readonly FleetRole[] = Object.keys(FLEET_ROLES) as FleetRole[];
const LABEL_SUFFIX: Record<FleetRole, string> = { oprf: 'oprf', oprfSeed: 'oprf-seed', ake: 'ake', hpke: 'hpke', sealing: 'sealing', signing: 'signing' };

/** Fleet ids are DNS-label-like, so labels stay short and printable on every token. */
const FLEET_ID = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

export function checkFleetId(fleetId: string): void {
  if (typeof fleetId !== 'string' || !FLEET_ID.test(fleetId)) {
    throw new FleetError('INVALID_ARGUMENT', 'fleet id must be 1..32 characters of a-z, 0-9 and inner hyphens');
  }
}

export function fleetKeyLabel(fleetId: string, role: FleetRole): string {
  checkFleetId(fleetId);
  return `${fleetId}/${LABEL_SUFFIX[role]}`;
}

/** The public half of a fleet, as GET /v1/fleet and validation bundles publish it. */
export interface FleetPublicKeys {
  /** OPAQUE server key, 33-byte compressed P-256. */
  readonly ake: Uint8Array;
  /** HPKE upload key, 65-byte uncompressed P-256. */
  readonly hpke: Uint8Array;
  /** Ed25519 signing key, 32 bytes. */
  readonly signing: Uint8Array;
}

export interface FleetKeySet {
  readonly fleetId: string;
  readonly refs: Readonly<Record<FleetRole, KeyRef>>;
  readonly publicKeys: FleetPublicKeys;
  /**
   * False on a token that joined a fleet whose signing key could not travel (the origin token
   * cannot wrap Ed25519 keys, as SoftHSM 2.6.1): it holds only the public half, `refs.signing`
   * names that public object, and signing with it fails with KeyNotFound.
   */
  readonly holdsSigningKey: boolean;
}

export interface CreateFleetKeysOptions {
  /**
   * Keys that may join other tokens (multi-token fleets): extractable only under a trusted
   * transport key (CKA_WRAP_WITH_TRUSTED). Default false: a one-token fleet, never extractable.
   */
  readonly transportable?: boolean;
}

/**
 * Generates the whole key set inside the token. Refuses when any key of the fleet already exists
 * (a fleet is never overwritten); a failure half-way destroys what this call made.
 */
export async function createFleetKeys(driver: HsmDriver, fleetId: string, options: CreateFleetKeysOptions = {}): Promise<FleetKeySet> {
  await assertNoFleetKeys(driver, fleetId);
  const made: KeyRef[] = [];
  try {
    for (const role of ROLE_NAMES) {
      made.push(await driver.generateKey({ label: fleetKeyLabel(fleetId, role), type: FLEET_ROLES[role], transportable: options.transportable === true }));
    }
  } catch (err) {
    for (const key of made) await driver.destroyKey(key).catch(() => undefined);
    throw err;
  }
  return openFleetKeys(driver, fleetId);
}

/** KeyExists when any key (or public half) of the fleet is already in the token. */
export async function assertNoFleetKeys(driver: HsmDriver, fleetId: string): Promise<void> {
  checkFleetId(fleetId);
  const absent = (e: unknown) => (e instanceof KeyNotFound ? null : Promise.reject(e));
  for (const role of ROLE_NAMES) {
    const label = fleetKeyLabel(fleetId, role);
    const type = FLEET_ROLES[role];
    const existing = (await driver.findKey({ label }).catch(absent))
      ?? (type === 'ec-p256-derive' || type === 'ed25519' ? await driver.findPublicKey(label, type).catch(absent) : null);
    if (existing) throw new KeyExists(`fleet "${fleetId}" already has keys in this token (found ${label}); a fleet is never overwritten`);
  }
}

/** Finds every key of the fleet (exactly one per role, of the right type). */
export async function openFleetKeys(driver: HsmDriver, fleetId: string): Promise<FleetKeySet> {
  checkFleetId(fleetId);
  const refs = {} as Record<FleetRole, KeyRef>;
  let signingPublic: Uint8Array | undefined;
  for (const role of ROLE_NAMES) {
    const label = fleetKeyLabel(fleetId, role);
    let ref: KeyRef;
    try {
      ref = await driver.findKey({ label });
    } catch (err) {
      // A joined token may hold only the public half of the signing key.
      if (role !== 'signing' || !(err instanceof KeyNotFound)) throw err;
      ({ ref: refs.signing, publicKey: signingPublic } = await driver.findPublicKey(label, FLEET_ROLES.signing));
      continue;
    }
    if (ref.type !== FLEET_ROLES[role]) throw new FleetError('INVALID_ARGUMENT', `${label} is a ${ref.type} key, expected ${FLEET_ROLES[role]}`);
    refs[role] = ref;
  }
  const [ake, hpke, signing] = await Promise.all([
    driver.publicKey(refs.ake),
    driver.publicKey(refs.hpke),
    signingPublic ? Promise.resolve(signingPublic) : driver.publicKey(refs.signing),
  ]);
  return { fleetId, refs, publicKeys: { ake: p256.Point.fromBytes(ake).toBytes(true), hpke, signing }, holdsSigningKey: signingPublic === undefined };
}

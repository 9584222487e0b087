// Vendor differences as named quirk flags. A profile is a JSON file in native-config/profiles/;
// the driver picks one by the token's manufacturer/model (or by name from the URI/options) and
// falls back to conservative defaults. Every quirk in a shipped profile cites its source.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgument } from '../errors.js';

export interface Quirks {
  /** How the token returns CKA_EC_POINT: DER OCTET STRING around the point, or the raw point. */
  readonly ecPointEncoding: 'der' | 'raw' | 'either';
  /** How the peer point goes into CK_ECDH1_DERIVE_PARAMS.pPublicData. */
  readonly ecdhPublicDataEncoding: 'raw' | 'der';
  /** The token writes the GCM IV itself and ignores the caller's (FIPS-mode tokens). */
  readonly gcmIvFromToken: boolean;
  /** Hard cap on open sessions per application, below what C_GetTokenInfo says (null: none known). */
  readonly maxSessions: number | null;
  /** Longest CKA_LABEL the token stores intact (null: no known limit below ours). */
  readonly labelMaxLength: number | null;
  /** Longest CKA_ID the token stores intact (null: no known limit below ours). */
  readonly idMaxLength: number | null;
  /** ECDH into a readable (non-sensitive, extractable) generic secret is refused (FIPS mode). */
  readonly ecdhOutputMustBeSensitive: boolean;
  /**
   * Derive the ECDH output as a public session object (CKA_PRIVATE=false), for tokens that make
   * private objects costly (SoftHSM2 encrypts a private object's value in memory). The output is
   * the x-coordinate the driver reads out and destroys within the same call, so it is no secret
   * the token keeps either way.
   */
  readonly ecdhOutputPublic: boolean;
  /**
   * Cheap calls (HMAC, AES-GCM, random, lookups) may run on the event-loop thread: true only for
   * in-process software tokens where they take microseconds. Network HSMs send everything to
   * the worker pool.
   */
  readonly inlineCheapOperations: boolean;
  /** Worker threads (= operation sessions) to run by default; null: one per CPU. */
  readonly defaultPoolSize: number | null;
  /**
   * Run operations on a per-session copy of each key (C_CopyObject, CKA_TOKEN=false): for tokens
   * whose token objects are slow to use (SoftHSM2 re-checks the object's file on every use).
   */
  readonly sessionKeyCopies: boolean;
}

export interface Citation {
  readonly quirk: string;
  readonly source: string;
  readonly note: string;
}

export interface Profile {
  readonly name: string;
  readonly description: string;
  /** Token-info fields (trimmed) that select this profile automatically; all given must match. */
  readonly match?: { readonly manufacturer?: string; readonly model?: string; readonly libraryDescription?: string };
  readonly quirks: Partial<Quirks>;
  readonly citations?: readonly Citation[];
}

/** Safe defaults for an unknown token: accept both EC point forms, trust nothing else. */
export const DEFAULT_QUIRKS: Quirks = {
  ecPointEncoding: 'either',
  ecdhPublicDataEncoding: 'raw',
  gcmIvFromToken: false,
  maxSessions: null,
  labelMaxLength: null,
  idMaxLength: null,
  ecdhOutputMustBeSensitive: false,
  ecdhOutputPublic: false,
  inlineCheapOperations: false,
  defaultPoolSize: null,
  sessionKeyCopies: false,
};

const QUIRK_KEYS = new Set(Object.keys(DEFAULT_QUIRKS));

export function profilesDirectory(): string {
  // src/hsm/pkcs11 or dist/hsm/pkcs11 -> <root>/native-config/profiles
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '..', '..', '..', 'native-config', 'profiles');
}

export function parseProfile(json: unknown, source: string): Profile {
  if (typeof json !== 'object' || json === null) throw new InvalidArgument(`profile ${source}: not a JSON object`);
  const p = json as Record<string, unknown>;
  if (typeof p.name !== 'string' || p.name === '') throw new InvalidArgument(`profile ${source}: "name" missing`);
  const quirks = (p.quirks ?? {}) as Record<string, unknown>;
  if (typeof quirks !== 'object') throw new InvalidArgument(`profile ${source}: "quirks" must be an object`);
  for (const key of Object.keys(quirks)) {
    if (!QUIRK_KEYS.has(key)) throw new InvalidArgument(`profile ${source}: unknown quirk "${key}"`);
  }
  return {
    name: p.name,
    description: typeof p.description === 'string' ? p.description : '',
    match: p.match as Profile['match'],
    quirks: quirks as Partial<Quirks>,
    citations: Array.isArray(p.citations) ? (p.citations as Citation[]) : [],
  };
}

export function loadProfiles(directory = profilesDirectory()): Profile[] {
  let names: string[];
  try {
    names = readdirSync(directory).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return names.map((n) => {
    const path = join(directory, n);
    return parseProfile(JSON.parse(readFileSync(path, 'utf8')), path);
  });
}

export function loadProfileFile(path: string): Profile {
  return parseProfile(JSON.parse(readFileSync(path, 'utf8')), path);
}

export function selectProfile(
  profiles: readonly Profile[],
  token: { manufacturer: string; model: string; libraryDescription: string },
  byName?: string,
): Profile | undefined {
  if (byName) {
    const found = profiles.find((p) => p.name === byName);
    if (!found) throw new InvalidArgument(`no native-config profile named "${byName}"`);
    return found;
  }
  return profiles.find((p) => {
    const m = p.match;
    if (!m || (!m.manufacturer && !m.model && !m.libraryDescription)) return false;
    return (
      (m.manufacturer === undefined || m.manufacturer === token.manufacturer) &&
      (m.model === undefined || m.model === token.model) &&
      (m.libraryDescription === undefined || m.libraryDescription === token.libraryDescription)
    );
  });
}

export function resolveQuirks(profile: Profile | undefined): Quirks {
  return { ...DEFAULT_QUIRKS, ...(profile?.quirks ?? {}) };
}

/** Names of the quirks that differ from the defaults, for `hsm info` and reports. */
export function activeQuirks(quirks: Quirks): string[] {
  return Object.entries(quirks)
    .filter(([k, v]) => DEFAULT_QUIRKS[k as keyof Quirks] !== v)
    .map(([k, v]) => `${k}=${String(v)}`);
}

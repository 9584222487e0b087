// Ceremony transcripts: what a fleet key ceremony did, in canonical JSON, signed with the fleet's
// Ed25519 signing key (in the token). A transcript names every token (label, manufacturer, model,
// serial, firmware), every key (role, label, CKA_ID, key check value and protection attributes in
// every token that holds it), the transport key (its KCV and its components' KCVs, never a value),
// the operators and a timed step log. `verifyTranscript` checks the signature and the rules a
// ceremony must have kept; it never trusts the file's own claims beyond what it can check.
//
// Signed message: "hsm-vault fleet ceremony transcript v1\n" || canonicalJson(transcript), where
// canonical JSON has object keys sorted by UTF-16 code units, no whitespace, no undefined members.

import { encodeBase64Url, decodeBase64Url } from './bytes.js';
import { verifyEd25519, type Ed25519Signer } from './ed25519.js';
import { CeremonyError } from './ceremony-errors.js';
import type { KeyAttributes } from '../hsm/driver.js';
import { FLEET_ROLES, ROLE_NAMES, type FleetRole } from './keys.js';

export const TRANSCRIPT_VERSION = 1;
export const TRANSCRIPT_CONTEXT = 'hsm-vault fleet ceremony transcript v1\n';

export interface TranscriptToken {
  readonly backend: string;
  readonly label: string;
  readonly manufacturer: string;
  readonly model: string;
  readonly serial: string;
  readonly firmwareVersion: string;
  readonly hardwareVersion: string;
  readonly library: string;
}

/** The protection attributes of a key in one token (KeyAttributes without label/id/type). */
export interface TranscriptAttributes {
  readonly local: boolean;
  readonly sensitive: boolean;
  readonly alwaysSensitive: boolean;
  readonly extractable: boolean;
  readonly neverExtractable: boolean;
  readonly wrapWithTrusted: boolean;
  readonly keyGenMechanism: string | null;
  readonly usages: readonly string[];
}

/** A key's protection attributes as transcripts and evidence record them. */
export function protectionAttributes(a: KeyAttributes): TranscriptAttributes {
  return {
    local: a.local, sensitive: a.sensitive, alwaysSensitive: a.alwaysSensitive, extractable: a.extractable, neverExtractable: a.neverExtractable,
    wrapWithTrusted: a.wrapWithTrusted, keyGenMechanism: a.keyGenMechanism, usages: [...a.usages],
  };
}

export interface TranscriptHolding {
  /** Index into `tokens`. */
  readonly token: number;
  /** generated: LOCAL in this token; unwrapped: arrived under the transport key; public-only. */
  readonly method: 'generated' | 'unwrapped' | 'public-only';
  /** Key check value (hex) computed in this token. */
  readonly kcv: string;
  /** null for a public-only holding. */
  readonly attributes: TranscriptAttributes | null;
}

export interface TranscriptKey {
  readonly role: FleetRole;
  readonly label: string;
  readonly id: string; // hex CKA_ID
  readonly type: string;
  /** base64url public key as the driver returns it (P-256 uncompressed, Ed25519 32 bytes). */
  readonly publicKey: string | null;
  readonly holdings: readonly TranscriptHolding[];
}

export interface TranscriptTransport {
  readonly label: string;
  readonly kcv: string;
  /** operators: split-knowledge components entered by custodians; generated: by the ceremony host. */
  readonly componentSource: 'operators' | 'generated';
  readonly components: ReadonlyArray<{ readonly custodian: string | null; readonly kcv: string }>;
  /** Token indices where the trusted transport key was created, and where it was destroyed. */
  readonly createdIn: readonly number[];
  readonly destroyedIn: readonly number[];
}

export interface TranscriptStep {
  readonly at: string; // ISO 8601
  readonly action: string;
  readonly token: number | null;
  readonly detail: string | null;
}

export interface CeremonyTranscript {
  readonly version: 1;
  readonly kind: 'fleet-init' | 'fleet-join';
  readonly fleetId: string;
  readonly transportable: boolean;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly operators: readonly string[];
  /** tokens[0] made the keys (init) or sent them (join); tokens[1] received them (join). */
  readonly tokens: readonly TranscriptToken[];
  readonly keys: readonly TranscriptKey[];
  readonly transport: TranscriptTransport | null;
  /** The fleet's public keys exactly as FleetPublicKeys, base64url without padding. */
  readonly publicKeys: { readonly ake: string; readonly hpke: string; readonly signing: string };
  readonly steps: readonly TranscriptStep[];
}

export interface SignedTranscript {
  readonly transcript: CeremonyTranscript;
  /** base64url Ed25519 signature by publicKeys.signing over TRANSCRIPT_CONTEXT || canonical JSON. */
  readonly signature: string;
}

/** Canonical JSON: sorted keys, no whitespace; only JSON values (finite numbers, no undefined). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new CeremonyError('TRANSCRIPT_MALFORMED', 'canonical JSON has no non-finite numbers');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new CeremonyError('TRANSCRIPT_MALFORMED', `canonical JSON cannot hold a ${typeof value}`);
}

export function transcriptMessage(transcript: CeremonyTranscript): Uint8Array {
  return new TextEncoder().encode(TRANSCRIPT_CONTEXT + canonicalJson(transcript));
}

export async function signTranscript(transcript: CeremonyTranscript, signer: Ed25519Signer): Promise<SignedTranscript> {
  if (encodeBase64Url(signer.publicKey) !== transcript.publicKeys.signing) {
    throw new CeremonyError('TRANSCRIPT_KEY_MISMATCH', 'the transcript must be signed by the fleet signing key it names');
  }
  checkRules(transcript);
  const signature = await signer.sign(transcriptMessage(transcript));
  return { transcript, signature: encodeBase64Url(signature) };
}

/** The file form: pretty JSON (the signature covers the canonical form, not these bytes). */
export function formatTranscript(signed: SignedTranscript): string {
  return `${JSON.stringify(signed, null, 2)}\n`;
}

/**
 * Parses and verifies a signed transcript: shape, signature by the fleet signing key it names (or
 * by `signingPublicKey` when the caller pins one), and the ceremony rules. Returns the transcript.
 */
export function verifyTranscript(input: unknown, options: { signingPublicKey?: Uint8Array } = {}): CeremonyTranscript {
  let parsed = input;
  if (typeof input === 'string') {
    try {
      parsed = JSON.parse(input);
    } catch {
      throw new CeremonyError('TRANSCRIPT_MALFORMED', 'transcript is not JSON');
    }
  }
  const signed = parsed as SignedTranscript;
  if (!isObject(signed) || typeof signed.signature !== 'string' || !isObject(signed.transcript)) {
    throw new CeremonyError('TRANSCRIPT_MALFORMED', 'a signed transcript is {"transcript": {...}, "signature": "..."}');
  }
  const transcript = checkShape(signed.transcript);
  const named = decodeBase64Url(transcript.publicKeys.signing);
  if (!named || named.length !== 32) throw new CeremonyError('TRANSCRIPT_MALFORMED', 'publicKeys.signing is not a 32-byte base64url key');
  if (options.signingPublicKey && encodeBase64Url(options.signingPublicKey) !== transcript.publicKeys.signing) {
    throw new CeremonyError('TRANSCRIPT_KEY_MISMATCH', 'the transcript names another fleet signing key than the one expected');
  }
  const signature = decodeBase64Url(signed.signature);
  if (!signature || !verifyEd25519(named, transcriptMessage(transcript), signature)) {
    throw new CeremonyError('TRANSCRIPT_INVALID_SIGNATURE', 'the transcript signature does not verify under the fleet signing key');
  }
  checkRules(transcript);
  return transcript;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function malformed(what: string): never {
  throw new CeremonyError('TRANSCRIPT_MALFORMED', `transcript field ${what} is missing or has the wrong type`);
}

const str = (v: unknown, what: string): string => (typeof v === 'string' ? v : malformed(what));
const strOrNull = (v: unknown, what: string): string | null => (v === null || typeof v === 'string' ? v : malformed(what));
const bool = (v: unknown, what: string): boolean => (typeof v === 'boolean' ? v : malformed(what));
const arr = (v: unknown, what: string): unknown[] => (Array.isArray(v) ? v : malformed(what));
const obj = (v: unknown, what: string): Record<string, unknown> => (isObject(v) ? v : malformed(what));
const index = (v: unknown, what: string): number => (Number.isInteger(v) && (v as number) >= 0 ? (v as number) : malformed(what));

/** Rebuilds the transcript from known fields only, so that nothing unsigned-for rides along. */
function checkShape(t: Record<string, unknown>): CeremonyTranscript {
  if (t.version !== TRANSCRIPT_VERSION) throw new CeremonyError('TRANSCRIPT_MALFORMED', `unsupported transcript version ${String(t.version)}`);
  const kind = t.kind === 'fleet-init' || t.kind === 'fleet-join' ? t.kind : malformed('kind');
  const pk = obj(t.publicKeys, 'publicKeys');
  const attributes = (a: unknown, w: string): TranscriptAttributes | null => {
    if (a === null) return null;
    const o = obj(a, w);
    return {
      local: bool(o.local, `${w}.local`), sensitive: bool(o.sensitive, `${w}.sensitive`), alwaysSensitive: bool(o.alwaysSensitive, `${w}.alwaysSensitive`),
      extractable: bool(o.extractable, `${w}.extractable`), neverExtractable: bool(o.neverExtractable, `${w}.neverExtractable`),
      wrapWithTrusted: bool(o.wrapWithTrusted, `${w}.wrapWithTrusted`), keyGenMechanism: strOrNull(o.keyGenMechanism, `${w}.keyGenMechanism`),
      usages: arr(o.usages, `${w}.usages`).map((u, i) => str(u, `${w}.usages[${i}]`)),
    };
  };
  const transport = t.transport === null ? null : obj(t.transport, 'transport');
  return {
    version: 1,
    kind,
    fleetId: str(t.fleetId, 'fleetId'),
    transportable: bool(t.transportable, 'transportable'),
    startedAt: str(t.startedAt, 'startedAt'),
    finishedAt: str(t.finishedAt, 'finishedAt'),
    operators: arr(t.operators, 'operators').map((o, i) => str(o, `operators[${i}]`)),
    tokens: arr(t.tokens, 'tokens').map((x, i) => {
      const o = obj(x, `tokens[${i}]`);
      const f = (k: string) => str(o[k], `tokens[${i}].${k}`);
      return { backend: f('backend'), label: f('label'), manufacturer: f('manufacturer'), model: f('model'), serial: f('serial'), firmwareVersion: f('firmwareVersion'), hardwareVersion: f('hardwareVersion'), library: f('library') };
    }),
    keys: arr(t.keys, 'keys').map((x, i) => {
      const o = obj(x, `keys[${i}]`);
      const role = str(o.role, `keys[${i}].role`);
      if (!(ROLE_NAMES as readonly string[]).includes(role)) malformed(`keys[${i}].role`);
      return {
        role: role as FleetRole, label: str(o.label, `keys[${i}].label`), id: str(o.id, `keys[${i}].id`), type: str(o.type, `keys[${i}].type`),
        publicKey: strOrNull(o.publicKey, `keys[${i}].publicKey`),
        holdings: arr(o.holdings, `keys[${i}].holdings`).map((h, j) => {
          const w = `keys[${i}].holdings[${j}]`;
          const ho = obj(h, w);
          const method = ho.method === 'generated' || ho.method === 'unwrapped' || ho.method === 'public-only' ? ho.method : malformed(`${w}.method`);
          return { token: index(ho.token, `${w}.token`), method, kcv: str(ho.kcv, `${w}.kcv`), attributes: attributes(ho.attributes, `${w}.attributes`) };
        }),
      };
    }),
    transport: transport === null ? null : {
      label: str(transport.label, 'transport.label'),
      kcv: str(transport.kcv, 'transport.kcv'),
      componentSource: transport.componentSource === 'operators' || transport.componentSource === 'generated' ? transport.componentSource : malformed('transport.componentSource'),
      components: arr(transport.components, 'transport.components').map((c, i) => {
        const o = obj(c, `transport.components[${i}]`);
        return { custodian: strOrNull(o.custodian, `transport.components[${i}].custodian`), kcv: str(o.kcv, `transport.components[${i}].kcv`) };
      }),
      createdIn: arr(transport.createdIn, 'transport.createdIn').map((n, i) => index(n, `transport.createdIn[${i}]`)),
      destroyedIn: arr(transport.destroyedIn, 'transport.destroyedIn').map((n, i) => index(n, `transport.destroyedIn[${i}]`)),
    },
    publicKeys: { ake: str(pk.ake, 'publicKeys.ake'), hpke: str(pk.hpke, 'publicKeys.hpke'), signing: str(pk.signing, 'publicKeys.signing') },
    steps: arr(t.steps, 'steps').map((x, i) => {
      const o = obj(x, `steps[${i}]`);
      return { at: str(o.at, `steps[${i}].at`), action: str(o.action, `steps[${i}].action`), token: o.token === null ? null : index(o.token, `steps[${i}].token`), detail: strOrNull(o.detail, `steps[${i}].detail`) };
    }),
  };
}

function inconsistent(message: string): never {
  throw new CeremonyError('TRANSCRIPT_INCONSISTENT', message);
}

/** The rules every ceremony keeps; a transcript that breaks one is refused even if signed. */
function checkRules(t: CeremonyTranscript): void {
  const tokens = t.kind === 'fleet-init' ? 1 : 2;
  if (t.tokens.length !== tokens) inconsistent(`a ${t.kind} transcript names ${tokens} token(s)`);
  const roles = t.keys.map((k) => k.role).sort();
  if (roles.join() !== [...ROLE_NAMES].sort().join()) inconsistent('the transcript must name exactly one key per fleet role');
  for (const key of t.keys) {
    if (key.type !== FLEET_ROLES[key.role]) inconsistent(`${key.label} is ${key.type}, the ${key.role} role is ${FLEET_ROLES[key.role]}`);
    if (key.holdings.length !== tokens || key.holdings.some((h, i) => h.token !== i)) inconsistent(`${key.label} must have one holding per token, in token order`);
    const kcvs = new Set(key.holdings.map((h) => h.kcv));
    if (kcvs.size !== 1) inconsistent(`${key.label} has different key check values in different tokens`);
    for (const h of key.holdings) {
      if (h.method === 'public-only') {
        if (h.token === 0 || key.role !== 'signing') inconsistent(`${key.label}: only a joining token may hold the signing key's public half only`);
        continue;
      }
      const a = h.attributes ?? inconsistent(`${key.label} in token ${h.token} has no attributes`);
      if (!a.sensitive) inconsistent(`${key.label} in token ${h.token} is not sensitive`);
      if (a.extractable && !a.wrapWithTrusted) inconsistent(`${key.label} in token ${h.token} is extractable without CKA_WRAP_WITH_TRUSTED`);
      if (!t.transportable && (a.extractable || !a.neverExtractable || !a.local)) inconsistent(`${key.label} in a one-token fleet must be local and never extractable`);
      if (h.method === 'generated' && !a.local) inconsistent(`${key.label} in token ${h.token} is said to be generated there but is not LOCAL`);
      if (h.method === 'unwrapped' && a.local) inconsistent(`${key.label} in token ${h.token} is said to be unwrapped but is LOCAL`);
    }
  }
  if (t.kind === 'fleet-join') {
    if (!t.transportable) inconsistent('only a transportable fleet can join another token');
    const tr = t.transport ?? inconsistent('a join transcript names its transport key');
    if (tr.createdIn.join() !== '0,1') inconsistent('the transport key must be created in both tokens');
    if ([...tr.destroyedIn].sort().join() !== '0,1') inconsistent('the transport key must be destroyed in both tokens');
  } else if (t.transport !== null) {
    inconsistent('an init transcript has no transport key');
  }
}

// Deployment evidence (DESIGN.md "Fleet trust"): what one node can say about its token and its
// fleet keys, signed by the fleet signing key inside that token.
//
//   version      "hsm-vault-evidence/v1"
//   token        what C_GetTokenInfo / C_GetInfo report (label, manufacturer, model, serial, ...)
//   keys         one entry per fleet role: label, CKA_ID, type, protection attributes, public key
//                (P-256 uncompressed / Ed25519), key check value computed in the token
//   attestation  null: no token this project drives offers a vendor attestation, and the evidence
//                says so in `attestationNote` rather than inventing one
//   transcript   the signed ceremony transcript (transcript.ts), or null
//   software     SHA-256 of package-lock.json, a digest over dist/ (null when not built), Node version
//   signer       the fleet signing public key (base64url)
//   signature    base64url Ed25519 over EVIDENCE_CONTEXT || canonicalJson(evidence without signature)
//
// The context prefix separates evidence signatures from the other things the fleet key signs
// (transcripts, witness signature bytes). canonicalJson is transcript.ts's: sorted keys, no
// whitespace. The file and the audit-log entry are the canonical JSON of the whole evidence.
//
// dist digest: SHA-256 of the lines "<sha256 hex of file>  <path relative to dist>\n", one per
// regular file (symbolic links are skipped), sorted by path bytes — what `cd dist && find . -type f
// | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum` prints.

import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HsmDriver, TokenInfo } from '../hsm/driver.js';
import { InvalidArgument } from '../hsm/errors.js';
import { encodeBase64Url, utf8 } from './bytes.js';
import { verifyEd25519 } from './ed25519.js';
import { FLEET_ROLES, ROLE_NAMES, openFleetKeys, type FleetRole } from './keys.js';
import { canonicalJson, protectionAttributes, verifyTranscript, type SignedTranscript, type TranscriptAttributes } from './transcript.js';

export const EVIDENCE_VERSION = 'hsm-vault-evidence/v1';
export const EVIDENCE_CONTEXT = 'hsm-vault-evidence/v1\n';
export const NO_ATTESTATION = 'none offered by this token';

export interface EvidenceToken {
  readonly backend: string;
  readonly label: string;
  readonly manufacturer: string;
  readonly model: string;
  readonly serial: string;
  readonly firmwareVersion: string;
  readonly hardwareVersion: string;
  readonly library: { readonly description: string; readonly manufacturer: string; readonly version: string; readonly path: string };
  /** The driver's own flag for backends that must never hold production secrets (the fake). */
  readonly insecure: boolean;
}

/** The same projection of KeyAttributes the ceremony transcript records. */
export type EvidenceAttributes = TranscriptAttributes;

export interface EvidenceKey {
  readonly role: FleetRole;
  readonly label: string;
  readonly id: string; // hex CKA_ID
  readonly type: string;
  /** private: the token holds the key; public-only: only its public half (a joined token's signing key). */
  readonly held: 'private' | 'public-only';
  readonly attributes: EvidenceAttributes | null;
  /** base64url, for key pairs; null for secret keys. */
  readonly publicKey: string | null;
  /** hex key check value computed in the token (hsm/kcv.ts); null when only the public half is here. */
  readonly kcv: string | null;
}

export interface EvidenceSoftware {
  /** hex SHA-256 of package-lock.json; null when the file was absent. */
  readonly packageLockSha256: string | null;
  /** hex dist digest (see the header); null when dist/ was absent (a source checkout run with tsx). */
  readonly distSha256: string | null;
  readonly distFiles: number;
  readonly nodeVersion: string;
}

export interface EvidenceBody {
  readonly version: typeof EVIDENCE_VERSION;
  readonly fleetId: string;
  readonly createdAt: string;
  readonly token: EvidenceToken;
  readonly keys: readonly EvidenceKey[];
  /** Always null today: see `attestationNote`. */
  readonly attestation: null;
  readonly attestationNote: string;
  readonly transcript: SignedTranscript | null;
  readonly software: EvidenceSoftware;
  readonly signer: { readonly publicKey: string };
}

export interface Evidence extends EvidenceBody {
  readonly signature: string;
}

export interface CreateEvidenceOptions {
  /** The ceremony transcript of this fleet (file text or parsed); verified before it is embedded. */
  readonly transcript?: string | SignedTranscript;
  /** Checkout whose package-lock.json and dist/ are digested. Default: this package's root. */
  readonly softwareRoot?: string;
  readonly now?: () => Date;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const sha256Hex = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** The root of this package (src/fleet/ and dist/fleet/ are both two levels down). */
export function packageRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

/** The signed message: EVIDENCE_CONTEXT || canonicalJson(body). */
export function evidenceMessage(body: EvidenceBody): Uint8Array {
  return utf8(EVIDENCE_CONTEXT + canonicalJson(body));
}

/** The exact bytes of the evidence file and of its audit-log entry. */
export function evidenceBytes(evidence: Evidence): Uint8Array {
  return utf8(canonicalJson(evidence));
}

/** Digest of a directory's regular files, as the header defines it; null when absent. */
export function directoryDigest(dir: string): { sha256: string; files: number } | null {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return null;
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const s = lstatSync(path); // symbolic links are neither followed nor digested, as with find -type f
      if (s.isDirectory()) walk(path);
      else if (s.isFile()) files.push(relative(dir, path).split(sep).join('/'));
    }
  };
  walk(dir);
  files.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const lines = files.map((f) => `${sha256Hex(readFileSync(join(dir, f)))}  ${f}\n`).join('');
  return { sha256: sha256Hex(lines), files: files.length };
}

/** package-lock.json and dist/ of a checkout, and this process's Node version. */
export function softwareDigest(root: string): EvidenceSoftware {
  const lock = join(root, 'package-lock.json');
  const dist = directoryDigest(join(root, 'dist'));
  return {
    packageLockSha256: existsSync(lock) ? sha256Hex(readFileSync(lock)) : null,
    distSha256: dist?.sha256 ?? null,
    distFiles: dist?.files ?? 0,
    nodeVersion: process.version,
  };
}

function tokenOf(info: TokenInfo): EvidenceToken {
  return {
    backend: info.backend, label: info.label, manufacturer: info.manufacturer, model: info.model, serial: info.serial,
    firmwareVersion: info.firmwareVersion, hardwareVersion: info.hardwareVersion, library: { ...info.library }, insecure: info.insecure,
  };
}

const hasPublicKey = (role: FleetRole): boolean => FLEET_ROLES[role] !== 'aes-256' && FLEET_ROLES[role] !== 'hmac-sha256';

/**
 * Gathers the evidence for the fleet in this token and signs it with the fleet signing key there.
 * Refuses when the token holds only the signing key's public half, or when the transcript given
 * does not verify under this fleet's signing key or is another fleet's.
 */
export async function createEvidence(driver: HsmDriver, fleetId: string, options: CreateEvidenceOptions = {}): Promise<Evidence> {
  const now = options.now ?? (() => new Date());
  const fleet = await openFleetKeys(driver, fleetId);
  if (!fleet.holdsSigningKey) {
    throw new InvalidArgument(`this token holds only the public half of ${fleet.refs.signing.label}: evidence is signed in the token that holds the signing key`);
  }
  let transcript: SignedTranscript | null = null;
  if (options.transcript !== undefined) {
    const text = typeof options.transcript === 'string' ? options.transcript : JSON.stringify(options.transcript);
    const checked = verifyTranscript(text, { signingPublicKey: fleet.publicKeys.signing });
    if (checked.fleetId !== fleetId) throw new InvalidArgument(`the transcript is for fleet "${checked.fleetId}", not "${fleetId}"`);
    transcript = JSON.parse(text) as SignedTranscript;
    transcript = { transcript: checked, signature: transcript.signature };
  }
  const keys: EvidenceKey[] = [];
  for (const role of ROLE_NAMES) {
    const ref = fleet.refs[role];
    const a = await driver.keyAttributes(ref);
    keys.push({
      role, label: ref.label, id: hex(ref.id), type: ref.type, held: 'private',
      attributes: protectionAttributes(a),
      publicKey: hasPublicKey(role) ? encodeBase64Url(await driver.publicKey(ref)) : null,
      kcv: hex(await driver.keyCheckValue(ref)),
    });
  }
  const body: EvidenceBody = {
    version: EVIDENCE_VERSION,
    fleetId,
    createdAt: now().toISOString(),
    token: tokenOf(await driver.info()),
    keys,
    attestation: null,
    attestationNote: NO_ATTESTATION,
    transcript,
    software: softwareDigest(options.softwareRoot ?? packageRoot()),
    signer: { publicKey: encodeBase64Url(fleet.publicKeys.signing) },
  };
  const signature = await driver.sign(fleet.refs.signing, evidenceMessage(body));
  if (!verifyEd25519(fleet.publicKeys.signing, evidenceMessage(body), signature)) {
    throw new InvalidArgument('the token produced an evidence signature that does not verify under the fleet signing key');
  }
  return { ...body, signature: encodeBase64Url(signature) };
}

/** The evidence file: its canonical JSON and a newline. */
export function formatEvidence(evidence: Evidence): string {
  return `${canonicalJson(evidence)}\n`;
}

// `hsm-vault evidence audit`: re-checks deployment evidence (evidence.ts) step by step and says
// plainly what the evidence cannot prove. Each step passes, fails or warns with a reason; any
// failure makes the evidence `inconsistent`. Evidence from a software token (SoftHSM2, the fake
// backend) that passes every step is `consistent, but unprovable on this token`: its attributes
// are bookkeeping by software running with the node's own privileges.
//
// Steps, in order: format, signature, token, key-set, key-protection, attestation, transcript,
// software, and log (only when a log is given). Writes audit.json, audit.md and audit.html.

import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { publicKeyKcv } from '../hsm/kcv.js';
import { constantTimeEqual, decodeBase64Url, decodeHex, encodeBase64Url } from './bytes.js';
import { isValidEd25519PublicKey, verifyEd25519 } from './ed25519.js';
import { FLEET_ROLES, ROLE_NAMES, fleetKeyLabel, type FleetRole } from './keys.js';
import type { LogStore } from './log-store.js';
import { canonicalJson, verifyTranscript, type CeremonyTranscript, type TranscriptHolding } from './transcript.js';
import { EVIDENCE_VERSION, evidenceBytes, evidenceMessage, softwareDigest, type Evidence, type EvidenceAttributes, type EvidenceBody } from './evidence.js';

export const AUDIT_VERSION = 'hsm-vault-evidence-audit/v1';

export type StepStatus = 'pass' | 'warn' | 'fail';
export type StepId = 'format' | 'signature' | 'token' | 'key-set' | 'key-protection' | 'attestation' | 'transcript' | 'software' | 'log';
export type Verdict = 'consistent' | 'inconsistent' | 'consistent, but unprovable on this token';

export interface AuditStep {
  readonly id: StepId;
  readonly title: string;
  readonly status: StepStatus;
  /** One sentence: the first failure, else the first warning, else what passed. */
  readonly summary: string;
  readonly details: readonly string[];
}

export interface EvidenceAudit {
  readonly version: typeof AUDIT_VERSION;
  readonly auditedAt: string;
  /** hex SHA-256 of the evidence's canonical bytes (its audit-log entry), when it parsed. */
  readonly evidenceSha256: string | null;
  readonly fleetId: string | null;
  readonly createdAt: string | null;
  readonly token: string | null;
  readonly softwareToken: boolean;
  readonly verdict: Verdict;
  readonly steps: readonly AuditStep[];
  readonly cannotProve: readonly string[];
}

export interface AuditOptions {
  /** The fleet signing key the auditor trusts, and where it came from (e.g. "--fleet-key", "bundle FILE"). */
  readonly pin?: { readonly key: Uint8Array; readonly source: string; readonly fleetId?: string };
  /** A checkout to recompute package-lock.json and dist/ digests from. */
  readonly source?: string;
  /** The audit log the evidence should be an entry of. */
  readonly log?: LogStore;
  readonly now?: () => Date;
}

const TITLES: Record<StepId, string> = {
  format: 'Evidence format',
  signature: 'Signature by the fleet signing key',
  token: 'Token identity',
  'key-set': 'Fleet key set (one key per role, expected types, public keys)',
  'key-protection': 'Key protection attributes',
  attestation: 'Vendor attestation',
  transcript: 'Ceremony transcript',
  software: 'Node software digest',
  log: 'Audit log entry',
};

/** Collects one step's findings. */
class Step {
  readonly fails: string[] = [];
  readonly warns: string[] = [];
  readonly notes: string[] = [];
  constructor(readonly id: StepId) {}
  fail(m: string): void { this.fails.push(m); }
  warn(m: string): void { this.warns.push(m); }
  note(m: string): void { this.notes.push(m); }
  result(passSummary: string): AuditStep {
    const status: StepStatus = this.fails.length ? 'fail' : this.warns.length ? 'warn' : 'pass';
    const summary = this.fails[0] ?? this.warns[0] ?? passSummary;
    return { id: this.id, title: TITLES[this.id], status, summary, details: [...this.fails, ...this.warns, ...this.notes] };
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const TOP_LEVEL = ['version', 'fleetId', 'createdAt', 'token', 'keys', 'attestation', 'attestationNote', 'transcript', 'software', 'signer', 'signature'];
const ATTRIBUTE_FLAGS = ['local', 'sensitive', 'alwaysSensitive', 'extractable', 'neverExtractable', 'wrapWithTrusted'] as const;

/** Shape checks: every field the audit reads has the type it expects; nothing extra at the top. */
function checkFormat(input: unknown, step: Step): Evidence | null {
  let e = input;
  if (typeof input === 'string') {
    try {
      e = JSON.parse(input);
    } catch {
      step.fail('the evidence is not JSON');
      return null;
    }
  }
  if (!isObject(e)) {
    step.fail('the evidence is not a JSON object');
    return null;
  }
  if (e.version !== EVIDENCE_VERSION) step.fail(`version is ${JSON.stringify(e.version)}, expected "${EVIDENCE_VERSION}"`);
  const extra = Object.keys(e).filter((k) => !TOP_LEVEL.includes(k));
  if (extra.length) step.fail(`unknown fields ${extra.join(', ')} (not part of ${EVIDENCE_VERSION})`);
  const missing = TOP_LEVEL.filter((k) => !(k in e));
  if (missing.length) step.fail(`missing fields ${missing.join(', ')}`);
  const want = (ok: boolean, what: string): void => { if (!ok) step.fail(`${what} is missing or has the wrong type`); };
  want(typeof e.fleetId === 'string', 'fleetId');
  want(typeof e.createdAt === 'string', 'createdAt');
  want(typeof e.signature === 'string', 'signature');
  want(isObject(e.signer) && typeof e.signer.publicKey === 'string', 'signer.publicKey');
  want(isObject(e.token) && ['backend', 'label', 'manufacturer', 'model', 'serial', 'firmwareVersion', 'hardwareVersion'].every((k) => typeof (e.token as Record<string, unknown>)[k] === 'string'), 'token');
  want(isObject(e.software) && typeof e.software.nodeVersion === 'string', 'software');
  want(e.transcript === null || isObject(e.transcript), 'transcript');
  want(e.attestation === null || isObject(e.attestation), 'attestation');
  want(Array.isArray(e.keys) && e.keys.every((k) => isObject(k) && typeof k.role === 'string' && typeof k.label === 'string' && typeof k.id === 'string' && typeof k.type === 'string'
    && (k.held === 'private' || k.held === 'public-only') && (k.publicKey === null || typeof k.publicKey === 'string') && (k.kcv === null || typeof k.kcv === 'string')
    && (k.attributes === null || (isObject(k.attributes) && ATTRIBUTE_FLAGS.every((f) => typeof (k.attributes as Record<string, unknown>)[f] === 'boolean')))), 'keys');
  return step.fails.length ? null : (e as unknown as Evidence);
}

function bodyOf(e: Evidence): EvidenceBody {
  const { signature: _, ...body } = e;
  return body;
}

function checkSignature(e: Evidence, pin: AuditOptions['pin'], step: Step): void {
  const signer = decodeBase64Url(e.signer.publicKey);
  const signature = decodeBase64Url(e.signature);
  if (!signer || !isValidEd25519PublicKey(signer)) return step.fail('signer.publicKey is not a valid Ed25519 public key');
  if (!signature || !verifyEd25519(signer, evidenceMessage(bodyOf(e)), signature)) {
    return step.fail('the signature does not verify under the key the evidence names: a signed field was changed after signing (or another key signed it)');
  }
  step.note(`the signature verifies under ${e.signer.publicKey}`);
  if (!pin) {
    return step.warn('self-signed: the signing key is only the one the evidence names itself; pin the fleet key (--fleet-key or --bundle) to tie the evidence to the fleet');
  }
  if (pin.fleetId !== undefined && pin.fleetId !== e.fleetId) step.fail(`the ${pin.source} is for fleet "${pin.fleetId}", the evidence for "${e.fleetId}"`);
  if (!constantTimeEqual(pin.key, signer)) step.fail(`signed by ${e.signer.publicKey}, but the fleet signing key from ${pin.source} is ${encodeBase64Url(pin.key)}`);
  else step.note(`the signing key matches the one from ${pin.source}`);
}

/** SoftHSM2 and the fake backend: software with the node's privileges reports every attribute. */
export function isSoftwareToken(token: EvidenceBody['token']): boolean {
  return token.backend === 'fake' || token.insecure === true || /softhsm/i.test(token.manufacturer) || /softhsm/i.test(token.model);
}

function tokenLine(t: EvidenceBody['token']): string {
  return `"${t.label}" — ${t.manufacturer} ${t.model}, serial ${t.serial || '-'}, firmware ${t.firmwareVersion}, hardware ${t.hardwareVersion}; library ${t.library?.description ?? '-'} ${t.library?.version ?? ''}`.trim();
}

function checkToken(e: Evidence, step: Step): void {
  step.note(tokenLine(e.token));
  if (e.token.backend === 'fake') step.warn('the fake backend: keys live in the node process (or in the clear in a file); nothing about key protection holds');
  else if (isSoftwareToken(e.token)) step.warn(`a software token (${e.token.manufacturer}): identity and attributes are reported by software running with the node's privileges`);
}

const PUBLIC_KEY_SIZE: Partial<Record<string, number>> = { 'ec-p256-derive': 65, 'ec-p256-sign': 65, ed25519: 32 };

function validPublicKey(type: string, bytes: Uint8Array): boolean {
  if (bytes.length !== PUBLIC_KEY_SIZE[type]) return false;
  if (type === 'ed25519') return isValidEd25519PublicKey(bytes);
  try {
    p256.Point.fromBytes(bytes).assertValidity();
    return true;
  } catch {
    return false;
  }
}

function checkKeySet(e: Evidence, step: Step): void {
  for (const role of ROLE_NAMES) {
    const found = e.keys.filter((k) => k.role === role);
    if (found.length !== 1) step.fail(`role ${role} appears ${found.length} times; every role appears exactly once`);
  }
  for (const k of e.keys) {
    const role = k.role as FleetRole;
    if (!(ROLE_NAMES as readonly string[]).includes(k.role)) { step.fail(`unknown role ${k.role}`); continue; }
    if (k.type !== FLEET_ROLES[role]) step.fail(`${k.label} is ${k.type}; the ${role} role is ${FLEET_ROLES[role]}`);
    let label: string | undefined;
    try { label = fleetKeyLabel(e.fleetId, role); } catch { step.fail(`fleet id "${e.fleetId}" is not a valid fleet id`); }
    if (label !== undefined && k.label !== label) step.fail(`the ${role} key is labelled ${k.label}, expected ${label}`);
    if (!decodeHex(k.id) || k.id.length === 0) step.fail(`${k.label}: CKA_ID is not hex`);
    const expectsPublic = PUBLIC_KEY_SIZE[FLEET_ROLES[role]] !== undefined;
    const pub = k.publicKey === null ? undefined : decodeBase64Url(k.publicKey);
    if (expectsPublic && (!pub || !validPublicKey(FLEET_ROLES[role], pub))) step.fail(`${k.label}: public key is missing or not a valid ${FLEET_ROLES[role]} key`);
    if (!expectsPublic && k.publicKey !== null) step.fail(`${k.label}: a secret key has no public key`);
    if (k.held === 'public-only') step.fail(`${k.label}: the token holds only the public half, so it cannot have signed this evidence`);
    else if (k.attributes === null || k.kcv === null || !/^[0-9a-f]{6}$/.test(k.kcv)) step.fail(`${k.label}: a held key needs its attributes and a 3-byte key check value`);
    // A key pair's check value is the fingerprint of its public key, checked in the token against the private key.
    if (pub && k.kcv !== null && Buffer.from(publicKeyKcv(pub)).toString('hex') !== k.kcv) {
      step.fail(`${k.label}: the key check value ${k.kcv} is not the fingerprint of the public key given`);
    }
    step.note(`${k.label}: ${k.type}, CKA_ID ${k.id}, key check value ${k.kcv ?? '-'}${k.publicKey ? `, public key ${k.publicKey}` : ''}`);
    if (role === 'signing' && k.publicKey !== e.signer.publicKey) step.fail(`the signing key's public key ${k.publicKey} is not the evidence signer ${e.signer.publicKey}`);
  }
}

function checkKeyProtection(e: Evidence, step: Step): void {
  for (const k of e.keys) {
    const a = k.attributes;
    if (a === null) continue; // key-set reports it
    const name = k.label;
    if (!a.sensitive) step.fail(`${name} is not CKA_SENSITIVE: its value can be read`);
    if (a.extractable && !a.wrapWithTrusted) step.fail(`${name} is extractable without CKA_WRAP_WITH_TRUSTED: it can be wrapped under any key`);
    if (a.local) {
      if (a.keyGenMechanism === null) step.fail(`${name} is LOCAL but has no CKA_KEY_GEN_MECHANISM`);
      if (!a.alwaysSensitive) step.fail(`${name} was generated here but is not ALWAYS_SENSITIVE: it was readable at some time`);
      if (!a.extractable && a.neverExtractable) {
        step.note(`${name}: generated in the token (${a.keyGenMechanism}), never extractable, always sensitive`);
      } else if (e.transcript === null) {
        step.warn(`${name} was generated here but is transportable (extractable only under a trusted key): copies in other tokens are not accounted for without a ceremony transcript`);
      } else {
        step.note(`${name}: generated here, transportable (extractable only wrapped under a trusted key); its copies are cross-checked with the transcript`);
      }
    } else {
      if (a.keyGenMechanism !== null) step.fail(`${name} is not LOCAL yet names a key generation mechanism`);
      if (!a.wrapWithTrusted) step.fail(`${name} was not generated in this token and is not CKA_WRAP_WITH_TRUSTED: it was imported, not unwrapped in a ceremony`);
      if (e.transcript === null) step.fail(`${name} was not generated in this token (not LOCAL) and no ceremony transcript accounts for how it arrived`);
      else step.note(`${name}: unwrapped into this token (not LOCAL, so not ALWAYS_SENSITIVE or NEVER_EXTRACTABLE); the transcript must account for it`);
    }
  }
}

function checkAttestation(e: Evidence, step: Step): void {
  if (e.attestation === null) step.warn(`no vendor attestation (${e.attestationNote}): nothing outside the node vouches for the token's identity or the key attributes`);
  else step.warn('an attestation is present, but this tool verifies no vendor attestation format: treat it as unverified');
}

const sameAttributes = (a: EvidenceAttributes, b: NonNullable<TranscriptHolding['attributes']>): string[] => [
  ...ATTRIBUTE_FLAGS.filter((f) => a[f] !== b[f]),
  ...(a.keyGenMechanism !== b.keyGenMechanism ? ['keyGenMechanism'] : []),
  ...(Array.isArray(a.usages) && canonicalJson([...a.usages].sort()) !== canonicalJson([...b.usages].sort()) ? ['usages'] : []),
];

/** Differences between the evidence's keys and the transcript's record of them in token `i`. */
function transcriptMismatches(e: Evidence, t: CeremonyTranscript, i: number): string[] {
  const out: string[] = [];
  for (const k of e.keys) {
    const tk = t.keys.find((x) => x.role === k.role);
    if (!tk) { out.push(`the transcript has no ${k.role} key`); continue; }
    for (const f of ['label', 'id', 'type', 'publicKey'] as const) {
      if (tk[f] !== k[f]) out.push(`${k.label}: ${f === 'publicKey' ? 'public key' : f} ${JSON.stringify(k[f])} differs from the transcript's ${JSON.stringify(tk[f])}`);
    }
    const h = tk.holdings.find((x) => x.token === i);
    if (!h) { out.push(`${k.label}: the transcript records no holding in token ${i}`); continue; }
    if (h.kcv !== k.kcv) out.push(`${k.label}: key check value ${k.kcv} differs from the transcript's ${h.kcv}`);
    if (h.method === 'public-only' ? k.held !== 'public-only' : k.held !== 'private') out.push(`${k.label}: held ${k.held} here, the transcript says ${h.method}`);
    const a = k.attributes;
    if (a && h.attributes) {
      if (h.method === 'generated' && !a.local) out.push(`${k.label}: the transcript says generated in this token, but it is not LOCAL`);
      if (h.method === 'unwrapped' && a.local) out.push(`${k.label}: the transcript says unwrapped, but it is LOCAL`);
      const diff = sameAttributes(a, h.attributes);
      if (diff.length) out.push(`${k.label}: attributes ${diff.join(', ')} differ from the transcript's`);
    }
  }
  return out;
}

function checkTranscript(e: Evidence, step: Step): void {
  if (e.transcript === null) return step.warn('no ceremony transcript: how the keys were made rests on the attributes alone');
  let t: CeremonyTranscript;
  try {
    t = verifyTranscript(JSON.stringify(e.transcript), { signingPublicKey: decodeBase64Url(e.signer.publicKey) ?? new Uint8Array() });
  } catch (err) {
    return step.fail(`the transcript does not verify: ${(err as Error).message}`);
  }
  step.note(`${t.kind} transcript, ${t.startedAt} .. ${t.finishedAt}, signature valid under the evidence signer, ceremony rules kept`);
  if (t.fleetId !== e.fleetId) step.fail(`the transcript is for fleet "${t.fleetId}", the evidence for "${e.fleetId}"`);
  const candidates = t.tokens.flatMap((x, i) =>
    x.manufacturer === e.token.manufacturer && x.model === e.token.model && x.serial === e.token.serial && x.label === e.token.label && x.firmwareVersion === e.token.firmwareVersion ? [i] : []);
  if (candidates.length === 0) {
    return step.fail(`the evidence's token (${e.token.manufacturer} ${e.token.model} "${e.token.label}" serial ${e.token.serial}) is none of the transcript's tokens (${t.tokens.map((x) => `"${x.label}" serial ${x.serial}`).join('; ')})`);
  }
  const tried = candidates.map((i) => ({ i, diff: transcriptMismatches(e, t, i) }));
  const match = tried.find((c) => c.diff.length === 0);
  if (!match) {
    for (const m of tried[0]!.diff) step.fail(m);
    return;
  }
  step.note(`the evidence's token is token ${match.i} of the transcript; every key's id, public key, check value and attributes agree with it`);
}

function checkSoftware(e: Evidence, source: string | undefined, step: Step): void {
  const s = e.software;
  step.note(`recorded: package-lock.json ${s.packageLockSha256 ?? 'absent'}; dist/ ${s.distSha256 ? `${s.distSha256} (${s.distFiles} files)` : 'absent'}; Node ${s.nodeVersion}`);
  if (s.distSha256 === null) step.warn('dist/ was absent when the evidence was made (no `npm run build`): the node ran from source, and no digest covers the code it ran');
  if (s.packageLockSha256 === null) step.warn('package-lock.json was absent: the dependency set is not pinned by the evidence');
  if (source === undefined) return step.warn('not compared with a checkout: pass --source DIR to recompute the digests');
  const here = softwareDigest(source);
  if (here.packageLockSha256 !== s.packageLockSha256) step.fail(`package-lock.json of ${source} has SHA-256 ${here.packageLockSha256 ?? '(absent)'}, the evidence records ${s.packageLockSha256 ?? '(absent)'}`);
  else step.note(`package-lock.json matches ${source}`);
  if (here.distSha256 === null && s.distSha256 !== null) step.warn(`${source} has no dist/ to compare with (run npm run build there)`);
  else if (here.distSha256 !== s.distSha256) step.fail(`dist/ of ${source} digests to ${here.distSha256 ?? '(absent)'}, the evidence records ${s.distSha256 ?? '(absent)'}`);
  else if (here.distSha256 !== null) step.note(`dist/ matches ${source} (${here.distFiles} files)`);
}

function checkLog(e: Evidence, log: LogStore, step: Step): void {
  const bytes = Buffer.from(evidenceBytes(e));
  for (let i = log.size - 1; i >= 0; i--) {
    if (bytes.equals(Buffer.from(log.entry(i)))) return step.note(`entry ${i} of the log in ${log.dir} (size ${log.size}) is exactly this evidence`);
  }
  step.fail(`the evidence is not an entry of the log in ${log.dir} (${log.size} entries)`);
}

function cannotProve(e: Evidence | null, steps: readonly AuditStep[], pinned: boolean): string[] {
  if (!e) return ['The evidence could not be read, so it proves nothing.'];
  const out: string[] = [];
  if (e.token.backend === 'fake') {
    out.push('This is the fake backend: keys live in the node process, or in the clear in a file. Its attributes are a simulation and prove nothing about key protection.');
  } else if (isSoftwareToken(e.token)) {
    out.push(`This is a software token (${e.token.manufacturer} ${e.token.model}). It runs inside the node's process with the node's privileges and keeps its keys in files in its token directory, encrypted under the user PIN that the node itself holds. CKA_LOCAL, NEVER_EXTRACTABLE and ALWAYS_SENSITIVE are bookkeeping in those files, not hardware guarantees: whoever can read the token directory and the PIN can copy every key, and no attribute would change. Nothing about key protection is proven on this token.`);
  }
  if (e.attestation === null) {
    out.push("No vendor attestation was offered: the token's model, serial and firmware and every key attribute are what the PKCS#11 library told the node. A modified library or node could report anything.");
  }
  out.push('The signature shows that the holder of the fleet signing key made this evidence. It does not show that the node runs the software whose digest it records: the node digested its own files.');
  out.push('The software digest covers package-lock.json and dist/ only; not the installed node_modules, the Node binary, the PKCS#11 library or the operating system.');
  if (e.software.distSha256 === null) out.push('dist/ did not exist when the evidence was made: the node ran from source files that no digest here covers.');
  out.push(`The evidence is a snapshot taken at ${e.createdAt}: it says nothing about the token before or after (keys added later, copies of the token's storage).`);
  if (!pinned) out.push('No fleet key was pinned: this audit shows only that the evidence is self-consistent; anyone can sign evidence with a key of their own.');
  if (e.transcript === null) out.push('No ceremony transcript: whether other tokens hold copies of transportable keys is not recorded.');
  if (!steps.some((s) => s.id === 'log')) out.push('No audit log was checked: that this evidence was published (and when) is not shown.');
  return out;
}

/** Runs every step; never throws on bad evidence (a failed step says why). */
export function auditEvidence(input: unknown, options: AuditOptions = {}): EvidenceAudit {
  const now = options.now ?? (() => new Date());
  const steps: AuditStep[] = [];
  const format = new Step('format');
  const e = checkFormat(input, format);
  steps.push(format.result(`${EVIDENCE_VERSION}, every field present with its type`));
  if (e) {
    const run = (id: StepId, passSummary: string, fn: (s: Step) => void): void => {
      const s = new Step(id);
      try {
        fn(s);
      } catch (err) {
        s.fail(`could not be checked: ${(err as Error).message}`);
      }
      steps.push(s.result(passSummary));
    };
    run('signature', 'valid, by the pinned fleet signing key', (s) => checkSignature(e, options.pin, s));
    run('token', "the token reports itself as a hardware token (its own word: see attestation)", (s) => checkToken(e, s));
    run('key-set', 'every fleet role appears once, with its type, label and a public key matching its check value', (s) => checkKeySet(e, s));
    run('key-protection', 'every key is sensitive and generated in the token or accounted for by the ceremony', (s) => checkKeyProtection(e, s));
    run('attestation', 'vendor attestation verified', (s) => checkAttestation(e, s));
    run('transcript', 'the ceremony transcript verifies and agrees with every key', (s) => checkTranscript(e, s));
    run('software', 'package-lock.json and dist/ match the checkout', (s) => checkSoftware(e, options.source, s));
    if (options.log) run('log', 'the evidence is an entry of the audit log', (s) => checkLog(e, options.log!, s));
  }
  const software = e !== null && isSoftwareToken(e.token);
  const failed = steps.some((s) => s.status === 'fail');
  return {
    version: AUDIT_VERSION,
    auditedAt: now().toISOString(),
    evidenceSha256: e ? createHash('sha256').update(evidenceBytes(e)).digest('hex') : null,
    fleetId: e?.fleetId ?? null,
    createdAt: e?.createdAt ?? null,
    token: e ? tokenLine(e.token) : null,
    softwareToken: software,
    verdict: failed ? 'inconsistent' : software ? 'consistent, but unprovable on this token' : 'consistent',
    steps,
    cannotProve: cannotProve(e, steps, options.pin !== undefined),
  };
}

// --- reports ---

export interface AuditPaths {
  readonly json: string;
  readonly markdown: string;
  readonly html: string;
}

export function writeAuditReports(audit: EvidenceAudit, dir: string): AuditPaths {
  mkdirSync(dir, { recursive: true });
  const paths = { json: join(dir, 'audit.json'), markdown: join(dir, 'audit.md'), html: join(dir, 'audit.html') };
  writeFileSync(paths.json, `${JSON.stringify(audit, null, 2)}\n`);
  writeFileSync(paths.markdown, markdownAudit(audit));
  writeFileSync(paths.html, htmlAudit(audit));
  return paths;
}

const VERDICT_TEXT: Record<Verdict, string> = {
  consistent: 'CONSISTENT',
  inconsistent: 'INCONSISTENT',
  'consistent, but unprovable on this token': 'CONSISTENT, BUT UNPROVABLE ON THIS TOKEN',
};
const STATUS_TEXT: Record<StepStatus, string> = { pass: 'pass', warn: 'warn', fail: 'FAIL' };
const mdCell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function header(a: EvidenceAudit): string[] {
  return [
    `Fleet: ${a.fleetId ?? '-'}`,
    `Token: ${a.token ?? '-'}`,
    `Evidence created ${a.createdAt ?? '-'}, SHA-256 ${a.evidenceSha256 ?? '-'}`,
    `Audited ${a.auditedAt}`,
  ];
}

export function markdownAudit(a: EvidenceAudit): string {
  const lines = [`# hsm-vault evidence audit: ${VERDICT_TEXT[a.verdict]}`, '', ...header(a).map((h) => `- ${h}`), '', '## Steps', '', '| step | result | summary |', '|---|---|---|'];
  for (const s of a.steps) lines.push(`| \`${s.id}\` ${mdCell(s.title)} | ${STATUS_TEXT[s.status]} | ${mdCell(s.summary)} |`);
  for (const s of a.steps) {
    lines.push('', `### ${s.id}: ${STATUS_TEXT[s.status]}`, '', ...(s.details.length ? s.details : [s.summary]).map((d) => `- ${d}`));
  }
  lines.push('', '## What this evidence cannot prove', '', ...a.cannotProve.map((c) => `- ${c}`));
  return `${lines.join('\n')}\n`;
}

export function htmlAudit(a: EvidenceAudit): string {
  const verdictClass = a.verdict === 'consistent' ? 'ok' : a.verdict === 'inconsistent' ? 'bad' : 'soft';
  const rows = a.steps.map((s) =>
    `<tr><td><code>${esc(s.id)}</code><br><small>${esc(s.title)}</small></td><td class="${s.status}">${STATUS_TEXT[s.status]}</td><td>${esc(s.summary)}${s.details.length ? `<ul>${s.details.map((d) => `<li>${esc(d)}</li>`).join('')}</ul>` : ''}</td></tr>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hsm-vault evidence audit: ${esc(VERDICT_TEXT[a.verdict])}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
.verdict{font-size:1.6em;font-weight:bold}.ok{color:#1a7f37}.bad{color:#c62828}.soft{color:#b26a00}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}
.pass{color:#1a7f37}.fail{color:#c62828;font-weight:bold}.warn{color:#b26a00}
.cannot{background:#fff8e1;border-left:4px solid #b26a00;padding:.5em 1em}
</style></head><body>
<h1>hsm-vault evidence audit</h1>
<p class="verdict ${verdictClass}">${esc(VERDICT_TEXT[a.verdict])}</p>
<p>${header(a).map(esc).join('<br>')}</p>
<h2>Steps</h2>
<table><thead><tr><th>step</th><th>result</th><th>detail</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>
<div class="cannot"><h2>What this evidence cannot prove</h2><ul>${a.cannotProve.map((c) => `<li>${esc(c)}</li>`).join('')}</ul></div>
</body></html>
`;
}

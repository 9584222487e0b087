// Client-side verification of a fleet update, for the SDK: browser-safe (no node: import, direct
// or through another module — the shared fleet modules reach node:crypto through bytes.ts, so
// the few rules needed here are restated locally and cross-tested against those modules).
//
// A fleet update is a validation bundle plus its place in the audit log:
//   { bundle: {body, witness, operatorSignature},      (bundle.ts format)
//     checkpoint: "<signed note: log signature + witness cosignature>",
//     leafIndex, inclusionProof: [base64],            (entry = canonical JSON of the body)
//     consistencyProof: [base64] }                    (from the last checkpoint the client saw)
// The client pins the witness key (which signs Plexi responses and cosigns checkpoints), the
// operator's countersigning key, the log's note key and origin. Checks, in order, each failure
// naming its step: parse, digest, witness-signature, witness-binding, countersignature,
// checkpoint-signature, checkpoint-cosignature, inclusion, consistency, validity, rollback. The
// result is the new trusted state and the key diff from the previous epoch.

import { ed25519 } from '@noble/curves/ed25519.js';
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';

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

export type KeyRole = 'ake' | 'hpke' | 'signing';
const ROLES: readonly KeyRole[] = ['ake', 'hpke', 'signing'];

export interface BundleBodyJson {
  readonly fleetId: string;
  readonly epoch: number;
  readonly keys: Readonly<Record<KeyRole, string>>;
  readonly notBefore: number;
  readonly notAfter: number;
}

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
  const { body, witness, operatorSignature } = step('parse', () => parseBundle(input.bundle));
  const inclusionPath = step('parse', () => hashes(input.inclusionProof, 'inclusionProof'));
  const consistencyPath = step('parse', () => hashes(input.consistencyProof, 'consistencyProof'));
  const note = step('parse', () => parseNote(input.checkpoint));
  const checkpoint = step('parse', () => parseCheckpoint(note.text));

  // digest: the witness signed SHA-256 of exactly this body.
  const entry = utf8(canonicalBody(body));
  const digest = sha256(entry);
  if (!equal(digest, witness.digest)) fail('digest', 'SHA-256 of the body differs from the witnessed digest');

  // witness-signature (Plexi ciphersuite 0x0001)
  const signed = encodeSignatureMessage(witness);
  if (witness.keyId !== undefined && witness.keyId !== pinned.witnessKey[31]) fail('witness-signature', 'key_id does not name the pinned witness key');
  if (witness.serializedMessage !== undefined && !equal(witness.serializedMessage, signed)) fail('witness-signature', 'serialized_message differs from the signed fields');
  if (!verifyEd25519(pinned.witnessKey, signed, witness.signature)) fail('witness-signature', 'does not verify under the pinned witness key');

  // witness-binding
  const namespace = pinned.namespace ?? body.fleetId;
  if (witness.namespace !== namespace) fail('witness-binding', `witnessed namespace "${witness.namespace}" is not "${namespace}"`);
  if (witness.epoch !== BigInt(body.epoch)) fail('witness-binding', `witnessed epoch ${witness.epoch} is not the body's epoch ${body.epoch}`);

  // countersignature: the operator key over the witness signature bytes.
  if (!verifyEd25519(pinned.operatorKey, witness.signature, operatorSignature)) fail('countersignature', 'does not verify under the pinned operator key');

  // checkpoint-signature: the pinned log key signed the checkpoint, for the pinned origin.
  if (checkpoint.origin !== pinned.origin) fail('checkpoint-signature', `origin "${checkpoint.origin}" is not "${pinned.origin}"`);
  const logKey = step('parse', () => decodeVerifierKey(pinned.logKey, 0x01));
  const message = utf8(note.text);
  const logSig = note.signatures.find((s) => s.name === logKey.name && s.keyId === logKey.keyId);
  if (logSig === undefined) fail('checkpoint-signature', `no signature by log key ${logKey.name}`);
  if (!verifyEd25519(logKey.publicKey, message, logSig.signature)) fail('checkpoint-signature', 'log signature does not verify');

  // checkpoint-cosignature: the pinned witness cosigned it (tlog-cosignature, type 0x04).
  const cosigId = keyId(pinned.witnessName, 0x04, pinned.witnessKey);
  const cosig = note.signatures.find((s) => s.name === pinned.witnessName && s.keyId === cosigId);
  if (cosig === undefined) fail('checkpoint-cosignature', `no cosignature by witness ${pinned.witnessName}`);
  if (cosig.signature.length !== 72) fail('checkpoint-cosignature', 'cosignature is not 72 bytes');
  const timestamp = readUint64(cosig.signature, 0);
  if (timestamp >= 1n << 63n) fail('checkpoint-cosignature', 'cosignature timestamp exceeds 2^63 - 1');
  const cosigned = utf8(`cosignature/v1\ntime ${timestamp}\n${note.text}`);
  if (!verifyEd25519(pinned.witnessKey, cosigned, cosig.signature.slice(8))) fail('checkpoint-cosignature', 'cosignature does not verify');

  // inclusion: the body is an entry of the cosigned tree.
  step('inclusion', () => verifyInclusion(leafHash(entry), input.leafIndex, checkpoint.size, inclusionPath, checkpoint.rootHash));

  // consistency: the cosigned tree extends the last one this client trusted.
  if (last !== null) {
    if (last.origin !== checkpoint.origin) fail('consistency', `last state is for origin "${last.origin}"`);
    const lastRoot = step('consistency', () => strictBase64(last.rootHash, 'last root hash'));
    if (checkpoint.size < last.size) fail('consistency', `log size ${checkpoint.size} is below the size ${last.size} already seen`);
    if (last.size > 0) step('consistency', () => verifyConsistency(last.size, checkpoint.size, consistencyPath, lastRoot, checkpoint.rootHash));
  }

  // validity
  if (!Number.isSafeInteger(now)) fail('validity', 'now must be an integer');
  if (now < body.notBefore) fail('validity', 'bundle is not yet valid');
  if (now >= body.notAfter) fail('validity', 'bundle has expired');

  // rollback: never an older epoch, never a second bundle for one epoch.
  let diff: KeyDiff | null = null;
  if (last !== null) {
    if (body.fleetId !== last.body.fleetId) fail('rollback', `fleet "${body.fleetId}" is not "${last.body.fleetId}"`);
    if (body.epoch < last.epoch) fail('rollback', `epoch ${body.epoch} is older than the trusted epoch ${last.epoch}`);
    if (body.epoch === last.epoch && toHex(digest) !== last.digest) fail('rollback', `a different bundle for epoch ${body.epoch} was already trusted`);
    diff = {
      fromEpoch: last.epoch,
      toEpoch: body.epoch,
      changed: ROLES.filter((r) => last.body.keys[r] !== body.keys[r]).map((role) => ({ role, from: last.body.keys[role], to: body.keys[role] })),
      unchanged: ROLES.filter((r) => last.body.keys[r] === body.keys[r]),
    };
  }

  const state: TrustedFleetState = {
    origin: checkpoint.origin,
    size: checkpoint.size,
    rootHash: toBase64(checkpoint.rootHash),
    epoch: body.epoch,
    digest: toHex(digest),
    body,
  };
  return { state, diff, body };
}

// --- bundle parsing and canonical JSON (bundle.ts rules) ---

interface WitnessSignature {
  readonly ciphersuite: number;
  readonly namespace: string;
  readonly timestamp: bigint;
  readonly epoch: bigint;
  readonly digest: Uint8Array;
  readonly signature: Uint8Array;
  readonly keyId?: number;
  readonly serializedMessage?: Uint8Array;
}

function parseBundle(value: unknown): { body: BundleBodyJson; witness: WitnessSignature; operatorSignature: Uint8Array } {
  const bundle = exactObject(value, 'bundle', ['body', 'witness', 'operatorSignature'], []);
  const operatorSignature = typeof bundle.operatorSignature === 'string' ? strictBase64Url(bundle.operatorSignature) : undefined;
  if (operatorSignature?.length !== 64) throw new Error('operatorSignature must be base64url of 64 bytes');
  return { body: parseBody(bundle.body), witness: parseWitness(bundle.witness), operatorSignature };
}

function parseBody(value: unknown): BundleBodyJson {
  const body = exactObject(value, 'body', ['fleetId', 'epoch', 'keys', 'notBefore', 'notAfter'], []);
  if (typeof body.fleetId !== 'string' || body.fleetId.length === 0 || !body.fleetId.isWellFormed()) throw new Error('fleetId must be a non-empty string');
  const epoch = safeUint(body.epoch, 'epoch');
  const notBefore = safeUint(body.notBefore, 'notBefore');
  const notAfter = safeUint(body.notAfter, 'notAfter');
  if (notAfter <= notBefore) throw new Error('notAfter must be after notBefore');
  const keys = exactObject(body.keys, 'keys', ROLES, []);
  const ake = keyBytes(keys.ake, 'ake', 33);
  const hpke = keyBytes(keys.hpke, 'hpke', 65);
  const signing = keyBytes(keys.signing, 'signing', 32);
  if ((ake[0] !== 0x02 && ake[0] !== 0x03) || !isP256Point(ake)) throw new Error('ake is not a compressed P-256 point');
  if (hpke[0] !== 0x04 || !isP256Point(hpke)) throw new Error('hpke is not an uncompressed P-256 point');
  if (!ed25519.utils.isValidPublicKey(signing, false)) throw new Error('signing is not an Ed25519 public key');
  return { fleetId: body.fleetId, epoch, keys: { ake: keys.ake as string, hpke: keys.hpke as string, signing: keys.signing as string }, notBefore, notAfter };
}

/** JCS over the body: sorted keys, no whitespace, JSON.stringify string escapes. */
function canonicalBody(body: BundleBodyJson): string {
  const keys = `{"ake":${JSON.stringify(body.keys.ake)},"hpke":${JSON.stringify(body.keys.hpke)},"signing":${JSON.stringify(body.keys.signing)}}`;
  return `{"epoch":${body.epoch},"fleetId":${JSON.stringify(body.fleetId)},"keys":${keys},"notAfter":${body.notAfter},"notBefore":${body.notBefore}}`;
}

function parseWitness(value: unknown): WitnessSignature {
  const json = exactObject(value, 'witness', ['namespace', 'timestamp', 'epoch', 'digest', 'signature'], ['version', 'ciphersuite', 'key_id', 'serialized_message']);
  const version = optionalUint(json.version, 'version', 0xffffffff);
  const suite = optionalUint(json.ciphersuite, 'ciphersuite', 0xffffffff);
  if (version === undefined && suite === undefined) throw new Error('witness: either version or ciphersuite must be present');
  if (version !== undefined && suite !== undefined && version !== suite) throw new Error('witness: version and ciphersuite disagree');
  if ((version ?? suite) !== 1) throw new Error('witness: only ciphersuite 0x0001 is supported');
  if (typeof json.namespace !== 'string' || !json.namespace.isWellFormed()) throw new Error('witness: namespace must be a string');
  const signature = hexField(json.signature, 'signature');
  if (signature.length !== 64) throw new Error('witness: signature must be 64 bytes');
  const keyId = optionalUint(json.key_id, 'key_id', 0xff);
  const serialized = json.serialized_message;
  return {
    ciphersuite: 1,
    namespace: json.namespace,
    timestamp: BigInt(safeUint(json.timestamp, 'timestamp')),
    epoch: BigInt(safeUint(json.epoch, 'epoch')),
    digest: hexField(json.digest, 'digest'),
    signature,
    ...(keyId === undefined ? {} : { keyId }),
    ...(serialized === undefined || serialized === null ? {} : { serializedMessage: hexField(serialized, 'serialized_message') }),
  };
}

/** protobuf SignatureMessage{version=1, namespace=2, timestamp=3, epoch=4{inner=1}, digest=5}. */
function encodeSignatureMessage(m: WitnessSignature): Uint8Array {
  const namespace = utf8(m.namespace);
  const epoch = concat(Uint8Array.of(0x08), varint(m.epoch));
  return concat(
    Uint8Array.of(0x08), varint(BigInt(m.ciphersuite)),
    Uint8Array.of(0x12), varint(BigInt(namespace.length)), namespace,
    Uint8Array.of(0x18), varint(m.timestamp),
    Uint8Array.of(0x22), varint(BigInt(epoch.length)), epoch,
    Uint8Array.of(0x2a), varint(BigInt(m.digest.length)), m.digest,
  );
}

function varint(value: bigint): Uint8Array {
  const out: number[] = [];
  let v = value;
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return Uint8Array.from(out);
}

// --- signed notes and checkpoints (signed-note.ts / checkpoint.ts rules) ---

interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  readonly signature: Uint8Array;
}

function parseNote(note: string): { text: string; signatures: NoteSignature[] } {
  if (typeof note !== 'string' || !note.isWellFormed()) throw new Error('checkpoint note is not a valid string');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new Error('checkpoint note contains a control character');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new Error('checkpoint note has no signature block');
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block.length === 0 || !block.endsWith('\n')) throw new Error('signature block is empty or lacks a final newline');
  const signatures = block.slice(0, -1).split('\n').map((line) => {
    const match = /^\u2014 ([^\s+]+) ([A-Za-z0-9+/=]+)$/u.exec(line);
    const bytes = match ? strictBase64(match[2] as string, 'signature') : undefined;
    if (!match || bytes === undefined || bytes.length < 5) throw new Error('malformed signature line');
    return { name: match[1] as string, keyId: readUint32(bytes, 0), signature: bytes.slice(4) };
  });
  if (signatures.length > 100) throw new Error('more than 100 signatures');
  return { text, signatures };
}

function parseCheckpoint(text: string): { origin: string; size: number; rootHash: Uint8Array } {
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3 || lines.some((l) => l.length === 0)) throw new Error('checkpoint needs non-empty origin, size and root lines');
  const [origin, sizeLine, rootLine] = lines as [string, string, string];
  if (!/^(?:0|[1-9][0-9]*)$/.test(sizeLine) || !Number.isSafeInteger(Number(sizeLine))) throw new Error('checkpoint size is not a canonical decimal');
  const rootHash = strictBase64(rootLine, 'root hash');
  if (rootHash.length !== 32) throw new Error('root hash must be 32 bytes');
  return { origin, size: Number(sizeLine), rootHash };
}

function decodeVerifierKey(vkey: string, type: number): { name: string; keyId: number; publicKey: Uint8Array } {
  const match = /^([^\s+]+)\+([0-9a-fA-F]{8})\+([A-Za-z0-9+/=]+)$/u.exec(vkey);
  const material = match ? strictBase64(match[3] as string, 'log key') : undefined;
  if (!match || material === undefined || material.length !== 33 || material[0] !== type) throw new Error('pinned log key is not an Ed25519 note verifier key');
  const name = match[1] as string;
  const publicKey = material.slice(1);
  const id = keyId(name, type, publicKey);
  if (Number.parseInt(match[2] as string, 16) !== id) throw new Error('pinned log key ID does not match its key');
  return { name, keyId: id, publicKey };
}

/** SHA-256(name || 0x0A || type || public key)[:4]. */
function keyId(name: string, type: number, publicKey: Uint8Array): number {
  return readUint32(sha256(concat(utf8(name), Uint8Array.of(0x0a, type), publicKey)), 0);
}

// --- RFC 9162 §2.1.3.2 and §2.1.4.2 (merkle.ts rules: exact proof lengths, no size 0) ---

export function leafHash(entry: Uint8Array): Uint8Array {
  return sha256(concat(Uint8Array.of(0x00), entry));
}

function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concat(Uint8Array.of(0x01), left, right));
}

/** RFC 9162 §2.1.3.2 (exported for SDK callers checking entries other than bundles); throws on failure. */
export function verifyInclusion(hash: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): void {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) throw new Error(`leaf index ${index} is not below tree size ${size}`);
  if ([hash, root, ...proof].some((h) => h.length !== 32)) throw new Error('hashes must be 32 bytes');
  let fn = index;
  let sn = size - 1;
  let r = hash;
  for (const p of proof) {
    if (sn === 0) throw new Error('inclusion proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('inclusion proof is too short');
  if (!equal(r, root)) throw new Error('inclusion proof does not lead to the checkpoint root');
}

/** RFC 9162 §2.1.4.2 for 0 < first <= second; throws on failure. */
export function verifyConsistency(first: number, second: number, proof: readonly Uint8Array[], firstRoot: Uint8Array, secondRoot: Uint8Array): void {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first <= 0 || second < first) throw new Error(`no consistency proof from size ${first} to ${second}`);
  if ([firstRoot, secondRoot, ...proof].some((h) => h.length !== 32)) throw new Error('hashes must be 32 bytes');
  if (first === second) {
    if (proof.length !== 0) throw new Error('equal sizes need an empty consistency proof');
    if (!equal(firstRoot, secondRoot)) throw new Error('same size, different root: the log forked');
    return;
  }
  if (proof.length === 0) throw new Error('empty consistency proof');
  const isPow2 = (BigInt(first) & BigInt(first - 1)) === 0n;
  const path = isPow2 ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) throw new Error('consistency proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('consistency proof is too short');
  if (!equal(fr, firstRoot)) throw new Error('consistency proof does not lead to the last trusted root');
  if (!equal(sr, secondRoot)) throw new Error('consistency proof does not lead to the checkpoint root');
}

// --- browser-safe byte helpers ---

function step<T>(name: ClientVerifyStep, body: () => T): T {
  try {
    return body();
  } catch (err) {
    if (err instanceof FleetUpdateRejected) throw err;
    throw new FleetUpdateRejected(name, err instanceof Error ? err.message : String(err));
  }
}

function fail(name: ClientVerifyStep, message: string): never {
  throw new FleetUpdateRejected(name, message);
}

function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

function isP256Point(bytes: Uint8Array): boolean {
  try {
    p256.Point.fromBytes(bytes).assertValidity();
    return true;
  } catch {
    return false;
  }
}

function hashes(value: unknown, what: string): Uint8Array[] {
  if (!Array.isArray(value)) throw new Error(`${what} must be an array of base64 hashes`);
  return value.map((h, i) => {
    const bytes = typeof h === 'string' ? strictBase64(h, `${what}[${i}]`) : undefined;
    if (bytes?.length !== 32) throw new Error(`${what}[${i}] must be base64 of 32 bytes`);
    return bytes;
  });
}

function exactObject(value: unknown, what: string, required: readonly string[], optional: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} must be an object`);
  const record = value as Record<string, unknown>;
  for (const k of Object.keys(record)) if (!required.includes(k) && !optional.includes(k)) throw new Error(`${what} has unknown field "${k}"`);
  for (const k of required) if (record[k] === undefined) throw new Error(`${what} lacks field "${k}"`);
  return record;
}

function safeUint(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Error(`${what} must be an integer in [0, 2^53 - 1]`);
  return value;
}

function optionalUint(value: unknown, what: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) throw new Error(`${what} must be an integer in [0, ${max}]`);
  return value;
}

function keyBytes(value: unknown, role: string, size: number): Uint8Array {
  const bytes = typeof value === 'string' ? strictBase64Url(value) : undefined;
  if (bytes?.length !== size) throw new Error(`keys.${role} must be base64url of ${size} bytes`);
  return bytes;
}

function hexField(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(value)) throw new Error(`${what} must be a hex string`);
  const out = new Uint8Array(value.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(value.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** Canonical padded base64 only (a second spelling of the same bytes is refused). */
function strictBase64(text: string, what: string): Uint8Array {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) throw new Error(`${what} is not canonical base64`);
  const binary = atob(text);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (toBase64(bytes) !== text) throw new Error(`${what} is not canonical base64`);
  return bytes;
}

/** Canonical unpadded base64url only. */
function strictBase64Url(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return undefined;
  const std = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = std + '='.repeat((4 - (std.length % 4)) % 4);
  try {
    const bytes = strictBase64(padded, 'base64url');
    return bytes;
  } catch {
    return undefined;
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, false);
}

function readUint64(bytes: Uint8Array, offset: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(offset, false);
}

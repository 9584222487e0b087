// The fake backend: the driver interface on node:crypto, with the PKCS#11 backend's semantics
// (x-only ECDH, non-exportability, attribute evidence, typed errors, one recovery per call) so
// that the same conformance suite holds both. In memory by default; `fake:?path=FILE` persists the
// key material IN THE CLEAR, which is only ever acceptable on a developer's machine.

import {
  createCipheriv, createDecipheriv, createECDH, createHmac, createPrivateKey, randomBytes, sign as nodeSign,
  type ECDH, type KeyObject,
} from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  isSecretKeyType,
  type AttributeChange, type DriverStats, type GcmSealed, type HsmDriver, type KeyAttributes, type KeyMaterial, type KeyRef, type KeySpec,
  type KeyType, type KeyUsage, type SecurityOfficer, type TokenInfo, type UnwrapSpec,
} from '../driver.js';
import {
  AmbiguousKey, AuthenticationFailed, DriverClosed, InvalidArgument, KeyExists, KeyNotFound, MechanismUnsupported, NonExportableKey,
  TokenUnavailable, WrongKeyType,
} from '../errors.js';
import { normalizeLowS, validateP256Point } from '../ec-point.js';
import { checkData, checkRandomLength, checkSpec, requireType } from '../validate.js';
import { KCV_GCM_IV, KCV_INPUT, aesKeyWrapPad, checkUnwrapPublicKey, kcvOf, keyPairKcv, softwareKcv } from '../kcv.js';
import type { FakeUri } from '../uri.js';
import { VAULT_MECHANISMS, MECHANISM_NAMES } from '../pkcs11/constants.js';
import { checkFakeCapabilities, type FakeCapabilities } from './capabilities.js';
import { FaultInjector } from './faults.js';
import { loadFakeKeys, saveFakeKeys, type StoredFakeKey } from './persistence.js';

export interface FakeDriverOptions {
  /** Called once when a persistent fake token is opened (default: process.emitWarning). */
  readonly onInsecure?: (message: string) => void;
  /**
   * Whether C_WrapKey takes Ed25519 private keys. Default false, as SoftHSM 2.6.1 (measured:
   * CKR_KEY_NOT_WRAPPABLE even under a trusted key), so that ceremonies meet the same limit here.
   */
  readonly wrapsEd25519?: boolean;
  /** Deficiencies to pose with (see capabilities.ts); default none. */
  readonly capabilities?: FakeCapabilities;
}

/** A session opened beside the driver's own (`openSession`), for session-limit probes. */
export interface FakeSession {
  readonly handle: number;
}

/** Sessions the fake counts as the driver's: its own and one operation session (poolSize 1). */
const DRIVER_SESSIONS = 2;

interface FakeKey {
  readonly ref: KeyRef;
  readonly value: Buffer; // scalar, seed or secret
  readonly local: boolean;
  /** Generated or unwrapped as transportable: wrappable, only under a trusted key. */
  readonly transportable: boolean;
  /** A trusted transport key (made by the security officer; a session object). */
  readonly trusted: boolean;
  readonly publicKey?: Uint8Array;
  /** Protection a leaky token let a caller weaken (only with the `leaky` capability). */
  weakened?: { extractable: boolean; sensitive: boolean };
  ecdh?: ECDH;
  edKey?: KeyObject;
}

const USAGES: Record<KeyType, readonly KeyUsage[]> = {
  'ec-p256-derive': ['derive'],
  'ec-p256-sign': ['sign'],
  ed25519: ['sign'],
  'aes-256': ['encrypt', 'decrypt'],
  'aes-256-wrap': ['wrap', 'unwrap'],
  'hmac-sha256': ['sign', 'verify'],
};

const GEN_MECHANISM: Record<KeyType, string> = {
  'ec-p256-derive': 'CKM_EC_KEY_PAIR_GEN',
  'ec-p256-sign': 'CKM_EC_KEY_PAIR_GEN',
  ed25519: 'CKM_EC_EDWARDS_KEY_PAIR_GEN',
  'aes-256': 'CKM_AES_KEY_GEN',
  'aes-256-wrap': 'CKM_AES_KEY_GEN',
  'hmac-sha256': 'CKM_GENERIC_SECRET_KEY_GEN',
};

const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export class FakeDriver implements HsmDriver {
  readonly backend = 'fake' as const;
  /** Every operation runs on the caller's thread (node:crypto, synchronously). */
  readonly callThreads = 0;
  readonly faults = new FaultInjector();
  private readonly keys: FakeKey[] = [];
  /** Public-only keys (`importPublicKey`), in memory only. */
  private readonly publicOnly: Array<{ readonly ref: KeyRef; readonly publicKey: Uint8Array }> = [];
  private closed = false;
  private tokenCalls = 0;
  private readonly openSessions = new Set<number>();
  private nextSession = 1;

  get stats(): DriverStats {
    return { tokenCalls: this.tokenCalls, recoveries: this.faults.recoveries };
  }

  private constructor(
    private readonly label: string,
    private readonly path: string | undefined,
    private readonly wrapsEd25519: boolean,
    private readonly caps: FakeCapabilities,
  ) {}

  static async open(uri: FakeUri = { scheme: 'fake' }, options: FakeDriverOptions = {}): Promise<FakeDriver> {
    const caps = checkFakeCapabilities(options.capabilities ?? {});
    const driver = new FakeDriver(uri.label ?? 'fake', uri.path, options.wrapsEd25519 === true, caps);
    if (uri.path) {
      const warn = options.onInsecure ?? ((m: string) => process.emitWarning(m, { code: 'HSM_VAULT_INSECURE_FAKE' }));
      warn(`INSECURE: the fake HSM backend stores key material in the clear in ${uri.path}; development only`);
      for (const stored of loadFakeKeys(uri.path)) driver.keys.push(driver.revive(stored));
    }
    return driver;
  }

  private revive(stored: StoredFakeKey): FakeKey {
    const value = Buffer.from(stored.value, 'hex');
    const ref: KeyRef = { label: stored.label, id: Buffer.from(stored.id, 'hex'), type: stored.type };
    return { ref, value, local: stored.local, transportable: stored.transportable === true, trusted: false, publicKey: publicOf(stored.type, value) };
  }

  private persist(): void {
    if (!this.path) return;
    // Trusted transport keys are session objects: never written.
    saveFakeKeys(this.path, this.keys.filter((k) => !k.trusted).map((k) => ({
      label: k.ref.label, id: hex(k.ref.id), type: k.ref.type, local: k.local, value: k.value.toString('hex'), transportable: k.transportable,
    })));
  }

  /** The same one-recovery-per-call contract as the PKCS#11 backend, driven by fault injection. */
  private async guarded<T>(what: string, body: () => T): Promise<T> {
    if (this.closed) throw new DriverClosed();
    this.tokenCalls++;
    if (this.caps.failAfter !== undefined && this.tokenCalls > this.caps.failAfter) {
      throw new TokenUnavailable(`${what}: the token stopped answering after ${this.caps.failAfter} operations (fake fail-after)`);
    }
    if (this.faults.check() === 'session-lost') {
      this.faults.recoveries++;
      if (this.faults.check() === 'session-lost') throw new TokenUnavailable(`${what}: token unavailable after one recovery`);
    }
    return body();
  }

  /** MechanismUnsupported when the fake poses as a token without `mechanism`. */
  private need(mechanism: string, what: string): void {
    if (this.caps.missing?.includes(mechanism)) throw new MechanismUnsupported(`${what}: the token does not support ${mechanism} (CKR_MECHANISM_INVALID)`);
  }

  /**
   * Opens a session beside the driver's own, as a session-limit probe does; TokenUnavailable
   * (CKR_SESSION_COUNT) once the `maxSessions` capability is reached. Close it with `closeSession`.
   */
  async openSession(): Promise<FakeSession> {
    return this.guarded('open session', () => {
      const cap = this.caps.maxSessions;
      if (cap !== undefined && DRIVER_SESSIONS + this.openSessions.size >= cap) {
        throw new TokenUnavailable(`open session: CKR_SESSION_COUNT (the token opens at most ${cap} sessions)`);
      }
      const handle = this.nextSession++;
      this.openSessions.add(handle);
      return { handle };
    });
  }

  async closeSession(session: FakeSession): Promise<void> {
    this.openSessions.delete(session.handle);
  }

  private lookup(label: string | undefined, id: Uint8Array | undefined): FakeKey[] {
    return this.keys.filter((k) => (label === undefined || k.ref.label === label) && (id === undefined || hex(k.ref.id) === hex(id)));
  }

  private exactlyOne(label: string | undefined, id: Uint8Array | undefined): FakeKey {
    const found = this.lookup(label, id);
    const what = label !== undefined ? `key "${label}"` : `key with id ${hex(id ?? new Uint8Array())}`;
    if (found.length === 0) throw new KeyNotFound(`${what} not found on the token`);
    if (found.length > 1) throw new AmbiguousKey(`${what} is not unique on the token`, found.length);
    return found[0]!;
  }

  private resolve(ref: KeyRef): FakeKey {
    const key = this.exactlyOne(ref.label, ref.id);
    if (key.ref.type !== ref.type) throw new WrongKeyType(`key "${ref.label}" is ${key.ref.type}, not ${ref.type}`);
    return key;
  }

  private add(spec: KeySpec, value: Buffer, local: boolean, flags: { transportable?: boolean; trusted?: boolean } = {}): KeyRef {
    // As on a token: any key object with the label, public-only ones included, takes it.
    if (this.lookup(spec.label, undefined).length > 0 || this.publicOnly.some((p) => p.ref.label === spec.label)) {
      throw new KeyExists(`a key labelled "${spec.label}" already exists`);
    }
    const ref: KeyRef = { label: spec.label, id: new Uint8Array(spec.id ?? randomBytes(16)), type: spec.type };
    this.keys.push({ ref, value, local, transportable: flags.transportable === true, trusted: flags.trusted === true, publicKey: publicOf(spec.type, value) });
    this.persist();
    return ref;
  }

  async info(): Promise<TokenInfo> {
    return this.guarded('token info', () => ({
      backend: 'fake',
      label: this.label,
      manufacturer: 'hsm-vault',
      model: 'fake (node:crypto)',
      serial: 'fake',
      firmwareVersion: '0.0',
      hardwareVersion: '0.0',
      library: { description: 'hsm-vault fake backend', manufacturer: 'hsm-vault', version: '0.1', path: this.path ?? 'memory' },
      maxSessionCount: this.caps.maxSessions ?? null,
      sessionCount: this.caps.maxSessions !== undefined ? DRIVER_SESSIONS + this.openSessions.size : null,
      poolSize: DRIVER_SESSIONS - 1,
      mechanisms: VAULT_MECHANISMS.map(({ mechanism, purpose }) => {
        const name = MECHANISM_NAMES[mechanism]!;
        return { name, purpose, present: !this.caps.missing?.includes(name) };
      }),
      quirks: this.path ? ['persistent-in-the-clear'] : [],
      insecure: true,
    }));
  }

  async generateKey(spec: KeySpec): Promise<KeyRef> {
    checkSpec(spec);
    return this.guarded(`generate key "${spec.label}"`, () => {
      this.need(GEN_MECHANISM[spec.type], `generate key "${spec.label}"`);
      return this.add(spec, freshKeyValue(spec.type), true, { transportable: spec.transportable === true });
    });
  }

  async importKey(spec: KeySpec, material: KeyMaterial): Promise<KeyRef> {
    checkSpec(spec);
    if (material.type !== spec.type) throw new InvalidArgument(`key material is ${material.type}, spec says ${spec.type}`);
    const value = Buffer.from(importValue(material));
    return this.guarded(`import key "${spec.label}"`, () => this.add(spec, value, false));
  }

  async findKey(query: { readonly label?: string; readonly id?: Uint8Array }): Promise<KeyRef> {
    if (query.label === undefined && query.id === undefined) throw new InvalidArgument('findKey needs a label or an id');
    return this.guarded('find key', () => this.exactlyOne(query.label, query.id).ref);
  }

  async listKeys(): Promise<KeyAttributes[]> {
    return this.guarded('list keys', () => this.keys.map((k) => evidence(k)).sort((a, b) => a.label.localeCompare(b.label)));
  }

  async keyAttributes(ref: KeyRef): Promise<KeyAttributes> {
    return this.guarded(`attributes of "${ref.label}"`, () => evidence(this.resolve(ref)));
  }

  async publicKey(ref: KeyRef): Promise<Uint8Array> {
    requireType(ref, ['ec-p256-derive', 'ec-p256-sign', 'ed25519'], 'publicKey');
    return this.guarded(`public key of "${ref.label}"`, () => new Uint8Array(this.resolve(ref).publicKey!));
  }

  async destroyKey(ref: KeyRef): Promise<void> {
    await this.guarded(`destroy key "${ref.label}"`, () => {
      const only = this.publicOnly.findIndex((p) => p.ref.label === ref.label && hex(p.ref.id) === hex(ref.id));
      if (only >= 0 && this.lookup(ref.label, ref.id).length === 0) {
        this.publicOnly.splice(only, 1);
        return;
      }
      const key = this.resolve(ref);
      this.keys.splice(this.keys.indexOf(key), 1);
      key.value.fill(0);
      this.persist();
    });
  }

  async ecdh(ref: KeyRef, peerPoint: Uint8Array): Promise<Uint8Array> {
    requireType(ref, ['ec-p256-derive'], 'ecdh');
    const point = validateP256Point(peerPoint);
    return this.guarded(`ECDH with "${ref.label}"`, () => {
      this.need('CKM_ECDH1_DERIVE', `ECDH with "${ref.label}"`);
      const key = this.resolve(ref);
      if (!key.ecdh) {
        key.ecdh = createECDH('prime256v1');
        key.ecdh.setPrivateKey(key.value);
      }
      return new Uint8Array(key.ecdh.computeSecret(point));
    });
  }

  async sign(ref: KeyRef, data: Uint8Array): Promise<Uint8Array> {
    requireType(ref, ['ec-p256-sign', 'ed25519'], 'sign');
    checkData(data, 'data to sign');
    if (ref.type === 'ec-p256-sign' && data.length !== 32) throw new InvalidArgument('ECDSA signs a 32-byte SHA-256 digest');
    return this.guarded(`sign with "${ref.label}"`, () => {
      this.need(ref.type === 'ed25519' ? 'CKM_EDDSA' : 'CKM_ECDSA', `sign with "${ref.label}"`);
      const key = this.resolve(ref);
      if (ref.type === 'ed25519') {
        key.edKey ??= createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, key.value]), format: 'der', type: 'pkcs8' });
        return new Uint8Array(nodeSign(null, data, key.edKey));
      }
      return normalizeLowS(p256.sign(data, key.value, { prehash: false, lowS: false }));
    });
  }

  async hmacSha256(ref: KeyRef, data: Uint8Array): Promise<Uint8Array> {
    requireType(ref, ['hmac-sha256'], 'hmacSha256');
    checkData(data, 'HMAC input');
    return this.guarded(`HMAC with "${ref.label}"`, () => {
      this.need('CKM_SHA256_HMAC', `HMAC with "${ref.label}"`);
      return new Uint8Array(createHmac('sha256', this.resolve(ref).value).update(data).digest());
    });
  }

  async sealAesGcm(ref: KeyRef, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed> {
    requireType(ref, ['aes-256'], 'sealAesGcm');
    checkData(plaintext, 'plaintext');
    checkData(aad, 'AAD');
    return this.guarded(`seal with "${ref.label}"`, () => {
      this.need('CKM_AES_GCM', `seal with "${ref.label}"`);
      const iv = randomBytes(12);
      // A token that writes its own IV encrypts under that one; the caller keeps the IV it passed.
      const used = this.caps.gcmIv === 'token' ? randomBytes(12) : iv;
      const cipher = createCipheriv('aes-256-gcm', this.resolve(ref).value, used);
      cipher.setAAD(aad);
      const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return { iv: new Uint8Array(iv), ciphertext: new Uint8Array(ct) };
    });
  }

  async openAesGcm(ref: KeyRef, sealed: GcmSealed, aad: Uint8Array): Promise<Uint8Array> {
    requireType(ref, ['aes-256'], 'openAesGcm');
    checkData(sealed.ciphertext, 'ciphertext', 64 * 1024 + 16);
    checkData(aad, 'AAD');
    if (!(sealed.iv instanceof Uint8Array) || sealed.iv.length !== 12) throw new InvalidArgument('GCM IV must be 12 bytes');
    if (sealed.ciphertext.length < 16) throw new InvalidArgument('GCM ciphertext is shorter than its tag');
    return this.guarded(`open with "${ref.label}"`, () => {
      this.need('CKM_AES_GCM', `open with "${ref.label}"`);
      const ct = sealed.ciphertext;
      const decipher = createDecipheriv('aes-256-gcm', this.resolve(ref).value, sealed.iv);
      decipher.setAAD(aad);
      decipher.setAuthTag(ct.subarray(ct.length - 16));
      try {
        return new Uint8Array(Buffer.concat([decipher.update(ct.subarray(0, ct.length - 16)), decipher.final()]));
      } catch {
        throw new AuthenticationFailed(`open with "${ref.label}": AES-GCM authentication failed`);
      }
    });
  }

  async randomBytes(length: number): Promise<Uint8Array> {
    checkRandomLength(length);
    return this.guarded('random', () => new Uint8Array(randomBytes(length)));
  }

  async exportKeyValue(ref: KeyRef): Promise<Uint8Array> {
    return this.guarded(`export "${ref.label}"`, () => {
      const key = this.resolve(ref);
      if (this.caps.leaky) return new Uint8Array(key.value);
      throw new NonExportableKey(`export "${ref.label}": the token refuses to reveal the key`);
    });
  }

  async updateKeyAttributes(ref: KeyRef, change: AttributeChange): Promise<void> {
    await this.guarded(`change attributes of "${ref.label}"`, () => {
      const key = this.resolve(ref);
      if (this.caps.leaky) {
        const now = key.weakened ?? { extractable: key.transportable, sensitive: true };
        key.weakened = { extractable: change.extractable ?? now.extractable, sensitive: change.sensitive ?? now.sensitive };
        return;
      }
      // Like PKCS#11: EXTRACTABLE can only go true->false, SENSITIVE only false->true.
      if (change.extractable === true || change.sensitive === false) {
        throw new NonExportableKey(`change attributes of "${ref.label}": the token refuses to weaken the key's protection`);
      }
    });
  }

  async wrapKey(wrappingKey: KeyRef, ref: KeyRef): Promise<Uint8Array> {
    requireType(wrappingKey, ['aes-256-wrap'], 'wrapKey');
    return this.guarded(`wrap "${ref.label}"`, () => {
      this.need('CKM_AES_KEY_WRAP_PAD', `wrap "${ref.label}"`);
      const wrapping = this.resolve(wrappingKey);
      const key = this.resolve(ref);
      const refuse = this.caps.leaky ? false : !key.transportable || !wrapping.trusted || (key.ref.type === 'ed25519' && !this.wrapsEd25519);
      if (refuse) throw new NonExportableKey(`wrap "${ref.label}": the token refuses to wrap the key`);
      return aesKeyWrapPad(wrapping.value, Buffer.concat([Buffer.from([KEY_TYPE_CODE[key.ref.type]]), key.value]));
    });
  }

  async unwrapKey(wrappingKey: KeyRef, wrapped: Uint8Array, spec: UnwrapSpec): Promise<KeyRef> {
    requireType(wrappingKey, ['aes-256-wrap'], 'unwrapKey');
    checkSpec(spec);
    if (spec.id === undefined) throw new InvalidArgument("unwrapKey needs the key's CKA_ID");
    checkData(wrapped, 'wrapped key', 4096);
    checkUnwrapPublicKey(spec.type, spec.publicKey);
    return this.guarded(`unwrap "${spec.label}"`, () => {
      this.need('CKM_AES_KEY_WRAP_PAD', `unwrap "${spec.label}"`);
      const wrapping = this.resolve(wrappingKey);
      let plain: Buffer;
      try {
        const decipher = createDecipheriv('id-aes256-wrap-pad', wrapping.value, KWP_IV);
        plain = Buffer.concat([decipher.update(wrapped), decipher.final()]);
      } catch {
        throw new AuthenticationFailed(`unwrap "${spec.label}": the wrapped key does not unwrap under this key`);
      }
      if (plain[0] !== KEY_TYPE_CODE[spec.type]) throw new WrongKeyType(`unwrap "${spec.label}": the wrapped key is not a ${spec.type} key`);
      // The public half comes from the value here; a token stores the given one, and a key check
      // value (which proves the private key matches it) is how callers catch a mismatch.
      const value = plain.subarray(1);
      return this.add({ label: spec.label, type: spec.type, id: spec.id }, Buffer.from(value), false, { transportable: true });
    });
  }

  async importTrustedKey(spec: KeySpec, secret: Uint8Array, officer: SecurityOfficer): Promise<KeyRef> {
    checkSpec(spec);
    if (spec.type !== 'aes-256-wrap') throw new InvalidArgument('a trusted key is an aes-256-wrap key');
    if (!(secret instanceof Uint8Array) || secret.length !== 32) throw new InvalidArgument('AES-256 key must be 32 bytes');
    if (typeof officer?.soPin !== 'string' || officer.soPin.length === 0) throw new InvalidArgument('importing a trusted key needs the security officer PIN');
    return this.guarded(`import trusted key "${spec.label}"`, () => this.add(spec, Buffer.from(secret), false, { trusted: true }));
  }

  async keyCheckValue(ref: KeyRef): Promise<Uint8Array> {
    if (!isSecretKeyType(ref.type)) return keyPairKcv(this, ref);
    return this.guarded(`key check value of "${ref.label}"`, () => {
      const key = this.resolve(ref);
      if (ref.type === 'aes-256') {
        const cipher = createCipheriv('aes-256-gcm', key.value, KCV_GCM_IV);
        cipher.setAAD(KCV_INPUT);
        cipher.final();
        return kcvOf(cipher.getAuthTag());
      }
      return softwareKcv(ref.type, key.value);
    });
  }

  async importPublicKey(spec: KeySpec, publicKey: Uint8Array): Promise<KeyRef> {
    checkSpec(spec);
    const point = checkUnwrapPublicKey(spec.type, publicKey);
    if (!point) throw new InvalidArgument(`a ${spec.type} key has no public key`);
    return this.guarded(`import public key "${spec.label}"`, () => {
      if (this.lookup(spec.label, undefined).length > 0 || this.publicOnly.some((p) => p.ref.label === spec.label)) {
        throw new KeyExists(`a key labelled "${spec.label}" already exists`);
      }
      const ref: KeyRef = { label: spec.label, id: new Uint8Array(spec.id ?? randomBytes(16)), type: spec.type };
      this.publicOnly.push({ ref, publicKey: new Uint8Array(point) });
      return ref;
    });
  }

  async findPublicKey(label: string, type: KeyType): Promise<{ ref: KeyRef; publicKey: Uint8Array }> {
    requireType({ label, id: new Uint8Array(1), type }, ['ec-p256-derive', 'ec-p256-sign', 'ed25519'], 'findPublicKey');
    return this.guarded(`public key "${label}"`, () => {
      const found = [
        ...this.keys.filter((k) => k.ref.label === label && k.ref.type === type).map((k) => ({ ref: k.ref, publicKey: k.publicKey! })),
        ...this.publicOnly.filter((p) => p.ref.label === label && p.ref.type === type),
      ];
      if (found.length === 0) throw new KeyNotFound(`public key "${label}" not found on the token`);
      if (found.length > 1) throw new AmbiguousKey(`public key "${label}" is not unique`, found.length);
      return { ref: found[0]!.ref, publicKey: new Uint8Array(found[0]!.publicKey) };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

const KEY_TYPE_CODE: Record<KeyType, number> = { 'ec-p256-derive': 1, 'ec-p256-sign': 2, ed25519: 3, 'aes-256': 4, 'aes-256-wrap': 5, 'hmac-sha256': 6 };
const KWP_IV = Buffer.from('a65959a6', 'hex');

function evidence(k: FakeKey): KeyAttributes {
  const weakened = k.weakened;
  return {
    label: k.ref.label,
    id: hex(k.ref.id),
    type: k.ref.type,
    local: k.local,
    sensitive: weakened?.sensitive ?? true,
    alwaysSensitive: k.local && (weakened?.sensitive ?? true),
    extractable: weakened?.extractable ?? k.transportable,
    neverExtractable: k.local && !k.transportable && !(weakened?.extractable ?? false),
    wrapWithTrusted: k.transportable,
    trusted: k.trusted,
    keyGenMechanism: k.local ? GEN_MECHANISM[k.ref.type] : null,
    usages: USAGES[k.ref.type],
  };
}

function freshKeyValue(type: KeyType): Buffer {
  switch (type) {
    case 'ec-p256-derive':
    case 'ec-p256-sign':
      return Buffer.from(p256.utils.randomSecretKey());
    default:
      return randomBytes(32);
  }
}

function importValue(material: KeyMaterial): Uint8Array {
  switch (material.type) {
    case 'ec-p256-derive':
    case 'ec-p256-sign':
      if (material.scalar.length !== 32 || !p256.utils.isValidSecretKey(material.scalar)) throw new InvalidArgument('P-256 scalar is out of range');
      return material.scalar;
    case 'ed25519':
      if (material.seed.length !== 32) throw new InvalidArgument('Ed25519 seed must be 32 bytes');
      return material.seed;
    case 'aes-256':
    case 'aes-256-wrap':
      if (material.secret.length !== 32) throw new InvalidArgument('AES-256 key must be 32 bytes');
      return material.secret;
    case 'hmac-sha256':
      if (material.secret.length < 32 || material.secret.length > 64) throw new InvalidArgument('HMAC-SHA256 key must be 32..64 bytes');
      return material.secret;
  }
}

function publicOf(type: KeyType, value: Uint8Array): Uint8Array | undefined {
  if (type === 'ec-p256-derive' || type === 'ec-p256-sign') return p256.getPublicKey(value, false);
  if (type === 'ed25519') return ed25519.getPublicKey(value);
  if (isSecretKeyType(type)) return undefined;
  return undefined;
}

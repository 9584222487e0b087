// HsmDriver over a real PKCS#11 token: one persistent logged-in session on the event-loop thread
// (login, lookups and — for local software tokens only — cheap calls) plus a pool of operation
// sessions in worker threads for everything slow. A call that meets a lost session, a lost login
// or a stale key handle triggers one recovery (new sessions, login restored, handles looked up
// again) and one retry; a second failure is TokenUnavailable. The session, login and recovery
// handling lives in token-context.ts, key lookup in key-lookup.ts, fleet ceremonies in
// key-transport.ts; this class validates arguments and runs each operation under the context.

import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { isSecretKeyType } from '../driver.js';
import type {
  AttributeChange, DriverStats, GcmSealed, HsmDriver, KeyAttributes, KeyMaterial, KeyRef, KeySpec, KeyType, SecurityOfficer,
  TokenInfo, UnwrapSpec,
} from '../driver.js';
import {
  AmbiguousKey, HsmError, InvalidArgument, InvalidUri, KeyExists, KeyNotFound, MechanismUnsupported, TokenUnavailable,
} from '../errors.js';
import { decodeEcPoint, derWrapOctetString, normalizeLowS, validateP256Point } from '../ec-point.js';
import { checkData, checkRandomLength, checkSpec, requireType } from '../validate.js';
import { checkUnwrapPublicKey } from '../kcv.js';
import { resolvePin, type Pkcs11Uri } from '../uri.js';
import { PRIVATE_KEY_ATTRIBUTES, SECRET_KEY_ATTRIBUTES, bytes, evidenceOf, keyTypeOf, text } from './attributes.js';
import { buf } from './buffers.js';
import * as C from './constants.js';
import { ExecutorPool, type SessionHandle } from './executor-pool.js';
import type { ReplyWaitStats } from './reply-watch.js';
import { cacheKey, describe, exactlyOne, findKeyObjects, handleOf, labelTaken, publicHandle } from './key-lookup.js';
import { importValue } from './key-material.js';
import { importTrustedKey, keyCheckValue, unwrapKey, wrapKey } from './key-transport.js';
import { withOpenRetry } from './open-retry.js';
import { acquireModule, type Pkcs11 } from './module-registry.js';
import { loadProfiles, resolveQuirks, selectProfile, type Profile, type Quirks } from './profile.js';
import { login, openSession } from './sessions.js';
import { findSlot } from './slot.js';
import { generationTemplates, importTemplates, type Template } from './templates.js';
import { type Handle, TokenContext, opsOptions } from './token-context.js';
import { readTokenInfo, sessionLimit, trim } from './token-info.js';

export interface Pkcs11DriverOptions {
  /** User PIN; otherwise from the URI (pin-value / pin-source) or HSM_VAULT_PIN. */
  readonly pin?: string;
  /** Operation sessions (worker threads); default from the profile, else one per CPU. */
  readonly poolSize?: number;
  /** How long a worker spins for the next request before sleeping (µs). */
  readonly spinMicros?: number;
  /** How long the event loop polls for a lone call's reply before sleeping (µs; 0: never). */
  readonly replyPollMicros?: number;
  /**
   * Nice value of the worker threads (default 10; 0 keeps the process's; a thread's priority is
   * never raised): waking a worker must not preempt the event loop (src/threads/thread-priority.js).
   */
  readonly workerNice?: number;
  /** How long a call may wait for a free session (ms). */
  readonly borrowTimeoutMs?: number;
  /** Force a profile instead of matching the token (or the URI's x-profile). */
  readonly profile?: Profile;
}

export class Pkcs11Driver implements HsmDriver {
  readonly backend = 'pkcs11' as const;
  readonly quirks: Quirks;

  private constructor(
    private readonly token: TokenContext,
    readonly profileName: string | undefined,
  ) {
    this.quirks = token.quirks;
  }

  /** Opens the token (again, a few times, on SoftHSM2's multi-process file race: open-retry.ts). */
  static async open(uri: Pkcs11Uri, options: Pkcs11DriverOptions = {}): Promise<Pkcs11Driver> {
    return withOpenRetry(() => Pkcs11Driver.openOnce(uri, options));
  }

  private static async openOnce(uri: Pkcs11Uri, options: Pkcs11DriverOptions): Promise<Pkcs11Driver> {
    const modulePath = uri.modulePath ?? process.env.HSM_VAULT_PKCS11_MODULE;
    if (!modulePath) throw new InvalidUri('PKCS#11 URI needs module-path (or set HSM_VAULT_PKCS11_MODULE)');
    checkExecutorOptions(options);
    const pin = options.pin ?? resolvePin(uri);
    const lease = acquireModule(modulePath, uri.libraryParameters !== undefined ? { libraryParameters: uri.libraryParameters } : {});
    let mainSession: SessionHandle | undefined;
    try {
      const pkcs11 = lease.pkcs11;
      const slot = findSlot(pkcs11, uri);
      const tokenInfo = pkcs11.C_GetTokenInfo(slot);
      const moduleInfo = pkcs11.C_GetInfo();
      const profile =
        options.profile ??
        selectProfile(loadProfiles(), {
          manufacturer: trim(tokenInfo.manufacturerID),
          model: trim(tokenInfo.model),
          libraryDescription: trim(moduleInfo.libraryDescription),
        }, uri.profile);
      const quirks = resolveQuirks(profile);
      mainSession = openSession(pkcs11, slot);
      login(pkcs11, mainSession, pin, (tokenInfo.flags & 0x04) !== 0);

      const tokenMax = sessionLimit(tokenInfo.maxSessionCount);
      const caps = [tokenMax, quirks.maxSessions].filter((n): n is number => n !== null).map((n) => n - 1);
      const wanted = options.poolSize ?? uri.poolSize ?? quirks.defaultPoolSize ?? availableParallelism();
      const poolSize = Math.max(1, Math.min(wanted, ...caps));
      const pool = new ExecutorPool({
        modulePath,
        size: poolSize,
        spinMicros: options.spinMicros ?? 150,
        replyPollMicros: options.replyPollMicros ?? 500,
        cores: availableParallelism(),
        workerNice: options.workerNice ?? 10,
        opsOptions: opsOptions(quirks),
        borrowTimeoutMs: options.borrowTimeoutMs ?? 5_000,
        openSession: () => openSession(pkcs11, slot),
        closeSession: (s) => pkcs11.C_CloseSession(s),
      });
      pool.start();
      return new Pkcs11Driver(new TokenContext(lease, slot, pin, quirks, pool, mainSession), profile?.name);
    } catch (err) {
      if (mainSession) try { lease.pkcs11.C_CloseSession(mainSession); } catch { /* cleanup */ }
      lease.release();
      throw err;
    }
  }

  get stats(): DriverStats {
    return { ...this.token.counters };
  }

  get callThreads(): number {
    return this.token.pool.size;
  }

  /**
   * Runs `fn` at a moment when no call of this driver is inside the token, holding new worker
   * calls back meanwhile; they run afterwards and meet whatever `fn` did. For fault injection
   * (qualification, tests): closing sessions under a call in flight on them is undefined
   * behaviour in PKCS#11 (SoftHSM2 crashes), while closing them between calls is the fault a
   * token reset or an HSM failover causes.
   */
  async whileIdle<T>(fn: () => T): Promise<T> {
    await this.token.pool.quiesce();
    try {
      return fn();
    } finally {
      this.token.pool.resume();
    }
  }

  /** The loaded module and slot, for tests that invalidate sessions behind the driver's back. */
  get rawModule(): { pkcs11: Pkcs11; slot: Buffer } {
    return { pkcs11: this.token.pkcs11, slot: this.token.slot };
  }

  /** How the event loop has waited for the workers' replies (executor-pool.ts, reply-watch.ts). */
  get replyWaits(): ReplyWaitStats {
    return this.token.pool.replyWaits;
  }

  // ---- HsmDriver ------------------------------------------------------------------------------

  async info(): Promise<TokenInfo> {
    return this.token.guarded('token info', 'generic', async () => {
      this.token.counters.tokenCalls++;
      return readTokenInfo(this.token.pkcs11, this.token.slot, {
        libraryPath: this.token.lease.path, poolSize: this.token.pool.size, quirks: this.quirks, profileName: this.profileName,
      });
    });
  }

  async generateKey(spec: KeySpec): Promise<KeyRef> {
    checkSpec(spec, { labelMax: this.quirks.labelMaxLength, idMax: this.quirks.idMaxLength });
    const id = spec.id ?? randomBytes(Math.min(16, this.quirks.idMaxLength ?? 16));
    const t = generationTemplates(spec.type, spec.label, id, spec.transportable === true);
    // The uniqueness check and the write form one step, so that two concurrent calls with the
    // same label cannot both pass the check.
    return this.token.guarded(`generate key "${spec.label}"`, 'generic', () => this.token.lease.serializeObjectWrites(async () => {
      if (await labelTaken(this.token, spec.label)) throw new KeyExists(`a key labelled "${spec.label}" already exists`);
      await (t.kind === 'pair'
        ? this.token.exec('slow', 'call', (s) => ({ fn: 'C_GenerateKeyPair', args: [s, { mechanism: t.mechanism }, t.publicTemplate, t.privateTemplate] }))
        : this.token.exec('slow', 'call', (s) => ({ fn: 'C_GenerateKey', args: [s, { mechanism: t.mechanism }, t.template] })));
      return { label: spec.label, id: new Uint8Array(id), type: spec.type };
    }), true);
  }

  async importKey(spec: KeySpec, material: KeyMaterial): Promise<KeyRef> {
    checkSpec(spec, { labelMax: this.quirks.labelMaxLength, idMax: this.quirks.idMaxLength });
    if (material.type !== spec.type) throw new InvalidArgument(`key material is ${material.type}, spec says ${spec.type}`);
    const id = spec.id ?? randomBytes(Math.min(16, this.quirks.idMaxLength ?? 16));
    const { value, publicPoint } = importValue(material);
    return this.token.guarded(`import key "${spec.label}"`, 'generic', async () => {
      if (await labelTaken(this.token, spec.label)) throw new KeyExists(`a key labelled "${spec.label}" already exists`);
      const t = importTemplates(spec.type, spec.label, id, value, publicPoint ? derWrapOctetString(publicPoint) : undefined);
      const priv = this.token.main<Handle>('C_CreateObject', t.privateTemplate);
      if (t.publicTemplate) {
        try {
          this.token.main('C_CreateObject', t.publicTemplate);
        } catch (err) {
          try { this.token.main('C_DestroyObject', priv); } catch { /* leave nothing half-made */ }
          throw err;
        }
      }
      return { label: spec.label, id: new Uint8Array(id), type: spec.type };
    });
  }

  async findKey(query: { readonly label?: string; readonly id?: Uint8Array }): Promise<KeyRef> {
    if (query.label === undefined && query.id === undefined) throw new InvalidArgument('findKey needs a label or an id');
    return this.token.guarded('find key', 'generic', async () => {
      const { handle, cls } = exactlyOne(this.token, query.label, query.id);
      const { type, attrs } = describe(this.token, handle, cls);
      const ref: KeyRef = { label: text(attrs.get(C.CKA_LABEL)), id: new Uint8Array(attrs.get(C.CKA_ID) as Uint8Array), type };
      this.token.keys.set(cacheKey(ref), { handle, type });
      return ref;
    });
  }

  async listKeys(): Promise<KeyAttributes[]> {
    return this.token.guarded('list keys', 'generic', async () => {
      const out: KeyAttributes[] = [];
      for (const { handle, cls } of findKeyObjects(this.token)) {
        const attrs = this.token.readAttributes(handle, cls === C.CKO_SECRET_KEY ? SECRET_KEY_ATTRIBUTES : PRIVATE_KEY_ATTRIBUTES);
        const type = keyTypeOf(attrs);
        if (type) out.push(evidenceOf(attrs, type));
      }
      return out.sort((a, b) => a.label.localeCompare(b.label));
    });
  }

  async keyAttributes(key: KeyRef): Promise<KeyAttributes> {
    return this.token.guarded(`attributes of "${key.label}"`, 'generic', async () => {
      const handle = handleOf(this.token, key);
      const secret = isSecretKeyType(key.type);
      return evidenceOf(this.token.readAttributes(handle, secret ? SECRET_KEY_ATTRIBUTES : PRIVATE_KEY_ATTRIBUTES), key.type);
    });
  }

  async publicKey(key: KeyRef): Promise<Uint8Array> {
    requireType(key, ['ec-p256-derive', 'ec-p256-sign', 'ed25519'], 'publicKey');
    return this.token.guarded(`public key of "${key.label}"`, 'generic', async () => {
      handleOf(this.token, key); // the key itself must exist, exactly once
      const value = this.token.readAttributes(publicHandle(this.token, key), [C.CKA_EC_POINT]).get(C.CKA_EC_POINT) as Uint8Array;
      const raw = decodeEcPoint(value, key.type === 'ed25519' ? [32] : [65], this.quirks.ecPointEncoding);
      if (key.type !== 'ed25519') validateP256Point(raw);
      return raw;
    });
  }

  async destroyKey(key: KeyRef): Promise<void> {
    await this.token.guarded(`destroy key "${key.label}"`, 'generic', async () => {
      let handle: Handle | undefined;
      try {
        handle = handleOf(this.token, key);
      } catch (err) {
        // A public-only key (importPublicKey): destroy its public object, if there is one.
        if (!(err instanceof KeyNotFound) || isSecretKeyType(key.type)) throw err;
        const only = this.token.findHandles([{ type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY }, { type: C.CKA_LABEL, value: key.label }, { type: C.CKA_ID, value: buf(key.id) }]);
        if (only.length === 0) throw err;
        for (const pub of only) this.token.main('C_DestroyObject', pub);
        return;
      }
      const publics = isSecretKeyType(key.type) ? [] : this.token.findHandles([
        { type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY },
        { type: C.CKA_LABEL, value: key.label },
        { type: C.CKA_ID, value: buf(key.id) },
      ]);
      this.token.keys.delete(cacheKey(key));
      this.token.sessionKeys.delete(cacheKey(key));
      this.token.main('C_DestroyObject', handle);
      for (const pub of publics) this.token.main('C_DestroyObject', pub);
      if (this.quirks.sessionKeyCopies) {
        // Session copies of the key would outlive it: destroy ours, renew the workers' sessions.
        this.token.ops.dropCopies();
        this.token.pool.markAllStale();
      }
    });
  }

  async ecdh(key: KeyRef, peerPoint: Uint8Array): Promise<Uint8Array> {
    requireType(key, ['ec-p256-derive'], 'ecdh');
    const point = validateP256Point(peerPoint);
    if (this.quirks.ecdhOutputMustBeSensitive) {
      throw new MechanismUnsupported('this token refuses readable ECDH output (profile quirk ecdhOutputMustBeSensitive)');
    }
    const publicData = buf(this.quirks.ecdhPublicDataEncoding === 'der' ? derWrapOctetString(point) : point);
    return this.token.guarded(`ECDH with "${key.label}"`, 'generic', async () => {
      const handle = handleOf(this.token, key);
      const x = await this.token.exec<Uint8Array>('slow', 'ecdh', (session) => ({ session, key: handle, publicData }));
      if (x.length !== 32) throw new TokenUnavailable(`token returned a ${x.length}-byte ECDH output, expected 32`);
      return new Uint8Array(x);
    });
  }

  async sign(key: KeyRef, data: Uint8Array): Promise<Uint8Array> {
    requireType(key, ['ec-p256-sign', 'ed25519'], 'sign');
    checkData(data, 'data to sign');
    if (key.type === 'ec-p256-sign' && data.length !== 32) throw new InvalidArgument('ECDSA signs a 32-byte SHA-256 digest');
    const mechanism = key.type === 'ed25519' ? C.CKM_EDDSA : C.CKM_ECDSA;
    const input = buf(data);
    return this.token.guarded(`sign with "${key.label}"`, 'generic', async () => {
      const handle = handleOf(this.token, key);
      const sig = await this.token.exec<Uint8Array>('slow', 'sign', (session) => ({ session, mechanism, key: handle, data: input, outLength: 64 }));
      return key.type === 'ed25519' ? new Uint8Array(sig) : normalizeLowS(new Uint8Array(sig));
    });
  }

  async hmacSha256(key: KeyRef, data: Uint8Array): Promise<Uint8Array> {
    requireType(key, ['hmac-sha256'], 'hmacSha256');
    checkData(data, 'HMAC input');
    const input = buf(data);
    return this.token.guarded(`HMAC with "${key.label}"`, 'generic', async () => {
      const handle = handleOf(this.token, key);
      const mac = await this.token.exec<Uint8Array>('cheap', 'sign', (session) => ({ session, mechanism: C.CKM_SHA256_HMAC, key: handle, data: input, outLength: 32 }));
      return new Uint8Array(mac);
    });
  }

  async sealAesGcm(key: KeyRef, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed> {
    requireType(key, ['aes-256'], 'sealAesGcm');
    checkData(plaintext, 'plaintext');
    checkData(aad, 'AAD');
    if (this.quirks.gcmIvFromToken) {
      throw new MechanismUnsupported('tokens that write their own GCM IV are not supported yet (profile quirk gcmIvFromToken)');
    }
    const input = buf(plaintext);
    const aadBuf = buf(aad);
    return this.token.guarded(`seal with "${key.label}"`, 'generic', async () => {
      const handle = handleOf(this.token, key);
      const iv = randomBytes(12); // fresh per attempt: a retry never reuses an IV
      const ct = await this.token.exec<Uint8Array>('cheap', 'encrypt', (session) => ({ session, key: handle, iv, aad: aadBuf, data: input, outLength: input.length + 16 }));
      if (ct.length !== input.length + 16) throw new TokenUnavailable(`token returned ${ct.length} bytes of GCM output, expected ${input.length + 16}`);
      return { iv: new Uint8Array(iv), ciphertext: new Uint8Array(ct) };
    });
  }

  async openAesGcm(key: KeyRef, sealed: GcmSealed, aad: Uint8Array): Promise<Uint8Array> {
    requireType(key, ['aes-256'], 'openAesGcm');
    checkData(sealed.ciphertext, 'ciphertext', 64 * 1024 + 16);
    checkData(aad, 'AAD');
    if (!(sealed.iv instanceof Uint8Array) || sealed.iv.length !== 12) throw new InvalidArgument('GCM IV must be 12 bytes');
    if (sealed.ciphertext.length < 16) throw new InvalidArgument('GCM ciphertext is shorter than its tag');
    const iv = buf(sealed.iv);
    const input = buf(sealed.ciphertext);
    const aadBuf = buf(aad);
    return this.token.guarded(`open with "${key.label}"`, 'gcm-open', async () => {
      const handle = handleOf(this.token, key);
      const pt = await this.token.exec<Uint8Array>('cheap', 'decrypt', (session) => ({ session, key: handle, iv, aad: aadBuf, data: input, outLength: input.length }));
      return new Uint8Array(pt);
    });
  }

  async randomBytes(length: number): Promise<Uint8Array> {
    checkRandomLength(length);
    return this.token.guarded('random', 'generic', async () => new Uint8Array(await this.token.exec<Uint8Array>('cheap', 'random', (session) => ({ session, length }))));
  }

  async exportKeyValue(key: KeyRef): Promise<Uint8Array> {
    return this.token.guarded(`export "${key.label}"`, 'read-secret', async () => {
      const handle = handleOf(this.token, key);
      return bytes(this.token.readAttributes(handle, [C.CKA_VALUE]).get(C.CKA_VALUE));
    });
  }

  async updateKeyAttributes(key: KeyRef, change: AttributeChange): Promise<void> {
    // Forwarded to the token on purpose: qualification and conformance must see the token's own
    // enforcement, not ours.
    const template: Template = [];
    if (change.extractable !== undefined) template.push({ type: C.CKA_EXTRACTABLE, value: change.extractable });
    if (change.sensitive !== undefined) template.push({ type: C.CKA_SENSITIVE, value: change.sensitive });
    if (template.length === 0) return;
    await this.token.guarded(`change attributes of "${key.label}"`, 'weaken-attributes', async () => {
      this.token.main('C_SetAttributeValue', handleOf(this.token, key), template);
    });
  }

  async wrapKey(wrappingKey: KeyRef, key: KeyRef): Promise<Uint8Array> {
    return wrapKey(this.token, wrappingKey, key);
  }

  async unwrapKey(wrappingKey: KeyRef, wrapped: Uint8Array, spec: UnwrapSpec): Promise<KeyRef> {
    return unwrapKey(this.token, wrappingKey, wrapped, spec);
  }

  async importTrustedKey(spec: KeySpec, secret: Uint8Array, officer: SecurityOfficer): Promise<KeyRef> {
    return importTrustedKey(this.token, spec, secret, officer);
  }

  async keyCheckValue(key: KeyRef): Promise<Uint8Array> {
    return keyCheckValue(this.token, this, key);
  }

  async importPublicKey(spec: KeySpec, publicKey: Uint8Array): Promise<KeyRef> {
    checkSpec(spec, { labelMax: this.quirks.labelMaxLength, idMax: this.quirks.idMaxLength });
    const point = checkUnwrapPublicKey(spec.type, publicKey);
    if (!point) throw new InvalidArgument(`a ${spec.type} key has no public key`);
    const id = new Uint8Array(spec.id ?? randomBytes(Math.min(16, this.quirks.idMaxLength ?? 16)));
    const t = importTemplates(spec.type, spec.label, id, new Uint8Array(32), derWrapOctetString(point));
    return this.token.guarded(`import public key "${spec.label}"`, 'generic', () => this.token.lease.serializeObjectWrites(async () => {
      const taken = findKeyObjects(this.token, spec.label).length > 0 || this.token.findHandles([{ type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY }, { type: C.CKA_LABEL, value: spec.label }]).length > 0;
      if (taken) throw new KeyExists(`a key labelled "${spec.label}" already exists`);
      this.token.main('C_CreateObject', t.publicTemplate!);
      return { label: spec.label, id, type: spec.type };
    }), true);
  }

  async findPublicKey(label: string, type: KeyType): Promise<{ ref: KeyRef; publicKey: Uint8Array }> {
    requireType({ label, id: new Uint8Array(1), type }, ['ec-p256-derive', 'ec-p256-sign', 'ed25519'], 'findPublicKey');
    return this.token.guarded(`public key "${label}"`, 'generic', async () => {
      const handles = this.token.findHandles([
        { type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY },
        { type: C.CKA_KEY_TYPE, value: type === 'ed25519' ? C.CKK_EC_EDWARDS : C.CKK_EC },
        { type: C.CKA_LABEL, value: label },
      ]);
      if (handles.length === 0) throw new KeyNotFound(`public key "${label}" not found on the token`);
      if (handles.length > 1) throw new AmbiguousKey(`public key "${label}" is not unique`, handles.length);
      const attrs = this.token.readAttributes(handles[0]!, [C.CKA_EC_POINT, C.CKA_ID]);
      const raw = decodeEcPoint(attrs.get(C.CKA_EC_POINT) as Uint8Array, type === 'ed25519' ? [32] : [65], this.quirks.ecPointEncoding);
      if (type !== 'ed25519') validateP256Point(raw);
      return { ref: { label, id: bytes(attrs.get(C.CKA_ID)), type }, publicKey: raw };
    });
  }

  close(): Promise<void> {
    return this.token.close();
  }
}

export function isHsmError(err: unknown): err is HsmError {
  return err instanceof HsmError;
}

/** Refuses executor settings that would otherwise be clamped or ignored without a word. */
function checkExecutorOptions(options: Pkcs11DriverOptions): void {
  const { workerNice, replyPollMicros } = options;
  if (workerNice !== undefined && !(Number.isInteger(workerNice) && workerNice >= 0 && workerNice <= 19)) {
    throw new InvalidArgument(`workerNice must be an integer from 0 to 19, got ${workerNice}`);
  }
  if (replyPollMicros !== undefined && !(Number.isFinite(replyPollMicros) && replyPollMicros >= 0)) {
    throw new InvalidArgument(`replyPollMicros must be a number of microseconds >= 0, got ${replyPollMicros}`);
  }
}

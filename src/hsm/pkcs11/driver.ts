// HsmDriver over a real PKCS#11 token: one persistent logged-in session on the event-loop thread
// (login, lookups and — for local software tokens only — cheap calls) plus a pool of operation
// sessions in worker threads for everything slow. A call that meets a lost session, a lost login
// or a stale key handle triggers one recovery (new sessions, login restored, handles looked up
// again) and one retry; a second failure is TokenUnavailable.

import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { p256 } from '@noble/curves/nist.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { isSecretKeyType } from '../driver.js';
import type {
  AttributeChange, DriverStats, GcmSealed, HsmDriver, KeyAttributes, KeyMaterial, KeyRef, KeySpec, KeyType, SecurityOfficer,
  TokenInfo, UnwrapSpec,
} from '../driver.js';
import {
  AmbiguousKey, DriverClosed, HsmError, InvalidArgument, InvalidUri, KeyExists, KeyNotFound, LoginFailed,
  MechanismUnsupported, TokenNotFound, TokenUnavailable, WrongKeyType,
} from '../errors.js';
import { decodeEcPoint, derWrapOctetString, normalizeLowS, validateP256Point } from '../ec-point.js';
import { checkData, checkRandomLength, checkSpec, requireType } from '../validate.js';
import { KCV_GCM_IV, KCV_INPUT, KCV_WRAP_SUBJECT, checkUnwrapPublicKey, kcvOf, keyPairKcv } from '../kcv.js';
import { resolvePin, type Pkcs11Uri } from '../uri.js';
import { type AttributeMap, PRIVATE_KEY_ATTRIBUTES, SECRET_KEY_ATTRIBUTES, bool, evidenceOf, keyTypeOf, text, ulong } from './attributes.js';
import * as C from './constants.js';
import { CKR, type CallContext, failureOf, mapFailure, recoveryFor } from './error-map.js';
import { CallFailed, createOps } from './executor-ops.js';
import { ExecutorCallError, ExecutorPool, type SessionHandle } from './executor-pool.js';
import { acquireModule, type ModuleLease, type Pkcs11 } from './module-registry.js';
import { activeQuirks, loadProfiles, resolveQuirks, selectProfile, type Profile, type Quirks } from './profile.js';
import {
  ecdhOutputTemplate, generationTemplates, importTemplates, kcvSubjectTemplate, trustedWrapKeyTemplate, unwrapTemplates, type Template,
} from './templates.js';

export interface Pkcs11DriverOptions {
  /** User PIN; otherwise from the URI (pin-value / pin-source) or HSM_VAULT_PIN. */
  readonly pin?: string;
  /** Operation sessions (worker threads); default from the profile, else one per CPU. */
  readonly poolSize?: number;
  /** How long a worker spins for the next request before sleeping (µs). */
  readonly spinMicros?: number;
  /** How long a call may wait for a free session (ms). */
  readonly borrowTimeoutMs?: number;
  /** Force a profile instead of matching the token (or the URI's x-profile). */
  readonly profile?: Profile;
}

type Handle = Buffer;

/** What every executor (the workers and the event-loop thread) needs to run the driver's calls. */
function opsOptions(quirks: Quirks): { shapes: unknown; copyKeys: boolean } {
  return {
    copyKeys: quirks.sessionKeyCopies,
    shapes: {
      ecdh: { mechanism: C.CKM_ECDH1_DERIVE, parameterType: 6 /* CK_PARAMS_EC_DH */, kdf: C.CKD_NULL, template: ecdhOutputTemplate(), valueType: C.CKA_VALUE },
      gcm: { mechanism: C.CKM_AES_GCM, parameterType: 3 /* CK_PARAMS_AES_GCM */ },
    },
  };
}
interface CachedKey {
  readonly handle: Handle;
  readonly type: KeyType;
}

/** A failed call, wherever it ran (worker or event-loop thread). */
interface CallError {
  readonly fn: string;
  readonly rv: number;
  /** Worker slot, or -1 for the event-loop thread's session. */
  readonly slot: number;
  readonly tainted: boolean;
}

function asCallError(err: unknown): CallError | undefined {
  if (err instanceof ExecutorCallError) return err;
  if (err instanceof CallFailed) return { fn: err.fn, rv: err.rv, slot: -1, tainted: (err as { tainted?: boolean }).tainted === true };
  return undefined;
}

const trim = (s: string): string => s.replace(/[\s\0]+$/, '');
const version = (v: { major: number; minor: number }): string => `${v.major}.${v.minor}`;
// An empty Uint8Array may have no backing store, which pkcs11js passes as a NULL pointer that
// tokens reject (CKR_ARGUMENTS_BAD); an empty view of a real allocation is a valid empty input.
const buf = (b: Uint8Array): Buffer => (b.byteLength === 0 ? Buffer.alloc(1).subarray(0, 0) : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const CKS_RW_USER_FUNCTIONS = 3;
const CKS_RO_USER_FUNCTIONS = 1;

export class Pkcs11Driver implements HsmDriver {
  readonly backend = 'pkcs11' as const;
  private readonly pkcs11: Pkcs11;
  private readonly ops: ReturnType<typeof createOps>;
  private mainSession: SessionHandle;
  private readonly keys = new Map<string, CachedKey>();
  /**
   * Session objects the driver made (trusted transport keys): lookups search token objects only,
   * so these are found here. They survive logouts (public objects) but die with the main session.
   */
  private readonly sessionKeys = new Map<string, CachedKey>();
  /** Set while a call needs the token to itself (a security-officer login); others wait. */
  private gate: Promise<void> | undefined;
  private recovering: Promise<void> | undefined;
  /** Bumped when a recovery starts; a failure from an older epoch was already recovered from. */
  private epoch = 0;
  private active = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  private counters = { tokenCalls: 0, recoveries: 0 };

  private constructor(
    private readonly lease: ModuleLease,
    private readonly slot: Buffer,
    private readonly pin: string | undefined,
    readonly quirks: Quirks,
    readonly profileName: string | undefined,
    private readonly pool: ExecutorPool,
    mainSession: SessionHandle,
  ) {
    this.pkcs11 = lease.pkcs11;
    this.ops = createOps(this.pkcs11, opsOptions(quirks));
    this.mainSession = mainSession;
  }

  static async open(uri: Pkcs11Uri, options: Pkcs11DriverOptions = {}): Promise<Pkcs11Driver> {
    const modulePath = uri.modulePath ?? process.env.HSM_VAULT_PKCS11_MODULE;
    if (!modulePath) throw new InvalidUri('PKCS#11 URI needs module-path (or set HSM_VAULT_PKCS11_MODULE)');
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
        opsOptions: opsOptions(quirks),
        borrowTimeoutMs: options.borrowTimeoutMs ?? 5_000,
        openSession: () => openSession(pkcs11, slot),
        closeSession: (s) => pkcs11.C_CloseSession(s),
      });
      pool.start();
      return new Pkcs11Driver(lease, slot, pin, quirks, profile?.name, pool, mainSession);
    } catch (err) {
      if (mainSession) try { lease.pkcs11.C_CloseSession(mainSession); } catch { /* cleanup */ }
      lease.release();
      throw err;
    }
  }

  get stats(): DriverStats {
    return { ...this.counters };
  }

  /** The loaded module and slot, for tests that invalidate sessions behind the driver's back. */
  get rawModule(): { pkcs11: Pkcs11; slot: Buffer } {
    return { pkcs11: this.pkcs11, slot: this.slot };
  }

  // ---- plumbing -------------------------------------------------------------------------------

  /** Runs an op on the event-loop thread (cheap ops on local tokens) or in a worker. */
  private exec<T>(weight: 'cheap' | 'slow', op: string, build: (session: SessionHandle) => unknown): Promise<T> {
    this.counters.tokenCalls++;
    if (weight === 'cheap' && this.quirks.inlineCheapOperations) {
      const fn = (this.ops as unknown as Record<string, (p: unknown) => unknown>)[op]!;
      try {
        return Promise.resolve(fn(build(this.mainSession)) as T);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.pool.run<T>(op, build);
  }

  /** Lookups and management always run on the event-loop thread's session: they are rare. */
  private main<T>(fn: string, ...args: unknown[]): T {
    this.counters.tokenCalls++;
    return (this.ops.call as (p: { fn: string; args: unknown[] }) => T)({ fn, args: [this.mainSession, ...args] });
  }

  /** One attempt, one recovery, one retry; maps failures to typed errors. */
  private async guarded<T>(what: string, context: CallContext, attempt: () => Promise<T>, write = false): Promise<T> {
    if (this.closed) throw new DriverClosed();
    while (this.gate) await this.gate;
    if (this.closed) throw new DriverClosed();
    this.active++;
    try {
      // Object searches must not overlap a key generation (see ModuleLease.serializeObjectWrites);
      // no await when none runs, since every call passes here.
      const writes = write ? undefined : this.lease.writesIdle();
      if (writes) await writes;
      const epoch = this.epoch;
      try {
        return await attempt();
      } catch (err) {
        const call = asCallError(err);
        if (!call) throw err;
        if (call.tainted && call.slot < 0) this.replaceMainSession();
        const recovery = recoveryFor(call.rv);
        if (recovery === 'none') throw mapFailure(context, what, failureOf(call.fn, call.rv));
        // Under load many calls fail from one loss. Only a call that started after the latest
        // recovery may start another: a second one would drop the handles (and session copies of
        // keys) that calls already retrying are using.
        if (this.epoch === epoch) await this.recover(call.slot);
        else {
          if (recovery === 'session' && call.slot >= 0) this.pool.markStale(call.slot);
          await this.recovering;
        }
        const pendingWrites = write ? undefined : this.lease.writesIdle();
        if (pendingWrites) await pendingWrites;
      }
      try {
        return await attempt();
      } catch (err) {
        const call = asCallError(err);
        if (!call) throw err;
        if (call.tainted && call.slot < 0) this.replaceMainSession();
        const failure = failureOf(call.fn, call.rv);
        if (recoveryFor(call.rv) !== 'none') throw new TokenUnavailable(`${what}: token unavailable after one recovery`, failure);
        throw mapFailure(context, what, failure);
      }
    } finally {
      this.active--;
    }
  }

  /** Opens a fresh event-loop session before closing the old one, so the login survives. */
  private replaceMainSession(): void {
    const old = this.mainSession;
    try {
      this.mainSession = openSession(this.pkcs11, this.slot);
    } catch {
      return; // keep the old one; the next call will recover or report
    }
    this.ops.forgetCopies();
    this.sessionKeys.clear(); // session objects die with the session that made them
    try { this.pkcs11.C_CloseSession(old); } catch { /* already gone */ }
  }

  /**
   * Runs `fn` with no other call of this driver in flight and none starting (a login change would
   * pull the token from under them).
   */
  private async exclusively<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new DriverClosed();
    while (this.gate) await this.gate;
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    try {
      while (this.active > 0) await new Promise((r) => setTimeout(r, 2));
      await this.lease.writesIdle();
      if (this.closed) throw new DriverClosed();
      this.active++;
      try {
        return await fn();
      } finally {
        this.active--;
      }
    } finally {
      this.gate = undefined;
      open();
    }
  }

  /** A main-session call whose failure maps to a typed error right away (no recovery). */
  private direct<T>(context: CallContext, what: string, fn: string, ...args: unknown[]): T {
    try {
      return this.main<T>(fn, ...args);
    } catch (err) {
      const call = asCallError(err);
      if (!call) throw err;
      throw mapFailure(context, what, failureOf(call.fn, call.rv));
    }
  }

  /** Single-flight: restore the main session and the login, drop cached handles, renew sessions. */
  private recover(slot: number): Promise<void> {
    if (!this.recovering) {
      this.counters.recoveries++;
      this.epoch++;
      this.recovering = (async () => {
        let mainAlive = true;
        let loggedIn = false;
        try {
          const state = this.pkcs11.C_GetSessionInfo(this.mainSession).state;
          loggedIn = state === CKS_RW_USER_FUNCTIONS || state === CKS_RO_USER_FUNCTIONS;
        } catch {
          mainAlive = false;
        }
        if (!mainAlive) {
          this.ops.forgetCopies();
          this.sessionKeys.clear();
          try { this.pkcs11.C_CloseSession(this.mainSession); } catch { /* already gone */ }
          try {
            this.mainSession = openSession(this.pkcs11, this.slot);
          } catch (err) {
            throw new TokenUnavailable('cannot reopen a session on the token', undefined, { cause: err });
          }
        }
        if (!loggedIn) login(this.pkcs11, this.mainSession, this.pin, true);
        this.dropCachedKeys();
        // Key copies live in every session: stale handles mean every session must be renewed.
        if (!mainAlive || !loggedIn || this.quirks.sessionKeyCopies) this.pool.markAllStale();
        else if (slot >= 0) this.pool.markStale(slot);
      })().finally(() => {
        this.recovering = undefined;
      });
    }
    return this.recovering;
  }

  private findHandles(template: Template, max = 16): Handle[] {
    this.counters.tokenCalls++;
    return this.ops.find({ session: this.mainSession, template, max }) as Handle[];
  }

  private readAttributes(handle: Handle, types: readonly number[]): AttributeMap {
    const values = this.main<Array<{ type: number; value: unknown }>>('C_GetAttributeValue', handle, types.map((type) => ({ type })));
    return new Map(values.map((a) => [a.type, a.value]));
  }

  /** Private and secret key objects matching label and/or id. */
  private findKeyObjects(label?: string, id?: Uint8Array): Array<{ handle: Handle; cls: number }> {
    const found: Array<{ handle: Handle; cls: number }> = [];
    for (const cls of [C.CKO_PRIVATE_KEY, C.CKO_SECRET_KEY]) {
      // Token objects only: session-object copies of keys (quirk sessionKeyCopies) share labels.
      const template: Template = [{ type: C.CKA_CLASS, value: cls }, { type: C.CKA_TOKEN, value: true }];
      if (label !== undefined) template.push({ type: C.CKA_LABEL, value: label });
      if (id !== undefined) template.push({ type: C.CKA_ID, value: buf(id) });
      for (const handle of this.findHandles(template, 1024)) found.push({ handle, cls });
    }
    return found;
  }

  /**
   * Whether a token object (a key of either kind, or a public key) already has this label. One
   * search, run by a worker: SoftHSM2 walks every token object (re-checking its file), which takes
   * milliseconds on a full token, too long for the event loop (measured: 18 ms lag p99 while
   * generating keys, 1.7 ms after).
   */
  private async labelTaken(label: string): Promise<boolean> {
    const template: Template = [{ type: C.CKA_TOKEN, value: true }, { type: C.CKA_LABEL, value: label }];
    const found = await this.exec<Handle[]>('slow', 'find', (session) => ({ session, template, max: 1 }));
    return found.length > 0;
  }

  private describe(handle: Handle, cls: number): { type: KeyType; attrs: AttributeMap } {
    const attrs = this.readAttributes(handle, cls === C.CKO_SECRET_KEY ? SECRET_KEY_ATTRIBUTES : PRIVATE_KEY_ATTRIBUTES);
    const type = keyTypeOf(attrs);
    if (!type) throw new WrongKeyType(`key "${text(attrs.get(C.CKA_LABEL))}" has a key type the vault does not use`);
    return { type, attrs };
  }

  private exactlyOne(label: string | undefined, id: Uint8Array | undefined): { handle: Handle; cls: number } {
    const found = this.findKeyObjects(label, id);
    const what = label !== undefined ? `key "${label}"` : `key with id ${Buffer.from(id ?? []).toString('hex')}`;
    if (found.length === 0) throw new KeyNotFound(`${what} not found on the token`);
    if (found.length > 1) throw new AmbiguousKey(`${what} is not unique on the token`, found.length);
    return found[0]!;
  }

  private cacheKey(key: KeyRef): string {
    return `${key.label}\0${Buffer.from(key.id).toString('hex')}`;
  }

  /** The private/secret object handle for a key reference (cached; re-found after recovery). */
  private handleOf(key: KeyRef): Handle {
    const cacheKey = this.cacheKey(key);
    const cached = this.keys.get(cacheKey) ?? this.sessionKeys.get(cacheKey);
    if (cached) {
      if (cached.type !== key.type) throw new WrongKeyType(`key "${key.label}" is ${cached.type}, not ${key.type}`);
      return cached.handle;
    }
    const { handle, cls } = this.exactlyOne(key.label, key.id);
    const { type } = this.describe(handle, cls);
    if (type !== key.type) throw new WrongKeyType(`key "${key.label}" is ${type}, not ${key.type}`);
    this.keys.set(cacheKey, { handle, type });
    return handle;
  }

  /** Forgets cached handles and this thread's key copies (workers drop theirs with their sessions). */
  private dropCachedKeys(): void {
    this.ops.dropCopies();
    this.keys.clear();
  }

  private publicHandle(key: KeyRef): Handle {
    const handles = this.findHandles([
      { type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY },
      { type: C.CKA_LABEL, value: key.label },
      { type: C.CKA_ID, value: buf(key.id) },
    ]);
    if (handles.length === 0) throw new KeyNotFound(`public key "${key.label}" not found on the token`);
    if (handles.length > 1) throw new AmbiguousKey(`public key "${key.label}" is not unique`, handles.length);
    return handles[0]!;
  }

  // ---- HsmDriver ------------------------------------------------------------------------------

  async info(): Promise<TokenInfo> {
    return this.guarded('token info', 'generic', async () => {
      this.counters.tokenCalls++;
      const t = this.pkcs11.C_GetTokenInfo(this.slot);
      const m = this.pkcs11.C_GetInfo();
      const present = new Set(this.pkcs11.C_GetMechanismList(this.slot));
      return {
        backend: 'pkcs11',
        label: trim(t.label),
        manufacturer: trim(t.manufacturerID),
        model: trim(t.model),
        serial: trim(t.serialNumber),
        firmwareVersion: version(t.firmwareVersion),
        hardwareVersion: version(t.hardwareVersion),
        library: { description: trim(m.libraryDescription), manufacturer: trim(m.manufacturerID), version: version(m.libraryVersion), path: this.lease.path },
        maxSessionCount: sessionLimit(t.maxSessionCount),
        sessionCount: sessionLimit(t.sessionCount),
        poolSize: this.pool.size,
        mechanisms: C.VAULT_MECHANISMS.map(({ mechanism, purpose }) => ({ name: C.MECHANISM_NAMES[mechanism]!, purpose, present: present.has(mechanism) })),
        quirks: [...(this.profileName ? [`profile=${this.profileName}`] : []), ...activeQuirks(this.quirks)],
        insecure: false,
      };
    });
  }

  async generateKey(spec: KeySpec): Promise<KeyRef> {
    checkSpec(spec, { labelMax: this.quirks.labelMaxLength, idMax: this.quirks.idMaxLength });
    const id = spec.id ?? randomBytes(Math.min(16, this.quirks.idMaxLength ?? 16));
    const t = generationTemplates(spec.type, spec.label, id, spec.transportable === true);
    // The uniqueness check and the write form one step, so that two concurrent calls with the
    // same label cannot both pass the check.
    return this.guarded(`generate key "${spec.label}"`, 'generic', () => this.lease.serializeObjectWrites(async () => {
      if (await this.labelTaken(spec.label)) throw new KeyExists(`a key labelled "${spec.label}" already exists`);
      await (t.kind === 'pair'
        ? this.exec('slow', 'call', (s) => ({ fn: 'C_GenerateKeyPair', args: [s, { mechanism: t.mechanism }, t.publicTemplate, t.privateTemplate] }))
        : this.exec('slow', 'call', (s) => ({ fn: 'C_GenerateKey', args: [s, { mechanism: t.mechanism }, t.template] })));
      return { label: spec.label, id: new Uint8Array(id), type: spec.type };
    }), true);
  }

  async importKey(spec: KeySpec, material: KeyMaterial): Promise<KeyRef> {
    checkSpec(spec, { labelMax: this.quirks.labelMaxLength, idMax: this.quirks.idMaxLength });
    if (material.type !== spec.type) throw new InvalidArgument(`key material is ${material.type}, spec says ${spec.type}`);
    const id = spec.id ?? randomBytes(Math.min(16, this.quirks.idMaxLength ?? 16));
    const { value, publicPoint } = importValue(material);
    return this.guarded(`import key "${spec.label}"`, 'generic', async () => {
      if (await this.labelTaken(spec.label)) throw new KeyExists(`a key labelled "${spec.label}" already exists`);
      const t = importTemplates(spec.type, spec.label, id, value, publicPoint ? derWrapOctetString(publicPoint) : undefined);
      const priv = this.main<Handle>('C_CreateObject', t.privateTemplate);
      if (t.publicTemplate) {
        try {
          this.main('C_CreateObject', t.publicTemplate);
        } catch (err) {
          try { this.main('C_DestroyObject', priv); } catch { /* leave nothing half-made */ }
          throw err;
        }
      }
      return { label: spec.label, id: new Uint8Array(id), type: spec.type };
    });
  }

  async findKey(query: { readonly label?: string; readonly id?: Uint8Array }): Promise<KeyRef> {
    if (query.label === undefined && query.id === undefined) throw new InvalidArgument('findKey needs a label or an id');
    return this.guarded('find key', 'generic', async () => {
      const { handle, cls } = this.exactlyOne(query.label, query.id);
      const { type, attrs } = this.describe(handle, cls);
      const ref: KeyRef = { label: text(attrs.get(C.CKA_LABEL)), id: new Uint8Array(attrs.get(C.CKA_ID) as Uint8Array), type };
      this.keys.set(this.cacheKey(ref), { handle, type });
      return ref;
    });
  }

  async listKeys(): Promise<KeyAttributes[]> {
    return this.guarded('list keys', 'generic', async () => {
      const out: KeyAttributes[] = [];
      for (const { handle, cls } of this.findKeyObjects()) {
        const attrs = this.readAttributes(handle, cls === C.CKO_SECRET_KEY ? SECRET_KEY_ATTRIBUTES : PRIVATE_KEY_ATTRIBUTES);
        const type = keyTypeOf(attrs);
        if (type) out.push(evidenceOf(attrs, type));
      }
      return out.sort((a, b) => a.label.localeCompare(b.label));
    });
  }

  async keyAttributes(key: KeyRef): Promise<KeyAttributes> {
    return this.guarded(`attributes of "${key.label}"`, 'generic', async () => {
      const handle = this.handleOf(key);
      const secret = isSecretKeyType(key.type);
      return evidenceOf(this.readAttributes(handle, secret ? SECRET_KEY_ATTRIBUTES : PRIVATE_KEY_ATTRIBUTES), key.type);
    });
  }

  async publicKey(key: KeyRef): Promise<Uint8Array> {
    requireType(key, ['ec-p256-derive', 'ec-p256-sign', 'ed25519'], 'publicKey');
    return this.guarded(`public key of "${key.label}"`, 'generic', async () => {
      this.handleOf(key); // the key itself must exist, exactly once
      const value = this.readAttributes(this.publicHandle(key), [C.CKA_EC_POINT]).get(C.CKA_EC_POINT) as Uint8Array;
      const raw = decodeEcPoint(value, key.type === 'ed25519' ? [32] : [65], this.quirks.ecPointEncoding);
      if (key.type !== 'ed25519') validateP256Point(raw);
      return raw;
    });
  }

  async destroyKey(key: KeyRef): Promise<void> {
    await this.guarded(`destroy key "${key.label}"`, 'generic', async () => {
      let handle: Handle | undefined;
      try {
        handle = this.handleOf(key);
      } catch (err) {
        // A public-only key (importPublicKey): destroy its public object, if there is one.
        if (!(err instanceof KeyNotFound) || isSecretKeyType(key.type)) throw err;
        const only = this.findHandles([{ type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY }, { type: C.CKA_LABEL, value: key.label }, { type: C.CKA_ID, value: buf(key.id) }]);
        if (only.length === 0) throw err;
        for (const pub of only) this.main('C_DestroyObject', pub);
        return;
      }
      const publics = isSecretKeyType(key.type) ? [] : this.findHandles([
        { type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY },
        { type: C.CKA_LABEL, value: key.label },
        { type: C.CKA_ID, value: buf(key.id) },
      ]);
      this.keys.delete(this.cacheKey(key));
      this.sessionKeys.delete(this.cacheKey(key));
      this.main('C_DestroyObject', handle);
      for (const pub of publics) this.main('C_DestroyObject', pub);
      if (this.quirks.sessionKeyCopies) {
        // Session copies of the key would outlive it: destroy ours, renew the workers' sessions.
        this.ops.dropCopies();
        this.pool.markAllStale();
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
    return this.guarded(`ECDH with "${key.label}"`, 'generic', async () => {
      const handle = this.handleOf(key);
      const x = await this.exec<Uint8Array>('slow', 'ecdh', (session) => ({ session, key: handle, publicData }));
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
    return this.guarded(`sign with "${key.label}"`, 'generic', async () => {
      const handle = this.handleOf(key);
      const sig = await this.exec<Uint8Array>('slow', 'sign', (session) => ({ session, mechanism, key: handle, data: input, outLength: 64 }));
      return key.type === 'ed25519' ? new Uint8Array(sig) : normalizeLowS(new Uint8Array(sig));
    });
  }

  async hmacSha256(key: KeyRef, data: Uint8Array): Promise<Uint8Array> {
    requireType(key, ['hmac-sha256'], 'hmacSha256');
    checkData(data, 'HMAC input');
    const input = buf(data);
    return this.guarded(`HMAC with "${key.label}"`, 'generic', async () => {
      const handle = this.handleOf(key);
      const mac = await this.exec<Uint8Array>('cheap', 'sign', (session) => ({ session, mechanism: C.CKM_SHA256_HMAC, key: handle, data: input, outLength: 32 }));
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
    return this.guarded(`seal with "${key.label}"`, 'generic', async () => {
      const handle = this.handleOf(key);
      const iv = randomBytes(12); // fresh per attempt: a retry never reuses an IV
      const ct = await this.exec<Uint8Array>('cheap', 'encrypt', (session) => ({ session, key: handle, iv, aad: aadBuf, data: input, outLength: input.length + 16 }));
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
    return this.guarded(`open with "${key.label}"`, 'gcm-open', async () => {
      const handle = this.handleOf(key);
      const pt = await this.exec<Uint8Array>('cheap', 'decrypt', (session) => ({ session, key: handle, iv, aad: aadBuf, data: input, outLength: input.length }));
      return new Uint8Array(pt);
    });
  }

  async randomBytes(length: number): Promise<Uint8Array> {
    checkRandomLength(length);
    return this.guarded('random', 'generic', async () => new Uint8Array(await this.exec<Uint8Array>('cheap', 'random', (session) => ({ session, length }))));
  }

  async exportKeyValue(key: KeyRef): Promise<Uint8Array> {
    return this.guarded(`export "${key.label}"`, 'read-secret', async () => {
      const handle = this.handleOf(key);
      return bytesOf(this.readAttributes(handle, [C.CKA_VALUE]).get(C.CKA_VALUE));
    });
  }

  async updateKeyAttributes(key: KeyRef, change: AttributeChange): Promise<void> {
    // Forwarded to the token on purpose: qualification and conformance must see the token's own
    // enforcement, not ours.
    const template: Template = [];
    if (change.extractable !== undefined) template.push({ type: C.CKA_EXTRACTABLE, value: change.extractable });
    if (change.sensitive !== undefined) template.push({ type: C.CKA_SENSITIVE, value: change.sensitive });
    if (template.length === 0) return;
    await this.guarded(`change attributes of "${key.label}"`, 'weaken-attributes', async () => {
      this.main('C_SetAttributeValue', this.handleOf(key), template);
    });
  }

  async wrapKey(wrappingKey: KeyRef, key: KeyRef): Promise<Uint8Array> {
    requireType(wrappingKey, ['aes-256-wrap'], 'wrapKey');
    return this.guarded(`wrap "${key.label}"`, 'wrap', async () => {
      const wrapping = this.handleOf(wrappingKey);
      const target = this.handleOf(key);
      const out = await this.exec<Uint8Array>('slow', 'call', (session) => ({
        fn: 'C_WrapKey', args: [session, { mechanism: C.CKM_AES_KEY_WRAP_PAD }, wrapping, target, Buffer.alloc(4096)],
      }));
      return new Uint8Array(out);
    });
  }

  async unwrapKey(wrappingKey: KeyRef, wrapped: Uint8Array, spec: UnwrapSpec): Promise<KeyRef> {
    requireType(wrappingKey, ['aes-256-wrap'], 'unwrapKey');
    checkSpec(spec, { labelMax: this.quirks.labelMaxLength, idMax: this.quirks.idMaxLength });
    if (spec.id === undefined) throw new InvalidArgument('unwrapKey needs the key\'s CKA_ID');
    checkData(wrapped, 'wrapped key', 4096);
    const publicPoint = checkUnwrapPublicKey(spec.type, spec.publicKey);
    const id = new Uint8Array(spec.id);
    const blob = buf(wrapped);
    const t = unwrapTemplates(spec.type, spec.label, id, publicPoint ? derWrapOctetString(publicPoint) : undefined);
    return this.guarded(`unwrap "${spec.label}"`, 'unwrap', () => this.lease.serializeObjectWrites(async () => {
      if (await this.labelTaken(spec.label)) throw new KeyExists(`a key labelled "${spec.label}" already exists`);
      const wrapping = this.handleOf(wrappingKey);
      const priv = this.main<Handle>('C_UnwrapKey', { mechanism: C.CKM_AES_KEY_WRAP_PAD }, wrapping, blob, t.privateTemplate);
      if (t.publicTemplate) {
        try {
          this.main('C_CreateObject', t.publicTemplate);
        } catch (err) {
          try { this.main('C_DestroyObject', priv); } catch { /* leave nothing half-made */ }
          throw err;
        }
      }
      return { label: spec.label, id, type: spec.type };
    }), true);
  }

  async importTrustedKey(spec: KeySpec, secret: Uint8Array, officer: SecurityOfficer): Promise<KeyRef> {
    checkSpec(spec, { labelMax: this.quirks.labelMaxLength, idMax: this.quirks.idMaxLength });
    if (spec.type !== 'aes-256-wrap') throw new InvalidArgument('a trusted key is an aes-256-wrap key');
    if (!(secret instanceof Uint8Array) || secret.length !== 32) throw new InvalidArgument('AES-256 key must be 32 bytes');
    if (typeof officer?.soPin !== 'string' || officer.soPin.length === 0) throw new InvalidArgument('importing a trusted key needs the security officer PIN');
    const id = new Uint8Array(spec.id ?? randomBytes(Math.min(16, this.quirks.idMaxLength ?? 16)));
    const ref: KeyRef = { label: spec.label, id, type: spec.type };
    return this.exclusively(async () => {
      if (this.findKeyObjects(spec.label).length > 0 || [...this.sessionKeys.keys()].some((k) => k.startsWith(`${spec.label}\0`))) {
        throw new KeyExists(`a key labelled "${spec.label}" already exists`);
      }
      const session = this.mainSession;
      // One login state per token and application: the user must log out for the SO to log in.
      try { this.pkcs11.C_Logout(session); } catch { /* not logged in */ }
      let handle: Handle;
      try {
        this.direct('login', 'security officer login', 'C_Login', C.CKU_SO, officer.soPin);
        try {
          handle = this.direct<Handle>('generic', `create trusted key "${spec.label}"`, 'C_CreateObject', trustedWrapKeyTemplate(spec.label, id, secret));
        } finally {
          try { this.pkcs11.C_Logout(session); } catch { /* logged out already */ }
        }
      } finally {
        // Logging out invalidated every private-object handle (and session copies of keys).
        this.dropCachedKeys();
        if (this.quirks.sessionKeyCopies) this.pool.markAllStale();
        login(this.pkcs11, session, this.pin, false); // as opened: no PIN means no user login
      }
      this.sessionKeys.set(this.cacheKey(ref), { handle, type: 'aes-256-wrap' });
      return ref;
    });
  }

  async keyCheckValue(key: KeyRef): Promise<Uint8Array> {
    switch (key.type) {
      case 'hmac-sha256':
        return kcvOf(await this.hmacSha256(key, KCV_INPUT));
      case 'aes-256':
        return this.guarded(`key check value of "${key.label}"`, 'generic', async () => {
          const handle = this.handleOf(key);
          const tag = await this.exec<Uint8Array>('cheap', 'encrypt', (session) => ({
            session, key: handle, iv: buf(KCV_GCM_IV), aad: buf(KCV_INPUT), data: buf(new Uint8Array()), outLength: 16,
          }));
          return kcvOf(tag);
        });
      case 'aes-256-wrap':
        return this.guarded(`key check value of "${key.label}"`, 'generic', async () => {
          const wrapping = this.handleOf(key);
          const subject = this.main<Handle>('C_CreateObject', kcvSubjectTemplate(KCV_WRAP_SUBJECT));
          try {
            return kcvOf(this.main<Uint8Array>('C_WrapKey', { mechanism: C.CKM_AES_KEY_WRAP_PAD }, wrapping, subject, Buffer.alloc(256)));
          } finally {
            try { this.main('C_DestroyObject', subject); } catch { /* a session object */ }
          }
        });
      default:
        return keyPairKcv(this, key);
    }
  }

  async importPublicKey(spec: KeySpec, publicKey: Uint8Array): Promise<KeyRef> {
    checkSpec(spec, { labelMax: this.quirks.labelMaxLength, idMax: this.quirks.idMaxLength });
    const point = checkUnwrapPublicKey(spec.type, publicKey);
    if (!point) throw new InvalidArgument(`a ${spec.type} key has no public key`);
    const id = new Uint8Array(spec.id ?? randomBytes(Math.min(16, this.quirks.idMaxLength ?? 16)));
    const t = importTemplates(spec.type, spec.label, id, new Uint8Array(32), derWrapOctetString(point));
    return this.guarded(`import public key "${spec.label}"`, 'generic', () => this.lease.serializeObjectWrites(async () => {
      const taken = this.findKeyObjects(spec.label).length > 0 || this.findHandles([{ type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY }, { type: C.CKA_LABEL, value: spec.label }]).length > 0;
      if (taken) throw new KeyExists(`a key labelled "${spec.label}" already exists`);
      this.main('C_CreateObject', t.publicTemplate!);
      return { label: spec.label, id, type: spec.type };
    }), true);
  }

  async findPublicKey(label: string, type: KeyType): Promise<{ ref: KeyRef; publicKey: Uint8Array }> {
    requireType({ label, id: new Uint8Array(1), type }, ['ec-p256-derive', 'ec-p256-sign', 'ed25519'], 'findPublicKey');
    return this.guarded(`public key "${label}"`, 'generic', async () => {
      const handles = this.findHandles([
        { type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY },
        { type: C.CKA_KEY_TYPE, value: type === 'ed25519' ? C.CKK_EC_EDWARDS : C.CKK_EC },
        { type: C.CKA_LABEL, value: label },
      ]);
      if (handles.length === 0) throw new KeyNotFound(`public key "${label}" not found on the token`);
      if (handles.length > 1) throw new AmbiguousKey(`public key "${label}" is not unique`, handles.length);
      const attrs = this.readAttributes(handles[0]!, [C.CKA_EC_POINT, C.CKA_ID]);
      const raw = decodeEcPoint(attrs.get(C.CKA_EC_POINT) as Uint8Array, type === 'ed25519' ? [32] : [65], this.quirks.ecPointEncoding);
      if (type !== 'ed25519') validateP256Point(raw);
      return { ref: { label, id: bytesOf(attrs.get(C.CKA_ID)), type }, publicKey: raw };
    });
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = (async () => {
        while (this.active > 0) await new Promise((r) => setTimeout(r, 2));
        await this.pool.close();
        try { this.pkcs11.C_CloseSession(this.mainSession); } catch { /* already closed */ }
        this.keys.clear();
        this.sessionKeys.clear();
        this.lease.release();
      })();
    }
    return this.closing;
  }
}

function bytesOf(value: unknown): Uint8Array {
  return value instanceof Uint8Array ? new Uint8Array(value) : new Uint8Array();
}

function sessionLimit(value: number): number | null {
  // 0 = CK_EFFECTIVELY_INFINITE; all ones (32- or 64-bit) = CK_UNAVAILABLE_INFORMATION.
  if (value === 0 || value >= 0xffffffff) return null;
  return value;
}

function openSession(pkcs11: Pkcs11, slot: Buffer): SessionHandle {
  try {
    return pkcs11.C_OpenSession(slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
  } catch (err) {
    const code = (err as { code?: number }).code ?? -1;
    throw new TokenUnavailable('cannot open a session on the token', failureOf('C_OpenSession', code));
  }
}

function login(pkcs11: Pkcs11, session: SessionHandle, pin: string | undefined, required: boolean): void {
  if (pin === undefined) {
    if (required) throw new LoginFailed('the token needs a user PIN: give pin-source or pin-value in the URI, or set HSM_VAULT_PIN');
    return;
  }
  try {
    pkcs11.C_Login(session, C.CKU_USER, pin);
  } catch (err) {
    const code = (err as { code?: number }).code ?? -1;
    if (code === CKR.USER_ALREADY_LOGGED_IN) return;
    throw mapFailure('login', 'login', failureOf('C_Login', code));
  }
}

function findSlot(pkcs11: Pkcs11, uri: Pkcs11Uri): Buffer {
  const slots = pkcs11.C_GetSlotList(true);
  const matches: Buffer[] = [];
  const seen: string[] = [];
  for (const slot of slots) {
    const info = pkcs11.C_GetTokenInfo(slot);
    const label = trim(info.label);
    seen.push(label);
    if (uri.token !== undefined && label !== uri.token) continue;
    if (uri.manufacturer !== undefined && trim(info.manufacturerID) !== uri.manufacturer) continue;
    if (uri.serial !== undefined && trim(info.serialNumber) !== uri.serial) continue;
    if (uri.model !== undefined && trim(info.model) !== uri.model) continue;
    // slot-id narrows a match but never selects alone: SoftHSM2 renumbers slots between runs.
    if (uri.slotId !== undefined && ulong(slot) !== uri.slotId) continue;
    if (uri.token === undefined && uri.serial === undefined && (info.flags & 0x400) === 0) continue; // uninitialized
    matches.push(slot);
  }
  if (matches.length === 0) {
    throw new TokenNotFound(`no token matches the URI (tokens present: ${seen.filter((l) => l !== '').map((l) => `"${l}"`).join(', ') || 'none'})`);
  }
  if (matches.length > 1) throw new InvalidUri(`the URI matches ${matches.length} tokens; add token= or serial=`);
  return matches[0]!;
}

function importValue(material: KeyMaterial): { value: Uint8Array; publicPoint?: Uint8Array } {
  switch (material.type) {
    case 'ec-p256-derive':
    case 'ec-p256-sign': {
      if (material.scalar.length !== 32) throw new InvalidArgument('P-256 scalar must be 32 bytes');
      let pub: Uint8Array;
      try {
        pub = p256.getPublicKey(material.scalar, false);
      } catch {
        throw new InvalidArgument('P-256 scalar is out of range');
      }
      return { value: material.scalar, publicPoint: pub };
    }
    case 'ed25519':
      if (material.seed.length !== 32) throw new InvalidArgument('Ed25519 seed must be 32 bytes');
      return { value: material.seed, publicPoint: ed25519.getPublicKey(material.seed) };
    case 'aes-256':
    case 'aes-256-wrap':
      if (material.secret.length !== 32) throw new InvalidArgument('AES-256 key must be 32 bytes');
      return { value: material.secret };
    case 'hmac-sha256':
      if (material.secret.length < 32 || material.secret.length > 64) throw new InvalidArgument('HMAC-SHA256 key must be 32..64 bytes');
      return { value: material.secret };
  }
}

export function isHsmError(err: unknown): err is HsmError {
  return err instanceof HsmError;
}

// The driver's hold on one token: the logged-in session on the event-loop thread, the pool of
// worker sessions, the cached key handles, and the policy every call runs under (`guarded`: one
// attempt, one recovery of sessions, login and handles, one retry).

import type { KeyType } from '../driver.js';
import { DriverClosed, TokenUnavailable } from '../errors.js';
import type { AttributeMap } from './attributes.js';
import * as C from './constants.js';
import { type CallContext, failureOf, mapFailure, recoveryFor } from './error-map.js';
import { CallFailed, createOps } from './executor-ops.js';
import { ExecutorCallError, type ExecutorPool, type SessionHandle } from './executor-pool.js';
import type { ModuleLease, Pkcs11 } from './module-registry.js';
import type { Quirks } from './profile.js';
import { login, openSession } from './sessions.js';
import { ecdhOutputTemplate, type Template } from './templates.js';

export type Handle = Buffer;

export interface CachedKey {
  readonly handle: Handle;
  readonly type: KeyType;
}

/** What every executor (the workers and the event-loop thread) needs to run the driver's calls. */
export function opsOptions(quirks: Quirks): { shapes: unknown; copyKeys: boolean } {
  return {
    copyKeys: quirks.sessionKeyCopies,
    shapes: {
      ecdh: { mechanism: C.CKM_ECDH1_DERIVE, parameterType: 6 /* CK_PARAMS_EC_DH */, kdf: C.CKD_NULL, template: ecdhOutputTemplate(quirks), valueType: C.CKA_VALUE },
      gcm: { mechanism: C.CKM_AES_GCM, parameterType: 3 /* CK_PARAMS_AES_GCM */ },
    },
  };
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

const CKS_RW_USER_FUNCTIONS = 3;
const CKS_RO_USER_FUNCTIONS = 1;

export class TokenContext {
  readonly pkcs11: Pkcs11;
  readonly ops: ReturnType<typeof createOps>;
  private mainSession: SessionHandle;
  /** Handles of token key objects by `cacheKey`; dropped whenever handles may have gone stale. */
  readonly keys = new Map<string, CachedKey>();
  /**
   * Session objects the driver made (trusted transport keys): lookups search token objects only,
   * so these are found here. They survive logouts (public objects) but die with the main session.
   */
  readonly sessionKeys = new Map<string, CachedKey>();
  /** Set while a call needs the token to itself (a security-officer login); others wait. */
  private gate: Promise<void> | undefined;
  private recovering: Promise<void> | undefined;
  /** Bumped when a recovery starts; a failure from an older epoch was already recovered from. */
  private epoch = 0;
  private active = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  readonly counters = { tokenCalls: 0, recoveries: 0 };

  constructor(
    readonly lease: ModuleLease,
    readonly slot: Buffer,
    private readonly pin: string | undefined,
    readonly quirks: Quirks,
    readonly pool: ExecutorPool,
    mainSession: SessionHandle,
  ) {
    this.pkcs11 = lease.pkcs11;
    this.ops = createOps(this.pkcs11, opsOptions(quirks));
    this.mainSession = mainSession;
  }

  /** Runs an op on the event-loop thread (cheap ops on local tokens) or in a worker. */
  exec<T>(weight: 'cheap' | 'slow', op: string, build: (session: SessionHandle) => unknown): Promise<T> {
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
  main<T>(fn: string, ...args: unknown[]): T {
    this.counters.tokenCalls++;
    return (this.ops.call as (p: { fn: string; args: unknown[] }) => T)({ fn, args: [this.mainSession, ...args] });
  }

  findHandles(template: Template, max = 16): Handle[] {
    this.counters.tokenCalls++;
    return this.ops.find({ session: this.mainSession, template, max }) as Handle[];
  }

  readAttributes(handle: Handle, types: readonly number[]): AttributeMap {
    const values = this.main<Array<{ type: number; value: unknown }>>('C_GetAttributeValue', handle, types.map((type) => ({ type })));
    return new Map(values.map((a) => [a.type, a.value]));
  }

  /**
   * The token call behind a failed attempt (anything else is rethrown as it is). A call that
   * failed after its *Init on the event-loop thread's session leaves that session unusable.
   */
  private failedCall(err: unknown): CallError {
    const call = asCallError(err);
    if (!call) throw err;
    if (call.tainted && call.slot < 0) this.replaceMainSession();
    return call;
  }

  /** One attempt, one recovery, one retry; maps failures to typed errors. */
  async guarded<T>(what: string, context: CallContext, attempt: () => Promise<T>, write = false): Promise<T> {
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
        const call = this.failedCall(err);
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
        const call = this.failedCall(err);
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
  async exclusively<T>(fn: () => Promise<T>): Promise<T> {
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

  /**
   * Runs `fn` logged in as the security officer on the main session, then restores the user's
   * login. Only inside `exclusively`: the logout pulls the token from under other calls.
   */
  asSecurityOfficer<T>(soPin: string, fn: () => T): T {
    const session = this.mainSession;
    // One login state per token and application: the user must log out for the SO to log in.
    try { this.pkcs11.C_Logout(session); } catch { /* not logged in */ }
    try {
      this.direct('login', 'security officer login', 'C_Login', C.CKU_SO, soPin);
      try {
        return fn();
      } finally {
        try { this.pkcs11.C_Logout(session); } catch { /* logged out already */ }
      }
    } finally {
      // Logging out invalidated every private-object handle (and session copies of keys).
      this.dropCachedKeys();
      if (this.quirks.sessionKeyCopies) this.pool.markAllStale();
      login(this.pkcs11, session, this.pin, false); // as opened: no PIN means no user login
    }
  }

  /** A main-session call whose failure maps to a typed error right away (no recovery). */
  direct<T>(context: CallContext, what: string, fn: string, ...args: unknown[]): T {
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

  /** Forgets cached handles and this thread's key copies (workers drop theirs with their sessions). */
  dropCachedKeys(): void {
    this.ops.dropCopies();
    this.keys.clear();
  }

  /** Refuses new calls, waits for those in flight, then closes the sessions and releases the module. */
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

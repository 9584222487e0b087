// One loaded PKCS#11 module per path per process. C_Initialize runs once, with CKF_OS_LOCKING_OK
// (without it SoftHSM2 crashes the process under concurrency); C_Finalize runs when the last lease
// is released. Leases are released by drivers only after every call they issued has settled and
// their worker threads have exited, so no call is ever in flight at C_Finalize.

import { createRequire } from 'node:module';
import type * as Pkcs11js from 'pkcs11js';
import { TokenUnavailable, pkcs11Failure } from '../errors.js';
import { CKR_CRYPTOKI_ALREADY_INITIALIZED } from '../ckr.js';

const require = createRequire(import.meta.url);

export type Pkcs11Module = typeof Pkcs11js;
export type Pkcs11 = Pkcs11js.PKCS11;

let cachedBinding: Pkcs11Module | undefined;

/** The pkcs11js binding, loaded lazily so the fake backend works without the native addon. */
export function pkcs11js(): Pkcs11Module {
  if (!cachedBinding) {
    try {
      cachedBinding = require('pkcs11js') as Pkcs11Module;
    } catch (err) {
      throw new TokenUnavailable('the pkcs11js native binding is not built (run `npm ci`; it needs python3, make and g++)', undefined, { cause: err });
    }
  }
  return cachedBinding;
}

export interface InitOptions {
  /** NSS-style LibraryParameters (pReserved) for modules that need them. */
  readonly libraryParameters?: string;
}

interface Entry {
  readonly pkcs11: Pkcs11;
  readonly path: string;
  refs: number;
  readonly initializedByUs: boolean;
  /** Tail of the queue of token-object writes (see `serializeObjectWrites`). */
  writes: Promise<unknown>;
  /** Writes queued or running. */
  pendingWrites: number;
}

export interface ModuleLease {
  readonly pkcs11: Pkcs11;
  readonly path: string;
  /**
   * Runs `fn` after every earlier token-object write on this module in this process has settled.
   * SoftHSM 2.6 fails C_GenerateKeyPair of a token object with CKR_GENERAL_ERROR when another
   * generation or an object search runs at the same time (measured); key management is rare, so
   * serializing it costs nothing that matters.
   */
  serializeObjectWrites<T>(fn: () => Promise<T>): Promise<T>;
  /** Settles when no write is queued or running; undefined when none is (no extra tick). */
  writesIdle(): Promise<void> | undefined;
  /** Drop this lease; the last one finalizes and unloads the module. Idempotent. */
  release(): void;
}

const modules = new Map<string, Entry>();

export function acquireModule(path: string, options: InitOptions = {}): ModuleLease {
  let entry = modules.get(path);
  if (!entry) {
    const binding = pkcs11js();
    const pkcs11 = new binding.PKCS11();
    try {
      pkcs11.load(path);
    } catch (err) {
      throw new TokenUnavailable(`cannot load PKCS#11 module ${path}: ${(err as Error).message.split('\n')[0]}`);
    }
    let initializedByUs = true;
    try {
      const args: Pkcs11js.InitializationOptions = { flags: binding.CKF_OS_LOCKING_OK };
      if (options.libraryParameters !== undefined) args.libraryParameters = options.libraryParameters;
      pkcs11.C_Initialize(args);
    } catch (err) {
      const code = (err as { code?: number }).code ?? 0;
      if (code === CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        // Someone else in this process (another binding instance) initialized it: do not finalize.
        initializedByUs = false;
      } else {
        try { pkcs11.close(); } catch { /* unloading a module that failed to initialize */ }
        throw new TokenUnavailable(`cannot initialize PKCS#11 module ${path}`, pkcs11Failure('C_Initialize', code));
      }
    }
    entry = { pkcs11, path, refs: 0, initializedByUs, writes: Promise.resolve(), pendingWrites: 0 };
    modules.set(path, entry);
  }
  entry.refs++;
  const held = entry;
  let released = false;
  return {
    pkcs11: held.pkcs11,
    path,
    serializeObjectWrites<T>(fn: () => Promise<T>): Promise<T> {
      held.pendingWrites++;
      const run = held.writes.then(fn, fn).finally(() => { held.pendingWrites--; });
      held.writes = run.catch(() => undefined);
      return run;
    },
    writesIdle(): Promise<void> | undefined {
      if (held.pendingWrites === 0) return undefined;
      return (async () => {
        while (held.pendingWrites > 0) await held.writes;
      })();
    },
    release() {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs === 0) {
        modules.delete(path);
        if (held.initializedByUs) {
          try { held.pkcs11.C_Finalize(); } catch { /* finalizing is best effort at shutdown */ }
        }
        try { held.pkcs11.close(); } catch { /* idem */ }
      }
    },
  };
}

/** Number of leases held on a module (for tests of the lifecycle). */
export function moduleRefCount(path: string): number {
  return modules.get(path)?.refs ?? 0;
}

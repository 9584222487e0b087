// Raw PKCS#11 access for the probes the driver deliberately does not expose (CKA_TRUSTED as the
// SO, WRAP_WITH_TRUSTED keys, session counting, invalid points straight to the token, GCM IV
// behaviour). It shares the driver's loaded module through the registry, so C_Initialize runs
// once per process. Probes make session objects wherever they can: those die with their session,
// so even a killed run leaves none behind. Every session opened here is closed by `closeAll`.

import { ckrName, ckrValue } from '../hsm/ckr.js';
import type { ModuleLease, Pkcs11 } from '../hsm/pkcs11/module-registry.js';
import type { Template } from '../hsm/pkcs11/templates.js';
import * as C from '../hsm/pkcs11/constants.js';

export type Handle = Buffer;
/** pkcs11js's mechanism type (its parameter union does not list every params struct). */
export type Mechanism = Parameters<Pkcs11['C_EncryptInit']>[1];

// Constants the driver does not need (PKCS#11 v3.0 values).
export const CKA_TRUSTED = 0x86;
export const CKA_WRAP_WITH_TRUSTED = 0x210;
export const CKU_SO = 0;
export const CKS_RW_USER_FUNCTIONS = 3;
export const CKF_LOGIN_REQUIRED = 0x04;
export const CKF_USER_PIN_INITIALIZED = 0x08;
export const CKF_TOKEN_INITIALIZED = 0x400;
export const CKF_USER_PIN_COUNT_LOW = 0x10000;
export const CKF_USER_PIN_FINAL_TRY = 0x20000;
export const CKF_USER_PIN_LOCKED = 0x40000;

/** A call's result: the value, or the CK_RV the token answered with. */
export type Attempt<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly rv: number; readonly ckr: string };

export function rvOf(err: unknown): number {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code === 'number') return e.code;
  // pkcs11js reports some failures (C_SetAttributeValue) only as "CKR_X:16" or "CKR_X".
  const m = /^(CKR_\w+)(?::(\d+))?/.exec(String(e?.message ?? ''));
  if (m?.[2] !== undefined) return Number(m[2]);
  if (m?.[1] !== undefined) return ckrValue(m[1]) ?? -1;
  return -1;
}

export function attempt<T>(fn: () => T): Attempt<T> {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    const rv = rvOf(err);
    if (rv < 0) throw err; // not a PKCS#11 answer: a bug or a binding error, reported by the runner
    return { ok: false, rv, ckr: ckrName(rv) };
  }
}

/** "refused (CKR_X)" / "ACCEPTED" for details. */
export function describe(a: Attempt<unknown>): string {
  return a.ok ? 'accepted' : `refused (${a.ckr})`;
}

export class RawToken {
  private readonly sessions = new Set<Handle>();

  constructor(
    readonly lease: ModuleLease,
    readonly slot: Handle,
  ) {}

  get pkcs11(): Pkcs11 {
    return this.lease.pkcs11;
  }

  /** A new R/W session (logged in as the user whenever the application is). */
  openSession(): Handle {
    const s = this.pkcs11.C_OpenSession(this.slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
    this.sessions.add(s);
    return s;
  }

  closeSession(session: Handle): void {
    this.sessions.delete(session);
    try { this.pkcs11.C_CloseSession(session); } catch { /* already gone (closed under test) */ }
  }

  /** Runs `fn` with a fresh session, closed afterwards (its session objects with it). */
  withSession<T>(fn: (session: Handle) => T): T {
    const s = this.openSession();
    try {
      return fn(s);
    } finally {
      this.closeSession(s);
    }
  }

  /** Forgets sessions the token closed behind our back (C_CloseAllSessions). */
  forgetSessions(): void {
    this.sessions.clear();
  }

  closeAll(): void {
    for (const s of [...this.sessions]) this.closeSession(s);
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  /** Handles of objects matching `template`, bounded. */
  find(session: Handle, template: Template, max = 10_000): Handle[] {
    this.pkcs11.C_FindObjectsInit(session, template);
    try {
      return this.pkcs11.C_FindObjects(session, max);
    } finally {
      this.pkcs11.C_FindObjectsFinal(session);
    }
  }

  /** CKA_LABEL of an object ('' when it has none or hides it). */
  labelOf(session: Handle, handle: Handle): string {
    const a = attempt(() => this.pkcs11.C_GetAttributeValue(session, handle, [{ type: C.CKA_LABEL }]));
    if (!a.ok) return '';
    const v = a.value[0]?.value;
    return v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : '';
  }

  /** Reads one attribute; undefined when the token refuses it. */
  attribute(session: Handle, handle: Handle, type: number): Attempt<Buffer> {
    return attempt(() => this.pkcs11.C_GetAttributeValue(session, handle, [{ type }])[0]!.value as Buffer);
  }
}

/** The slot holding the token the URI names: the driver's own rules, so qualification tests the token the driver would use. */
export { findSlot } from '../hsm/pkcs11/slot.js';

// ---- templates for session-object probes ---------------------------------------------------

const P256 = (): Buffer => Buffer.from(C.OID_P256);

/** A session AES-256 key (generated) with the given extra attributes. */
export function aesSessionKey(label: string, extra: Template): Template {
  return [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
    { type: C.CKA_KEY_TYPE, value: C.CKK_AES },
    { type: C.CKA_VALUE_LEN, value: 32 },
    { type: C.CKA_TOKEN, value: false },
    { type: C.CKA_LABEL, value: label },
    ...extra,
  ];
}

/** A session AES-256 key with a known value (C_CreateObject). */
export function aesSessionValue(label: string, value: Uint8Array, extra: Template): Template {
  return [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
    { type: C.CKA_KEY_TYPE, value: C.CKK_AES },
    { type: C.CKA_TOKEN, value: false },
    { type: C.CKA_LABEL, value: label },
    { type: C.CKA_VALUE, value: Buffer.from(value) },
    ...extra,
  ];
}

/** A session P-256 derive key pair; returns handles and the raw 65-byte public point. */
export function ecdhSessionPair(raw: RawToken, session: Handle, label: string): { privateKey: Handle; publicKey: Handle; point: Uint8Array; encoding: 'der' | 'raw' } {
  const pair = raw.pkcs11.C_GenerateKeyPair(
    session,
    { mechanism: C.CKM_EC_KEY_PAIR_GEN },
    [{ type: C.CKA_TOKEN, value: false }, { type: C.CKA_LABEL, value: label }, { type: C.CKA_EC_PARAMS, value: P256() }, { type: C.CKA_DERIVE, value: true }],
    [
      { type: C.CKA_TOKEN, value: false }, { type: C.CKA_PRIVATE, value: true }, { type: C.CKA_LABEL, value: label },
      { type: C.CKA_SENSITIVE, value: true }, { type: C.CKA_EXTRACTABLE, value: false }, { type: C.CKA_DERIVE, value: true },
    ],
  );
  const value = raw.pkcs11.C_GetAttributeValue(session, pair.publicKey, [{ type: C.CKA_EC_POINT }])[0]!.value as Buffer;
  const der = value.length === 67 && value[0] === 0x04 && value[1] === 65;
  const point = der ? value.subarray(2) : value;
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, point: new Uint8Array(point), encoding: der ? 'der' : 'raw' };
}

/** ECDH1_DERIVE (CKD_NULL) into a session object with `template`; returns the derived handle. */
export function deriveEcdh(raw: RawToken, session: Handle, key: Handle, publicData: Uint8Array, template: Template): Handle {
  // An empty buffer must still point at memory (see the driver's `buf`).
  const data = publicData.length === 0 ? Buffer.alloc(1).subarray(0, 0) : Buffer.from(publicData);
  const mechanism = { mechanism: C.CKM_ECDH1_DERIVE, parameter: { type: 6 /* CK_PARAMS_EC_DH */, kdf: C.CKD_NULL, publicData: data } };
  return raw.pkcs11.C_DeriveKey(session, mechanism as Mechanism, key, template);
}

export function bool(value: Buffer | undefined): boolean | undefined {
  return value === undefined || value.length === 0 ? undefined : value[0] !== 0;
}

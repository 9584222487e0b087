// Cleanup: every object the run created carries the run's label prefix; at the end (also after a
// failure or Ctrl-C) each is destroyed and a final search proves none remain. Nothing outside the
// prefix is ever destroyed: the label is re-read right before every C_DestroyObject.

import type { HsmDriver, KeyRef } from '../hsm/driver.js';
import * as C from '../hsm/pkcs11/constants.js';
import { ulong } from '../hsm/pkcs11/attributes.js';
import { CKS_RW_USER_FUNCTIONS, attempt, type Handle, type RawToken } from './raw.js';

/** Labels of earlier runs' objects look like this (a run killed before its cleanup). */
export const RUN_LABEL = /^hvq-[0-9a-f]{8}-/;

export interface Snapshot {
  /** `class:label:id` of every visible object outside the run's prefix, sorted. */
  readonly others: string[];
  /** Objects left by earlier qualify runs (not ours; never touched). */
  readonly earlierRuns: number;
}

function rawObjects(raw: RawToken, s: Handle): Array<{ handle: Handle; cls: string; label: string; id: string }> {
  return raw.find(s, [], 10_000).map((handle) => {
    const cls = raw.attribute(s, handle, C.CKA_CLASS);
    const id = raw.attribute(s, handle, C.CKA_ID);
    return {
      handle,
      cls: cls.ok ? String(ulong(cls.value)) : '?',
      label: raw.labelOf(s, handle),
      id: id.ok ? id.value.toString('hex') : '',
    };
  });
}

/** A raw session logged in as the user (logging in itself only when the login was lost). */
export function userSession(raw: RawToken, userPin: string | undefined): Handle {
  const s = raw.openSession();
  if (raw.pkcs11.C_GetSessionInfo(s).state !== CKS_RW_USER_FUNCTIONS && userPin !== undefined) {
    attempt(() => raw.pkcs11.C_Login(s, C.CKU_USER, userPin));
  }
  return s;
}

export async function snapshot(driver: HsmDriver, raw: RawToken | undefined, prefix: string, session?: Handle): Promise<Snapshot> {
  let entries: Array<{ cls: string; label: string; id: string }>;
  if (raw) {
    const s = session ?? raw.openSession();
    try {
      entries = rawObjects(raw, s);
    } finally {
      if (!session) raw.closeSession(s);
    }
  } else {
    entries = (await driver.listKeys()).map((k) => ({ cls: k.type, label: k.label, id: k.id }));
  }
  const others = entries.filter((e) => !e.label.startsWith(prefix));
  return {
    others: others.map((e) => `${e.cls}:${e.label}:${e.id}`).sort(),
    earlierRuns: others.filter((e) => RUN_LABEL.test(e.label)).length,
  };
}

export interface CleanupResult {
  readonly destroyed: number;
  readonly remaining: string[];
  readonly errors: string[];
  readonly after?: Snapshot;
}

/** Destroys the run's keys through the driver (so it drops its session copies of them). */
export async function destroyTracked(driver: HsmDriver, keys: readonly KeyRef[], prefix: string): Promise<{ destroyed: number; errors: string[] }> {
  let destroyed = 0;
  const errors: string[] = [];
  for (const key of keys) {
    if (!key.label.startsWith(prefix)) continue; // never anything outside the run
    try {
      await driver.destroyKey(key);
      destroyed++;
    } catch (err) {
      if ((err as { code?: string }).code !== 'KEY_NOT_FOUND') errors.push(`${key.label}: ${(err as Error).name}`);
    }
  }
  return { destroyed, errors };
}

/** Sweeps every object (token or session) whose label has the prefix, then searches again. */
export function sweep(raw: RawToken, s: Handle, prefix: string): { destroyed: number; remaining: string[]; errors: string[] } {
  let destroyed = 0;
  const errors: string[] = [];
  for (const o of rawObjects(raw, s)) {
    if (!o.label.startsWith(prefix)) continue;
    if (!raw.labelOf(s, o.handle).startsWith(prefix)) continue; // re-read: handles can be reused
    const d = attempt(() => raw.pkcs11.C_DestroyObject(s, o.handle));
    if (d.ok) destroyed++;
    else if (d.rv !== 0x82 /* OBJECT_HANDLE_INVALID: gone meanwhile */) errors.push(`${o.label}: ${d.ckr}`);
  }
  const remaining = rawObjects(raw, s).filter((o) => o.label.startsWith(prefix)).map((o) => o.label);
  return { destroyed, remaining, errors };
}

export async function sweepFake(driver: HsmDriver, prefix: string): Promise<{ destroyed: number; remaining: string[]; errors: string[] }> {
  const keys = (await driver.listKeys()).filter((k) => k.label.startsWith(prefix));
  const { destroyed, errors } = await destroyTracked(driver, keys.map((k) => ({ label: k.label, id: Buffer.from(k.id, 'hex'), type: k.type })), prefix);
  const remaining = (await driver.listKeys()).filter((k) => k.label.startsWith(prefix)).map((k) => k.label);
  return { destroyed, remaining, errors };
}

// Helpers the checks share: software verification of token outputs, and a mixed workload whose
// every result is checked (used for thread safety, faults under load, and nothing else).

import { createHash, createHmac, createPublicKey, randomBytes, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import type { HsmDriver, KeyRef } from '../../hsm/driver.js';
import type { QualifyContext } from '../types.js';

export function p256Spki(point: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), point]), format: 'der', type: 'spki' });
}

export function ed25519Spki(key: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), key]), format: 'der', type: 'spki' });
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

/** Outcome of a call expected to be refused: the error's name, or "ACCEPTED". */
export async function refusal(p: Promise<unknown>): Promise<{ refused: boolean; how: string }> {
  try {
    await p;
    return { refused: false, how: 'ACCEPTED' };
  } catch (err) {
    const e = err as { name?: string; pkcs11?: { ckr?: string } };
    return { refused: true, how: `${e.name ?? 'Error'}${e.pkcs11?.ckr ? ` (${e.pkcs11.ckr})` : ''}` };
  }
}

/** The operations of the mixed workload and of the throughput measurements. */
export type OperationKind = 'ecdh' | 'ecdsa' | 'ed25519' | 'hmac' | 'gcm';

export const OPERATION_KINDS: readonly OperationKind[] = ['ecdh', 'ecdsa', 'ed25519', 'hmac', 'gcm'];

const NEEDS: Record<OperationKind, readonly string[]> = {
  ecdh: ['CKM_EC_KEY_PAIR_GEN', 'CKM_ECDH1_DERIVE'],
  ecdsa: ['CKM_EC_KEY_PAIR_GEN', 'CKM_ECDSA'],
  ed25519: ['CKM_EC_EDWARDS_KEY_PAIR_GEN', 'CKM_EDDSA'],
  hmac: ['CKM_SHA256_HMAC'],
  gcm: ['CKM_AES_KEY_GEN', 'CKM_AES_GCM'],
};

/**
 * Operations the token cannot do at all, each with the reason and the check that reports it.
 * Load, fault and throughput checks leave these out, so that a missing mechanism or a token that
 * writes its own GCM IV fails the check that diagnoses it, not every check that happens to use it.
 */
export function unusableOperations(ctx: QualifyContext): Promise<ReadonlyMap<OperationKind, string>> {
  return ctx.shared('unusable-operations', async () => {
    const info = await ctx.driver.info();
    const absent = new Set(info.mechanisms.filter((m) => !m.present).map((m) => m.name));
    const out = new Map<OperationKind, string>();
    for (const kind of OPERATION_KINDS) {
      const missing = NEEDS[kind].filter((m) => absent.has(m));
      if (missing.length) out.set(kind, `${missing.join(', ')} missing (see mech.list)`);
    }
    if (!out.has('gcm')) {
      const aes = await ctx.key('aes-256');
      const data = randomBytes(16);
      const why = await ctx.driver.sealAesGcm(aes, data, data)
        .then((sealed) => ctx.driver.openAesGcm(aes, sealed, data))
        .then((opened) => (same(opened, data) ? undefined : 'a sealed record opens to different bytes'), (err: unknown) => `${(err as Error).name}: ${(err as Error).message}`);
      if (why) out.set('gcm', `AES-GCM round trip fails (${why}; see mech.aes-gcm and gcm.iv)`);
    }
    return out;
  });
}

/** "; left out: …" for check details, or "" when every operation ran. */
export function leftOut(unusable: ReadonlyMap<OperationKind, string>): string {
  return unusable.size ? `; left out: ${[...unusable].map(([k, why]) => `${k} (${why})`).join(', ')}` : '';
}

export interface Workload {
  /** The operations this token can do; the mixed load cycles through them. */
  kinds: readonly OperationKind[];
  unusable: ReadonlyMap<OperationKind, string>;
  derive?: { key: KeyRef; point: Uint8Array };
  signer?: { key: KeyRef; spki: KeyObject };
  ed?: { key: KeyRef; spki: KeyObject };
  mac?: { key: KeyRef; secret: Uint8Array };
  aes?: KeyRef;
}

export async function workload(ctx: QualifyContext): Promise<Workload> {
  const unusable = await unusableOperations(ctx);
  const kinds = OPERATION_KINDS.filter((k) => !unusable.has(k));
  if (kinds.length === 0) throw new Error(`no operation of the workload works on this token${leftOut(unusable)}`);
  const w: Workload = { kinds, unusable };
  for (const kind of kinds) {
    switch (kind) {
      case 'ecdh': {
        const key = await ctx.key('ec-p256-derive');
        w.derive = { key, point: await ctx.driver.publicKey(key) };
        break;
      }
      case 'ecdsa': {
        const key = await ctx.key('ec-p256-sign');
        w.signer = { key, spki: p256Spki(await ctx.driver.publicKey(key)) };
        break;
      }
      case 'ed25519': {
        const key = await ctx.key('ed25519');
        w.ed = { key, spki: ed25519Spki(await ctx.driver.publicKey(key)) };
        break;
      }
      case 'hmac':
        w.mac = await importedHmac(ctx);
        break;
      case 'gcm':
        w.aes = await ctx.key('aes-256');
        break;
    }
  }
  return w;
}

/** One imported HMAC key per run, so HMAC results can be compared with node:crypto. */
export function importedHmac(ctx: QualifyContext): Promise<{ key: KeyRef; secret: Uint8Array }> {
  return ctx.shared('hmac-imported', async () => {
    const secret = randomBytes(32);
    const key = await ctx.driver.importKey({ label: ctx.label('hmac-imported'), type: 'hmac-sha256' }, { type: 'hmac-sha256', secret });
    ctx.track(key);
    return { key, secret };
  });
}

/** One operation of the mixed workload, its result checked; returns an error text or undefined. */
export async function mixedOperation(driver: HsmDriver, w: Workload, i: number): Promise<string | undefined> {
  const data = randomBytes(32);
  switch (w.kinds[i % w.kinds.length]!) {
    case 'ecdh': {
      const peer = p256.utils.randomSecretKey();
      const out = await driver.ecdh(w.derive!.key, p256.getPublicKey(peer, false));
      return same(out, p256.getSharedSecret(peer, w.derive!.point, true).subarray(1)) ? undefined : 'ECDH result differs from software';
    }
    case 'ecdsa': {
      const sig = await driver.sign(w.signer!.key, createHash('sha256').update(data).digest());
      return nodeVerify('sha256', data, { key: w.signer!.spki, dsaEncoding: 'ieee-p1363' }, sig) ? undefined : 'ECDSA signature does not verify';
    }
    case 'ed25519': {
      const sig = await driver.sign(w.ed!.key, data);
      return nodeVerify(null, data, w.ed!.spki, sig) ? undefined : 'Ed25519 signature does not verify';
    }
    case 'hmac': {
      const mac = await driver.hmacSha256(w.mac!.key, data);
      return same(mac, createHmac('sha256', w.mac!.secret).update(data).digest()) ? undefined : 'HMAC differs from software';
    }
    case 'gcm': {
      const sealed = await driver.sealAesGcm(w.aes!, data, data);
      const opened = await driver.openAesGcm(w.aes!, sealed, data);
      return same(opened, data) ? undefined : 'AES-GCM round trip differs';
    }
  }
}

/** `count` mixed operations issued `inFlight` at a time; tallies wrong results and errors. */
export async function mixedLoad(
  driver: HsmDriver, w: Workload, count: number, inFlight: number, at?: { index: number; action: () => unknown },
): Promise<{ ok: number; wrong: string[]; errors: string[] }> {
  let next = 0;
  let ok = 0;
  const wrong: string[] = [];
  const errors: string[] = [];
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      if (at && i === at.index) await at.action(); // the other lanes keep issuing calls meanwhile
      try {
        const problem = await mixedOperation(driver, w, i);
        if (problem) wrong.push(problem);
        else ok++;
      } catch (err) {
        errors.push(`${(err as Error).name}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return { ok, wrong, errors };
}

export function firstFew(items: readonly string[], n = 2): string {
  const unique = [...new Set(items)];
  return unique.slice(0, n).join('; ') + (unique.length > n ? ` (+${unique.length - n} more kinds)` : '');
}

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

export interface Workload {
  derive: KeyRef; derivePoint: Uint8Array;
  signer: KeyRef; signerKey: KeyObject;
  ed: KeyRef; edKey: KeyObject;
  mac: KeyRef; macSecret: Uint8Array;
  aes: KeyRef;
}

export async function workload(ctx: QualifyContext): Promise<Workload> {
  const derive = await ctx.key('ec-p256-derive');
  const signer = await ctx.key('ec-p256-sign');
  const ed = await ctx.key('ed25519');
  const aes = await ctx.key('aes-256');
  const mac = await importedHmac(ctx);
  return {
    derive, derivePoint: await ctx.driver.publicKey(derive),
    signer, signerKey: p256Spki(await ctx.driver.publicKey(signer)),
    ed, edKey: ed25519Spki(await ctx.driver.publicKey(ed)),
    mac: mac.key, macSecret: mac.secret,
    aes,
  };
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
  switch (i % 5) {
    case 0: {
      const peer = p256.utils.randomSecretKey();
      const out = await driver.ecdh(w.derive, p256.getPublicKey(peer, false));
      return same(out, p256.getSharedSecret(peer, w.derivePoint, true).subarray(1)) ? undefined : 'ECDH result differs from software';
    }
    case 1: {
      const sig = await driver.sign(w.signer, createHash('sha256').update(data).digest());
      return nodeVerify('sha256', data, { key: w.signerKey, dsaEncoding: 'ieee-p1363' }, sig) ? undefined : 'ECDSA signature does not verify';
    }
    case 2: {
      const sig = await driver.sign(w.ed, data);
      return nodeVerify(null, data, w.edKey, sig) ? undefined : 'Ed25519 signature does not verify';
    }
    case 3: {
      const mac = await driver.hmacSha256(w.mac, data);
      return same(mac, createHmac('sha256', w.macSecret).update(data).digest()) ? undefined : 'HMAC differs from software';
    }
    default: {
      const sealed = await driver.sealAesGcm(w.aes, data, data);
      const opened = await driver.openAesGcm(w.aes, sealed, data);
      return same(opened, data) ? undefined : 'AES-GCM round trip differs';
    }
  }
}

/** `count` mixed operations issued `inFlight` at a time; tallies wrong results and errors. */
export async function mixedLoad(
  driver: HsmDriver, w: Workload, count: number, inFlight: number, at?: { index: number; action: () => void },
): Promise<{ ok: number; wrong: string[]; errors: string[] }> {
  let next = 0;
  let ok = 0;
  const wrong: string[] = [];
  const errors: string[] = [];
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      if (at && i === at.index) at.action();
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

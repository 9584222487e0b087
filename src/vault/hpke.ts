// HPKE receiver (RFC 9180), mode_base, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-GCM: how a
// node opens a secret uploaded to the fleet's HPKE key. Decapsulation's DH is the token's ECDH
// (for P-256 the DH output is the x-coordinate, exactly what CKM_ECDH1_DERIVE returns), so the
// private key never leaves the token. The rest is RFC 9180 §4 and §5 in its order and names.

import { createDecipheriv } from 'node:crypto';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, i2osp, utf8 } from '../opaque/bytes.js';

export const KEM_P256_HKDF_SHA256 = 0x0010;
export const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES_128_GCM = 0x0001;
export const AEAD_AES_256_GCM = 0x0002;
const MODE_BASE = 0x00;
const Nsecret = 32;
const Nn = 12;
const Nt = 16;
const NPK = 65;

const KEM_SUITE = concat(utf8('KEM'), i2osp(KEM_P256_HKDF_SHA256, 2));
const hpkeSuite = (aeadId: number) => concat(utf8('HPKE'), i2osp(KEM_P256_HKDF_SHA256, 2), i2osp(KDF_HKDF_SHA256, 2), i2osp(aeadId, 2));

function labeledExtract(suiteId: Uint8Array, salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array {
  return extract(sha256, concat(utf8('HPKE-v1'), suiteId, utf8(label), ikm), salt);
}

function labeledExpand(suiteId: Uint8Array, prk: Uint8Array, label: string, info: Uint8Array, length: number): Uint8Array {
  return expand(sha256, prk, concat(i2osp(length, 2), utf8('HPKE-v1'), suiteId, utf8(label), info), length);
}

/** The receiver's key, held elsewhere: x(skR · pkE) for a 65-byte uncompressed pkE. */
export interface HpkeRecipientKey {
  /** pkRm, 65 bytes uncompressed. */
  readonly publicKey: Uint8Array;
  /** Must refuse points off the curve or the identity (the HSM driver validates first). */
  dh(ephemeralPublicKey: Uint8Array): Promise<Uint8Array>;
}

export class HpkeOpenError extends Error {
  override get name(): string {
    return 'HpkeOpenError';
  }
}

/** DHKEM Decap(enc, skR) → shared_secret. */
export async function decap(enc: Uint8Array, recipient: HpkeRecipientKey): Promise<Uint8Array> {
  if (enc.length !== NPK || enc[0] !== 0x04) throw new HpkeOpenError('enc must be a 65-byte uncompressed P-256 point');
  const dh = await recipient.dh(enc);
  const kemContext = concat(enc, recipient.publicKey);
  const eaePrk = labeledExtract(KEM_SUITE, new Uint8Array(0), 'eae_prk', dh);
  return labeledExpand(KEM_SUITE, eaePrk, 'shared_secret', kemContext, Nsecret);
}

/** KeySchedule(mode_base, shared_secret, info, default_psk, default_psk_id) → key, base_nonce. */
export function keySchedule(sharedSecret: Uint8Array, info: Uint8Array, aeadId: number): { key: Uint8Array; baseNonce: Uint8Array } {
  const suite = hpkeSuite(aeadId);
  const Nk = aeadId === AEAD_AES_256_GCM ? 32 : aeadId === AEAD_AES_128_GCM ? 16 : 0;
  if (Nk === 0) throw new HpkeOpenError(`unsupported AEAD 0x${aeadId.toString(16)}`);
  const pskIdHash = labeledExtract(suite, new Uint8Array(0), 'psk_id_hash', new Uint8Array(0));
  const infoHash = labeledExtract(suite, new Uint8Array(0), 'info_hash', info);
  const context = concat(i2osp(MODE_BASE, 1), pskIdHash, infoHash);
  const secret = labeledExtract(suite, sharedSecret, 'secret', new Uint8Array(0));
  return { key: labeledExpand(suite, secret, 'key', context, Nk), baseNonce: labeledExpand(suite, secret, 'base_nonce', context, Nn) };
}

/** ContextR.Open(aad, ct) for sequence number `seq` (single-shot uploads use 0). */
export function aeadOpen(key: Uint8Array, baseNonce: Uint8Array, seq: number, aad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.length < Nt) throw new HpkeOpenError('ciphertext is shorter than its tag');
  const nonce = baseNonce.slice();
  const seqBytes = i2osp(seq, Nn);
  for (let i = 0; i < Nn; i++) nonce[i]! ^= seqBytes[i]!;
  const decipher = createDecipheriv(key.length === 32 ? 'aes-256-gcm' : 'aes-128-gcm', key, nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - Nt));
  try {
    return new Uint8Array(Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - Nt)), decipher.final()]));
  } catch {
    throw new HpkeOpenError('HPKE ciphertext does not authenticate');
  }
}

/** Single-shot Open (RFC 9180 §6.1) with AES-256-GCM: what the vault's upload uses. */
export async function openBase(recipient: HpkeRecipientKey, enc: Uint8Array, info: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, aeadId = AEAD_AES_256_GCM): Promise<Uint8Array> {
  const sharedSecret = await decap(enc, recipient);
  const { key, baseNonce } = keySchedule(sharedSecret, info, aeadId);
  return aeadOpen(key, baseNonce, 0, aad, ciphertext);
}

// Key templates by role. Every generated key is a token object, private, sensitive, never
// extractable, with only the usages its role needs (derive or sign, never both).

import type { KeyType } from '../driver.js';
import * as C from './constants.js';

export interface Attribute {
  readonly type: number;
  readonly value: boolean | number | Buffer | string;
}

export type Template = Attribute[];

function buf(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const NO_DECRYPT_OR_UNWRAP: Template = [
  { type: C.CKA_DECRYPT, value: false },
  { type: C.CKA_UNWRAP, value: false },
];

/**
 * Attributes every long-term private/secret key gets. A transportable key is extractable, but only
 * by C_WrapKey under a CKA_TRUSTED key (CKA_WRAP_WITH_TRUSTED cannot be reset once true).
 */
function protectedKey(label: string, id: Uint8Array, transportable = false): Template {
  return [
    { type: C.CKA_TOKEN, value: true },
    { type: C.CKA_PRIVATE, value: true },
    { type: C.CKA_SENSITIVE, value: true },
    { type: C.CKA_EXTRACTABLE, value: transportable },
    ...(transportable ? [{ type: C.CKA_WRAP_WITH_TRUSTED, value: true }] : []),
    { type: C.CKA_LABEL, value: label },
    { type: C.CKA_ID, value: buf(id) },
  ];
}

function publicPart(label: string, id: Uint8Array, params: Uint8Array, usage: Template): Template {
  return [
    { type: C.CKA_TOKEN, value: true },
    { type: C.CKA_PRIVATE, value: false },
    { type: C.CKA_LABEL, value: label },
    { type: C.CKA_ID, value: buf(id) },
    { type: C.CKA_EC_PARAMS, value: buf(params) },
    ...usage,
  ];
}

export interface KeyPairTemplates {
  readonly kind: 'pair';
  readonly mechanism: number;
  readonly publicTemplate: Template;
  readonly privateTemplate: Template;
}

export interface SecretKeyTemplate {
  readonly kind: 'secret';
  readonly mechanism: number;
  readonly template: Template;
}

export function generationTemplates(type: KeyType, label: string, id: Uint8Array, transportable = false): KeyPairTemplates | SecretKeyTemplate {
  switch (type) {
    case 'ec-p256-derive':
      return {
        kind: 'pair',
        mechanism: C.CKM_EC_KEY_PAIR_GEN,
        publicTemplate: publicPart(label, id, C.OID_P256, [{ type: C.CKA_DERIVE, value: true }]),
        privateTemplate: [...protectedKey(label, id, transportable), { type: C.CKA_DERIVE, value: true }, { type: C.CKA_SIGN, value: false }, ...NO_DECRYPT_OR_UNWRAP],
      };
    case 'ec-p256-sign':
      return {
        kind: 'pair',
        mechanism: C.CKM_EC_KEY_PAIR_GEN,
        publicTemplate: publicPart(label, id, C.OID_P256, [{ type: C.CKA_VERIFY, value: true }]),
        privateTemplate: [...protectedKey(label, id, transportable), { type: C.CKA_SIGN, value: true }, { type: C.CKA_DERIVE, value: false }, ...NO_DECRYPT_OR_UNWRAP],
      };
    case 'ed25519':
      return {
        kind: 'pair',
        mechanism: C.CKM_EC_EDWARDS_KEY_PAIR_GEN,
        publicTemplate: publicPart(label, id, C.OID_ED25519, [{ type: C.CKA_VERIFY, value: true }]),
        privateTemplate: [...protectedKey(label, id, transportable), { type: C.CKA_SIGN, value: true }, { type: C.CKA_DERIVE, value: false }, ...NO_DECRYPT_OR_UNWRAP],
      };
    case 'aes-256':
      return {
        kind: 'secret',
        mechanism: C.CKM_AES_KEY_GEN,
        template: [
          { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
          { type: C.CKA_KEY_TYPE, value: C.CKK_AES },
          { type: C.CKA_VALUE_LEN, value: 32 },
          ...protectedKey(label, id, transportable),
          { type: C.CKA_ENCRYPT, value: true },
          { type: C.CKA_DECRYPT, value: true },
          { type: C.CKA_WRAP, value: false },
          { type: C.CKA_UNWRAP, value: false },
          { type: C.CKA_SIGN, value: false },
          { type: C.CKA_VERIFY, value: false },
          { type: C.CKA_DERIVE, value: false },
        ],
      };
    case 'aes-256-wrap':
      // Key transport only (fleet ceremonies): never seals data, so a record key and a transport
      // key can never be confused.
      return {
        kind: 'secret',
        mechanism: C.CKM_AES_KEY_GEN,
        template: [
          { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
          { type: C.CKA_KEY_TYPE, value: C.CKK_AES },
          { type: C.CKA_VALUE_LEN, value: 32 },
          ...protectedKey(label, id, transportable),
          { type: C.CKA_WRAP, value: true },
          { type: C.CKA_UNWRAP, value: true },
          { type: C.CKA_ENCRYPT, value: false },
          { type: C.CKA_DECRYPT, value: false },
          { type: C.CKA_SIGN, value: false },
          { type: C.CKA_VERIFY, value: false },
          { type: C.CKA_DERIVE, value: false },
        ],
      };
    case 'hmac-sha256':
      return {
        kind: 'secret',
        mechanism: C.CKM_GENERIC_SECRET_KEY_GEN,
        template: [
          { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
          { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
          { type: C.CKA_VALUE_LEN, value: 32 },
          ...protectedKey(label, id, transportable),
          { type: C.CKA_SIGN, value: true },
          { type: C.CKA_VERIFY, value: true },
          { type: C.CKA_DERIVE, value: false },
          { type: C.CKA_ENCRYPT, value: false },
          { type: C.CKA_DECRYPT, value: false },
          { type: C.CKA_WRAP, value: false },
          { type: C.CKA_UNWRAP, value: false },
        ],
      };
  }
}

/** Template for C_CreateObject of imported key material (never LOCAL, by the token's own rules). */
export function importTemplates(
  type: KeyType,
  label: string,
  id: Uint8Array,
  value: Uint8Array,
  publicPoint: Uint8Array | undefined,
): { privateTemplate: Template; publicTemplate?: Template } {
  const gen = generationTemplates(type, label, id);
  if (gen.kind === 'secret') {
    const template = gen.template.filter((a) => a.type !== C.CKA_VALUE_LEN);
    return { privateTemplate: [...template, { type: C.CKA_VALUE, value: buf(value) }] };
  }
  const keyType = type === 'ed25519' ? C.CKK_EC_EDWARDS : C.CKK_EC;
  const params = type === 'ed25519' ? C.OID_ED25519 : C.OID_P256;
  return {
    privateTemplate: [
      { type: C.CKA_CLASS, value: C.CKO_PRIVATE_KEY },
      { type: C.CKA_KEY_TYPE, value: keyType },
      { type: C.CKA_EC_PARAMS, value: buf(params) },
      { type: C.CKA_VALUE, value: buf(value) },
      ...gen.privateTemplate,
    ],
    publicTemplate: publicPoint
      ? [
          { type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY },
          { type: C.CKA_KEY_TYPE, value: keyType },
          { type: C.CKA_EC_POINT, value: buf(publicPoint) },
          ...gen.publicTemplate,
        ]
      : undefined,
  };
}

/**
 * C_UnwrapKey template (the private or secret half) and, for key pairs, the public object to
 * create beside it: the same role attributes as a transportable generated key.
 */
export function unwrapTemplates(type: KeyType, label: string, id: Uint8Array, publicPoint: Uint8Array | undefined): { privateTemplate: Template; publicTemplate?: Template } {
  const gen = generationTemplates(type, label, id, true);
  if (gen.kind === 'secret') return { privateTemplate: gen.template.filter((a) => a.type !== C.CKA_VALUE_LEN) };
  const keyType = type === 'ed25519' ? C.CKK_EC_EDWARDS : C.CKK_EC;
  return {
    privateTemplate: [{ type: C.CKA_CLASS, value: C.CKO_PRIVATE_KEY }, { type: C.CKA_KEY_TYPE, value: keyType }, ...gen.privateTemplate],
    publicTemplate: publicPoint
      ? [{ type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY }, { type: C.CKA_KEY_TYPE, value: keyType }, { type: C.CKA_EC_POINT, value: buf(publicPoint) }, ...gen.publicTemplate]
      : undefined,
  };
}

/**
 * A trusted transport key, created by the security officer. PKCS#11 lets the SO create public
 * objects only (SoftHSM2 2.6.1: CKA_PRIVATE=true gives CKR_USER_NOT_LOGGED_IN), so it is a public
 * session object: it never reaches the token's files and dies with the session.
 */
export function trustedWrapKeyTemplate(label: string, id: Uint8Array, value: Uint8Array): Template {
  return [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
    { type: C.CKA_KEY_TYPE, value: C.CKK_AES },
    { type: C.CKA_TOKEN, value: false },
    { type: C.CKA_PRIVATE, value: false },
    { type: C.CKA_SENSITIVE, value: true },
    { type: C.CKA_EXTRACTABLE, value: false },
    { type: C.CKA_TRUSTED, value: true },
    { type: C.CKA_LABEL, value: label },
    { type: C.CKA_ID, value: buf(id) },
    { type: C.CKA_WRAP, value: true },
    { type: C.CKA_UNWRAP, value: true },
    { type: C.CKA_ENCRYPT, value: false },
    { type: C.CKA_DECRYPT, value: false },
    { type: C.CKA_SIGN, value: false },
    { type: C.CKA_VERIFY, value: false },
    { type: C.CKA_DERIVE, value: false },
    { type: C.CKA_VALUE, value: buf(value) },
  ];
}

/** A throwaway readable session key (32 zero bytes) that a wrap key wraps for its KCV. */
export function kcvSubjectTemplate(value: Uint8Array): Template {
  return [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
    { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
    { type: C.CKA_TOKEN, value: false },
    { type: C.CKA_PRIVATE, value: false },
    { type: C.CKA_SENSITIVE, value: false },
    { type: C.CKA_EXTRACTABLE, value: true },
    { type: C.CKA_VALUE, value: buf(value) },
  ];
}

/** Readable session object for ECDH output (x coordinate only, CKD_NULL). */
export function ecdhOutputTemplate(quirks: { readonly ecdhOutputPublic?: boolean } = {}): Template {
  return [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
    { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
    { type: C.CKA_TOKEN, value: false },
    ...(quirks.ecdhOutputPublic ? [{ type: C.CKA_PRIVATE, value: false }] : []),
    { type: C.CKA_SENSITIVE, value: false },
    { type: C.CKA_EXTRACTABLE, value: true },
    { type: C.CKA_VALUE_LEN, value: 32 },
  ];
}

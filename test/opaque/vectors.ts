// Loads the RFC 9807 / RFC 9497 vectors from test/fixtures/vectors (sources in its README).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../fixtures/vectors/', import.meta.url));
export const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export interface OpaqueVector {
  readonly config: Record<string, string>;
  readonly inputs: Record<string, string>;
  readonly intermediates: Record<string, string>;
  readonly outputs: Record<string, string>;
}

export const opaqueVectors: OpaqueVector[] = JSON.parse(readFileSync(`${dir}opaque-rfc9807-p256.json`, 'utf8'));
export const realVectors = opaqueVectors.filter((v) => v.config.Fake === 'False');
export const fakeVectors = opaqueVectors.filter((v) => v.config.Fake === 'True');

export interface OprfSuite {
  readonly seed: string;
  readonly keyInfo: string;
  readonly skSm: string;
  readonly vectors: Array<{ Blind: string; BlindedElement: string; EvaluationElement: string; Input: string; Output: string; Batch: number }>;
}
export const oprfSuites: OprfSuite[] = JSON.parse(readFileSync(`${dir}oprf-rfc9497-p256.json`, 'utf8'));

/** Vector name for test titles: "Real (identities)" etc. */
export function vectorName(v: OpaqueVector, i: number): string {
  return `${v.config.Fake === 'True' ? 'fake' : 'real'} vector ${i + 1}${v.inputs.client_identity ? ' (with identities)' : ''}`;
}

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { softwareEd25519Signer } from '../../src/fleet/ed25519.js';
import { FleetError } from '../../src/fleet/errors.js';
import {
  encodeSignatureMessage,
  parsePlexiResponse,
  plexiKeyId,
  signPlexi,
  toPlexiJson,
  verifyPlexiSignature,
} from '../../src/fleet/plexi.js';
import fixture from '../fixtures/vectors/plexi-signature-vectors.json' with { type: 'json' };

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const protobufVectors = fixture.vectors.filter((v) => v.ciphersuite === 1);

/** The vector as the JSON SignatureResponse Plexi would serve. */
const asResponse = (v: (typeof fixture.vectors)[number]): Record<string, unknown> => ({
  version: v.ciphersuite,
  ciphersuite: v.ciphersuite,
  namespace: v.namespace,
  timestamp: v.timestamp,
  epoch: v.epoch,
  digest: v.digest,
  signature: v.signature,
  key_id: v.key_id,
});

describe('plexi-signature-vectors.json (cloudflare/plexi test vectors)', () => {
  it('has 2 protobuf-Ed25519 vectors', () => expect(protobufVectors).toHaveLength(2));

  it.each(protobufVectors)('$namespace: key, key_id, signature and verification', async (v) => {
    const signer = softwareEd25519Signer(hex(v.signing_key));
    expect(toHex(signer.publicKey)).toBe(v.verifying_key);
    expect(plexiKeyId(signer.publicKey)).toBe(v.key_id);

    const response = parsePlexiResponse(JSON.stringify(asResponse(v)));
    expect(() => verifyPlexiSignature(response, hex(v.verifying_key))).not.toThrow();

    const signed = await signPlexi(
      { namespace: v.namespace, timestamp: BigInt(v.timestamp), epoch: BigInt(v.epoch), digest: hex(v.digest) },
      signer,
    );
    expect(toHex(signed.signature)).toBe(v.signature); // Ed25519 is deterministic
    expect(toPlexiJson(signed)).toEqual(asResponse(v));
  });

  it.each(fixture.vectors.filter((v) => v.ciphersuite === 2))('$namespace: bincode suite is refused', (v) => {
    expect(() => parsePlexiResponse(asResponse(v))).toThrow(expect.objectContaining({ code: 'PLEXI_UNSUPPORTED' }));
  });
});

describe('protobuf encoding, decoded by hand', () => {
  it('SignatureMessage{1, "log1.example.com", 1717084639921, {1}, 0x11*32}', () => {
    const bytes = encodeSignatureMessage({
      ciphersuite: 1,
      namespace: 'log1.example.com',
      timestamp: 1717084639921n,
      epoch: 1n,
      digest: new Uint8Array(32).fill(0x11),
    });
    const expected =
      '0801' + // field 1 varint: ciphersuite 1
      '1210' + Buffer.from('log1.example.com').toString('hex') + // field 2, 16 bytes
      '18' + 'b1a5e1d1fc31' + // field 3 varint: 1717084639921
      '2202' + '0801' + // field 4, 2 bytes: Epoch{field 1 varint 1}
      '2a20' + '11'.repeat(32); // field 5, 32 bytes
    expect(toHex(bytes)).toBe(expected);
    // 1717084639921 = 0x18FCD1E12B1: 7-bit groups, least significant first.
    let value = 0n;
    hex('b1a5e1d1fc31').forEach((b, i) => (value |= BigInt(b & 0x7f) << BigInt(7 * i)));
    expect(value).toBe(1717084639921n);
  });

  it('writes required fields even when zero or empty, and full uint64 varints', () => {
    const zero = encodeSignatureMessage({ ciphersuite: 1, namespace: '', timestamp: 0n, epoch: 0n, digest: new Uint8Array(0) });
    expect(toHex(zero)).toBe('0801' + '1200' + '1800' + '22020800' + '2a00');
    const max = encodeSignatureMessage({ ciphersuite: 1, namespace: 'n', timestamp: (1n << 64n) - 1n, epoch: 300n, digest: Uint8Array.of(7) });
    expect(toHex(max)).toBe('0801' + '12016e' + '18ffffffffffffffffff01' + '220308ac02' + '2a0107');
  });
});

describe('response parsing is strict', () => {
  const v = protobufVectors[0]!;
  const base = asResponse(v);
  const parseWith = (patch: Record<string, unknown>): unknown => parsePlexiResponse({ ...base, ...patch });

  it('accepts version alone or ciphersuite alone, null serialized_message, no key_id', () => {
    const { ciphersuite: _c, ...onlyVersion } = base;
    const { version: _v, key_id: _k, ...onlySuite } = base;
    expect(parsePlexiResponse(onlyVersion).ciphersuite).toBe(1);
    expect(parsePlexiResponse(onlySuite).keyId).toBeUndefined();
    expect(parseWith({ serialized_message: null })).toBeTruthy();
  });

  it.each([
    ['version and ciphersuite disagree', { version: 2 }],
    ['unknown field', { extra: 1 }],
    ['odd hex digest', { digest: '111' }],
    ['non-hex signature', { signature: 'zz' + v.signature.slice(2) }],
    ['short signature', { signature: v.signature.slice(2) }],
    ['fractional timestamp', { timestamp: 1.5 }],
    ['timestamp as string', { timestamp: String(v.timestamp) }],
    ['timestamp beyond 2^53', { timestamp: 2 ** 60 }],
    ['negative epoch', { epoch: -1 }],
    ['key_id above a byte', { key_id: 256 }],
    ['namespace not a string', { namespace: 7 }],
  ])('rejects %s', (_why, patch) => {
    expect(() => parseWith(patch)).toThrow(FleetError);
  });

  it('verification fails for a changed field, another key, a wrong key_id or serialized_message', () => {
    const key = hex(v.verifying_key);
    const ok = parsePlexiResponse(base);
    const fail = (r: unknown, code: string): void =>
      expect(() => verifyPlexiSignature(r as typeof ok, key)).toThrow(expect.objectContaining({ code }));
    fail({ ...ok, epoch: 2n }, 'PLEXI_INVALID_SIGNATURE');
    fail({ ...ok, namespace: 'log1.example.org' }, 'PLEXI_INVALID_SIGNATURE');
    fail({ ...ok, timestamp: ok.timestamp + 1n }, 'PLEXI_INVALID_SIGNATURE');
    fail({ ...ok, keyId: 1 }, 'PLEXI_KEY_MISMATCH');
    fail({ ...ok, serializedMessage: new Uint8Array([1]) }, 'PLEXI_MALFORMED');
    expect(() => verifyPlexiSignature(ok, softwareEd25519Signer(new Uint8Array(32)).publicKey)).toThrow(FleetError);
    expect(() =>
      verifyPlexiSignature({ ...ok, serializedMessage: encodeSignatureMessage(ok) }, key),
    ).not.toThrow();
  });
});

describe('properties', () => {
  it('sign, serialize to JSON, parse, verify', async () => {
    const signer = softwareEd25519Signer(new Uint8Array(32).fill(3));
    await fc.assert(
      fc.asyncProperty(
        fc.string(),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.uint8Array({ maxLength: 64 }),
        async (namespace, timestamp, epoch, digest) => {
          const signed = await signPlexi({ namespace, timestamp: BigInt(timestamp), epoch: BigInt(epoch), digest }, signer);
          const parsed = parsePlexiResponse(JSON.stringify(toPlexiJson(signed)));
          verifyPlexiSignature(parsed, signer.publicKey);
          expect(parsed).toEqual(signed);
        },
      ),
      { numRuns: 50 },
    );
  });
});

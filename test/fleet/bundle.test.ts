import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BundleBody,
  type BundleWitness,
  type ValidationBundle,
  BundleVerificationError,
  bundleDigest,
  canonicalJson,
  createBundle,
  diffFleetKeys,
  fleetKeyHistory,
  parseBundleBody,
  verifyBundle,
} from '../../src/fleet/bundle.js';
import { type Ed25519Signer, softwareEd25519Signer } from '../../src/fleet/ed25519.js';
import { FleetError } from '../../src/fleet/errors.js';
import { signPlexi, toPlexiJson } from '../../src/fleet/plexi.js';

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
const seed = (n: number): Uint8Array => new Uint8Array(32).fill(n);

function fleetKeys(n: number): BundleBody['keys'] {
  const secret = sha256(Uint8Array.of(n));
  return {
    ake: b64u(p256.getPublicKey(secret, true)),
    hpke: b64u(p256.getPublicKey(sha256(secret), false)),
    signing: b64u(softwareEd25519Signer(seed(n)).publicKey),
  };
}

const body: BundleBody = { fleetId: 'fleet.example/eu-1', epoch: 7, keys: fleetKeys(1), notBefore: 1_700_000_000, notAfter: 1_800_000_000 };
const witnessKey = softwareEd25519Signer(seed(100));
const operator = softwareEd25519Signer(seed(1)); // the fleet signing key of fleetKeys(1)
const now = 1_750_000_000;

const plexiWitness = (signer: Ed25519Signer, override: { namespace?: string; epoch?: bigint } = {}): BundleWitness =>
  async (request) =>
    signPlexi({ timestamp: 1_717_084_639_921n, ...request, ...override }, signer);

const build = (b: BundleBody = body): Promise<ValidationBundle> => createBundle(b, { witness: plexiWitness(witnessKey), operator });

function failedStep(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(BundleVerificationError);
    expect((e as FleetError).code).toBe('BUNDLE_VERIFICATION_FAILED');
    return (e as BundleVerificationError).step;
  }
  return undefined;
}

describe('canonical JSON and digest', () => {
  it('sorts keys, drops whitespace, keeps integers and strings exact', () => {
    const json = canonicalJson({ notAfter: 2, keys: { signing: 's', ake: 'a', hpke: 'h' }, fleetId: 'f\u00e9\n"', epoch: 1, notBefore: 0 });
    expect(json).toBe('{"epoch":1,"fleetId":"f\u00e9\\n\\"","keys":{"ake":"a","hpke":"h","signing":"s"},"notAfter":2,"notBefore":0}');
  });

  it('sorts by UTF-16 code units (JCS)', () => {
    expect(canonicalJson({ '\u00e9': 1, z: 2, '\ud83d\ude00': 3, '\uff61': 4 })).toBe('{"z":2,"\u00e9":1,"\ud83d\ude00":3,"\uff61":4}');
  });

  it('refuses floats, negatives, arrays, lone surrogates', () => {
    expect(() => canonicalJson(1.5)).toThrow(FleetError);
    expect(() => canonicalJson(-1)).toThrow(FleetError);
    expect(() => canonicalJson([] as never)).toThrow(FleetError);
    expect(() => canonicalJson('\ud800')).toThrow(FleetError);
  });

  it('digest is SHA-256 of the UTF-8 canonical JSON, independent of input key order', () => {
    const shuffled = { notAfter: body.notAfter, keys: { signing: body.keys.signing, hpke: body.keys.hpke, ake: body.keys.ake }, epoch: body.epoch, notBefore: body.notBefore, fleetId: body.fleetId };
    const expected = sha256(new TextEncoder().encode(canonicalJson(body as never)));
    expect(bundleDigest(shuffled)).toEqual(expected);
    expect(bundleDigest(body)).toEqual(expected);
  });
});

describe('body parsing', () => {
  it.each([
    ['an unknown field', { ...body, extra: 1 }],
    ['a missing field', { ...body, notAfter: undefined }],
    ['notAfter before notBefore', { ...body, notAfter: body.notBefore }],
    ['a fractional epoch', { ...body, epoch: 1.5 }],
    ['padded base64url', { ...body, keys: { ...body.keys, signing: body.keys.signing + '=' } }],
    ['standard base64 characters', { ...body, keys: { ...body.keys, ake: Buffer.from(Buffer.from(body.keys.ake, 'base64url')).toString('base64') } }],
    ['an uncompressed ake', { ...body, keys: { ...body.keys, ake: body.keys.hpke } }],
    ['an off-curve hpke point', { ...body, keys: { ...body.keys, hpke: b64u(Uint8Array.of(4, ...new Uint8Array(64).fill(1))) } }],
    ['an extra key role', { ...body, keys: { ...body.keys, other: body.keys.signing } }],
  ])('rejects %s', (_why, value) => {
    expect(() => parseBundleBody(value)).toThrow(FleetError);
  });
});

describe('create and verify', () => {
  it('verifies a freshly built bundle and returns the decoded keys', async () => {
    const bundle = await build();
    const verified = verifyBundle(JSON.parse(JSON.stringify(bundle)), { witnessKey: witnessKey.publicKey, now });
    expect(verified.body).toEqual(body);
    expect(verified.keys.signing).toEqual(operator.publicKey);
    expect(verified.witness.namespace).toBe(body.fleetId);
    expect(verifyBundle(bundle, { witnessKey: witnessKey.publicKey, operatorKey: operator.publicKey, now }).digest).toEqual(bundleDigest(body));
  });

  it('the countersignature is Ed25519 over exactly the 64 witness signature bytes', async () => {
    const bundle = await build();
    const witnessSig = new Uint8Array(Buffer.from(bundle.witness.signature, 'hex'));
    expect(Buffer.from(await operator.sign(witnessSig)).toString('base64url')).toBe(bundle.operatorSignature);
  });

  it('names the failing step', async () => {
    const bundle = await build();
    const opts = { witnessKey: witnessKey.publicKey, now };
    expect(failedStep(() => verifyBundle({ ...bundle, extra: 1 }, opts))).toBe('parse');
    expect(failedStep(() => verifyBundle({ ...bundle, witness: { ...bundle.witness, ciphersuite: 2, version: 2 } }, opts))).toBe('parse');
    expect(failedStep(() => verifyBundle({ ...bundle, body: { ...body, notAfter: body.notAfter + 1 } }, opts))).toBe('artifact-digest');
    expect(failedStep(() => verifyBundle(bundle, { ...opts, witnessKey: operator.publicKey }))).toBe('witness-signature');
    expect(failedStep(() => verifyBundle({ ...bundle, witness: { ...bundle.witness, timestamp: 1 } }, opts))).toBe('witness-signature');
    expect(failedStep(() => verifyBundle(bundle, { ...opts, namespace: 'other' }))).toBe('witness-binding');
    expect(failedStep(() => verifyBundle(bundle, { ...opts, operatorKey: witnessKey.publicKey }))).toBe('operator-countersignature');
    expect(failedStep(() => verifyBundle({ ...bundle, operatorSignature: b64u(new Uint8Array(64)) }, opts))).toBe('operator-countersignature');
    expect(failedStep(() => verifyBundle(bundle, { ...opts, now: body.notBefore - 1 }))).toBe('validity');
    expect(failedStep(() => verifyBundle(bundle, { ...opts, now: body.notAfter }))).toBe('validity');
    expect(failedStep(() => verifyBundle(bundle, { ...opts, now: body.notBefore }))).toBeUndefined();
  });

  it('checks in order: a bad digest is reported before a bad countersignature', async () => {
    const bundle = await build();
    const broken = { ...bundle, body: { ...body, epoch: 8 }, operatorSignature: b64u(new Uint8Array(64)) };
    expect(failedStep(() => verifyBundle(broken, { witnessKey: witnessKey.publicKey, now: 0 }))).toBe('artifact-digest');
  });

  it('rejects a witness signature made for another namespace or epoch (witness-binding)', async () => {
    for (const override of [{ namespace: 'other.example' }, { epoch: 8n }]) {
      const witness = await plexiWitness(witnessKey, override)({ namespace: body.fleetId, epoch: 7n, digest: bundleDigest(body) });
      const bundle = { body, witness: toPlexiJson(witness), operatorSignature: b64u(await operator.sign(witness.signature)) };
      expect(failedStep(() => verifyBundle(bundle, { witnessKey: witnessKey.publicKey, now }))).toBe('witness-binding');
      await expect(createBundle(body, { witness: plexiWitness(witnessKey, override), operator })).rejects.toThrow(FleetError);
    }
  });

  it('property: any body round-trips; flipping a bit of a signature fails the right step', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[a-z0-9.\/-]{1,24}$/),
        fc.nat({ max: 2 ** 40 }),
        fc.nat({ max: 2 ** 40 }),
        fc.integer({ min: 1, max: 2 ** 30 }),
        fc.integer({ min: 1, max: 250 }),
        fc.nat({ max: 511 }),
        async (fleetId, epoch, notBefore, span, keySeed, bit) => {
          const b: BundleBody = { fleetId, epoch, keys: fleetKeys(keySeed), notBefore, notAfter: notBefore + span };
          const op = softwareEd25519Signer(seed(keySeed));
          const bundle = await createBundle(b, { witness: plexiWitness(witnessKey), operator: op });
          const opts = { witnessKey: witnessKey.publicKey, now: notBefore };
          verifyBundle(bundle, opts);

          const witnessSig = Buffer.from(bundle.witness.signature, 'hex');
          witnessSig[bit >> 3]! ^= 1 << (bit & 7);
          const badWitness = { ...bundle, witness: { ...bundle.witness, signature: witnessSig.toString('hex') } };
          expect(failedStep(() => verifyBundle(badWitness, opts))).toBe('witness-signature');

          const opSig = Buffer.from(bundle.operatorSignature, 'base64url');
          opSig[bit >> 3]! ^= 1 << (bit & 7);
          const badOperator = { ...bundle, operatorSignature: opSig.toString('base64url') };
          expect(failedStep(() => verifyBundle(badOperator, opts))).toBe('operator-countersignature');
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('key diff across epochs', () => {
  it('reports rotated roles and rejects non-increasing epochs or other fleets', () => {
    const next: BundleBody = { ...body, epoch: 8, keys: { ...body.keys, hpke: fleetKeys(2).hpke } };
    const diff = diffFleetKeys(body, next);
    expect(diff.changed).toEqual([{ role: 'hpke', from: body.keys.hpke, to: next.keys.hpke }]);
    expect(diff.unchanged).toEqual(['ake', 'signing']);
    expect(() => diffFleetKeys(next, body)).toThrow(FleetError);
    expect(() => diffFleetKeys(body, { ...next, fleetId: 'x' })).toThrow(FleetError);
  });

  it('walks history from the oldest epoch', () => {
    const e8: BundleBody = { ...body, epoch: 8, keys: fleetKeys(2) };
    const e9: BundleBody = { ...e8, epoch: 9 };
    const history = fleetKeyHistory([e9, body, e8]);
    expect(history.map((d) => [d.fromEpoch, d.toEpoch, d.changed.length])).toEqual([
      [7, 8, 3],
      [8, 9, 0],
    ]);
    expect(() => fleetKeyHistory([body, { ...body }])).toThrow(FleetError);
  });
});

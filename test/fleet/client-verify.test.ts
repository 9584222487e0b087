// Client verification of fleet updates (browser-safe SDK code): a three-epoch happy path, each
// failure step, rollback refusal, and a check that it and the src/trust rules it shares with the
// fleet modules stay browser-safe. (The shared rules themselves are tested against the published
// vectors in merkle, signed-note, checkpoint, plexi and bundle tests.)

import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BundleBody, type ValidationBundle, createBundle, verifyBundle } from '../../src/fleet/bundle.js';
import {
  type ClientVerifyStep,
  FleetUpdateRejected,
  type PinnedKeys,
  type TrustedFleetState,
  type VerifyFleetUpdateInput,
  verifyFleetUpdate,
} from '../../src/client/fleet-update.js';
import { softwareEd25519Signer } from '../../src/fleet/ed25519.js';
import { LogStore } from '../../src/fleet/log-store.js';
import { parsePlexiResponse } from '../../src/fleet/plexi.js';
import { SIGNATURE_TYPE_ED25519, ed25519NoteSigner, formatVerifierKey } from '../../src/fleet/signed-note.js';
import { Witness, bundleLogEntry, generateWitnessKey } from '../../src/fleet/witness.js';

const ORIGIN = 'vault.example/eu-1';
const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-client-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const operator = softwareEd25519Signer(new Uint8Array(32).fill(5)); // the fleet signing key
const b64 = (hashes: Uint8Array[]): string[] => hashes.map((h) => Buffer.from(h).toString('base64'));
const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

function body(epoch: number, notAfter = 1_800_000_000): BundleBody {
  const secret = sha256(Uint8Array.of(epoch));
  return {
    fleetId: 'eu-1',
    epoch,
    keys: { ake: b64u(p256.getPublicKey(secret, true)), hpke: b64u(p256.getPublicKey(sha256(secret), false)), signing: b64u(operator.publicKey) },
    notBefore: 1_700_000_000,
    notAfter,
  };
}

interface Published {
  readonly bundle: ValidationBundle;
  readonly leafIndex: number;
  readonly logOnlyCheckpoint: string;
}

let witness: Witness;
let log: LogStore;
let pinned: PinnedKeys;
const published: Published[] = [];
const now = 1_750_000_000;

/** The operator's side: log the body (plus unrelated evidence), get it witnessed, countersign. */
async function publish(b: BundleBody): Promise<Published> {
  await log.append(new TextEncoder().encode(`evidence before epoch ${b.epoch}`));
  const leafIndex = await log.append(bundleLogEntry(b));
  const logOnlyCheckpoint = await log.checkpoint(ORIGIN, ed25519NoteSigner(ORIGIN, operator));
  const last = witness.state(ORIGIN);
  const answer = await witness.sign({
    checkpoint: logOnlyCheckpoint,
    consistencyProof: b64(log.consistencyProof(last?.size ?? 0)),
    bundle: { body: b, leafIndex, inclusionProof: b64(log.inclusionProof(leafIndex)) },
  });
  await log.storeCheckpoint(answer.checkpoint);
  const bundle = await createBundle(b, { witness: async () => parsePlexiResponse(answer.plexi), operator });
  return { bundle, leafIndex, logOnlyCheckpoint };
}

/** What a server hands a client whose last trusted state is `last`: proofs against the latest checkpoint. */
function update(p: Published, last: TrustedFleetState | null, overrides: Partial<VerifyFleetUpdateInput> = {}): VerifyFleetUpdateInput {
  return {
    bundle: structuredClone(p.bundle),
    checkpoint: log.latestCheckpoint() as string,
    leafIndex: p.leafIndex,
    inclusionProof: b64(log.inclusionProof(p.leafIndex)),
    consistencyProof: last === null ? [] : b64(log.consistencyProof(last.size)),
    pinned,
    last,
    now,
    ...overrides,
  };
}

function rejectedAt(input: VerifyFleetUpdateInput): ClientVerifyStep | undefined {
  try {
    verifyFleetUpdate(input);
  } catch (e) {
    expect(e).toBeInstanceOf(FleetUpdateRejected);
    return (e as FleetUpdateRejected).step;
  }
  return undefined;
}

beforeAll(async () => {
  generateWitnessKey(join(dir, 'witness'), 'witness.example', new Uint8Array(32).fill(8));
  const logKey = formatVerifierKey(ORIGIN, SIGNATURE_TYPE_ED25519, operator.publicKey);
  witness = await Witness.open(join(dir, 'witness'), { logs: [{ origin: ORIGIN, key: logKey }], now: () => now * 1000 });
  log = LogStore.open(join(dir, 'log'));
  pinned = { witnessKey: witness.publicKey, witnessName: 'witness.example', operatorKey: operator.publicKey, logKey, origin: ORIGIN };
  published.push(await publish(body(1)));
});
afterAll(() => witness.close());

describe('verifyFleetUpdate', () => {
  it('accepts three epochs in turn, tracking the log and reporting each key diff', async () => {
    const first = verifyFleetUpdate(update(published[0]!, null));
    expect(first.diff).toBeNull();
    expect(first.state).toMatchObject({ origin: ORIGIN, epoch: 1, size: log.size });
    // Agrees with the shared (node-side) bundle verifier.
    expect(first.state.digest).toBe(Buffer.from(verifyBundle(published[0]!.bundle, { witnessKey: witness.publicKey, now }).digest).toString('hex'));

    published.push(await publish(body(2)));
    const second = verifyFleetUpdate(update(published[1]!, first.state));
    expect(second.state.epoch).toBe(2);
    expect(second.diff).toMatchObject({ fromEpoch: 1, toEpoch: 2, unchanged: ['signing'] });
    expect(second.diff?.changed.map((c) => c.role)).toEqual(['ake', 'hpke']);
    expect(second.diff?.changed[0]).toEqual({ role: 'ake', from: body(1).keys.ake, to: body(2).keys.ake });

    published.push(await publish(body(3)));
    const third = verifyFleetUpdate(update(published[2]!, second.state));
    expect(third.state).toMatchObject({ epoch: 3, size: log.size });
    // The same epoch again (a refresh against the same log) is accepted with an empty diff.
    const again = verifyFleetUpdate(update(published[2]!, third.state));
    expect(again.diff?.changed).toEqual([]);
    // State round-trips through JSON (clients store it).
    expect(verifyFleetUpdate(update(published[2]!, JSON.parse(JSON.stringify(third.state)))).state).toEqual(third.state);
  });

  it('names the failing step for each broken piece', async () => {
    while (published.length < 3) published.push(await publish(body(published.length + 1)));
    const p = published[1]!;
    // A client that last saw the log right after epoch 1 was published.
    const early = published[0]!.leafIndex + 1;
    const base = { ...verifyFleetUpdate(update(published[0]!, null)).state, size: early, rootHash: b64([log.root(early)])[0]! };
    const good = update(p, base);
    expect(rejectedAt(good)).toBeUndefined();

    const withBundle = (f: (b: { body: { -readonly [K in keyof BundleBody]: BundleBody[K] }; witness: Record<string, unknown>; operatorSignature: string }) => void) => {
      const copy = structuredClone(p.bundle) as never;
      f(copy);
      return { ...good, bundle: copy };
    };
    const flipHex = (h: string) => (h[0] === '0' ? '1' : '0') + h.slice(1);

    expect(rejectedAt({ ...good, bundle: { nope: 1 } })).toBe('parse');
    expect(rejectedAt({ ...good, checkpoint: 'garbage' })).toBe('parse');
    expect(rejectedAt(withBundle((b) => { b.body.notAfter += 1; }))).toBe('digest');
    expect(rejectedAt(withBundle((b) => { b.witness.signature = flipHex(b.witness.signature as string); }))).toBe('witness-signature');
    expect(rejectedAt({ ...good, pinned: { ...pinned, witnessKey: operator.publicKey } })).toBe('witness-signature');
    expect(rejectedAt({ ...good, pinned: { ...pinned, namespace: 'us-1' } })).toBe('witness-binding');
    expect(rejectedAt(withBundle((b) => { b.operatorSignature = b64u(new Uint8Array(64).fill(1)); }))).toBe('countersignature');
    expect(rejectedAt({ ...good, pinned: { ...pinned, operatorKey: witness.publicKey } })).toBe('countersignature');

    const otherLogKey = formatVerifierKey(ORIGIN, SIGNATURE_TYPE_ED25519, witness.publicKey);
    expect(rejectedAt({ ...good, pinned: { ...pinned, logKey: otherLogKey } })).toBe('checkpoint-signature');
    expect(rejectedAt({ ...good, pinned: { ...pinned, origin: 'elsewhere/log' } })).toBe('checkpoint-signature');
    // A checkpoint the witness never cosigned (the log-only one at the same size).
    const uncosigned = log.latestCheckpoint()!.split('\n— witness.example ')[0]! + '\n';
    expect(rejectedAt({ ...good, checkpoint: uncosigned })).toBe('checkpoint-cosignature');
    expect(rejectedAt({ ...good, pinned: { ...pinned, witnessName: 'other.witness' } })).toBe('checkpoint-cosignature');

    expect(rejectedAt({ ...good, leafIndex: p.leafIndex - 1 })).toBe('inclusion');
    expect(rejectedAt({ ...good, inclusionProof: good.inclusionProof.slice(1) })).toBe('inclusion');
    expect(rejectedAt({ ...good, leafIndex: log.size })).toBe('inclusion');

    const forkedRoot = { ...base, rootHash: Buffer.alloc(32, 7).toString('base64') };
    expect(rejectedAt({ ...good, last: forkedRoot })).toBe('consistency');
    expect(rejectedAt({ ...good, consistencyProof: [] })).toBe('consistency');
    expect(rejectedAt({ ...good, last: { ...base, size: log.size + 1 } })).toBe('consistency');

    expect(rejectedAt({ ...good, now: 1_800_000_000 })).toBe('validity');
    expect(rejectedAt({ ...good, now: 1_600_000_000 })).toBe('validity');
  });

  it('rejects rollback to an older epoch and a second bundle for a trusted epoch', async () => {
    while (published.length < 3) published.push(await publish(body(published.length + 1)));
    const at3 = verifyFleetUpdate(update(published[2]!, null)).state;
    // The epoch-2 bundle is genuinely witnessed, countersigned and in the log: still refused.
    expect(rejectedAt(update(published[1]!, at3))).toBe('rollback');

    // Equivocation: a different, properly witnessed body for epoch 3.
    const rival = await publish(body(3, 1_790_000_000));
    const latest = verifyFleetUpdate(update(published[2]!, at3)).state;
    expect(rejectedAt(update(rival, latest))).toBe('rollback');
  });
});

describe('client-verify is browser-safe', () => {
  it('fleet-update.ts and the src/trust rules it shares import nothing but @noble and src/trust', () => {
    const trustDir = fileURLToPath(new URL('../../src/trust/', import.meta.url));
    const client = fileURLToPath(new URL('../../src/client/fleet-update.ts', import.meta.url));
    const trust = readdirSync(trustDir).filter((f) => f.endsWith('.ts')).map((f) => join(trustDir, f));
    expect(trust.length).toBeGreaterThan(5);
    for (const file of [client, ...trust]) {
      const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
      const specifiers = [...code.matchAll(/^(?:import|export)\b[^;]*?\bfrom '([^']+)';$/gm)].map((m) => m[1]);
      if (file === client) expect(specifiers.length).toBeGreaterThan(0);
      const local = file === client ? /^\.\.\/trust\/[a-z0-9-]+\.js$/ : /^\.\/[a-z0-9-]+\.js$/;
      for (const s of specifiers) expect(s, file).toMatch(new RegExp(`^@noble/|${local.source}`));
      expect(code, file).not.toMatch(/\bBuffer\b|\brequire\(|\bimport\(|['"]node:/);
    }
  });
});

// The witness: cosigns only consistent growth, never two trees of one size, persists what it
// signed before answering (so a restart changes nothing), serializes concurrent requests, and
// signs Plexi responses only for bundle bodies included in the checkpoint. Plus its HTTP front.

import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type BundleBody, bundleDigest } from '../../src/fleet/bundle.js';
import { cosignatureVerifier, openCheckpoint, parseCosignatureVerifierKey } from '../../src/fleet/checkpoint.js';
import { softwareEd25519Signer } from '../../src/fleet/ed25519.js';
import { LogStore } from '../../src/fleet/log-store.js';
import { parsePlexiResponse, verifyPlexiSignature } from '../../src/fleet/plexi.js';
import { generateNoteKey, parseSignerKey, parseVerifierKey } from '../../src/fleet/signed-note.js';
import { Witness, WitnessError, type WitnessSignRequest, bundleLogEntry, generateWitnessKey } from '../../src/fleet/witness.js';
import { startWitnessServer, witnessClient } from '../../src/fleet/witness-server.js';

const root = mkdtempSync(join(tmpdir(), 'hsm-vault-witness-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (what: string): string => join(root, `${what}-${n++}`);

const ORIGIN = 'vault.example/log';
const logKey = generateNoteKey(ORIGIN, new Uint8Array(32).fill(1));
const logSigner = parseSignerKey(logKey.skey);
const otherKey = generateNoteKey(ORIGIN, new Uint8Array(32).fill(2));
const b64 = (hashes: Uint8Array[]): string[] => hashes.map((h) => Buffer.from(h).toString('base64'));
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

function body(epoch: number): BundleBody {
  const secret = sha256(Uint8Array.of(epoch));
  const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  return {
    fleetId: 'eu-1',
    epoch,
    keys: {
      ake: b64u(p256.getPublicKey(secret, true)),
      hpke: b64u(p256.getPublicKey(sha256(secret), false)),
      signing: b64u(softwareEd25519Signer(secret).publicKey),
    },
    notBefore: 1_700_000_000,
    notAfter: 1_800_000_000,
  };
}

async function newWitness(dir = fresh('witness'), now = () => 1_750_000_000_123): Promise<Witness> {
  try {
    generateWitnessKey(dir, 'witness.example', new Uint8Array(32).fill(9));
  } catch (e) {
    if (!(e instanceof WitnessError && e.code === 'WITNESS_STATE')) throw e;
  }
  return Witness.open(dir, { logs: [{ origin: ORIGIN, key: logKey.vkey }], now });
}

async function logWith(entries: string[]): Promise<LogStore> {
  const log = LogStore.open(fresh('log'));
  for (const e of entries) await log.append(text(e));
  return log;
}

async function request(log: LogStore, fromSize: number): Promise<WitnessSignRequest> {
  return { checkpoint: await log.checkpoint(ORIGIN, logSigner), consistencyProof: b64(log.consistencyProof(fromSize)) };
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WitnessError);
    return (e as WitnessError).code;
  }
  return undefined;
}

describe('Witness', () => {
  it('keeps its key 0600 and never overwrites it', async () => {
    const dir = fresh('witness');
    const identity = generateWitnessKey(dir, 'w1');
    expect(statSync(join(dir, 'witness.key')).mode & 0o777).toBe(0o600);
    expect(() => generateWitnessKey(dir, 'w1')).toThrow(/never overwritten/);
    const witness = await Witness.open(dir, { logs: [] });
    expect(witness.identity).toEqual(identity);
    expect(parseCosignatureVerifierKey(identity.cosignatureKey).name).toBe('w1');
    await expect(Witness.open(dir, { logs: [] })).rejects.toMatchObject({ code: 'WITNESS_STATE' }); // locked
    await witness.close();
    await (await Witness.open(dir, { logs: [] })).close();
  });

  it('cosigns first contact and then consistent growth; the cosignature verifies', async () => {
    const witness = await newWitness();
    const log = await logWith(['a', 'b', 'c']);
    const first = await witness.sign(await request(log, 0));
    expect(first.previousSize).toBe(0);
    const cosigner = cosignatureVerifier('witness.example', witness.publicKey);
    const opened = openCheckpoint(first.checkpoint, [parseVerifierKey(logKey.vkey), cosigner], ORIGIN);
    expect(opened.verified).toHaveLength(2);
    expect(first.checkpoint.endsWith(first.cosignature)).toBe(true);
    expect(witness.state(ORIGIN)).toMatchObject({ size: 3, checkpoint: (await request(log, 0)).checkpoint });

    for (const e of ['d', 'e']) await log.append(text(e));
    const second = await witness.sign(await request(log, 3));
    expect(second.previousSize).toBe(3);
    expect(openCheckpoint(second.checkpoint, [cosigner]).checkpoint.size).toBe(5);
    // Re-signing the same tree is fine.
    expect((await witness.sign(await request(log, 5))).previousSize).toBe(5);
    await witness.close();
  });

  it('refuses a fork, a rollback and an inconsistent proof — also after a restart', async () => {
    const dir = fresh('witness');
    let witness = await newWitness(dir);
    const honest = await logWith(['a', 'b', 'c', 'd']);
    await witness.sign(await request(honest, 0));

    const fork = await logWith(['a', 'b', 'X', 'd']);
    expect(await code(witness.sign(await request(fork, 4)))).toBe('WITNESS_FORK');
    const shorter = await logWith(['a', 'b', 'c']);
    expect(await code(witness.sign(await request(shorter, 3)))).toBe('WITNESS_ROLLBACK');

    // A longer fork proves consistency only with its own prefix.
    await fork.append(text('e'));
    const forged = { checkpoint: await fork.checkpoint(ORIGIN, logSigner), consistencyProof: b64(fork.consistencyProof(4)) };
    expect(await code(witness.sign(forged))).toBe('WITNESS_INCONSISTENT');
    // A tampered proof for honest growth fails too.
    await honest.append(text('e'));
    const good = await request(honest, 4);
    const tampered = { ...good, consistencyProof: good.consistencyProof.map((h, i) => (i === 0 ? Buffer.alloc(32, 1).toString('base64') : h)) };
    expect(await code(witness.sign(tampered))).toBe('WITNESS_INCONSISTENT');
    expect(await code(witness.sign({ ...good, consistencyProof: [] }))).toBe('WITNESS_INCONSISTENT');

    await witness.close();
    witness = await newWitness(dir);
    expect(witness.state(ORIGIN)?.size).toBe(4);
    const fork4 = await logWith(['a', 'b', 'X', 'd']);
    expect(await code(witness.sign(await request(fork4, 4)))).toBe('WITNESS_FORK');
    expect((await witness.sign(good)).previousSize).toBe(4);
    await witness.close();
  });

  it('refuses checkpoints not signed by the trusted log key, unknown logs and malformed requests', async () => {
    const witness = await newWitness();
    const log = await logWith(['a']);
    const impostor = { checkpoint: await log.checkpoint(ORIGIN, parseSignerKey(otherKey.skey)), consistencyProof: [] };
    expect(await code(witness.sign(impostor))).toBe('WITNESS_BAD_LOG_SIGNATURE');
    const stranger = generateNoteKey('other.example/log');
    const unknown = { checkpoint: await log.checkpoint('other.example/log', parseSignerKey(stranger.skey)), consistencyProof: [] };
    expect(await code(witness.sign(unknown))).toBe('WITNESS_UNKNOWN_LOG');
    expect(await code(witness.sign({ checkpoint: 'nope', consistencyProof: [] }))).toBe('WITNESS_BAD_REQUEST');
    expect(await code(witness.sign({ checkpoint: (await request(log, 0)).checkpoint, consistencyProof: ['AA=='] }))).toBe('WITNESS_BAD_REQUEST');
    expect(witness.state(ORIGIN)).toBeUndefined();
    await witness.close();
  });

  it('signs a Plexi response over the digest of a bundle body included in the checkpoint', async () => {
    const witness = await newWitness();
    const log = await logWith(['evidence-1']);
    const b = body(3);
    const leafIndex = await log.append(bundleLogEntry(b));
    await log.append(text('evidence-2'));
    const req = await request(log, 0);
    const answer = await witness.sign({ ...req, bundle: { body: b, leafIndex, inclusionProof: b64(log.inclusionProof(leafIndex)) } });
    const plexi = parsePlexiResponse(answer.plexi);
    verifyPlexiSignature(plexi, witness.publicKey);
    expect(plexi).toMatchObject({ namespace: 'eu-1', epoch: 3n, timestamp: 1_750_000_000_123n });
    expect(plexi.digest).toEqual(bundleDigest(b));

    const wrongIndex = { ...req, bundle: { body: b, leafIndex: 0, inclusionProof: b64(log.inclusionProof(0)) } };
    expect(await code(witness.sign(wrongIndex))).toBe('WITNESS_NOT_INCLUDED');
    const otherBody = { ...req, bundle: { body: body(4), leafIndex, inclusionProof: b64(log.inclusionProof(leafIndex)) } };
    expect(await code(witness.sign(otherBody))).toBe('WITNESS_NOT_INCLUDED');
    await witness.close();
  });

  it('serializes concurrent requests: of two forks extending one tree, exactly one is signed', async () => {
    const witness = await newWitness();
    const base = await logWith(['a', 'b', 'c']);
    await witness.sign(await request(base, 0));
    const left = await logWith(['a', 'b', 'c', 'L']);
    const right = await logWith(['a', 'b', 'c', 'R']);
    const results = await Promise.allSettled([witness.sign(await request(left, 3)), witness.sign(await request(right, 3))]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((rejected.reason as WitnessError).code).toBe('WITNESS_FORK');

    // Many honest requests at once all succeed, in order.
    const grow = await logWith(['a', 'b', 'c', results[0]!.status === 'fulfilled' ? 'L' : 'R']);
    const requests: WitnessSignRequest[] = [];
    let last = 4;
    for (let i = 0; i < 8; i++) {
      await grow.append(text(`g${i}`));
      requests.push(await request(grow, last));
      last = grow.size;
    }
    const answers = await Promise.all(requests.map((r) => witness.sign(r)));
    expect(answers.map((a) => a.previousSize)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    await witness.close();
  });
});

describe('witness HTTP server', () => {
  it('serves /v1/key, /v1/checkpoint and /v1/sign on an ephemeral port, with refusals as 4xx', async () => {
    const witness = await newWitness();
    const running = await startWitnessServer(witness, { host: '127.0.0.1', port: 0 });
    try {
      const client = witnessClient(running.url);
      expect(await client.key()).toEqual(witness.identity);
      expect(await client.checkpoint(ORIGIN)).toBeUndefined();

      const log = await logWith(['a', 'b']);
      const b = body(1);
      const leafIndex = await log.append(bundleLogEntry(b));
      const req = await request(log, 0);
      const answer = await client.sign({ ...req, bundle: { body: b, leafIndex, inclusionProof: b64(log.inclusionProof(leafIndex)) } });
      verifyPlexiSignature(parsePlexiResponse(answer.plexi), witness.publicKey);
      openCheckpoint(answer.checkpoint, [cosignatureVerifier('witness.example', witness.publicKey)]);
      expect(await client.checkpoint(ORIGIN)).toMatchObject({ origin: ORIGIN, size: 3 });

      const fork = await logWith(['a', 'b', 'X']);
      await expect(client.sign(await request(fork, 3))).rejects.toMatchObject({ code: 'WITNESS_FORK' });

      const raw = await fetch(`${running.url}/v1/sign`, { method: 'POST', body: '{not json' });
      expect(raw.status).toBe(400);
      expect(((await raw.json()) as { error: string }).error).toBe('WITNESS_BAD_REQUEST');
      expect((await fetch(`${running.url}/v1/fork`)).status).toBe(404);
      expect((await fetch(`${running.url}/v1/sign`)).status).toBe(405);

      // Concurrent HTTP requests are serialized too.
      for (const e of ['c', 'd', 'e']) await log.append(text(e));
      const many = await Promise.all([request(log, 3), request(log, 3), request(log, 3)].map(async (r) => client.sign(await r)));
      expect(many.map((a) => a.previousSize).sort()).toEqual([3, 6, 6]);
    } finally {
      await running.close();
    }
  });
});

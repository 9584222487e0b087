// The file-backed audit log: proofs agree with the pure Merkle module, state survives reopening,
// tampering with stored entries is detected, and concurrent appenders never lose an entry.

import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/fleet/checkpoint.js';
import { consistencyProof, inclusionProof, leafHash, treeHead, verifyConsistency, verifyInclusion } from '../../src/fleet/merkle.js';
import { LogStore, LogStoreError, acquireLock } from '../../src/fleet/log-store.js';
import { generateNoteKey, parseSignerKey, parseVerifierKey } from '../../src/fleet/signed-note.js';

const root = mkdtempSync(join(tmpdir(), 'hsm-vault-log-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `log-${n++}`);
const entry = (i: number): Uint8Array => new TextEncoder().encode(`entry ${i}`);
const keys = generateNoteKey('example.com/log', new Uint8Array(32).fill(7));
const signer = parseSignerKey(keys.skey);
const verifier = parseVerifierKey(keys.vkey);

function corruptCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(LogStoreError);
    return (e as LogStoreError).code;
  }
  return undefined;
}

describe('LogStore', () => {
  it('appends, reopens, and serves roots and proofs equal to the pure Merkle module', async () => {
    const dir = freshDir();
    const log = LogStore.open(dir);
    expect(log.size).toBe(0);
    for (let i = 0; i < 13; i++) expect(await log.append(entry(i))).toBe(i);
    const hashes = Array.from({ length: 13 }, (_, i) => leafHash(entry(i)));

    const reopened = LogStore.open(dir);
    expect(reopened.size).toBe(13);
    for (let size = 1; size <= 13; size++) {
      expect(reopened.root(size)).toEqual(treeHead(hashes, size));
      for (let i = 0; i < size; i++) {
        const proof = reopened.inclusionProof(i, size);
        expect(proof).toEqual(inclusionProof(hashes, i, size));
        verifyInclusion(hashes[i]!, i, size, proof, reopened.root(size));
      }
      for (let m = 1; m <= size; m++) {
        const proof = reopened.consistencyProof(m, size);
        expect(proof).toEqual(consistencyProof(hashes, m, size));
        verifyConsistency(m, size, proof, reopened.root(m), reopened.root(size));
      }
    }
    expect(reopened.consistencyProof(0, 5)).toEqual([]);
    expect(reopened.entry(4)).toEqual(entry(4));
    expect(readdirSync(join(dir, 'entries'))).toHaveLength(13);
    expect(readdirSync(join(dir, 'entries')).some((f) => f.endsWith('.tmp'))).toBe(false);
  });

  it('signs C2SP checkpoints that open with the log key and survive reopening', async () => {
    const dir = freshDir();
    const log = LogStore.open(dir);
    const empty = await log.checkpoint('example.com/log', signer);
    expect(openCheckpoint(empty, [verifier], 'example.com/log').checkpoint.size).toBe(0);
    for (let i = 0; i < 5; i++) await log.append(entry(i));
    const note = await log.checkpoint('example.com/log', signer);
    const { checkpoint } = openCheckpoint(note, [verifier], 'example.com/log');
    expect(checkpoint.size).toBe(5);
    expect(checkpoint.rootHash).toEqual(log.root(5));
    expect(LogStore.open(dir).latestCheckpoint()).toBe(note);
    expect(LogStore.open(dir).verify([verifier])?.size).toBe(5);
  });

  it('detects a rewritten, deleted or renumbered entry against the stored checkpoint', async () => {
    for (const tamper of ['rewrite', 'delete-last', 'gap'] as const) {
      const dir = freshDir();
      const log = LogStore.open(dir);
      for (let i = 0; i < 6; i++) await log.append(entry(i));
      await log.checkpoint('example.com/log', signer);
      const file = (i: number) => join(dir, 'entries', String(i).padStart(16, '0'));
      if (tamper === 'rewrite') writeFileSync(file(2), 'entry X');
      if (tamper === 'delete-last') unlinkSync(file(5));
      if (tamper === 'gap') unlinkSync(file(3));
      expect(corruptCode(() => LogStore.open(dir)), tamper).toBe('LOG_CORRUPT');
    }
  });

  it('detects an entry changed after opening when it is read or audited', async () => {
    const dir = freshDir();
    const log = LogStore.open(dir);
    for (let i = 0; i < 3; i++) await log.append(entry(i));
    await log.checkpoint('example.com/log', signer);
    appendFileSync(join(dir, 'entries', '0000000000000001'), '!');
    expect(corruptCode(() => log.entry(1))).toBe('LOG_CORRUPT');
    expect(corruptCode(() => log.verify())).toBe('LOG_CORRUPT');
  });

  it('refuses to store a checkpoint of some other tree', async () => {
    const dir = freshDir();
    const log = LogStore.open(dir);
    await log.append(entry(0));
    const other = LogStore.open(freshDir());
    await other.append(entry(99));
    const foreign = await other.checkpoint('example.com/log', signer);
    await expect(log.storeCheckpoint(foreign)).rejects.toMatchObject({ code: 'LOG_CORRUPT' });
  });

  it('serializes concurrent appends in one process', async () => {
    const log = LogStore.open(freshDir());
    const indices = await Promise.all(Array.from({ length: 20 }, (_, i) => log.append(entry(i))));
    expect([...indices].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(log.size).toBe(20);
  });

  it('serializes appends from several processes through the lock file', async () => {
    const dir = freshDir();
    LogStore.open(dir);
    const script = `
      import { LogStore } from ${JSON.stringify(fileURLToPath(new URL('../../src/fleet/log-store.ts', import.meta.url)))};
      const log = LogStore.open(process.argv[1]);
      for (let i = 0; i < 10; i++) await log.append(new TextEncoder().encode(process.argv[2] + ':' + i));
    `;
    const run = (tag: string) =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir, tag], { stdio: 'inherit' });
        child.on('exit', resolve);
      });
    expect(await Promise.all([run('a'), run('b'), run('c')])).toEqual([0, 0, 0]);
    const log = LogStore.open(dir);
    expect(log.size).toBe(30);
    const texts = Array.from({ length: 30 }, (_, i) => new TextDecoder().decode(log.entry(i)));
    expect(new Set(texts).size).toBe(30);
    expect(existsSync(join(dir, 'lock'))).toBe(false);
  });

  it('reclaims a lock left by a dead process and times out on a live one', async () => {
    const dir = freshDir();
    const log = LogStore.open(dir, { lockTimeoutMs: 100 });
    writeFileSync(join(dir, 'lock'), '999999999\n'); // no such pid
    expect(await log.append(entry(0))).toBe(0);
    writeFileSync(join(dir, 'lock'), `${process.ppid}\n`); // alive
    await expect(log.append(entry(1))).rejects.toMatchObject({ code: 'LOG_LOCKED' });
    unlinkSync(join(dir, 'lock'));
    expect(await log.append(entry(1))).toBe(1);
    const release = await acquireLock(join(dir, 'other.lock'), 0);
    release();
  });
});

// PKCS#11-only behaviour of the executor workers. How the event loop waits for their replies
// (reply-watch.ts): a lone call's reply is polled for, turn by turn, while a core is left for the
// event loop; when every core has a busy worker the event loop sleeps; so does it once most
// recent replies came later than its poll window. Every answer is checked against software ECDH,
// so the waiting never changes a result.
// And the workers' scheduling weight (threads/thread-priority.js), read back from /proc.

import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { p256 } from '@noble/curves/nist.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { KeyRef } from '../../src/hsm/driver.js';
import { Pkcs11Driver, type Pkcs11DriverOptions } from '../../src/hsm/pkcs11/driver.js';
import type { ReplyWaitStats } from '../../src/hsm/pkcs11/reply-watch.js';
import { InvalidArgument } from '../../src/hsm/errors.js';
import { parseHsmUri, type Pkcs11Uri } from '../../src/hsm/uri.js';
import { reportMissingSoftHsm, softHsmUri, uniqueLabel } from '../support/backends.js';

reportMissingSoftHsm();

const cores = availableParallelism();

/** Nice values of this process's threads (Linux: field 19 of /proc/self/task/<tid>/stat). */
function threadNices(): number[] {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])];
    } catch {
      return []; // the thread ended between the listing and the read
    }
  });
}

describe.runIf(softHsmUri() !== undefined)('reply waits on SoftHSM2', () => {
  const opened: Pkcs11Driver[] = [];
  let label: string;

  /** A driver on the shared test token, and one derive key on it (made once). */
  async function open(options: Pkcs11DriverOptions): Promise<{ driver: Pkcs11Driver; key: KeyRef }> {
    // Other test files load both cores meanwhile: a long borrow timeout, as in test/support/backends.ts.
    const driver = await Pkcs11Driver.open(parseHsmUri(softHsmUri()!) as Pkcs11Uri, { borrowTimeoutMs: 60_000, ...options });
    opened.push(driver);
    const key = await driver.findKey({ label });
    return { driver, key };
  }

  /** `count` ECDH calls, `concurrency` at a time; every answer checked against software. */
  async function ecdhCalls(driver: Pkcs11Driver, key: KeyRef, count: number, concurrency: number): Promise<void> {
    const K = await driver.publicKey(key);
    const peers = Array.from({ length: 8 }, () => p256.utils.randomSecretKey());
    const expected = peers.map((peer) => Buffer.from(p256.getSharedSecret(peer, K, true).subarray(1)));
    const publics = peers.map((peer) => p256.getPublicKey(peer, false));
    let next = 0;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++ % peers.length;
        expect(Buffer.from(await driver.ecdh(key, publics[i]!))).toEqual(expected[i]);
      }
    }));
  }

  /** What changed in the driver's reply waits while `fn` ran. */
  async function waitsDuring(driver: Pkcs11Driver, fn: () => Promise<void>): Promise<ReplyWaitStats> {
    const before = driver.replyWaits;
    await fn();
    const after = driver.replyWaits;
    return { polls: after.polls - before.polls, caught: after.caught - before.caught, missed: after.missed - before.missed, sleeps: after.sleeps - before.sleeps };
  }

  beforeAll(async () => {
    label = uniqueLabel('reply-waits');
    const driver = await Pkcs11Driver.open(parseHsmUri(softHsmUri()!) as Pkcs11Uri);
    await driver.generateKey({ label, type: 'ec-p256-derive' });
    await driver.close();
  });

  afterAll(async () => {
    const driver = opened[0];
    if (driver) await driver.destroyKey(await driver.findKey({ label })).catch(() => undefined);
    await Promise.all(opened.map((d) => d.close()));
  });

  it(cores > 1 ? 'polls for a lone call and catches its reply' : 'never polls on one core (the worker needs it)', async () => {
    // A generous window: the point is the choice, not this machine's speed under the other suites.
    const { driver, key } = await open({ replyPollMicros: 50_000 });
    await ecdhCalls(driver, key, 1, 1); // the key's handle and session copies are in place
    const waits = await waitsDuring(driver, () => ecdhCalls(driver, key, 100, 1));
    // A reply can beat its wait when other suites deschedule this process: that call needs none.
    if (cores > 1) {
      expect(waits.polls).toBeGreaterThanOrEqual(50);
      expect(waits.caught).toBeGreaterThanOrEqual(waits.polls - 5);
      expect(waits.sleeps).toBeLessThanOrEqual(5);
    } else {
      expect(waits.polls).toBe(0);
      expect(waits.sleeps).toBeGreaterThanOrEqual(50);
    }
  });

  it('sleeps instead of polling while every core has a busy worker', async () => {
    const { driver, key } = await open({ replyPollMicros: 50_000, poolSize: cores });
    await ecdhCalls(driver, key, 1, 1);
    const rounds = 5;
    const waits = await waitsDuring(driver, async () => {
      for (let round = 0; round < rounds; round++) await ecdhCalls(driver, key, 64, 64);
    });
    // A round polls only while fewer workers than cores are busy: at its start (the first request
    // goes out alone) and at its tail. Measured: 16-26 polls and 31-34 sleeps for these 320 calls;
    // without the rule, 199 polls and no sleep.
    expect(waits.polls).toBeLessThanOrEqual(40);
    expect(waits.sleeps).toBeGreaterThanOrEqual(20);
  });

  it('stops polling once most recent replies came later than the window', async () => {
    // A 1 µs window ends before any token reply: every poll misses, and every reply counts as slow.
    const { driver, key } = await open({ replyPollMicros: 1 });
    await ecdhCalls(driver, key, 1, 1); // the first of the 8 polls a new pool makes
    const waits = await waitsDuring(driver, () => ecdhCalls(driver, key, 40, 1));
    if (cores > 1) {
      // 16 optimistic votes to start with: the 8th slow reply ends the majority (7 polls here, as
      // measured). When other suites deschedule this process, a reply can be in before its wait
      // begins: it votes without a poll, so fewer polls, never more; and it needs no sleep.
      expect(waits.polls).toBeGreaterThanOrEqual(4);
      expect(waits.polls).toBeLessThanOrEqual(7);
      expect(waits.caught + waits.missed).toBe(waits.polls);
    } else {
      expect(waits.polls).toBe(0);
    }
    expect(waits.sleeps).toBeGreaterThanOrEqual(25); // the waits that did not poll slept
  });

  it('never polls with replyPollMicros 0', async () => {
    const { driver, key } = await open({ replyPollMicros: 0 });
    const waits = await waitsDuring(driver, () => ecdhCalls(driver, key, 50, 1));
    expect(waits.polls).toBe(0);
    expect(waits.sleeps).toBeGreaterThanOrEqual(25);
  });

  it.runIf(process.platform === 'linux')('runs its workers at the configured nice value, and refuses one out of range', async () => {
    const count = (nice: number) => threadNices().filter((n) => n === nice).length;
    const before = count(7);
    const { driver } = await open({ workerNice: 7, poolSize: 2 });
    // Each worker lowers its own priority as its script starts, which may be after open() returns.
    await vi.waitFor(() => expect(count(7) - before).toBe(2), { timeout: 10_000 });
    await driver.close();
    expect(count(7)).toBe(before); // the workers are gone with the driver
    await expect(open({ workerNice: 20 })).rejects.toBeInstanceOf(InvalidArgument);
    await expect(open({ workerNice: -1 })).rejects.toThrow('workerNice must be an integer from 0 to 19, got -1');
    await expect(open({ replyPollMicros: Number.NaN })).rejects.toBeInstanceOf(InvalidArgument);
    await expect(open({ replyPollMicros: -1 })).rejects.toThrow('replyPollMicros must be a number of microseconds >= 0, got -1');
  });
});


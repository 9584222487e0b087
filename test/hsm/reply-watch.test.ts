// The event loop's choice between polling for a worker's reply and sleeping: the miss backoff.

import { describe, expect, it } from 'vitest';
import { ReplyWatch } from '../../src/hsm/pkcs11/reply-watch.js';

/** The mayPoll answers for the next n waits. */
function next(watch: ReplyWatch, n: number): boolean[] {
  return Array.from({ length: n }, () => watch.mayPoll());
}

describe('ReplyWatch', () => {
  it('never polls with a zero window', () => {
    const watch = new ReplyWatch(0);
    expect(next(watch, 5)).toEqual([false, false, false, false, false]);
    expect(watch.stats.polls).toBe(0);
  });

  it('polls every time while polls catch their reply', () => {
    const watch = new ReplyWatch(500);
    expect(watch.windowMs).toBe(0.5);
    for (let i = 0; i < 10; i++) {
      expect(watch.mayPoll()).toBe(true);
      watch.caught();
    }
    expect(watch.stats).toEqual({ polls: 10, caught: 10, missed: 0, sleeps: 0 });
  });

  it('sleeps for 1, 2, 4 … 64 waits after consecutive misses, and a catch restores polling', () => {
    const watch = new ReplyWatch(500);
    /** Waits that slept before each poll; every poll then misses. */
    const skips: number[] = [];
    for (let poll = 0; poll < 10; poll++) {
      let skipped = 0;
      while (!watch.mayPoll()) skipped++;
      skips.push(skipped);
      watch.missed();
    }
    expect(skips).toEqual([0, 1, 2, 4, 8, 16, 32, 64, 64, 64]);
    expect(watch.stats).toMatchObject({ polls: 10, missed: 10, caught: 0 });

    while (!watch.mayPoll()) { /* the last miss's 64 sleeps */ }
    watch.caught();
    expect(watch.mayPoll()).toBe(true); // polling again at once
    watch.missed();
    expect(next(watch, 2)).toEqual([false, true]); // and the penalty starts over at 1
  });
});

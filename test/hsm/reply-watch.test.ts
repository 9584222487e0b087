// The event loop's choice between polling for a worker's reply and sleeping: poll while most of
// the last 16 lone calls were answered within the poll window.

import { describe, expect, it } from 'vitest';
import { ReplyWatch } from '../../src/hsm/pkcs11/reply-watch.js';

describe('ReplyWatch', () => {
  it('never polls with a zero window', () => {
    const watch = new ReplyWatch(0);
    for (let i = 0; i < 5; i++) {
      expect(watch.mayPoll()).toBe(false);
      watch.answered(0.01);
    }
    expect(watch.stats.polls).toBe(0);
  });

  it('keeps polling through a rare slow reply', () => {
    const watch = new ReplyWatch(500);
    expect(watch.windowMs).toBe(0.5);
    for (let i = 0; i < 50; i++) {
      expect(watch.mayPoll()).toBe(true);
      if (i % 10 === 5) {
        watch.missed();
        watch.slept();
        watch.answered(3); // a stall: answered after 3 ms
      } else {
        watch.caught();
        watch.answered(0.1);
      }
    }
    expect(watch.stats).toEqual({ polls: 50, caught: 45, missed: 5, sleeps: 5 });
  });

  it('sleeps on a token slower than the window, and polls again once it answers within it', () => {
    const watch = new ReplyWatch(500);
    let polls = 0;
    for (let i = 0; i < 40; i++) {
      if (watch.mayPoll()) {
        polls++;
        watch.missed();
      }
      watch.slept();
      watch.answered(2); // 2 ms per reply: every poll would miss
    }
    expect(polls).toBe(8); // until 8 of the last 16 replies were slow
    expect(watch.mayPoll()).toBe(false);
    // Replies timed while asleep still count: the token speeds up, polling resumes.
    let sleptBeforePolling = 0;
    while (!watch.mayPoll()) {
      sleptBeforePolling++;
      watch.answered(0.1);
    }
    expect(sleptBeforePolling).toBe(9);
    expect(watch.stats.polls).toBe(9);
  });
});

// The rule both waiting sides use to choose between a bounded busy wait and sleeping: busy wait
// while most of the last 16 waits ended within the window.

import { describe, expect, it } from 'vitest';
import { WaitHistory } from '../../src/threads/wait-history.js';

describe('WaitHistory', () => {
  it('busy waits from the start, until most of the last 16 waits ran past the window', () => {
    const history = new WaitHistory();
    const answers: boolean[] = [];
    for (let i = 0; i < 10; i++) {
      answers.push(history.worthBusyWaiting());
      history.record(false);
    }
    // 16 optimistic votes at first: the 8th slow wait leaves 8 of 16, no longer a majority.
    expect(answers).toEqual([true, true, true, true, true, true, true, true, false, false]);
  });

  it('shrugs off a rare stall', () => {
    const history = new WaitHistory();
    for (let i = 0; i < 200; i++) {
      history.record(i % 10 !== 0); // one slow wait in ten
      expect(history.worthBusyWaiting()).toBe(true);
    }
  });

  it('stops busy waiting on a slow peer, and starts again once it has been fast for a while', () => {
    const history = new WaitHistory();
    for (let i = 0; i < 16; i++) history.record(false);
    expect(history.worthBusyWaiting()).toBe(false);
    const fastWaitsToResume = (() => {
      for (let n = 1; n <= 16; n++) {
        history.record(true);
        if (history.worthBusyWaiting()) return n;
      }
      return -1;
    })();
    expect(fastWaitsToResume).toBe(9); // 9 of the last 16
  });

  it('forgets waits older than the last 16', () => {
    const history = new WaitHistory();
    for (let i = 0; i < 100; i++) history.record(false);
    for (let i = 0; i < 16; i++) history.record(true);
    for (let i = 0; i < 7; i++) history.record(false);
    expect(history.worthBusyWaiting()).toBe(true); // 9 fast of the last 16; the 100 slow are gone
    history.record(false);
    expect(history.worthBusyWaiting()).toBe(false);
  });
});

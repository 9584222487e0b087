// How the event loop learns that a worker has answered. Asleep in Atomics.waitAsync, a worker's
// notify must wake the event-loop thread, and on our KVM guests a thread that slept longer than
// ~50 µs takes 40-50 µs to wake: a bare shared-memory ping-pong around 137 µs of work (one
// SoftHSM2 ECDH) reached only 0.72-0.74x of the same work inline. Polling the reply counter once
// per event-loop turn (setImmediate) instead reached 0.94-0.98x: the loop keeps turning, so timers
// and I/O run as usual, but its thread never sleeps and sees the reply within a turn.
//
// Polling spends the event loop's core while it waits, so the pool polls only for a lone call
// (fewer busy workers than cores, so no worker loses its core to it), only for a bounded window,
// and only while most of the last 16 lone calls were answered within that window
// (threads/wait-history.js): a slow token (a network HSM, key generation) gets sleeps, a rare
// stall on a fast one does not stop the polling.

import { WaitHistory } from '../../threads/wait-history.js';

/** How the pool has waited for replies so far (for tests and diagnostics). */
export interface ReplyWaitStats {
  /** Polls started. */
  readonly polls: number;
  /** Polls that saw the reply within their window. */
  readonly caught: number;
  /** Polls whose window ended first (the pool then sleeps for that reply). */
  readonly missed: number;
  /** Waits in Atomics.waitAsync (no poll, or after a poll that stopped). */
  readonly sleeps: number;
}

export class ReplyWatch {
  private readonly history = new WaitHistory();
  private readonly counts = { polls: 0, caught: 0, missed: 0, sleeps: 0 };
  readonly windowMs: number;

  /** @param pollMicros how long one poll lasts before the pool sleeps (0: never poll). */
  constructor(pollMicros: number) {
    this.windowMs = pollMicros / 1000;
  }

  get stats(): ReplyWaitStats {
    return { ...this.counts };
  }

  /** Whether to poll for the reply now (counted as a poll). */
  mayPoll(): boolean {
    if (this.windowMs <= 0 || !this.history.worthBusyWaiting()) return false;
    this.counts.polls++;
    return true;
  }

  /** A lone call was answered `ms` after it went out, polled for or not. */
  answered(ms: number): void {
    this.history.record(ms <= this.windowMs);
  }

  /** A poll saw the reply. */
  caught(): void {
    this.counts.caught++;
  }

  /** A poll's window ended with no reply. */
  missed(): void {
    this.counts.missed++;
  }

  /** The pool went to sleep in Atomics.waitAsync. */
  slept(): void {
    this.counts.sleeps++;
  }
}

// Whether a bounded busy wait is paying off, judged on the last 16 waits. Both waiting sides use
// it: a worker's spin for the next request (doorbell-wait.js) and the event loop's poll for a
// worker's reply (hsm/pkcs11/reply-watch.ts). Plain JavaScript with no imports.
//
// A side busy waits while most of its last 16 waits ended within the busy-wait window, and sleeps
// otherwise; a wait it slept through is still timed, so a token or caller that speeds up again is
// noticed. A rare stall (a garbage collection, a preempted vCPU) moves this majority by one vote.
// It replaces a backoff that skipped the next 1, 2, 4 … 64 busy waits after each miss: measured
// with one caller on SoftHSM2 ECDH, that backoff fed on itself. An event loop asleep after a miss
// answered so late that the worker's spin missed too, and that worker's wake-up made the next poll
// miss. 8-40% of calls then took the slow path, 100-150 µs slower each, from under 1% of stalls.

const SIZE = 16;
const MASK = (1 << SIZE) - 1;

/** Set bits of a 32-bit integer. */
function popcount(x) {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

export class WaitHistory {
  /** One bit per recent wait, newest lowest: 1 when it ended within the window. */
  #bits = MASK; // a new waiter busy waits until its waits say otherwise

  /** Records how one wait went: whether it ended within the busy-wait window. */
  record(within) {
    this.#bits = ((this.#bits << 1) | (within ? 1 : 0)) & MASK;
  }

  /** Whether most of the last 16 waits ended within the window. */
  worthBusyWaiting() {
    return popcount(this.#bits) * 2 > SIZE;
  }
}

// The backoff both waiting sides share after a bounded busy wait that caught nothing: a worker's
// spin for the next request (doorbell-wait.js) and the event loop's poll for a reply
// (hsm/pkcs11/reply-watch.ts). A miss makes the waiter skip the next 1, 2, 4 … 64 chances to busy
// wait, and a hit restores it: a caller in a tight loop keeps the fast path, while bursty traffic
// or a slow token stops burning a core after every call. Plain JavaScript with no imports.

const MAX_MISS_PENALTY = 64;

export class MissBackoff {
  /** Chances still to skip, and how many the next miss makes the waiter skip. */
  #skip = 0;
  #penalty = 1;

  /** Whether to busy wait this time; a no uses up one skipped chance. */
  tryNow() {
    if (this.#skip > 0) {
      this.#skip--;
      return false;
    }
    return true;
  }

  /** The busy wait caught what it waited for. */
  hit() {
    this.#penalty = 1;
  }

  /** The busy wait ended with nothing: skip the next few chances, twice as many each miss. */
  miss() {
    this.#skip = this.#penalty;
    this.#penalty = Math.min(MAX_MISS_PENALTY, this.#penalty * 2);
  }
}

// How a worker thread that serves requests rung in on a doorbell word waits for the next one
// (the token executor's workers, hsm/pkcs11/executor-worker.js, and OPAQUE's software ECDH
// threads, opaque/dh-worker.js). Plain JavaScript with no imports, below both layers.
//
// After work the worker may spin briefly on the doorbell before it sleeps in Atomics.wait: a lone
// caller's next request usually arrives within that window, which saves a futex wake on both
// sides. A spin that catches nothing makes the worker skip the next 1, 2, 4 … 64 chances to spin,
// and one that catches a request restores it: a caller in a tight loop keeps the spin, while
// bursty traffic stops burning up to spinMicros of a shared core after every burst.

const MAX_MISS_PENALTY = 64;

/**
 * @param {Int32Array} control the shared control words
 * @param {number} doorbell index of the doorbell word in `control`
 * @param {number} spinMicros how long a spin lasts (0: never spin)
 * @returns {(seen: number, spin: boolean) => void} waits until the doorbell has moved past `seen`
 *   (it may also return early: after a spin, or spuriously), spinning first when `spin` is set
 */
export function doorbellWaiter(control, doorbell, spinMicros) {
  /** Chances to spin still to skip, and how many the next miss makes us skip. */
  let skipSpins = 0;
  let missPenalty = 1;
  return function waitPast(seen, spin) {
    if (spin && spinMicros > 0) {
      if (skipSpins > 0) {
        skipSpins--;
      } else {
        const until = performance.now() + spinMicros / 1000;
        while (Atomics.load(control, doorbell) === seen && performance.now() < until) { /* spin */ }
        if (Atomics.load(control, doorbell) !== seen) {
          missPenalty = 1;
        } else {
          skipSpins = missPenalty;
          missPenalty = Math.min(MAX_MISS_PENALTY, missPenalty * 2);
        }
        return; // the caller looks for work again before it sleeps
      }
    }
    Atomics.wait(control, doorbell, seen);
  };
}

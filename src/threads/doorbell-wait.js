// How a worker thread that serves requests rung in on a doorbell word waits for the next one
// (the token executor's workers, hsm/pkcs11/executor-worker.js, and OPAQUE's software ECDH
// threads, opaque/dh-worker.js). Plain JavaScript importing only plain JavaScript, below both layers.
//
// After work the worker may spin briefly on the doorbell before it sleeps in Atomics.wait: a lone
// caller's next request usually arrives within that window, which saves a futex wake on both
// sides. Spins that catch nothing back off (miss-backoff.js), so bursty traffic stops burning up
// to spinMicros of a shared core after every burst.

import { MissBackoff } from './miss-backoff.js';

/**
 * @param {Int32Array} control the shared control words
 * @param {number} doorbell index of the doorbell word in `control`
 * @param {number} spinMicros how long a spin lasts (0: never spin)
 * @returns {(seen: number, spin: boolean) => void} waits until the doorbell has moved past `seen`
 *   (it may also return early: after a spin, or spuriously), spinning first when `spin` is set
 */
export function doorbellWaiter(control, doorbell, spinMicros) {
  const backoff = new MissBackoff();
  return function waitPast(seen, spin) {
    if (spin && spinMicros > 0 && backoff.tryNow()) {
      const until = performance.now() + spinMicros / 1000;
      while (Atomics.load(control, doorbell) === seen && performance.now() < until) { /* spin */ }
      if (Atomics.load(control, doorbell) !== seen) backoff.hit();
      else backoff.miss();
      return; // the caller looks for work again before it sleeps
    }
    Atomics.wait(control, doorbell, seen);
  };
}

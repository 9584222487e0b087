// How a worker thread that serves requests rung in on a doorbell word waits for the next one
// (the token executor's workers, hsm/pkcs11/executor-worker.js, and OPAQUE's software ECDH
// threads, opaque/dh-worker.js). Plain JavaScript importing only plain JavaScript, below both layers.
//
// After a lone caller's request the worker may spin briefly on the doorbell before it sleeps in
// Atomics.wait: that caller's next request usually arrives within the window, which saves a futex
// wake on both sides. It spins only while most recent waits ended within the window
// (wait-history.js), so bursty or spaced-out traffic does not burn a core after every request.

import { WaitHistory } from './wait-history.js';

/**
 * @param {Int32Array} control the shared control words
 * @param {number} doorbell index of the doorbell word in `control`
 * @param {number} spinMicros how long a spin lasts (0: never spin)
 * @returns {(seen: number, spin: boolean) => void} waits until the doorbell has moved past `seen`
 *   (it may also return spuriously); `spin` says the last request came from a lone caller, whose
 *   next one may be worth spinning for
 */
export function doorbellWaiter(control, doorbell, spinMicros) {
  const history = new WaitHistory();
  const windowMs = spinMicros / 1000;
  return function waitPast(seen, spin) {
    if (!spin || spinMicros <= 0) {
      Atomics.wait(control, doorbell, seen);
      return;
    }
    const start = performance.now();
    if (history.worthBusyWaiting()) {
      const until = start + windowMs;
      while (Atomics.load(control, doorbell) === seen && performance.now() < until) { /* spin */ }
      if (Atomics.load(control, doorbell) !== seen) {
        history.record(true);
        return;
      }
    }
    Atomics.wait(control, doorbell, seen);
    history.record(performance.now() - start <= windowMs); // slept: would a spin have caught it?
  };
}

// Scheduling weight of the token executor's worker threads (hsm/pkcs11/executor-worker.js).
// Plain JavaScript with no imports but node:os, below the layers that start threads.
//
// Why: the event loop wakes a sleeping worker with Atomics.notify (a futex wake). Linux may put
// the woken thread on the waker's own CPU and let it preempt the waker; the event loop then stands
// still until the worker's call is done. Measured on our 2-core KVM guests (kernel 6.18, SoftHSM2
// ECDH, lone calls with gaps between them so the worker slept): at nice 0, 5-29% of wake-ups held
// the event loop for over 100 µs (up to 865 µs); at nice 10, 0-3 of 400. A lower weight makes the
// woken worker wait for, or move to, the other CPU instead. Under saturation the workers lose
// nothing measurable: the event loop needs little CPU there (13 µs per ECDH) and they get the rest.
// OPAQUE's software ECDH threads (opaque/dh-worker.js) keep the process's priority: they are woken
// mostly while logins are already in flight, and at nice 10 saturated SoftHSM2 logins were ~7%
// slower in three alternating runs.

import { getPriority, setPriority } from 'node:os';

/**
 * Lowers the calling thread's scheduling priority to `nice`, never raising it (on Linux,
 * setpriority with pid 0 applies to the calling thread only). Where that is refused or
 * unsupported the thread keeps the process's priority, which is only slower, never wrong.
 * @param {number} nice 0 (leave it) to 19
 */
export function lowerThreadPriority(nice) {
  if (!(nice > 0)) return;
  try {
    const wanted = Math.min(19, Math.floor(nice));
    if (getPriority(0) < wanted) setPriority(0, wanted);
  } catch {
    /* keep the process's priority */
  }
}

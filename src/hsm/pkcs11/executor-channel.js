// Shared-memory request cells between the event-loop thread and one executor worker. Plain
// JavaScript with no project imports so a worker loads it under tsx, vitest and from dist/ alike.
//
// Layout of a worker's SharedArrayBuffer (little-endian Int32 words, then bytes):
//   control: [doorbell, stop]                       the pool bumps `doorbell` after each request
//   cell i:  [state, length, flags, seq] + bytes  one request, then its reply, in place
// The worker runs the REQUEST cell with the lowest seq first (requests keep their order).
// A cell goes FREE -> REQUEST (pool) -> RUNNING (worker) -> REPLY (worker) -> FREE (pool). The
// pool writes a request's bytes before it stores REQUEST, the worker its reply's before REPLY;
// Atomics.store/load order them. After each reply the worker bumps the pool-wide reply counter
// (its own SharedArrayBuffer), which the pool polls or waits on with Atomics.waitAsync.

/**
 * Requests queued per worker: it never idles between two of them, and under load it wakes the
 * pool once per several replies (see executor-worker.js). Measured saturated ECDH/ECDSA against
 * one caller's raw rate, alternating runs: depth 2 waking per reply 1.46x/1.28x, depth 4 waking
 * once per batch 1.55x/1.45x, depth 8 1.47-1.63x/1.40-1.68x.
 */
export const DEPTH = 8;
/** Largest encoded request or reply: 64 KiB of data plus 64 KiB of AAD (GCM) and framing. */
export const CELL_CAPACITY = 2 * 64 * 1024 + 4096;

export const FREE = 0;
export const REQUEST = 1;
export const RUNNING = 2;
export const REPLY = 3;

/** Request flags. */
export const FLAG_SPIN = 1; // nothing else waits: spin briefly for the next request
export const FLAG_FRESH_SESSION = 2; // the session is new: per-session key copies are void

const CONTROL_BYTES = 16;
const CELL_HEADER_BYTES = 16;
const CELL_BYTES = CELL_HEADER_BYTES + CELL_CAPACITY;

export const DOORBELL = 0;
export const STOP = 1;
export const STATE = 0;
export const LENGTH = 1;
export const FLAGS = 2;
export const SEQ = 3;

export function createChannelBuffer() {
  return new SharedArrayBuffer(CONTROL_BYTES + DEPTH * CELL_BYTES);
}

/** Views on a worker's channel: its control words and each cell's header and bytes. */
export function channelViews(buffer) {
  const control = new Int32Array(buffer, 0, CONTROL_BYTES / 4);
  const cells = [];
  for (let i = 0; i < DEPTH; i++) {
    const at = CONTROL_BYTES + i * CELL_BYTES;
    cells.push({ header: new Int32Array(buffer, at, CELL_HEADER_BYTES / 4), bytes: new Uint8Array(buffer, at + CELL_HEADER_BYTES, CELL_CAPACITY) });
  }
  return { control, cells };
}

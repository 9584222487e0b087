// Worker thread of SoftwareDhPool (dh-pool.ts): x-only P-256 ECDH with node:crypto, off the
// event-loop thread. Plain JavaScript importing only plain JavaScript, so it loads the same under
// tsx, vitest and from dist/.
//
// Its SharedArrayBuffer holds two control words [doorbell, stop] and CELLS request cells; each
// cell is a header [state, keyId, seq, status] and bytes: scalar (32) | peer (65) | x (32).
// A cell goes FREE -> REQUEST (pool) -> REPLY (worker) -> FREE (pool); the pool writes the bytes
// before it stores REQUEST, the worker the answer before REPLY. After each reply the worker bumps
// the pool-wide reply counter, which the pool waits on with Atomics.waitAsync.

import { workerData } from 'node:worker_threads';
import { createECDH } from 'node:crypto';
import { doorbellWaiter } from '../threads/doorbell-wait.js';

const { channel, replies: repliesBuffer, cells: CELLS, cellBytes: CELL_BYTES, spinMicros } = workerData;
const REQUEST = 1;
const REPLY = 2;
const control = new Int32Array(channel, 0, 2);
const replies = new Int32Array(repliesBuffer);
const cells = [];
for (let i = 0; i < CELLS; i++) {
  const at = 8 + i * CELL_BYTES;
  cells.push({ header: new Int32Array(channel, at, 4), bytes: new Uint8Array(channel, at + 16, CELL_BYTES - 16) });
}

/** ECDH objects by key id, most recent last: a login's key is used for two to four queries. */
const keys = new Map();
const MAX_KEYS = 64;

function keyFor(id, scalar) {
  let ecdh = keys.get(id);
  if (ecdh) return ecdh;
  ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(scalar);
  keys.set(id, ecdh);
  if (keys.size > MAX_KEYS) keys.delete(keys.keys().next().value);
  return ecdh;
}

function nextRequest() {
  let best = -1;
  for (let i = 0; i < cells.length; i++) {
    if (Atomics.load(cells[i].header, 0) !== REQUEST) continue;
    if (best < 0 || ((cells[i].header[2] - cells[best].header[2]) | 0) < 0) best = i;
  }
  return best;
}

function run(cell) {
  const { header, bytes } = cell;
  const scalar = bytes.subarray(0, 32);
  try {
    const x = keyFor(header[1], Buffer.from(scalar)).computeSecret(bytes.subarray(32, 97));
    bytes.set(x, 97);
    header[3] = 0;
  } catch {
    header[3] = 1; // the pool reports it; a validated point never gets here
  }
  scalar.fill(0);
  Atomics.store(header, 0, REPLY);
  Atomics.add(replies, 0, 1);
  Atomics.notify(replies, 0);
}

// After a reply, spin briefly for the next request (a login's queries come in pairs and bursts).
const waitPast = doorbellWaiter(control, 0, spinMicros);
let ran = false;
for (;;) {
  const seen = Atomics.load(control, 0);
  if (Atomics.load(control, 1) !== 0) break;
  const next = nextRequest();
  if (next >= 0) {
    run(cells[next]);
    ran = true;
    continue;
  }
  waitPast(seen, ran);
  ran = false;
}
keys.clear();

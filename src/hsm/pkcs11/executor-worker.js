// Worker thread that runs slow PKCS#11 calls synchronously, off the event-loop thread.
// Plain JavaScript importing only plain JavaScript, so it runs the same under tsx, vitest and dist/.
//
// Requests arrive in shared-memory cells (executor-channel.js), encoded by executor-codec.js; the
// pool bumps a doorbell word after each one, so this loop sleeps in Atomics.wait and wakes in
// microseconds. After finishing work it may spin briefly on the doorbell before sleeping, while
// such spins mostly catch the next request (threads/doorbell-wait.js). The pool asks for the spin
// only when no other request is waiting: under load it would steal CPU from the event-loop thread
// that feeds the workers.
// Each worker owns one session and runs one request at a time on it.

import { workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { CallFailed, createOps } from './executor-ops.js';
import { decodeValue, encodeValue } from './executor-codec.js';
import { doorbellWaiter } from '../../threads/doorbell-wait.js';
import { lowerThreadPriority } from '../../threads/thread-priority.js';
import { DOORBELL, FLAGS, FLAG_FRESH_SESSION, FLAG_SPIN, LENGTH, REPLY, REQUEST, RUNNING, SEQ, STATE, STOP, channelViews } from './executor-channel.js';

const require = createRequire(import.meta.url);
const pkcs11js = require('pkcs11js');
const { channel, replies: repliesBuffer, modulePath, spinMicros, nice, opsOptions } = workerData;
lowerThreadPriority(nice); // so that waking this thread never stalls the event loop (thread-priority.js)
const { control, cells } = channelViews(channel);
const replies = new Int32Array(repliesBuffer);

const pkcs11 = new pkcs11js.PKCS11();
// The main thread initialized the module; this instance shares the process-wide library state
// (dlopen returns the same handle) and never calls C_Initialize or C_Finalize.
pkcs11.load(modulePath);
const ops = createOps(pkcs11, opsOptions);

/** The REQUEST cell that came first, or -1. */
function nextRequest() {
  let best = -1;
  for (let i = 0; i < cells.length; i++) {
    if (Atomics.load(cells[i].header, STATE) !== REQUEST) continue;
    if (best < 0 || ((cells[i].header[SEQ] - cells[best].header[SEQ]) | 0) < 0) best = i;
  }
  return best;
}

function queuedRequests() {
  let n = 0;
  for (const cell of cells) if (Atomics.load(cell.header, STATE) === REQUEST) n++;
  return n;
}

function failure(err) {
  const f = err instanceof CallFailed ? err : new CallFailed('executor', err);
  return { ok: false, fn: f.fn, rv: f.rv, message: f.message, tainted: f.tainted };
}

function run(cell) {
  const { header, bytes } = cell;
  Atomics.store(header, STATE, RUNNING);
  const flags = header[FLAGS];
  if ((flags & FLAG_FRESH_SESSION) !== 0) ops.forgetCopies();
  let reply;
  try {
    const request = decodeValue(bytes, header[LENGTH]);
    const op = ops[request.op];
    if (typeof op !== 'function') throw new CallFailed('executor', new Error(`unknown op ${request.op}`));
    reply = { ok: true, value: op(request.params) };
  } catch (err) {
    reply = failure(err);
  }
  let length;
  try {
    length = encodeValue(reply, bytes);
  } catch (err) {
    length = encodeValue(failure(err), bytes);
  }
  header[LENGTH] = length;
  Atomics.store(header, STATE, REPLY);
  Atomics.add(replies, 0, 1);
  // Waking the event-loop thread costs this thread tens of µs on our VMs (a futex wake and an
  // interrupt to the other CPU). While two or more requests still wait here, the pool is not short
  // of work for this worker: the wake-up comes with a later reply, which the pool then collects
  // together with this one. The last request but one always wakes it, so it refills in time.
  if (queuedRequests() <= 1) Atomics.notify(replies, 0);
  return (flags & FLAG_SPIN) !== 0;
}

const waitPast = doorbellWaiter(control, DOORBELL, spinMicros);
let spin = false;
for (;;) {
  const seen = Atomics.load(control, DOORBELL);
  if (Atomics.load(control, STOP) !== 0) break;
  const next = nextRequest();
  if (next >= 0) {
    spin = run(cells[next]);
    continue;
  }
  waitPast(seen, spin);
  spin = false;
}
try { pkcs11.close(); } catch { /* dlclose of a shared handle */ }

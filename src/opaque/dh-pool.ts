// Software x-only ECDH off the event-loop thread (server side; Node only).
//
// A server login multiplies six times in software (s_u·B, dh1 and dh3, two x-only queries each;
// full-point.ts), ~180 µs each with node:crypto here: over 1 ms of the event loop per login, which
// is then busy while the token's workers wait for it, and which one core caps however many cores
// the machine has. This pool runs those queries in worker threads. Requests and answers go
// through shared memory (as the token executor's do), so a query costs a few µs more than inline,
// and the pool's threads sleep in Atomics.wait when there is nothing to do.
//
// `SoftwareDhPool.shared()` is the process-wide pool softwareKey() uses while more than one login
// is in progress (full-point.ts says why), and for a lone login's dh1 and dh3 when the key
// operations run on the event loop themselves (OpaqueServer). HSM_VAULT_DH_THREADS sets its size (0
// turns it off: every query runs inline). Its threads keep the process alive only while a query
// is in flight; if one fails, its queries are retried inline, a warning says so, and the pool is
// not used again.

import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InconsistentKeyOperation } from './errors.js';

const CELLS = 8;
/** Header (4 Int32) + scalar 32 + peer 65 + x 32, rounded up to 8 bytes. */
const CELL_BYTES = 16 + 136;
const FREE = 0;
const REQUEST = 1;
const REPLY = 2;
const SPIN_MICROS = 100;

interface Job {
  readonly keyId: number;
  readonly scalar: Uint8Array;
  readonly peer: Uint8Array;
  readonly resolve: (x: Uint8Array) => void;
  readonly reject: (err: unknown) => void;
}

interface Thread {
  readonly worker: Worker;
  readonly control: Int32Array;
  readonly cells: ReadonlyArray<{ readonly header: Int32Array; readonly bytes: Uint8Array }>;
  readonly jobs: (Job | undefined)[];
  inFlight: number;
  seq: number;
}

/** One thread per core beside the event loop's, at most 4: measured on 2 cores, 1 and 2 threads did alike. */
function defaultSize(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

export class SoftwareDhPool {
  private static instance: SoftwareDhPool | null | undefined;
  private readonly threads: Thread[] = [];
  private readonly queue: Job[] = [];
  private readonly replies = new Int32Array(new SharedArrayBuffer(4));
  private inFlight = 0;
  private answeredCount = 0;
  private waiting = false;
  private broken = false;

  /** The process-wide pool, or undefined when HSM_VAULT_DH_THREADS=0 or it could not start. */
  static shared(): SoftwareDhPool | undefined {
    if (SoftwareDhPool.instance === undefined) {
      const configured = process.env.HSM_VAULT_DH_THREADS;
      const size = configured === undefined || configured === '' ? defaultSize() : Number(configured);
      if (!Number.isInteger(size) || size < 0 || size > 64) throw new RangeError('HSM_VAULT_DH_THREADS must be an integer 0..64');
      SoftwareDhPool.instance = size === 0 ? null : new SoftwareDhPool(size);
    }
    const pool = SoftwareDhPool.instance;
    return pool && !pool.broken ? pool : undefined;
  }

  constructor(size: number) {
    const url = new URL('./dh-worker.js', import.meta.url);
    if (!existsSync(fileURLToPath(url))) throw new Error(`software ECDH worker script missing at ${fileURLToPath(url)}`);
    for (let i = 0; i < size; i++) {
      const channel = new SharedArrayBuffer(8 + CELLS * CELL_BYTES);
      const worker = new Worker(url, { workerData: { channel, replies: this.replies.buffer, cells: CELLS, cellBytes: CELL_BYTES, spinMicros: SPIN_MICROS }, argv: [] });
      worker.unref();
      const cells = Array.from({ length: CELLS }, (_, c) => {
        const at = 8 + c * CELL_BYTES;
        return { header: new Int32Array(channel, at, 4), bytes: new Uint8Array(channel, at + 16, CELL_BYTES - 16) };
      });
      const thread: Thread = { worker, control: new Int32Array(channel, 0, 2), cells, jobs: cells.map(() => undefined), inFlight: 0, seq: 0 };
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', () => this.fail(new Error('software ECDH thread exited')));
      this.threads.push(thread);
    }
  }

  /** x(k·P) for the 32-byte scalar k (named by keyId: the worker keeps its ECDH object) and a 65-byte P. */
  dh(keyId: number, scalar: Uint8Array, peer: Uint8Array): Promise<Uint8Array> {
    if (this.broken) return Promise.reject(new PoolUnavailable());
    if (scalar.length !== 32 || peer.length !== 65) return Promise.reject(new RangeError('software ECDH takes a 32-byte scalar and a 65-byte point'));
    return new Promise((resolve, reject) => {
      this.queue.push({ keyId, scalar, peer, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    this.dispatch();
    this.waitForReplies();
  }

  /** Moves queued queries into free cells, least busy thread first. */
  private dispatch(): void {
    while (this.queue.length > 0 && !this.broken) {
      let best: Thread | undefined;
      for (const t of this.threads) if (t.inFlight < CELLS && (!best || t.inFlight < best.inFlight)) best = t;
      if (!best) break;
      const job = this.queue.shift()!;
      const index = best.jobs.findIndex((j) => j === undefined);
      const cell = best.cells[index]!;
      cell.bytes.set(job.scalar, 0);
      cell.bytes.set(job.peer, 32);
      cell.header[1] = job.keyId;
      cell.header[2] = ++best.seq;
      best.jobs[index] = job;
      if (best.inFlight++ === 0) best.worker.ref(); // an awaited query keeps the process alive
      this.inFlight++;
      Atomics.store(cell.header, 0, REQUEST);
      Atomics.add(best.control, 0, 1);
      Atomics.notify(best.control, 0);
    }
  }

  /** Settles every query whose answer is in; returns how many. */
  private collect(): number {
    let settled = 0;
    for (const t of this.threads) {
      if (t.inFlight === 0) continue;
      for (let i = 0; i < t.cells.length; i++) {
        const cell = t.cells[i]!;
        if (Atomics.load(cell.header, 0) !== REPLY) continue;
        const job = t.jobs[i]!;
        const ok = cell.header[3] === 0;
        const x = cell.bytes.slice(97, 129);
        t.jobs[i] = undefined;
        if (--t.inFlight === 0) t.worker.unref();
        this.inFlight--;
        Atomics.store(cell.header, 0, FREE);
        settled++;
        this.answeredCount++;
        if (ok) job.resolve(x);
        else job.reject(new InconsistentKeyOperation('software ECDH refused the point'));
      }
    }
    return settled;
  }

  private waitForReplies(): void {
    if (this.waiting || this.inFlight === 0) return;
    // Read the counter before looking: a reply after this read changes it, and waitAsync then
    // returns at once instead of missing it.
    const seen = Atomics.load(this.replies, 0);
    if (this.collect() > 0) this.dispatch();
    if (this.inFlight === 0) return;
    this.waiting = true;
    const woken = (): void => {
      this.waiting = false;
      if (this.broken) return;
      this.collect();
      this.pump();
    };
    const wait = Atomics.waitAsync(this.replies, 0, seen);
    if (wait.async) void wait.value.then(woken);
    else setImmediate(woken);
  }

  get size(): number {
    return this.threads.length;
  }

  /** Queries the threads have answered so far. */
  get answered(): number {
    return this.answeredCount;
  }

  /** Stops the threads; queries in flight or queued fail with PoolUnavailable (callers then run them inline). */
  async close(): Promise<void> {
    this.fail(undefined);
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }

  /** A thread failed: its queries and everything queued run inline instead, and so does all later work. */
  private fail(cause: unknown): void {
    if (this.broken) return;
    this.broken = true;
    if (cause !== undefined) {
      process.emitWarning(`software ECDH threads stopped (${cause instanceof Error ? cause.message : String(cause)}); OPAQUE runs them on the event loop from now on`, 'HsmVaultWarning');
    }
    const jobs = [...this.queue.splice(0), ...this.threads.flatMap((t) => t.jobs.filter((j): j is Job => j !== undefined))];
    for (const t of this.threads) {
      t.jobs.fill(undefined);
      t.worker.unref();
      Atomics.store(t.control, 1, 1);
      Atomics.add(t.control, 0, 1);
      Atomics.notify(t.control, 0);
    }
    for (const job of jobs) job.reject(new PoolUnavailable());
  }
}

/** The pool failed under this query: the caller runs it inline. */
export class PoolUnavailable extends Error {
  override readonly name = 'PoolUnavailable';
}

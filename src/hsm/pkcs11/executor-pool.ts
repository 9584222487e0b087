// A bounded pool of operation sessions, each owned by one worker thread that runs slow PKCS#11
// calls synchronously (executor-worker.js). Measured on this machine kind (SoftHSM2, 2 cores):
// pkcs11js's own async calls (libuv pool) reach 0.76x of a raw call for ECDH with one caller and
// 1.25x saturated, while workers with a spin-then-sleep doorbell reach ~0.87x and ~1.5x, so the
// driver uses workers. A worker runs one request at a time on its own session; the pool keeps at
// most `depth` requests queued per worker so it never idles between two of them.

import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DriverClosed, TokenUnavailable } from '../errors.js';

export type SessionHandle = Buffer;

/** A call that failed inside a worker: the PKCS#11 function and return value, and on which slot. */
export class ExecutorCallError extends Error {
  constructor(
    readonly fn: string,
    readonly rv: number,
    message: string,
    readonly slot: number,
    /** The session may still hold an active operation and must be replaced. */
    readonly tainted: boolean,
  ) {
    super(message);
  }
}

export interface ExecutorPoolOptions {
  readonly modulePath: string;
  readonly size: number;
  readonly spinMicros: number;
  /** Workers run operations on per-session copies of keys (profile quirk sessionKeyCopies). */
  readonly copyKeys: boolean;
  /** How long a request may wait for a free session before TokenUnavailable. */
  readonly borrowTimeoutMs: number;
  readonly openSession: () => SessionHandle;
  readonly closeSession: (session: SessionHandle) => void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

interface Slot {
  readonly index: number;
  readonly worker: Worker;
  readonly port: MessagePort;
  readonly doorbell: Int32Array;
  session: SessionHandle | null;
  /** The session was reported dead; replace it once the slot has drained. */
  stale: boolean;
  /** The session is new since the worker's last request (its per-session key copies are void). */
  freshSession: boolean;
  inFlight: number;
  readonly pending: Map<number, Pending>;
  exited: boolean;
}

interface Job {
  readonly op: string;
  readonly build: (session: SessionHandle) => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
  readonly deadline: number;
}

const DEPTH = 2;

interface WorkerReply {
  readonly id: number;
  readonly ok: boolean;
  readonly value?: unknown;
  readonly fn?: string;
  readonly rv?: number;
  readonly message?: string;
  readonly tainted?: boolean;
}

function workerUrl(): URL {
  // Under tsx/vitest this module is src/.../executor-pool.ts beside executor-worker.js; after
  // `npm run build` both are in dist/ (tsc copies .js sources with allowJs).
  const url = new URL('./executor-worker.js', import.meta.url);
  if (!existsSync(fileURLToPath(url))) throw new TokenUnavailable(`executor worker script missing at ${fileURLToPath(url)}`);
  return url;
}

export class ExecutorPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ExecutorPoolOptions) {}

  get size(): number {
    return this.slots.length;
  }

  start(): void {
    const url = workerUrl();
    for (let index = 0; index < this.options.size; index++) {
      const { port1, port2 } = new MessageChannel();
      const doorbell = new Int32Array(new SharedArrayBuffer(4));
      const worker = new Worker(url, {
        workerData: { port: port2, doorbell: doorbell.buffer, modulePath: this.options.modulePath, spinMicros: this.options.spinMicros, copyKeys: this.options.copyKeys },
        transferList: [port2],
        // Workers inherit the loader flags (tsx) but must not inherit test-runner argv.
        argv: [],
      });
      worker.unref();
      port1.unref();
      const slot: Slot = { index, worker, port: port1, doorbell, session: null, stale: true, freshSession: true, inFlight: 0, pending: new Map(), exited: false };
      port1.on('message', (m: WorkerReply) => this.settle(slot, m));
      worker.on('error', (err) => this.failSlot(slot, err));
      worker.on('exit', () => {
        slot.exited = true;
        this.failSlot(slot, new TokenUnavailable('executor worker exited'));
      });
      this.slots.push(slot);
    }
  }

  /** Runs `op` in a worker with a session from the pool. Rejects with ExecutorCallError on a PKCS#11 failure. */
  run<T>(op: string, build: (session: SessionHandle) => unknown): Promise<T> {
    if (this.closed) return Promise.reject(new DriverClosed());
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, build, resolve: resolve as (v: unknown) => void, reject, deadline: performance.now() + this.options.borrowTimeoutMs });
      this.pump();
    });
  }

  /** Marks the slot's session dead: it is closed and reopened once the slot's requests settle. */
  markStale(slotIndex: number): void {
    const slot = this.slots[slotIndex];
    if (slot) slot.stale = true;
  }

  /** Marks every session dead (after C_CloseAllSessions, a logout seen by the driver, or to drop key copies). */
  markAllStale(): void {
    for (const slot of this.slots) slot.stale = true;
  }

  get inFlight(): number {
    return this.slots.reduce((n, s) => n + s.inFlight, 0) + this.queue.length;
  }

  /** Stops accepting work, waits for in-flight calls, stops the workers, closes their sessions. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new DriverClosed());
    while (this.slots.some((s) => s.inFlight > 0 && !s.exited)) await new Promise((r) => setTimeout(r, 2));
    if (this.timer) clearTimeout(this.timer);
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.exited) return;
        const exited = new Promise<void>((r) => slot.worker.once('exit', () => r()));
        slot.worker.ref(); // keep the process alive until the worker has really stopped
        slot.port.postMessage({ op: 'stop' });
        this.ring(slot);
        await exited;
      }),
    );
    for (const slot of this.slots) {
      slot.port.close();
      if (slot.session) {
        try { this.options.closeSession(slot.session); } catch { /* already gone */ }
        slot.session = null;
      }
    }
  }

  private ring(slot: Slot): void {
    Atomics.add(slot.doorbell, 0, 1);
    Atomics.notify(slot.doorbell, 0);
  }

  private pump(): void {
    const now = performance.now();
    while (this.queue.length > 0) {
      const job = this.queue[0]!;
      if (job.deadline < now) {
        this.queue.shift();
        job.reject(new TokenUnavailable(`no token session became free within ${this.options.borrowTimeoutMs} ms`));
        continue;
      }
      const slot = this.pickSlot();
      if (!slot) break;
      this.queue.shift();
      this.dispatch(slot, job);
    }
    this.armTimer();
  }

  private pickSlot(): Slot | undefined {
    let best: Slot | undefined;
    for (const slot of this.slots) {
      if (slot.exited || slot.inFlight >= DEPTH) continue;
      if (slot.stale && !this.renew(slot)) continue;
      if (!best || slot.inFlight < best.inFlight) best = slot;
    }
    return best;
  }

  /** Replaces a stale session; only when nothing runs on it (closing a busy session can crash). */
  private renew(slot: Slot): boolean {
    if (slot.inFlight > 0) return false;
    if (slot.session) {
      try { this.options.closeSession(slot.session); } catch { /* already invalid */ }
      slot.session = null;
    }
    try {
      slot.session = this.options.openSession();
      slot.stale = false;
      slot.freshSession = true;
      return true;
    } catch {
      return false;
    }
  }

  private dispatch(slot: Slot, job: Job): void {
    const id = this.nextId++;
    let params: unknown;
    try {
      params = job.build(slot.session!);
    } catch (err) {
      job.reject(err);
      return;
    }
    slot.inFlight++;
    if (slot.inFlight === 1) {
      slot.worker.ref();
      slot.port.ref();
    }
    slot.pending.set(id, { resolve: job.resolve, reject: job.reject });
    // Spin for the next request only when nothing else is waiting: under load the event-loop
    // thread needs the CPU more than the worker needs a fast wake-up.
    slot.port.postMessage({ id, op: job.op, params, spin: this.queue.length === 0, freshSession: slot.freshSession });
    slot.freshSession = false;
    this.ring(slot);
  }

  private settle(slot: Slot, m: WorkerReply): void {
    const pending = slot.pending.get(m.id);
    if (!pending) return;
    slot.pending.delete(m.id);
    this.release(slot);
    if (m.ok) pending.resolve(m.value);
    else {
      if (m.tainted) slot.stale = true;
      pending.reject(new ExecutorCallError(m.fn ?? 'unknown', m.rv ?? -1, m.message ?? '', slot.index, m.tainted === true));
    }
    this.pump();
  }

  private release(slot: Slot): void {
    slot.inFlight--;
    if (slot.inFlight === 0) {
      slot.worker.unref();
      slot.port.unref();
    }
  }

  private failSlot(slot: Slot, err: unknown): void {
    for (const [id, pending] of slot.pending) {
      slot.pending.delete(id);
      this.release(slot);
      pending.reject(err instanceof TokenUnavailable ? err : new TokenUnavailable('executor worker failed', undefined, { cause: err }));
    }
    slot.stale = true;
    if (!this.closed) this.pump();
  }

  /** Wakes the queue when the oldest waiting request would time out and no completion arrives. */
  private armTimer(): void {
    const head = this.queue[0];
    if (!head) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    if (this.timer) return; // it re-pumps and re-arms for the new head when it fires
    const delay = Math.max(1, head.deadline - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, delay);
    this.timer.unref();
  }
}

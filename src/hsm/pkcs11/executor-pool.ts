// A bounded pool of operation sessions, each owned by one worker thread that runs slow PKCS#11
// calls synchronously (executor-worker.js). Measured on this machine kind (SoftHSM2, 2 cores):
// pkcs11js's own async calls (libuv pool) reach 0.76x of a raw call for ECDH with one caller and
// 1.25x saturated, so the driver uses workers. What a worker round trip costs here is the message
// and the two cross-thread wake-ups, not the work: structured clone through a MessagePort took
// ~45 µs per round trip, a wake-up of a sleeping thread tens of µs more. So requests and replies
// go through shared-memory cells (executor-channel.js, executor-codec.js), the worker spins
// briefly for a lone caller's next request, and every worker bumps one reply counter. For a lone
// call the event loop polls that counter once per turn, since a sleeping event-loop thread takes
// 40-50 µs to wake here, while lone calls are mostly answered within its poll window; with every
// core's worker busy it sleeps in Atomics.waitAsync, so it takes no CPU from them (reply-watch.ts).
// Workers run at a lower priority so that waking one never preempts the event loop
// (threads/thread-priority.js).
// A worker runs one request at a time on its own session; the pool keeps at most DEPTH requests
// queued per worker so it never idles between two of them.

import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DriverClosed, TokenUnavailable } from '../errors.js';
import { decodeValue, encodeValue } from './executor-codec.js';
import { ReplyWatch, type ReplyWaitStats } from './reply-watch.js';
import {
  DEPTH, DOORBELL, FLAGS, FLAG_FRESH_SESSION, FLAG_SPIN, FREE, LENGTH, REPLY, REQUEST, SEQ, STATE, STOP, channelViews, createChannelBuffer,
} from './executor-channel.js';

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
  /** How long a worker spins for a lone caller's next request before it sleeps. */
  readonly spinMicros: number;
  /**
   * How long the event loop polls, turn by turn, for a lone call's reply before it sleeps (µs;
   * 0: never poll). See ReplyWatch.
   */
  readonly replyPollMicros: number;
  /** Cores this process may use: the event loop polls only while a core is left for it. */
  readonly cores: number;
  /** Nice value of the worker threads (threads/thread-priority.js); 0 keeps the process's. */
  readonly workerNice: number;
  /** Passed to createOps in each worker: call shapes and the sessionKeyCopies quirk. */
  readonly opsOptions: unknown;
  /** How long a request may wait for a free session before TokenUnavailable. */
  readonly borrowTimeoutMs: number;
  readonly openSession: () => SessionHandle;
  readonly closeSession: (session: SessionHandle) => void;
}

interface Cell {
  readonly header: Int32Array;
  readonly bytes: Uint8Array;
}

interface Job {
  readonly op: string;
  readonly build: (session: SessionHandle) => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
  readonly deadline: number;
  /** When it went to a worker that had nothing else to do (its reply time then feeds ReplyWatch). */
  loneSince?: number;
}

interface Slot {
  readonly index: number;
  readonly worker: Worker;
  readonly control: Int32Array;
  readonly cells: readonly Cell[];
  /** The job whose request occupies each cell. */
  readonly jobs: (Job | undefined)[];
  session: SessionHandle | null;
  /** The session was reported dead; replace it once the slot has drained. */
  stale: boolean;
  /** The session is new since the worker's last request (its per-session key copies are void). */
  freshSession: boolean;
  inFlight: number;
  seq: number;
  exited: boolean;
}

interface WorkerReply {
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
  /** Bumped by every worker after each reply; the event loop waits on it (Atomics.waitAsync). */
  private readonly replies = new Int32Array(new SharedArrayBuffer(4));
  private inFlightTotal = 0;
  /** Workers with at least one request in flight. */
  private busySlots = 0;
  private readonly watch: ReplyWatch;
  /** quiesce() calls not yet resumed: while above 0, nothing is dispatched. */
  private holds = 0;
  private waiting = false;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ExecutorPoolOptions) {
    this.watch = new ReplyWatch(options.replyPollMicros);
  }

  get size(): number {
    return this.slots.length;
  }

  start(): void {
    const url = workerUrl();
    for (let index = 0; index < this.options.size; index++) {
      const channel = createChannelBuffer();
      const { control, cells } = channelViews(channel);
      const worker = new Worker(url, {
        workerData: { channel, replies: this.replies.buffer, modulePath: this.options.modulePath, spinMicros: this.options.spinMicros, nice: this.options.workerNice, opsOptions: this.options.opsOptions },
        // Workers inherit the loader flags (tsx) but must not inherit test-runner argv.
        argv: [],
      });
      worker.unref();
      const slot: Slot = { index, worker, control, cells, jobs: cells.map(() => undefined), session: null, stale: true, freshSession: true, inFlight: 0, seq: 0, exited: false };
      worker.on('error', (err) => this.failSlot(slot, err));
      worker.on('exit', () => this.failSlot(slot, new TokenUnavailable('executor worker exited')));
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

  /** How the event loop has waited for replies: polls, caught, missed, sleeps. */
  get replyWaits(): ReplyWaitStats {
    return this.watch.stats;
  }

  get inFlight(): number {
    return this.inFlightTotal + this.queue.length;
  }

  /**
   * Holds requests back (they queue) and resolves once no worker is inside a call; resume() lets
   * them go. For fault injection: closing a session while another thread is inside a call on it is
   * undefined behaviour in PKCS#11, and SoftHSM2 crashes on it (measured).
   */
  async quiesce(): Promise<void> {
    this.holds++;
    while (this.inFlightTotal > 0 && !this.closed) {
      await new Promise((r) => setTimeout(r, 1));
      if (this.collect() > 0) this.pump();
    }
  }

  resume(): void {
    if (this.holds > 0) this.holds--;
    this.pump();
  }

  /** Stops accepting work, waits for in-flight calls, stops the workers, closes their sessions. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new DriverClosed());
    while (this.slots.some((s) => s.inFlight > 0 && !s.exited)) {
      await new Promise((r) => setTimeout(r, 2));
      this.collect();
    }
    if (this.timer) clearTimeout(this.timer);
    Atomics.notify(this.replies, 0); // settles a pending waitAsync
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.exited) return;
        const exited = new Promise<void>((r) => slot.worker.once('exit', () => r()));
        slot.worker.ref(); // keep the process alive until the worker has really stopped
        Atomics.store(slot.control, STOP, 1);
        this.ring(slot);
        await exited;
      }),
    );
    for (const slot of this.slots) {
      if (slot.session) {
        try { this.options.closeSession(slot.session); } catch { /* already gone */ }
        slot.session = null;
      }
    }
  }

  private ring(slot: Slot): void {
    Atomics.add(slot.control, DOORBELL, 1);
    Atomics.notify(slot.control, DOORBELL);
  }

  private pump(): void {
    if (this.holds > 0) return;
    const now = performance.now();
    let dispatched = false;
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
      dispatched = this.dispatch(slot, job) || dispatched;
    }
    this.armTimer();
    if (dispatched) this.waitForReplies();
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

  private dispatch(slot: Slot, job: Job): boolean {
    const index = slot.cells.findIndex((c) => Atomics.load(c.header, STATE) === FREE);
    const cell = slot.cells[index];
    if (!cell) {
      job.reject(new TokenUnavailable('executor cell bookkeeping is inconsistent'));
      return false;
    }
    let length: number;
    try {
      length = encodeValue({ op: job.op, params: job.build(slot.session!) }, cell.bytes);
    } catch (err) {
      job.reject(err);
      return false;
    }
    if (slot.inFlight === 0) job.loneSince = performance.now();
    slot.inFlight++;
    this.inFlightTotal++;
    if (slot.inFlight === 1) {
      slot.worker.ref(); // an awaited token call keeps the process alive
      this.busySlots++;
    }
    slot.jobs[index] = job;
    // Spin for the next request only when nothing else is waiting: under load the event-loop
    // thread needs the CPU more than the worker needs a fast wake-up.
    cell.header[LENGTH] = length;
    cell.header[FLAGS] = (this.queue.length === 0 ? FLAG_SPIN : 0) | (slot.freshSession ? FLAG_FRESH_SESSION : 0);
    cell.header[SEQ] = ++slot.seq;
    slot.freshSession = false;
    Atomics.store(cell.header, STATE, REQUEST);
    this.ring(slot);
    return true;
  }

  /** Settles every request whose reply is in; returns how many. */
  private collect(): number {
    let settled = 0;
    for (const slot of this.slots) {
      if (slot.inFlight === 0) continue;
      for (let i = 0; i < slot.cells.length; i++) {
        const cell = slot.cells[i]!;
        if (Atomics.load(cell.header, STATE) !== REPLY) continue;
        const job = slot.jobs[i];
        let reply: WorkerReply;
        try {
          reply = decodeValue(cell.bytes, cell.header[LENGTH]!) as WorkerReply;
        } catch (err) {
          reply = { ok: false, fn: 'executor', rv: -1, message: (err as Error).message, tainted: true };
        }
        slot.jobs[i] = undefined;
        Atomics.store(cell.header, STATE, FREE);
        this.release(slot);
        settled++;
        if (!job) continue;
        if (job.loneSince !== undefined) this.watch.answered(performance.now() - job.loneSince);
        if (reply.ok) job.resolve(reply.value);
        else {
          if (reply.tainted) slot.stale = true;
          job.reject(new ExecutorCallError(reply.fn ?? 'unknown', reply.rv ?? -1, reply.message ?? '', slot.index, reply.tainted === true));
        }
      }
    }
    return settled;
  }

  /**
   * Waits (without blocking) for the next reply from any worker while requests are in flight: by
   * polling the reply counter once per event-loop turn while a core is left for it (ReplyWatch),
   * else asleep in Atomics.waitAsync until a worker's notify.
   */
  private waitForReplies(): void {
    if (this.waiting || this.closed || this.inFlightTotal === 0) return;
    // Read the counter before looking: a reply after this read changes it, and the wait then
    // ends at once instead of missing it.
    const seen = Atomics.load(this.replies, 0);
    if (this.collect() > 0) this.pump();
    if (this.waiting || this.inFlightTotal === 0) return; // pump may have armed a wait itself
    this.waiting = true;
    if (this.busySlots < this.options.cores && this.watch.mayPoll()) this.poll(seen, performance.now() + this.watch.windowMs);
    else this.sleep(seen);
  }

  private poll(seen: number, until: number): void {
    setImmediate(() => {
      if (this.closed) return;
      if (Atomics.load(this.replies, 0) !== seen) {
        this.watch.caught();
        this.woken();
      } else if (performance.now() >= until) {
        this.watch.missed();
        this.sleep(seen);
      } else if (this.busySlots >= this.options.cores) {
        this.sleep(seen); // the workers now need every core: stop polling, no penalty
      } else {
        this.poll(seen, until);
      }
    });
  }

  private sleep(seen: number): void {
    this.watch.slept();
    const wait = Atomics.waitAsync(this.replies, 0, seen);
    if (wait.async) void wait.value.then(this.woken);
    else setImmediate(this.woken);
  }

  private readonly woken = (): void => {
    this.waiting = false;
    if (this.closed) return;
    if (this.collect() > 0) this.pump();
    this.waitForReplies();
  };

  private release(slot: Slot): void {
    slot.inFlight--;
    this.inFlightTotal--;
    if (slot.inFlight === 0) {
      slot.worker.unref();
      this.busySlots--;
    }
  }

  /** A worker that failed or exited is never used again; its requests fail. */
  private failSlot(slot: Slot, err: unknown): void {
    slot.exited = true;
    for (let i = 0; i < slot.jobs.length; i++) {
      const job = slot.jobs[i];
      if (!job) continue;
      slot.jobs[i] = undefined;
      this.release(slot);
      job.reject(err instanceof TokenUnavailable ? err : new TokenUnavailable('executor worker failed', undefined, { cause: err }));
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

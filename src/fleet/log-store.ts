// A file-backed, append-only RFC 9162 Merkle log (the fleet's audit log): every validation
// bundle body and every evidence file is one entry.
//
// Directory layout:
//   <dir>/entries/<index, 16 decimal digits>   the entry bytes, one file each, never rewritten
//   <dir>/checkpoint                           the latest checkpoint note (log-signed, and
//                                              cosigned by the witness once it has signed it)
//   <dir>/lock                                 present while one process mutates the log; holds
//                                              the owner's pid so a dead owner's lock is reclaimed
// Every file is written to a temp name, fsynced, renamed into place, and the directory fsynced,
// so a crash leaves either the old state or the new one (a stray `*.tmp` is ignored).
//
// Opening reads every entry, recomputes the leaf hashes and, when a checkpoint is stored,
// recomputes the root at its size: a changed, missing or extra-numbered entry file is reported as
// LOG_CORRUPT rather than silently served.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { constantTimeEqual, encodeBase64 } from './bytes.js';
import { type Checkpoint, formatCheckpoint, parseCheckpoint } from './checkpoint.js';
import { consistencyProof, emptyRoot, inclusionProof, leafHash, treeHead } from './merkle.js';
import { type NoteSigner, type NoteVerifier, openNote, parseNote, signNote } from './signed-note.js';

export type LogStoreErrorCode = 'LOG_CORRUPT' | 'LOG_LOCKED' | 'LOG_INVALID_ARGUMENT';

export class LogStoreError extends Error {
  readonly code: LogStoreErrorCode;

  constructor(code: LogStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  override get name(): string {
    return 'LogStoreError';
  }
}

const ENTRY_NAME = /^[0-9]{16}$/;
const ENTRY_DIGITS = 16;

export interface LogStoreOptions {
  /** How long `append`/`checkpoint` wait for another process's lock, in ms (default 5000). */
  readonly lockTimeoutMs?: number;
}

export class LogStore {
  private leafHashes: Uint8Array[] = [];
  /** Serializes this process's mutations; the lock file serializes processes. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private readonly lockTimeoutMs: number,
  ) {}

  /** Opens (creating when absent) the log in `dir`; throws LOG_CORRUPT when it fails its checks. */
  static open(dir: string, options: LogStoreOptions = {}): LogStore {
    mkdirSync(join(dir, 'entries'), { recursive: true });
    const store = new LogStore(dir, options.lockTimeoutMs ?? 5000);
    store.reload();
    store.checkStoredCheckpoint();
    return store;
  }

  get size(): number {
    return this.leafHashes.length;
  }

  /** The leaf hash of entry `index` (no disk access). */
  leafHash(index: number): Uint8Array {
    this.checkIndex(index, this.size);
    return this.leafHashes[index] as Uint8Array;
  }

  /** The stored bytes of entry `index`, re-checked against the leaf hash read at open. */
  entry(index: number): Uint8Array {
    this.checkIndex(index, this.size);
    const bytes = new Uint8Array(readFileSync(this.entryPath(index)));
    if (!constantTimeEqual(leafHash(bytes), this.leafHashes[index] as Uint8Array)) {
      throw new LogStoreError('LOG_CORRUPT', `entry ${index} changed on disk since the log was opened`);
    }
    return bytes;
  }

  /** MTH of the first `size` entries (default: all). */
  root(size: number = this.size): Uint8Array {
    this.checkSize(size);
    return size === 0 ? emptyRoot() : treeHead(this.leafHashes, size);
  }

  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    this.checkSize(size);
    this.checkIndex(index, size);
    return inclusionProof(this.leafHashes, index, size);
  }

  /** PROOF(first, D[second]); from 0 or for equal sizes the proof is empty. */
  consistencyProof(first: number, second: number = this.size): Uint8Array[] {
    this.checkSize(second);
    if (!Number.isSafeInteger(first) || first < 0 || first > second) {
      throw new LogStoreError('LOG_INVALID_ARGUMENT', `first size ${first} must be in [0, ${second}]`);
    }
    if (first === 0) return [];
    return consistencyProof(this.leafHashes, first, second);
  }

  /** Appends one entry; returns its index. Safe against concurrent appenders in other processes. */
  append(bytes: Uint8Array): Promise<number> {
    return this.mutate(() => {
      const index = this.size;
      atomicWrite(this.dir, join('entries', entryName(index)), bytes);
      this.leafHashes.push(leafHash(bytes));
      return index;
    });
  }

  /**
   * Signs a checkpoint of the whole log with the log key (`signer`, whose name is conventionally
   * the origin) and stores it as the latest checkpoint. Returns the signed note.
   */
  checkpoint(origin: string, signer: NoteSigner, extensions: readonly string[] = []): Promise<string> {
    return this.mutate(async () => {
      const text = formatCheckpoint({ origin, size: this.size, rootHash: this.root(), extensions });
      const note = await signNote(text, [signer]);
      atomicWrite(this.dir, 'checkpoint', new TextEncoder().encode(note));
      return note;
    });
  }

  /**
   * Replaces the stored checkpoint with a cosigned copy of a checkpoint of this log (the witness's
   * answer). Refuses a note whose body is not a checkpoint of this log's current contents.
   */
  storeCheckpoint(note: string): Promise<void> {
    return this.mutate(() => {
      const checkpoint = parseCheckpoint(parseNote(note).text);
      this.checkAgainst(checkpoint, 'checkpoint to store');
      atomicWrite(this.dir, 'checkpoint', new TextEncoder().encode(note));
    });
  }

  /** The stored checkpoint note, or undefined before the first checkpoint. */
  latestCheckpoint(): string | undefined {
    const path = join(this.dir, 'checkpoint');
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  }

  /**
   * Full audit: re-reads every entry from disk, recomputes the root at the stored checkpoint's
   * size, and (when verifiers are given) checks the checkpoint's signatures. Returns the
   * checkpoint checked, if any.
   */
  verify(verifiers: readonly NoteVerifier[] = []): Checkpoint | undefined {
    this.reload();
    const checkpoint = this.checkStoredCheckpoint();
    if (checkpoint !== undefined && verifiers.length > 0) openNote(this.latestCheckpoint() as string, verifiers);
    return checkpoint;
  }

  // --- internals ---

  private entryPath(index: number): string {
    return join(this.dir, 'entries', entryName(index));
  }

  /** Reads the entries directory; entries must be numbered 0..n-1 with no gap. */
  private reload(): void {
    const names = readdirSync(join(this.dir, 'entries')).filter((n) => ENTRY_NAME.test(n)).sort();
    names.forEach((name, i) => {
      if (name !== entryName(i)) throw new LogStoreError('LOG_CORRUPT', `entry ${i} is missing (found ${name})`);
    });
    // Entries already hashed by this process are re-read too: a rewrite would otherwise hide.
    this.leafHashes = names.map((name) => leafHash(new Uint8Array(readFileSync(join(this.dir, 'entries', name)))));
  }

  /** Picks up entries appended by other processes (already-known ones are trusted as read). */
  private refresh(): void {
    for (let i = this.size; existsSync(this.entryPath(i)); i++) {
      this.leafHashes.push(leafHash(new Uint8Array(readFileSync(this.entryPath(i)))));
    }
  }

  private checkStoredCheckpoint(): Checkpoint | undefined {
    const note = this.latestCheckpoint();
    if (note === undefined) return undefined;
    let checkpoint: Checkpoint;
    try {
      checkpoint = parseCheckpoint(parseNote(note).text);
    } catch (cause) {
      throw new LogStoreError('LOG_CORRUPT', 'stored checkpoint does not parse', { cause });
    }
    this.checkAgainst(checkpoint, 'stored checkpoint');
    return checkpoint;
  }

  private checkAgainst(checkpoint: Checkpoint, what: string): void {
    if (checkpoint.size > this.size) {
      throw new LogStoreError('LOG_CORRUPT', `${what} has size ${checkpoint.size} but the log holds ${this.size} entries`);
    }
    if (!constantTimeEqual(this.root(checkpoint.size), checkpoint.rootHash)) {
      throw new LogStoreError(
        'LOG_CORRUPT',
        `${what} root ${encodeBase64(checkpoint.rootHash)} at size ${checkpoint.size} differs from the entries' root`,
      );
    }
  }

  private mutate<T>(body: () => T | Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      const release = await acquireLock(join(this.dir, 'lock'), this.lockTimeoutMs);
      try {
        this.refresh();
        return await body();
      } finally {
        release();
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private checkSize(size: number): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new LogStoreError('LOG_INVALID_ARGUMENT', `size ${size} is not in [0, ${this.size}]`);
    }
  }

  private checkIndex(index: number, size: number): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new LogStoreError('LOG_INVALID_ARGUMENT', `index ${index} is not below size ${size}`);
    }
  }
}

function entryName(index: number): string {
  return String(index).padStart(ENTRY_DIGITS, '0');
}

/** temp file + fsync + rename + directory fsync. `relative` is a path inside `dir`. */
export function atomicWrite(dir: string, relative: string, bytes: Uint8Array, mode = 0o644): void {
  const path = join(dir, relative);
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const parent = path.slice(0, path.lastIndexOf('/')) || '/';
  const dfd = openSync(parent, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/**
 * Takes an exclusive lock file (O_CREAT|O_EXCL holding our pid), waiting up to `timeoutMs`.
 * A lock whose pid is no longer alive is reclaimed. Returns the release function.
 */
export async function acquireLock(path: string, timeoutMs: number): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      return () => {
        try {
          unlinkSync(path);
        } catch {
          // already gone: nothing to release
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (lockOwnerIsDead(path)) {
      // Rename first so two reclaimers cannot both delete a fresh lock.
      try {
        const stale = `${path}.stale.${process.pid}`;
        renameSync(path, stale);
        unlinkSync(stale);
      } catch {
        // someone else reclaimed it
      }
      continue;
    }
    if (Date.now() >= deadline) throw new LogStoreError('LOG_LOCKED', `${path} is held by another process`);
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
  }
}

function lockOwnerIsDead(path: string): boolean {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
  } catch {
    return false;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

// Embedded store: one SQLite file, WAL, synchronous=FULL (a commit is fsync'd before put
// returns, so a crash never forgets a counted attempt). Several processes may share the file:
// every write is one statement inside BEGIN IMMEDIATE, and SQLite's file locks serialize them;
// a writer that cannot get the lock within the busy timeout fails closed (StoreUnavailable).
// better-sqlite3 is synchronous: calls block the event loop for the length of one small
// statement (plus an fsync on writes), which is the price of an embedded, dependency-free store.
// Writes are group-committed: the writes issued in one turn of the event loop run, in order, in
// one transaction, each still its own compare-and-swap, and each caller's promise settles only
// after that transaction's fsync. Under load one fsync then covers many counted attempts: a
// recovery writes twice, and one fsync per write ties a node to its disk's fsync rate and blocks
// the event loop once per write (this machine's disk does ~5k durable commits/s; many do far less).

import Database from 'better-sqlite3';
import { IncompatibleStore, StoreError, StoreUnavailable, VersionConflict } from './errors.js';
import { checkPut, checkUserId, checkVersion, copyBytes, type RecordStore, type StoreHealth, type StoredRecord } from './store.js';

/** "HSMV": marks the file as ours, so a vault never adopts some other application's database. */
const APPLICATION_ID = 0x48534d56;
/** Bump with a migration whenever the schema changes; older code refuses newer files. */
export const SQLITE_SCHEMA_VERSION = 1;

const SYNCHRONOUS_NAMES: Record<number, string> = { 0: 'OFF', 1: 'NORMAL', 2: 'FULL', 3: 'EXTRA' };

export interface SqliteStoreOptions {
  /** How long a write waits for another process's lock before failing closed. Default 2000 ms. */
  readonly busyTimeoutMs?: number;
}

type Write =
  | { readonly kind: 'put'; readonly userId: string; readonly value: Uint8Array; readonly expectedVersion: number | null }
  | { readonly kind: 'delete'; readonly userId: string; readonly expectedVersion: number };

interface QueuedWrite {
  readonly write: Write;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

interface RecordRow {
  version: number;
  value: Buffer;
}

export class SqliteStore implements RecordStore {
  private closed = false;
  private queued: QueuedWrite[] = [];
  private flushScheduled = false;
  private readonly select: Database.Statement<[string], RecordRow>;
  private readonly selectVersion: Database.Statement<[string], { version: number }>;
  private readonly insert: Database.Statement<[string, Uint8Array]>;
  private readonly update: Database.Statement<[Uint8Array, string, number]>;
  private readonly remove: Database.Statement<[string, number]>;

  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {
    this.select = db.prepare('SELECT version, value FROM records WHERE user_id = ?');
    this.selectVersion = db.prepare('SELECT version FROM records WHERE user_id = ?');
    // Compare-and-swap is the WHERE clause (or the primary key): one statement, no read first.
    this.insert = db.prepare('INSERT INTO records (user_id, version, value) VALUES (?, 1, ?) ON CONFLICT (user_id) DO NOTHING');
    this.update = db.prepare('UPDATE records SET version = version + 1, value = ? WHERE user_id = ? AND version = ?');
    this.remove = db.prepare('DELETE FROM records WHERE user_id = ? AND version = ?');
  }

  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { timeout: options.busyTimeoutMs ?? 2000 });
      // WAL lets readers proceed during a write and survives crashes with synchronous=FULL.
      // journal_mode is persistent in the file; setting it needs no write lock once it is WAL.
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      // Deleted records (a destroyed vault entry) are overwritten in the main file rather than
      // left in free pages. It narrows, not closes, rollback from old copies: see DESIGN.md.
      db.pragma('secure_delete = ON');
      migrate(db, path);
      return new SqliteStore(db, path);
    } catch (err) {
      db?.close();
      if (err instanceof StoreError) throw err;
      throw unavailable(err, `cannot open ${path}`);
    }
  }

  async get(userId: string): Promise<StoredRecord | null> {
    checkUserId(userId);
    return this.run('read', () => {
      const row = this.select.get(userId);
      return row ? { userId, version: row.version, value: copyBytes(row.value) } : null;
    });
  }

  async put(userId: string, value: Uint8Array, expectedVersion: number | null): Promise<StoredRecord> {
    const version = checkPut(userId, value, expectedVersion);
    const stored = copyBytes(value);
    await this.enqueue({ kind: 'put', userId, value: stored, expectedVersion });
    return { userId, version, value: copyBytes(stored) };
  }

  async delete(userId: string, expectedVersion: number): Promise<void> {
    checkUserId(userId);
    checkVersion(expectedVersion, 'expected version');
    await this.enqueue({ kind: 'delete', userId, expectedVersion });
  }

  private enqueue(write: Write): Promise<void> {
    if (this.closed) return Promise.reject(new StoreUnavailable('sqlite', 'store is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ write, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits every queued write in one IMMEDIATE transaction, then settles each caller. */
  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queued;
    this.queued = [];
    if (batch.length === 0) return;
    const conflicts: Array<VersionConflict | undefined> = [];
    try {
      if (this.closed) throw new StoreUnavailable('sqlite', 'store is closed');
      // IMMEDIATE takes the write lock first, so the version reported on a conflict is the one
      // that actually blocked a write, not a later one. A failed compare-and-swap changes nothing
      // and does not abort the others; any SQLite error fails the whole batch closed.
      this.db.transaction(() => {
        for (const { write } of batch) {
          const changes =
            write.kind === 'delete'
              ? this.remove.run(write.userId, write.expectedVersion).changes
              : write.expectedVersion === null
                ? this.insert.run(write.userId, write.value).changes
                : this.update.run(write.value, write.userId, write.expectedVersion).changes;
          conflicts.push(changes === 1 ? undefined : new VersionConflict(write.userId, write.expectedVersion, this.currentVersion(write.userId)));
        }
      }).immediate();
    } catch (err) {
      const failure = err instanceof StoreError ? err : unavailable(err, `write failed on ${this.path}`);
      for (const queued of batch) queued.reject(failure);
      return;
    }
    batch.forEach((queued, i) => {
      const conflict = conflicts[i];
      if (conflict) queued.reject(conflict);
      else queued.resolve();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush(); // writes already issued are committed, not dropped
    this.closed = true;
    this.db.close();
  }

  async health(): Promise<StoreHealth> {
    try {
      // Reads the connection's real settings, so the report cannot drift from what is in force.
      const detail = this.run('read', () => {
        this.selectVersion.get('health-probe');
        const journal = this.db.pragma('journal_mode', { simple: true }) as string;
        const synchronous = SYNCHRONOUS_NAMES[this.db.pragma('synchronous', { simple: true }) as number] ?? 'unknown';
        return `sqlite ${this.path} (journal_mode=${journal}, synchronous=${synchronous}, schema ${SQLITE_SCHEMA_VERSION})`;
      });
      return { ok: true, detail };
    } catch (err) {
      return { ok: false, detail: err instanceof Error ? err.message : 'sqlite health check failed' };
    }
  }

  private currentVersion(userId: string): number | null {
    return this.selectVersion.get(userId)?.version ?? null;
  }

  /** Runs a database operation, turning every SQLite failure into a fail-closed StoreUnavailable. */
  private run<T>(what: 'read' | 'write', fn: () => T): T {
    if (this.closed) throw new StoreUnavailable('sqlite', 'store is closed');
    try {
      return fn();
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw unavailable(err, `${what} failed on ${this.path}`);
    }
  }
}

/** Creates the schema in a fresh file, accepts a current one, refuses anything else. */
function migrate(db: Database.Database, path: string): void {
  const setUp = db.transaction(() => {
    const applicationId = db.pragma('application_id', { simple: true }) as number;
    const schemaVersion = db.pragma('user_version', { simple: true }) as number;
    if (applicationId === 0 && schemaVersion === 0) {
      const tables = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get()!.n;
      if (tables !== 0) throw new IncompatibleStore(`${path} is a SQLite database of another application`);
      // STRICT: a value that is not a BLOB, or a version that is not an integer, is rejected by
      // SQLite itself rather than silently coerced.
      db.exec(`CREATE TABLE records (
        user_id TEXT PRIMARY KEY NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        value BLOB NOT NULL
      ) STRICT`);
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION}`);
      return;
    }
    if (applicationId !== APPLICATION_ID) throw new IncompatibleStore(`${path} is not an hsm-vault store (application_id ${applicationId})`);
    if (schemaVersion !== SQLITE_SCHEMA_VERSION) {
      throw new IncompatibleStore(`${path} has schema version ${schemaVersion}; this build reads version ${SQLITE_SCHEMA_VERSION}`);
    }
  });
  // IMMEDIATE: two processes opening a fresh file at once must not both create the schema.
  setUp.immediate();
}

function unavailable(err: unknown, message: string): StoreUnavailable {
  const code = typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
  // SQLite's own message (e.g. "database is locked") holds no record bytes; keep it for operators.
  const reason = err instanceof Error ? err.message : String(err);
  return new StoreUnavailable('sqlite', `${message}: ${code ? `${code}: ` : ''}${reason}`, { cause: err });
}

// What only the sqlite backend has: its file format (WAL, schema version, application id),
// refusing files it does not own, failing closed on a held lock, and two processes on one file.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IncompatibleStore, StoreUnavailable, VersionConflict } from '../../src/store/errors.js';
import { SQLITE_SCHEMA_VERSION, SqliteStore } from '../../src/store/sqlite.js';

/** Starts an incrementer child; resolves once it is ready, with a function that releases it. */
async function startIncrementer(script: string, path: string, count: number): Promise<{ go(): Promise<{ conflicts: number }> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, path, 'counter', String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`incrementer exited early (${code})`)));
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('ready\n')) resolve();
    });
  });
  child.removeAllListeners('exit');
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return {
    async go() {
      child.stdin.end('go\n');
      const code = await exited;
      if (code !== 0) throw new Error(`incrementer failed (${code})`);
      return JSON.parse(out.slice(out.indexOf('ready\n') + 6)) as { conflicts: number };
    },
  };
}
let dir: string;
let n = 0;
const freshPath = () => join(dir, `s${n++}.db`);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hsm-vault-sqlite-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sqlite store file', () => {
  it('is a WAL database marked as ours, with the records table and a schema version', async () => {
    const path = freshPath();
    const store = SqliteStore.open(path);
    await store.put('alice', new Uint8Array([1]), null);
    const health = await store.health();
    expect(health).toMatchObject({ ok: true });
    expect(health.detail).toContain('journal_mode=wal');
    expect(health.detail).toContain('synchronous=FULL');
    await store.close();

    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
      expect(db.pragma('application_id', { simple: true })).toBe(0x48534d56);
      const columns = db.prepare<[], { name: string; type: string; pk: number }>('PRAGMA table_info(records)').all();
      expect(columns.map((c) => [c.name, c.type, c.pk])).toEqual([
        ['user_id', 'TEXT', 1],
        ['version', 'INTEGER', 0],
        ['value', 'BLOB', 0],
      ]);
      expect(db.prepare('SELECT user_id, version FROM records').all()).toEqual([{ user_id: 'alice', version: 1 }]);
    } finally {
      db.close();
    }
  });

  it('refuses a database of another application', () => {
    const path = freshPath();
    const db = new Database(path);
    db.exec('CREATE TABLE things (x)');
    db.close();
    expect(() => SqliteStore.open(path)).toThrow(IncompatibleStore);
  });

  it('refuses a file that is not SQLite at all, failing closed', () => {
    const path = freshPath();
    writeFileSync(path, 'not a database, just some text that is long enough to look like a header');
    expect(() => SqliteStore.open(path)).toThrow(StoreUnavailable);
  });

  it('refuses a newer schema version rather than guessing', async () => {
    const path = freshPath();
    await SqliteStore.open(path).close();
    const db = new Database(path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => SqliteStore.open(path)).toThrow(/schema version 2/);
  });

  it('fails closed when the directory does not exist', () => {
    expect(() => SqliteStore.open(join(dir, 'missing', 'vault.db'))).toThrow(StoreUnavailable);
  });

  it('fails closed with StoreUnavailable when another process holds the write lock past the busy timeout', async () => {
    const path = freshPath();
    const store = SqliteStore.open(path, { busyTimeoutMs: 100 });
    await store.put('alice', new Uint8Array([1]), null);
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      const started = Date.now();
      await expect(store.put('alice', new Uint8Array([2]), 1)).rejects.toThrow(/SQLITE_BUSY/);
      expect(Date.now() - started).toBeLessThan(2000);
      // WAL: readers are not blocked by the writer.
      expect((await store.get('alice'))!.version).toBe(1);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(await store.put('alice', new Uint8Array([2]), 1)).toMatchObject({ version: 2 });
    await store.close();
  });

  it('serializes compare-and-swap between two processes on one file', async () => {
    const path = freshPath();
    await SqliteStore.open(path).close();
    const script = fileURLToPath(new URL('./sqlite-incrementer.ts', import.meta.url));
    const perProcess = 200;
    const children = await Promise.all([0, 1].map(() => startIncrementer(script, path, perProcess)));
    const conflicts = (await Promise.all(children.map((c) => c.go()))).map((r) => r.conflicts);
    const store = SqliteStore.open(path);
    const record = await store.get('counter');
    await store.close();
    expect(new DataView(record!.value.buffer).getUint32(0)).toBe(2 * perProcess);
    expect(record!.version).toBe(2 * perProcess);
    // The processes really raced (each saw the other's writes), yet no increment was lost.
    expect(conflicts[0]! + conflicts[1]!).toBeGreaterThan(0);
  });

  it('group-commits the writes of one turn: each its own compare-and-swap, in order, all durable', async () => {
    const path = freshPath();
    const store = SqliteStore.open(path);
    await store.put('bob', new Uint8Array([0]), null);
    // Issued together: 20 new users, three writes racing on bob at version 1, a delete of one
    // of the new users at version 1 after its creation (same batch, later in order).
    const writes = [
      ...Array.from({ length: 20 }, (_, i) => store.put(`user-${i}`, new Uint8Array([i]), null)),
      store.put('bob', new Uint8Array([1]), 1),
      store.put('bob', new Uint8Array([2]), 1),
      store.put('bob', new Uint8Array([3]), 1),
      store.delete('user-7', 1),
    ];
    const results = await Promise.allSettled(writes);
    expect(results.slice(0, 20).every((r) => r.status === 'fulfilled')).toBe(true);
    const bob = results.slice(20, 23);
    expect(bob[0]).toMatchObject({ status: 'fulfilled', value: { version: 2 } });
    for (const lost of bob.slice(1)) {
      expect(lost.status).toBe('rejected');
      const err = (lost as PromiseRejectedResult).reason as VersionConflict;
      expect(err).toBeInstanceOf(VersionConflict);
      expect(err.current).toBe(2);
    }
    expect(results[23]!.status).toBe('fulfilled');
    await store.close();
    // Another connection sees exactly that.
    const again = SqliteStore.open(path);
    expect(await again.get('bob')).toMatchObject({ version: 2, value: new Uint8Array([1]) });
    expect(await again.get('user-7')).toBeNull();
    expect((await again.get('user-19'))!.value).toEqual(new Uint8Array([19]));
    await again.close();
  });

  it('commits writes already issued when it closes, and refuses writes after', async () => {
    const path = freshPath();
    const store = SqliteStore.open(path);
    const pending = store.put('carol', new Uint8Array([9]), null);
    await store.close();
    await expect(pending).resolves.toMatchObject({ version: 1 });
    await expect(store.put('dave', new Uint8Array([1]), null)).rejects.toThrow(StoreUnavailable);
    const again = SqliteStore.open(path);
    expect((await again.get('carol'))!.version).toBe(1);
    await again.close();
  });

  it('fails a whole batch closed when the write lock is held, leaving nothing half-written', async () => {
    const path = freshPath();
    const store = SqliteStore.open(path, { busyTimeoutMs: 100 });
    await store.put('erin', new Uint8Array([1]), null);
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    let results: PromiseSettledResult<unknown>[];
    try {
      results = await Promise.allSettled([store.put('erin', new Uint8Array([2]), 1), store.put('frank', new Uint8Array([1]), null)]);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    for (const r of results) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailable);
    expect((await store.get('erin'))!.version).toBe(1);
    expect(await store.get('frank')).toBeNull();
    await store.close();
  });
});

// In-process store for tests and demos. Nothing survives the process. Each operation runs to
// completion without awaiting, so compare-and-swap is atomic on the single JS thread.

import { StoreUnavailable, VersionConflict } from './errors.js';
import { checkPut, checkUserId, checkVersion, copyBytes, type RecordStore, type StoreHealth, type StoredRecord } from './store.js';

export class MemoryStore implements RecordStore {
  private readonly records = new Map<string, { version: number; value: Uint8Array }>();
  private closed = false;

  async get(userId: string): Promise<StoredRecord | null> {
    checkUserId(userId);
    this.checkOpen();
    const record = this.records.get(userId);
    return record ? { userId, version: record.version, value: copyBytes(record.value) } : null;
  }

  async put(userId: string, value: Uint8Array, expectedVersion: number | null): Promise<StoredRecord> {
    const version = checkPut(userId, value, expectedVersion);
    this.checkOpen();
    const current = this.records.get(userId)?.version ?? null;
    if (current !== expectedVersion) throw new VersionConflict(userId, expectedVersion, current);
    const stored = copyBytes(value);
    this.records.set(userId, { version, value: stored });
    return { userId, version, value: copyBytes(stored) };
  }

  async delete(userId: string, expectedVersion: number): Promise<void> {
    checkUserId(userId);
    checkVersion(expectedVersion, 'expected version');
    this.checkOpen();
    const current = this.records.get(userId)?.version ?? null;
    if (current !== expectedVersion) throw new VersionConflict(userId, expectedVersion, current);
    this.records.delete(userId);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async health(): Promise<StoreHealth> {
    return this.closed ? { ok: false, detail: 'memory store closed' } : { ok: true, detail: `memory store, ${this.records.size} records (not persistent)` };
  }

  private checkOpen(): void {
    if (this.closed) throw new StoreUnavailable('memory', 'store is closed');
  }
}

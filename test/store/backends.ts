// The store backends the conformance suite runs on, with the same assertions: memory, sqlite on a
// temp file, and a 3-member etcd cluster on loopback (when the etcd binary is present).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { openStore } from '../../src/store/url.js';
import type { RecordStore } from '../../src/store/store.js';
import { EtcdCluster, etcdMissingReason } from '../support/etcd.js';

export interface StoreBackend {
  readonly name: 'memory' | 'sqlite' | 'etcd';
  /** Whether a reopened store sees what the closed one wrote. */
  readonly persistent: boolean;
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  /** A fresh, empty store URL (its own file or key prefix). */
  freshUrl(): string;
}

export const memoryBackend: StoreBackend = {
  name: 'memory',
  persistent: false,
  async setUp() {},
  async tearDown() {},
  freshUrl: () => 'memory:',
};

export function sqliteBackend(): StoreBackend {
  let dir: string | undefined;
  return {
    name: 'sqlite',
    persistent: true,
    async setUp() {
      dir = mkdtempSync(join(tmpdir(), 'hsm-vault-sqlite-'));
    },
    async tearDown() {
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
    freshUrl: () => `sqlite:${join(dir!, `${randomBytes(4).toString('hex')}.db`)}`,
  };
}

export function etcdBackend(): StoreBackend {
  let cluster: EtcdCluster | undefined;
  return {
    name: 'etcd',
    persistent: true,
    async setUp() {
      cluster = await EtcdCluster.start(3);
    },
    async tearDown() {
      await cluster?.stop();
    },
    freshUrl: () => cluster!.storeUrl(),
  };
}

/** memory and sqlite always; etcd when its binary is installed. */
export function storeBackends(): { backends: StoreBackend[]; etcdMissing: string | undefined } {
  const etcdMissing = etcdMissingReason();
  const backends = [memoryBackend, sqliteBackend()];
  if (!etcdMissing) backends.push(etcdBackend());
  return { backends, etcdMissing };
}

/** Opens a store and closes every store opened this way after the test. */
export class StoreTracker {
  private readonly open: RecordStore[] = [];

  async openStore(url: string): Promise<RecordStore> {
    const store = await openStore(url);
    this.open.push(store);
    return store;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((s) => s.close()));
  }
}

// Vault nodes as real processes for the cluster suites: `hsm-vault serve` spawned with
// `node --import tsx`, each on its own loopback port, all sharing one token (a `fake:?path=FILE` file or the run's SoftHSM2 token
// through SOFTHSM2_CONF) and one record store. Fleet keys are created once in the test process,
// whose driver is closed before any node opens the token. A reaper process kills every node when
// the test worker dies however it dies (same pattern as test/support/etcd.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import { Reaper } from './reaper.js';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { openHsm } from '../../src/hsm/open.js';
import { createFleetKeys, type FleetPublicKeys } from '../../src/fleet/keys.js';
import { softHsmUri } from './backends.js';
import { freePorts } from './ports.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type BackendName = 'fake' | 'softhsm2';

/** Backends for node subprocesses: the fake always, SoftHSM2 when global setup prepared a token. */
export function processBackends(): BackendName[] {
  return softHsmUri() ? ['fake', 'softhsm2'] : ['fake'];
}

/** The backend the heavier cluster suites run on: the real token when there is one. */
export function preferredBackend(): BackendName {
  return softHsmUri() ? 'softhsm2' : 'fake';
}

// ---- account service stand-in ---------------------------------------------------------------

export interface Account {
  readonly jwksPath: string;
  token(scope: 'register' | 'recover' | 'delete', user: string): Promise<string>;
}

export async function makeAccount(dir: string, fleetId: string): Promise<Account> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const jwksPath = join(dir, 'jwks.json');
  writeFileSync(jwksPath, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'acct-1', alg: 'EdDSA', use: 'sig' }] }));
  const key: CryptoKey = privateKey;
  return {
    jwksPath,
    token: (scope, user) =>
      new SignJWT({ scope, jti: randomBytes(8).toString('hex') })
        .setProtectedHeader({ alg: 'EdDSA', kid: 'acct-1' })
        .setSubject(user)
        .setAudience(fleetId)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(key),
  };
}

// ---- fleet keys in the shared token ------------------------------------------------------------

export interface SharedFleet {
  readonly backend: BackendName;
  readonly hsmUri: string;
  readonly fleetId: string;
  readonly keys: FleetPublicKeys;
}

/** Creates the fleet keys once, in this process, and closes the driver before nodes open the token. */
export async function prepareFleet(backend: BackendName, dir: string): Promise<SharedFleet> {
  const fleetId = `c${randomBytes(5).toString('hex')}`;
  let hsmUri: string;
  if (backend === 'fake') {
    hsmUri = `fake:?path=${encodeURIComponent(join(dir, 'fake-token.json'))}`;
  } else {
    const uri = softHsmUri();
    if (!uri) throw new Error('SoftHSM2 token not prepared by global setup');
    hsmUri = uri;
  }
  const driver = await openHsm(hsmUri, { onInsecure: () => {} });
  try {
    const set = await createFleetKeys(driver, fleetId);
    return { backend, hsmUri, fleetId, keys: set.publicKeys };
  } finally {
    await driver.close();
  }
}

// ---- node processes ------------------------------------------------------------------------------

export interface NodeOptions {
  readonly fleet: SharedFleet;
  readonly store: string;
  readonly jwksPath: string;
  /** Raise every rate limit out of the way (a guess storm on one user must reach the vault). */
  readonly unlimited?: boolean;
  /** Let 127.0.0.1 set X-Forwarded-For, so per-IP limits can be spread over fake client IPs. */
  readonly trustLoopbackProxy?: boolean;
}

export class VaultNode {
  private child: ChildProcess | undefined;
  private exit: Promise<void> = Promise.resolve();
  readonly logFile: string;

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly options: NodeOptions,
    private readonly dir: string,
    private readonly reaper: Reaper,
  ) {
    this.logFile = join(dir, `${name}.log`);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is running`);
    const { fleet, store, jwksPath } = this.options;
    const args = ['src/cli/main.ts', 'serve'];
    const log = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      cwd: ROOT,
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        HSM_VAULT_HSM: fleet.hsmUri,
        HSM_VAULT_STORE: store,
        HSM_VAULT_FLEET: fleet.fleetId,
        HSM_VAULT_LISTEN: `127.0.0.1:${this.port}`,
        HSM_VAULT_JWT_KEYS: jwksPath,
        HSM_VAULT_LOG_LEVEL: 'warn',
        ...(this.options.unlimited ? { HSM_VAULT_IP_LIMIT: '1000000/1000000', HSM_VAULT_USER_LIMIT: '1000000/1000000', HSM_VAULT_RECOVERY_LIMIT: '1000000/1000000' } : {}),
        HSM_VAULT_STATE_DIR: this.dir,
        ...(this.options.trustLoopbackProxy ? { HSM_VAULT_TRUST_PROXY: '127.0.0.1' } : {}),
      },
    });
    closeSync(log);
    this.child = child;
    this.exit = new Promise((resolve) => child.once('exit', () => resolve()));
    this.reaper.watch(child.pid!);
  }

  /** Polls /healthz until 200; fails early with the log tail if the process exits. */
  async waitReady(timeoutMs = 40_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (!this.running) throw new Error(`${this.name} exited before it was ready:\n${this.logTail()}`);
      try {
        const res = await fetch(`${this.baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`${this.name} not healthy after ${timeoutMs} ms:\n${this.logTail()}`);
  }

  /** A crash: SIGKILL, no draining, no close of the token or the store. */
  async kill9(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** Graceful stop (SIGTERM), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await this.signal('SIGTERM');
    clearTimeout(timer);
  }

  logTail(chars = 3000): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-chars);
    } catch {
      return '';
    }
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (this.running) child.kill(signal);
    await this.exit;
    this.reaper.forget(child.pid!);
    this.child = undefined;
  }
}

/** A set of nodes over one token and one store, with a temp dir and a reaper. */
export class NodeFleet {
  private constructor(
    readonly dir: string,
    readonly nodes: VaultNode[],
    private readonly reaper: Reaper,
  ) {}

  /** Starts `count` nodes in parallel and waits until every one answers /healthz 200. */
  static async start(count: number, options: NodeOptions, dir = mkdtempSync(join(tmpdir(), 'hsm-vault-nodes-'))): Promise<NodeFleet> {
    const reaper = new Reaper(dir);
    const ports = await freePorts(count);
    const fleet = new NodeFleet(dir, ports.map((port, i) => new VaultNode(`node${i}`, port, options, dir, reaper)), reaper);
    try {
      for (const node of fleet.nodes) node.start();
      await Promise.all(fleet.nodes.map((n) => n.waitReady()));
    } catch (err) {
      await fleet.close();
      throw err;
    }
    return fleet;
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill9()));
    this.reaper.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- HTTP helpers --------------------------------------------------------------------------------

/** fetch that presents a random client address through the trusted loopback proxy. */
export const spreadIpFetch: typeof fetch = (input, init) => {
  const headers = new Headers(init?.headers);
  headers.set('x-forwarded-for', `10.${randomBytes(1)[0]}.${randomBytes(1)[0]}.${1 + (randomBytes(1)[0]! % 250)}`);
  return fetch(input, { ...init, headers });
};

export async function postJson(url: string, token: string, body: unknown, fetchFn: typeof fetch = fetch): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetchFn(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { raw: text.slice(0, 200) };
  }
  return { status: res.status, body: parsed };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}


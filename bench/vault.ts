// Vault benchmark: full recoveries per second over HTTP on loopback (POST start + POST finish, the
// secret released and checked), p50/p99 latency and the node's event-loop lag, for the sqlite and
// the etcd store on a throw-away SoftHSM2 token, against the library-level OPAQUE login rate
// (generateKE2 + finish, client work precomputed, as bench/opaque.ts) measured in the same run on
// the same token and fleet keys, with the same concurrency. ratio = recoveries/s ÷ library logins/s.
//
// The node runs in this thread; the load generator runs in a worker thread, so the event-loop lag
// measured here is the node's own. Client work is IN the measured path (latency and rate): each
// recovery does the client's per-session work — KE2 parsing, 2 scalar multiplications (node:crypto)
// for the 3DH, transcript, MAC check, KE3, and decrypting the released secret. Values that are
// fixed for a reused KE1 (OPRF finalize, envelope recovery, the static-static DH) are computed once
// per user: the SDK's pure-JS client (@noble, ~0.1 s per login) would otherwise be the bottleneck.
// The server precomputes nothing: every recovery is a fresh KE2, counter commit, KE3 check, release.
// Each concurrency lane owns its users, so no user ever has two recoveries in flight.
// On Linux the report also splits the CPU one recovery and one library login cost by thread
// (bench/thread-cpu.ts): the node's event-loop thread, the token's worker threads, the OPAQUE
// server's software ECDH threads, the load generator, and the rest (libuv's pool, which runs WebCrypto — the node's JWT signature checks,
// the client's decryption of the released secret — and V8's GC threads). On a 2-core machine that
// split, not the token, bounds the ratio: the library login needs no HTTP, JWT, store or sealing.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomFill } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import Database from 'better-sqlite3';
import { SignJWT } from 'jose';
import { createFleetKeys, openFleetKeys } from '../src/fleet/keys.js';
import { findSoftHsmModule, initSoftHsmToken } from '../src/hsm/softhsm.js';
import { Pkcs11Driver } from '../src/hsm/pkcs11/driver.js';
import { parseHsmUri, type Pkcs11Uri } from '../src/hsm/uri.js';
import type { HsmDriver } from '../src/hsm/driver.js';
import { OpaqueClient, OpaqueServer, identityKsf } from '../src/opaque/index.js';
import { finalize } from '../src/opaque/oprf.js';
import { expand, extract, hash, mac } from '../src/opaque/kdf.js';
import { recover } from '../src/opaque/envelope.js';
import { deriveKeys } from '../src/opaque/key-schedule.js';
import { deserializeElementFast, fullDh, prepareFullDh, softwareKey } from '../src/opaque/full-point.js';
import { deserializeElement, serializeElement, type Point } from '../src/opaque/group.js';
import { concat, ctEqual, lengthPrefixed, utf8, xor } from '../src/opaque/bytes.js';
import { VaultClient } from '../src/client/vault-client.js';
import { openReleasedSecret } from '../src/client/secret-release.js';
import { createServer } from '../src/server/server.js';
import { openStore, parseStoreUrl } from '../src/store/url.js';
import { tokenServerKeys } from '../src/vault/token-server-keys.js';
import { Vault } from '../src/vault/vault.js';
import { SoftwareDhPool } from '../src/opaque/dh-pool.js';
import { serverLogin } from './opaque.js';
import { median, rate, saturated, type BenchOptions } from './measure.js';
import { freePorts } from '../test/support/ports.js';
import { cpuByGroup, currentThreadId, newThreads, threadCpu, threadCpuAvailable, type ThreadCpu } from './thread-cpu.js';

const FLEET = 'bench-fleet';
const PASSWORD = 'bench password';
const UNLIMITED = { perSecond: 1e9, burst: 1e9 };
const Nn = 32;
const Npk = 33;
const Nm = 32;

/** A software key reused across recoveries, readied once so that its full points come back affine. */
function preparedKey(scalar: bigint): ReturnType<typeof softwareKey> {
  const key = softwareKey(scalar);
  prepareFullDh([], [key.publicKey]);
  return key;
}

// ================================================================ main thread: node and report

interface Row {
  store: string;
  recoveries_s: number;
  p50_ms: number;
  p99_ms: number;
  library_logins_s: number;
  ratio: number;
  event_loop_lag_p99_ms: number;
  /** CPU ms per recovery and per library login by thread group (Linux only; medians of rounds). */
  cpu_ms_per_recovery?: CpuSplit;
  cpu_ms_per_library_login?: CpuSplit;
}

/** Where the CPU goes, per operation: this process's threads in four groups. */
interface CpuSplit {
  event_loop: number;
  token_workers: number;
  /** The OPAQUE server's software ECDH threads (src/opaque/dh-pool.ts). */
  software_dh: number;
  load_generator: number;
  /** libuv's pool (WebCrypto: the node's JWT checks, the client's secret decryption), V8's GC threads. */
  other: number;
}

const CPU_GROUPS = ['event_loop', 'token_workers', 'software_dh', 'load_generator', 'other'] as const;

/**
 * Raw durable commits per second of SQLite as the store opens it (WAL, synchronous=FULL), one
 * thread: a recovery commits twice (attempt counted before KE2, reset by KE3), synchronously on
 * the node's event loop, so this bounds the sqlite row on a slow disk.
 */
async function sqliteCommitRate(dir: string, seconds: number): Promise<number> {
  const db = new Database(join(dir, 'commit-floor.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB)');
    const put = db.prepare('INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)');
    const value = randomBytes(200);
    let k = 0;
    return await rate(seconds, undefined, () => put.run(k++ % 64, value));
  } finally {
    db.close();
  }
}

export async function benchVault(o: BenchOptions): Promise<void> {
  const seconds = argNumber('--seconds') ?? 3;
  const users = argNumber('--users') ?? o.concurrency * 2;
  const etcdMembers = argNumber('--etcd-members') ?? 1;
  const say = (line: string): void => void (o.json || process.stderr.write(`${line}\n`));
  const modulePath = findSoftHsmModule();
  if (!modulePath) {
    process.stderr.write('SoftHSM2 is not installed (apt-get install softhsm2): the vault bench needs it\n');
    process.exitCode = 1;
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-bench-vault-'));
  const pin = randomBytes(8).toString('hex');
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, pin, { mode: 0o600 });
  const token = initSoftHsmToken({ stateDir: dir, label: 'bench-vault', userPin: pin, soPin: randomBytes(8).toString('hex') });
  process.env.SOFTHSM2_CONF = token.configPath;
  // Start libuv's pool now, so that its threads are not taken for the driver's below.
  await new Promise((resolve) => randomFill(Buffer.alloc(1), resolve));
  const beforeDriver = threadCpu();
  const driver = await Pkcs11Driver.open(parseHsmUri(token.uri(pinFile)) as Pkcs11Uri);
  const tokenWorkers = newThreads(beforeDriver);
  const beforeDhPool = threadCpu();
  SoftwareDhPool.shared(); // started now, so that its threads are told apart
  const softwareDhThreads = newThreads(beforeDhPool);
  const rows: Row[] = [];
  let sqliteCommits = 0;
  let etcd: EtcdProcesses | undefined;
  try {
    await createFleetKeys(driver, FLEET);
    const library = await prepareLibraryLogin(driver);
    const commits: number[] = [];
    for (let round = 0; round < o.rounds; round++) commits.push(await sqliteCommitRate(dir, Math.min(1, seconds)));
    sqliteCommits = Math.round(median(commits));
    say(`sqlite raw commits (WAL, synchronous=FULL, one thread): ${sqliteCommits}/s`);
    const stores: Array<{ name: string; url: () => Promise<string> }> = [{ name: 'sqlite', url: async () => `sqlite:${join(dir, 'vault.db')}` }];
    const missing = etcdMissing();
    if (missing) say(`etcd row skipped: ${missing}`);
    else stores.push({ name: `etcd(${etcdMembers})`, url: async () => (etcd = await EtcdProcesses.start(etcdMembers, join(dir, 'etcd'))).storeUrl() });

    for (const { name, url } of stores) {
      let storeUrl: string;
      try {
        storeUrl = await url();
      } catch (err) {
        process.stderr.write(`${name} row skipped: ${err instanceof Error ? err.message : String(err)}\n`);
        continue;
      }
      say(`${name}: starting node, registering ${users} users`);
      rows.push(await benchStore(name, storeUrl, driver, { tokenWorkers, softwareDhThreads }, library, { ...o, seconds }, users, say));
      await etcd?.stop();
      etcd = undefined;
    }
  } finally {
    await etcd?.stop();
    await driver.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const note = `client work in the measured path (load generator in a worker thread; per-session client work per recovery, per-KE1 constants cached); library logins: saturated generateKE2+finish, client work precomputed; concurrency ${o.concurrency}, ${users} users, ${seconds} s x ${o.rounds} rounds, medians`;
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ rounds: o.rounds, seconds_per_run: seconds, concurrency: o.concurrency, users, client_work: 'in', note, sqlite_raw_commits_s: sqliteCommits, runs: rows }, null, 2)}\n`);
    return;
  }
  const table = [['store', 'recoveries/s', 'p50 ms', 'p99 ms', 'library logins/s', 'ratio', 'loop lag p99 ms'],
    ...rows.map((r) => [r.store, String(r.recoveries_s), String(r.p50_ms), String(r.p99_ms), String(r.library_logins_s), String(r.ratio), String(r.event_loop_lag_p99_ms)])];
  const w = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  process.stdout.write(`${table.map((r) => r.map((c, i) => c.padStart(w[i]!)).join('  ')).join('\n')}\n`);
  if (rows.some((r) => r.cpu_ms_per_recovery)) process.stdout.write(`\n${cpuTable(rows)}`);
  process.stdout.write(`\n${note}. sqlite raw commits (WAL, synchronous=FULL): ${sqliteCommits}/s, 2 per recovery, on the event loop. target: ratio >= 0.7 for sqlite\n`);
}

/** CPU per operation by thread group: why a recovery costs what it does next to a login. */
function cpuTable(rows: Row[]): string {
  const lines = [['CPU ms per op', ...CPU_GROUPS, 'total']];
  const add = (label: string, split: CpuSplit | undefined): void => {
    if (!split) return;
    const total = CPU_GROUPS.reduce((sum, g) => sum + split[g], 0);
    lines.push([label, ...CPU_GROUPS.map((g) => split[g].toFixed(2)), total.toFixed(2)]);
  };
  for (const r of rows) {
    add(`${r.store} library login`, r.cpu_ms_per_library_login);
    add(`${r.store} recovery`, r.cpu_ms_per_recovery);
  }
  const w = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return `${lines.map((l) => l.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')).join('\n')}\n` +
    '(this process only, from /proc: an etcd store\'s own CPU is not in it; a library login has no load generator)\n';
}

/** Median of each group over rounds. */
function medianSplit(splits: CpuSplit[]): CpuSplit | undefined {
  if (splits.length === 0) return undefined;
  const out = {} as CpuSplit;
  for (const g of CPU_GROUPS) out[g] = round2(median(splits.map((s) => s[g])));
  return out;
}

function perOp(before: ThreadCpu, after: ThreadCpu, ops: number, groups: Record<string, readonly number[]>): CpuSplit {
  const spent = cpuByGroup(before, after, groups);
  const split = {} as CpuSplit;
  for (const g of CPU_GROUPS) split[g] = (spent[g] ?? 0) / Math.max(1, ops);
  return split;
}

function argNumber(name: string): number | undefined {
  const argv = process.argv;
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const value = Number(argv[i + 1]);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} needs a positive number`);
  return value;
}

async function benchStore(
  name: string, storeUrl: string, driver: HsmDriver, threads: { tokenWorkers: readonly number[]; softwareDhThreads: readonly number[] },
  library: () => Promise<void>, o: BenchOptions, users: number, say: (l: string) => void,
): Promise<Row> {
  const store = await openStore(parseStoreUrl(storeUrl));
  const vault = await Vault.open({ driver, store, fleetId: FLEET });
  const account = generateKeyPairSync('ed25519');
  const app = await createServer(vault, {
    jwt: { keys: [{ alg: 'EdDSA', kid: 'bench', key: account.publicKey }] },
    rateLimits: { perIp: UNLIMITED, perUser: UNLIMITED, recoveriesPerUser: UNLIMITED },
    logger: false,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const load = new LoadWorker();
  try {
    const ids = Array.from({ length: users }, (_, i) => `bench-user-${i}`);
    const mint = (scope: string, sub: string) => issue(account.privateKey, scope, sub);
    const loadThread = (await load.call({ op: 'thread' })) as number | undefined;
    const groups = { event_loop: [process.pid], token_workers: threads.tokenWorkers, software_dh: threads.softwareDhThreads, load_generator: loadThread === undefined ? [] : [loadThread] };
    const cpuRecovery: CpuSplit[] = [];
    const cpuLogin: CpuSplit[] = [];
    await load.call({ op: 'setup', baseUrl: `http://127.0.0.1:${port}`, concurrency: o.concurrency,
      users: await Promise.all(ids.map(async (id) => ({ id, register: await mint('register', id), recover: await mint('recover', id), secret: randomBytes(32) }))) });
    // Warm-up, not measured: JIT in both threads, the store's first pages, keep-alive sockets.
    await saturated(Math.min(1, o.seconds), undefined, o.concurrency, library);
    await load.call({ op: 'run', seconds: Math.min(2, o.seconds) });
    const recoveries: number[] = [];
    const p50: number[] = [];
    const p99: number[] = [];
    const lags: number[] = [];
    const logins: number[] = [];
    for (let round = 0; round < o.rounds; round++) {
      const beforeLogins = threadCpu();
      const loginsStart = performance.now();
      logins.push(await saturated(o.seconds, undefined, o.concurrency, library));
      const loginCount = (logins.at(-1)! * (performance.now() - loginsStart)) / 1000;
      const beforeRun = threadCpu();
      const lag = monitorEventLoopDelay({ resolution: 5 });
      lag.enable();
      const run = (await load.call({ op: 'run', seconds: o.seconds })) as RunResult;
      lag.disable();
      if (threadCpuAvailable) {
        const afterRun = threadCpu();
        cpuLogin.push(perOp(beforeLogins, beforeRun, loginCount, groups));
        cpuRecovery.push(perOp(beforeRun, afterRun, run.count, groups));
      }
      if (run.errors > 0) throw new Error(`${run.errors} recoveries failed: ${run.firstError}`);
      recoveries.push((run.count * 1000) / run.elapsedMs);
      const sorted = Float64Array.from(run.latencies).sort();
      p50.push(percentile(sorted, 0.5));
      p99.push(percentile(sorted, 0.99));
      lags.push(lag.percentile(99) / 1e6);
      say(`round ${round + 1}/${o.rounds} ${name}: ${Math.round(recoveries.at(-1)!)} recoveries/s, library ${Math.round(logins.at(-1)!)} logins/s, client work ${(run.clientMs / Math.max(1, run.count)).toFixed(2)} ms/recovery (worker busy ${Math.round((100 * run.clientMs) / run.elapsedMs)}%)`);
    }
    const r = median(recoveries);
    const l = median(logins);
    const recoveryCpu = medianSplit(cpuRecovery);
    const loginCpu = medianSplit(cpuLogin);
    return {
      store: name, recoveries_s: Math.round(r), p50_ms: round2(median(p50)), p99_ms: round2(median(p99)), library_logins_s: Math.round(l), ratio: Number((r / l).toFixed(3)), event_loop_lag_p99_ms: round2(median(lags)),
      ...(recoveryCpu ? { cpu_ms_per_recovery: recoveryCpu } : {}),
      ...(loginCpu ? { cpu_ms_per_library_login: loginCpu } : {}),
    };
  } finally {
    await load.close();
    await app.close();
    await vault.close();
    await store.close();
  }
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
const percentile = (sorted: Float64Array, q: number): number => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);

/** What the account service would mint: 10 minutes, the longest the node accepts (a run is shorter). */
function issue(key: KeyObject, scope: string, sub: string): Promise<string> {
  return new SignJWT({ scope }).setProtectedHeader({ alg: 'EdDSA', kid: 'bench' }).setSubject(sub).setAudience(FLEET).setIssuedAt().setExpirationTime('10m').sign(key);
}

/** bench/opaque.ts's server login, on the fleet's own keys in the same token. */
async function prepareLibraryLogin(driver: HsmDriver): Promise<() => Promise<void>> {
  const keys = await openFleetKeys(driver, FLEET);
  return serverLogin(new OpaqueServer(await tokenServerKeys(driver, { oprfKey: keys.refs.oprf, oprfSeed: keys.refs.oprfSeed, akeKey: keys.refs.ake })));
}

// ---- the load generator's thread, seen from the main thread

interface RunResult {
  count: number;
  elapsedMs: number;
  latencies: number[];
  /** Client computation summed over the run (the worker thread's busy time, HTTP aside). */
  clientMs: number;
  errors: number;
  firstError?: string;
}

class LoadWorker {
  // Run through tsx (npm run bench), the worker needs tsx's loader registered before it loads this file.
  private readonly worker = import.meta.url.endsWith('.ts')
    ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => { t.register(); return import(${JSON.stringify(import.meta.url)}); })`, { eval: true })
    : new Worker(fileURLToPath(import.meta.url));
  private pending: { resolve: (v: unknown) => void; reject: (e: Error) => void } | undefined;

  constructor() {
    this.worker.on('message', (m: { ok: boolean; value?: unknown; error?: string }) => {
      const p = this.pending;
      this.pending = undefined;
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new Error(m.error));
    });
    this.worker.on('error', (e) => this.pending?.reject(e));
    this.worker.on('exit', (code) => this.pending?.reject(new Error(`load generator exited (${code})`)));
  }

  call(message: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(message);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

// ---- etcd on loopback (the minimal start/stop of test/support/etcd.ts, which the bench cannot import:
// it pulls in vitest; test/support/ports.ts has no such dependency)

const ETCD_BIN = process.env.HSM_VAULT_TEST_ETCD_BIN ?? 'etcd';

function etcdMissing(): string | undefined {
  const probe = spawnSync(ETCD_BIN, ['--version'], { encoding: 'utf8' });
  return probe.error || probe.status !== 0 ? `etcd binary "${ETCD_BIN}" not found (apt-get install etcd-server)` : undefined;
}

class EtcdProcesses {
  private constructor(private readonly root: string, private readonly children: ChildProcess[], private readonly clientPorts: number[]) {}

  static async start(size: number, root: string): Promise<EtcdProcesses> {
    mkdirSync(root, { recursive: true });
    const ports = await freePorts(size * 2);
    const initial = Array.from({ length: size }, (_, i) => `m${i}=http://127.0.0.1:${ports[2 * i + 1]}`).join(',');
    const clusterToken = `bench-${randomBytes(4).toString('hex')}`;
    const children = Array.from({ length: size }, (_, i) => {
      const log = openSync(join(root, `m${i}.log`), 'a');
      const child = spawn(ETCD_BIN, [
        `--name=m${i}`, `--data-dir=${join(root, `m${i}`)}`,
        `--listen-client-urls=http://127.0.0.1:${ports[2 * i]}`, `--advertise-client-urls=http://127.0.0.1:${ports[2 * i]}`,
        `--listen-peer-urls=http://127.0.0.1:${ports[2 * i + 1]}`, `--initial-advertise-peer-urls=http://127.0.0.1:${ports[2 * i + 1]}`,
        `--initial-cluster=${initial}`, `--initial-cluster-token=${clusterToken}`, '--initial-cluster-state=new',
        '--heartbeat-interval=50', '--election-timeout=500', '--logger=zap', '--log-level=warn',
      ], { stdio: ['ignore', log, log] });
      closeSync(log);
      return child;
    });
    const cluster = new EtcdProcesses(root, children, Array.from({ length: size }, (_, i) => ports[2 * i]!));
    const until = Date.now() + 15_000;
    while (Date.now() < until) {
      if (await healthy(cluster.clientPorts[0]!)) return cluster;
      await new Promise((r) => setTimeout(r, 50));
    }
    const logs = Array.from({ length: size }, (_, i) => readFileSync(join(root, `m${i}.log`), 'utf8').slice(-1000)).join('\n');
    await cluster.stop();
    throw new Error(`etcd did not become healthy in 15 s:\n${logs}`);
  }

  storeUrl(): string {
    return `etcd://${this.clientPorts.map((p) => `127.0.0.1:${p}`).join(',')}?prefix=bench/`;
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    })));
    rmSync(this.root, { recursive: true, force: true });
  }
}

async function healthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(500) });
    return ((await res.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

// ================================================================ worker thread: the load generator

interface BenchUser {
  readonly id: string;
  readonly register: string;
  readonly recover: string;
  readonly secret: Uint8Array;
}

interface UserSession {
  readonly user: BenchUser;
  readonly ke1: Uint8Array;
  readonly ke1b64: string;
  readonly blind: bigint;
  /** The KE1's ephemeral key as a node:crypto x-only oracle (see src/opaque/full-point.ts). */
  readonly ephemeral: ReturnType<typeof softwareKey>;
  readonly clientSecret: bigint;
  /** Fixed for this KE1: randomized password, recovered envelope, dh2. Keyed by the evaluated element. */
  cached?: { evaluated: string; maskingKey: Uint8Array; unmaskedKey: Uint8Array; clientKey: ReturnType<typeof softwareKey>; clientIdentity: Uint8Array; serverIdentity: Uint8Array; dh2: Uint8Array };
}

class LoadGenerator {
  private readonly agent: Agent;
  private readonly sessions: UserSession[] = [];
  /** Time spent on client computation (not waiting for the node), for the report. */
  private clientMs = 0;

  constructor(private readonly baseUrl: string, private readonly concurrency: number) {
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  }

  async setup(users: BenchUser[]): Promise<void> {
    const fleet = (await this.post('GET', '/v1/fleet', undefined, undefined)) as { keys: { ake: string; hpke: string } };
    const client = new VaultClient({
      baseUrl: this.baseUrl, fleetId: FLEET, ksf: identityKsf,
      pinnedKeys: { ake: Buffer.from(fleet.keys.ake, 'base64url'), hpke: Buffer.from(fleet.keys.hpke, 'base64url') },
      getToken: async (_scope, userId) => users.find((u) => u.id === userId)!.register,
    });
    const opaque = new OpaqueClient({ ksf: identityKsf });
    for (const user of users) {
      await client.register(user.id, utf8(PASSWORD), user.secret, { maxAttempts: 100 });
      const { ke1, state } = opaque.generateKE1(utf8(PASSWORD));
      this.sessions.push({ user, ke1, ke1b64: Buffer.from(ke1).toString('base64url'), blind: state.blind, ephemeral: preparedKey(state.clientSecret), clientSecret: state.clientSecret });
    }
    for (const session of this.sessions) await this.recoverOnce(session); // fills the per-KE1 caches
  }

  async run(seconds: number): Promise<RunResult> {
    const latencies: number[] = [];
    let errors = 0;
    let firstError: string | undefined;
    const start = performance.now();
    const end = start + seconds * 1000;
    this.clientMs = 0;
    await Promise.all(Array.from({ length: this.concurrency }, async (_, lane) => {
      const mine = this.sessions.filter((_, i) => i % this.concurrency === lane);
      for (let i = 0; performance.now() < end; i++) {
        const t = performance.now();
        try {
          await this.recoverOnce(mine[i % mine.length]!);
          latencies.push(performance.now() - t);
        } catch (err) {
          errors++;
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    }));
    return { count: latencies.length, elapsedMs: performance.now() - start, latencies, clientMs: this.clientMs, errors, ...(firstError === undefined ? {} : { firstError }) };
  }

  /** One full recovery: start, the client's KE3, finish, decrypt and check the released secret. */
  private async recoverOnce(s: UserSession): Promise<void> {
    const base = `/v1/recoveries/${s.user.id}`;
    const started = (await this.post('POST', `${base}/start`, s.user.recover, { ke1: s.ke1b64 })) as { ke2: string; session: string };
    const t0 = performance.now();
    // KE2 = evaluated_message | masking_nonce | masked_response | server_nonce | server_keyshare | server_mac
    const ke2 = Buffer.from(started.ke2, 'base64url');
    if (ke2.length !== 33 + Nn + Npk + Nn + Nm + Nn + Npk + Nm) throw new Error('KE2 has the wrong length');
    const credentialResponse = ke2.subarray(0, 33 + Nn + Npk + Nn + Nm);
    const maskingNonce = ke2.subarray(33, 33 + Nn);
    const maskedResponse = credentialResponse.subarray(33 + Nn);
    const serverNonce = ke2.subarray(credentialResponse.length, credentialResponse.length + Nn);
    const keyshareBytes = ke2.subarray(credentialResponse.length + Nn, credentialResponse.length + Nn + Npk);
    const serverMacGot = ke2.subarray(credentialResponse.length + Nn + Npk);
    const serverKeyshare = deserializeElementFast(keyshareBytes, 'KE2 server_public_keyshare');
    const evaluated = ke2.subarray(0, 33).toString('hex');
    if (s.cached?.evaluated !== evaluated) s.cached = await this.perKe1(s, evaluated, deserializeElement(ke2.subarray(0, 33)), maskingNonce, maskedResponse);
    const c = s.cached;
    // Unmasking must still be done per session (fresh masking nonce); it must give the same key.
    const pad = expand(c.maskingKey, concat(maskingNonce, utf8('CredentialResponsePad')), Npk + Nn + Nm);
    if (!ctEqual(xor(pad, maskedResponse).slice(0, Npk), c.unmaskedKey)) throw new Error('server public key changed');
    const dh1 = serializeElement(await fullDh(s.ephemeral.xOnly, s.ephemeral.publicKey, serverKeyshare));
    const dh3 = serializeElement(await fullDh(c.clientKey.xOnly, c.clientKey.publicKey, serverKeyshare));
    // RFC 9807 Preamble from the wire bytes (canonical: the keyshare was just validated).
    const transcript = concat(utf8('OPAQUEv1-'), lengthPrefixed(new Uint8Array(0)), lengthPrefixed(c.clientIdentity), s.ke1, lengthPrefixed(c.serverIdentity), credentialResponse, serverNonce, keyshareBytes);
    const { km2, km3, sessionKey } = deriveKeys(concat(dh1, c.dh2, dh3), transcript);
    const serverMac = mac(km2, hash(transcript));
    if (!ctEqual(serverMacGot, serverMac)) throw new Error('server MAC did not verify');
    const ke3 = mac(km3, hash(concat(transcript, serverMac)));
    this.clientMs += performance.now() - t0;
    const released = (await this.post('POST', `${base}/finish`, s.user.recover, { ke3: Buffer.from(ke3).toString('base64url'), session: started.session })) as { nonce: string; ciphertext: string };
    const t1 = performance.now();
    const secret = await openReleasedSecret(sessionKey, s.user.id, Buffer.from(released.nonce, 'base64url'), Buffer.from(released.ciphertext, 'base64url'));
    if (!ctEqual(secret, s.user.secret)) throw new Error('released secret differs');
    this.clientMs += performance.now() - t1;
  }

  private async perKe1(s: UserSession, evaluated: string, evaluatedMessage: Point, maskingNonce: Uint8Array, maskedResponse: Uint8Array): Promise<NonNullable<UserSession['cached']>> {
    const oprfOutput = finalize(utf8(PASSWORD), s.blind, evaluatedMessage);
    const randomizedPassword = extract(new Uint8Array(0), concat(oprfOutput, await identityKsf.stretch(oprfOutput)));
    const maskingKey = expand(randomizedPassword, utf8('MaskingKey'), 32);
    const pad = expand(maskingKey, concat(maskingNonce, utf8('CredentialResponsePad')), Npk + Nn + Nm);
    const unmasked = xor(pad, maskedResponse);
    const unmaskedKey = unmasked.slice(0, Npk);
    const { clientPrivateKey, cleartext } = recover(randomizedPassword, unmaskedKey, { nonce: unmasked.slice(Npk, Npk + Nn), authTag: unmasked.slice(Npk + Nn) });
    const dh2 = serializeElement(await fullDh(s.ephemeral.xOnly, s.ephemeral.publicKey, deserializeElement(unmaskedKey)));
    return { evaluated, maskingKey, unmaskedKey, clientKey: preparedKey(clientPrivateKey), clientIdentity: cleartext.clientIdentity, serverIdentity: cleartext.serverIdentity, dh2 };
  }

  private post(method: 'GET' | 'POST', path: string, token: string | undefined, body: unknown): Promise<unknown> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${this.baseUrl}${path}`, { method, agent: this.agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) reject(new Error(`${method} ${path.replace(/bench-user-\d+/, '{user}')}: HTTP ${res.statusCode} ${text.slice(0, 200)}`));
          else resolve(JSON.parse(text));
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  let load: LoadGenerator | undefined;
  port.on('message', (m: { op: 'thread' } | { op: 'setup'; baseUrl: string; concurrency: number; users: BenchUser[] } | { op: 'run'; seconds: number }) => {
    const work = m.op === 'thread' ? Promise.resolve(currentThreadId())
      : m.op === 'setup' ? (load = new LoadGenerator(m.baseUrl, m.concurrency)).setup(m.users) : load!.run(m.seconds);
    work.then((value) => port.postMessage({ ok: true, value }), (err: unknown) => port.postMessage({ ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) }));
  });
}

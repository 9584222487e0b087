// A throwaway etcd cluster for tests: N members on loopback ports, temp data dirs, short raft
// timers so elections take well under a second. Members can be killed (SIGKILL: a crash, no
// graceful leave) and restarted on their data dir. Without the `etcd` binary the etcd suites
// say why they skip, unless HSM_VAULT_REQUIRE_ETCD=1 (CI), where they fail instead.
//
// Optionally, as a production cluster would run: clients over TLS with a throw-away PKI (`tls:
// 'server'`, or `'mutual'` to require a client certificate too; peers stay plain on loopback),
// and etcd user authentication (`auth: true`: a root user and a user limited to readwrite on the
// `t-` prefix storeUrl() uses, set up with etcdctl). storeUrl() then carries the client side.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { Reaper } from './reaper.js';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePorts } from './ports.js';
import { makeTestPki, type TestPki } from './pki.js';
import { skipOrRequire } from './requirement.js';

const ETCD_BIN = process.env.HSM_VAULT_TEST_ETCD_BIN ?? 'etcd';
const ETCDCTL_BIN = process.env.HSM_VAULT_TEST_ETCDCTL_BIN ?? 'etcdctl';
/** storeUrl()'s default prefixes start with this; the auth cluster's user may use only these keys. */
const TEST_PREFIX_START = 't-';

/** Why etcd tests cannot run here, or undefined when they can. */
export function etcdMissingReason(): string | undefined {
  const probe = spawnSync(ETCD_BIN, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `etcd binary "${ETCD_BIN}" not found (apt-get install etcd-server etcd-client)`;
  return undefined;
}

/** Why an auth cluster cannot be set up here (etcdctl is missing), or undefined when it can. */
export function etcdctlMissingReason(): string | undefined {
  const probe = spawnSync(ETCDCTL_BIN, ['version'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
  if (probe.error || probe.status !== 0) return `etcdctl binary "${ETCDCTL_BIN}" not found (apt-get install etcd-client)`;
  return undefined;
}

/** Same pattern as reportMissingSoftHsm: a skip with the reason locally, a failure when required. */
export function reportMissingEtcd(reason: string): void {
  skipOrRequire('etcd', 'HSM_VAULT_REQUIRE_ETCD', reason);
}

interface Member {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly logFile: string;
  process: ChildProcess | undefined;
}

export interface EtcdClusterOptions {
  /** Members (default 3). */
  readonly size?: number;
  /** Clients over TLS: 'server' verifies the server only, 'mutual' also requires a client certificate. */
  readonly tls?: 'server' | 'mutual';
  /** Enable etcd user authentication (root user plus a user limited to the test prefixes). */
  readonly auth?: boolean;
}

/** The client side of an auth cluster: a user limited to readwrite on keys starting with `t-`. */
export interface EtcdTestUser {
  readonly user: string;
  readonly password: string;
  /** The password followed by a newline (as `echo` writes it), mode 0600. */
  readonly passwordFile: string;
}

export class EtcdCluster {
  private constructor(
    readonly root: string,
    private readonly members: Member[],
    private readonly initialCluster: string,
    private readonly token: string,
    private readonly reaper: Reaper,
    private readonly options: EtcdClusterOptions,
    /** The throw-away PKI of a TLS cluster. */
    readonly pki: TestPki | undefined,
    /** The user of an auth cluster. */
    readonly testUser: EtcdTestUser | undefined,
    private readonly rootPassword: string,
  ) {}

  /**
   * Starts the members (a number: that many, plain and without auth, as before) and waits until
   * the cluster has a leader. Free ports are found before etcd binds them, so another process can
   * take one in between: one retry on fresh ports.
   */
  static async start(sizeOrOptions: number | EtcdClusterOptions = 3): Promise<EtcdCluster> {
    const options = typeof sizeOrOptions === 'number' ? { size: sizeOrOptions } : sizeOrOptions;
    try {
      return await EtcdCluster.startOnce(options);
    } catch {
      return EtcdCluster.startOnce(options);
    }
  }

  private static async startOnce(options: EtcdClusterOptions): Promise<EtcdCluster> {
    const size = options.size ?? 3;
    const root = mkdtempSync(join(tmpdir(), 'hsm-vault-etcd-'));
    const ports = await freePorts(size * 2);
    const members: Member[] = Array.from({ length: size }, (_, i) => ({
      name: `m${i}`,
      clientPort: ports[2 * i]!,
      peerPort: ports[2 * i + 1]!,
      dataDir: join(root, `m${i}`),
      logFile: join(root, `m${i}.log`),
      process: undefined,
    }));
    const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
    const reaper = new Reaper(root);
    let pki: TestPki | undefined;
    let testUser: EtcdTestUser | undefined;
    try {
      if (options.tls) {
        mkdirSync(join(root, 'pki'));
        pki = makeTestPki(join(root, 'pki'));
      }
      if (options.auth) {
        testUser = { user: 'vault', password: `pw-${randomBytes(12).toString('hex')}`, passwordFile: join(root, 'vault-password') };
        writeFileSync(testUser.passwordFile, `${testUser.password}\n`, { mode: 0o600 });
      }
    } catch (err) {
      reaper.close();
      rmSync(root, { recursive: true, force: true });
      throw err;
    }
    const token = `t-${randomBytes(6).toString('hex')}`;
    const cluster = new EtcdCluster(root, members, initialCluster, token, reaper, options, pki, testUser, `root-${randomBytes(12).toString('hex')}`);
    for (let i = 0; i < size; i++) cluster.spawnMember(i);
    try {
      await cluster.waitHealthy();
      if (options.auth) cluster.enableAuth();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** `127.0.0.1:port` of every member, live or not. */
  get endpoints(): string[] {
    return this.members.map((m) => `127.0.0.1:${m.clientPort}`);
  }

  /**
   * A store URL for this cluster; a fresh prefix per call keeps tests apart. On a TLS or auth
   * cluster it carries the client's ca-file (cert-file, key-file) and user/password-file, unless
   * `credentials: false`, for tests that add their own.
   */
  storeUrl(options: { prefix?: string; timeoutMs?: number; credentials?: boolean } = {}): string {
    const prefix = options.prefix ?? `${TEST_PREFIX_START}${randomBytes(4).toString('hex')}/`;
    const timeout = options.timeoutMs === undefined ? '' : `&timeout-ms=${options.timeoutMs}`;
    let credentials = '';
    if (options.credentials !== false) {
      if (this.pki) credentials += `&ca-file=${encodeURIComponent(this.pki.caFile)}`;
      if (this.pki && this.options.tls === 'mutual') {
        credentials += `&cert-file=${encodeURIComponent(this.pki.clientCertFile)}&key-file=${encodeURIComponent(this.pki.clientKeyFile)}`;
      }
      if (this.testUser) credentials += `&user=${this.testUser.user}&password-file=${encodeURIComponent(this.testUser.passwordFile)}`;
    }
    return `etcd://${this.endpoints.join(',')}?prefix=${encodeURIComponent(prefix)}${timeout}${credentials}`;
  }

  /** Crash a member (SIGKILL) and wait until it has exited. */
  async kill(index: number): Promise<void> {
    const child = this.members[index]!.process;
    this.members[index]!.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.reaper.forget(child.pid!);
  }

  /** Restart a killed member on its data dir (it rejoins with its raft log). */
  restart(index: number): void {
    if (this.members[index]!.process) throw new Error(`member ${index} is running`);
    this.spawnMember(index);
  }

  /** Index of the current leader, asking live members through the gRPC gateway. */
  async leaderIndex(): Promise<number | undefined> {
    const statuses = await Promise.all(
      this.members.map((m) => (m.process ? this.memberStatus(m.clientPort) : undefined)),
    );
    const leader = statuses.find((s) => s?.leader)?.leader;
    const index = statuses.findIndex((s) => s !== undefined && String(s.header?.member_id) === String(leader));
    return index === -1 ? undefined : index;
  }

  /** Waits until a live member reports health (which etcd only does with a leader). */
  async waitHealthy(timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      for (const member of this.members) {
        if (member.process && (await this.memberHealthy(member.clientPort))) return;
      }
      await sleep(50);
    }
    throw new Error(`etcd cluster not healthy after ${timeoutMs} ms; logs:\n${this.logs()}`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.kill(i)));
    rmSync(this.root, { recursive: true, force: true });
    this.reaper.close();
  }

  logs(): string {
    return this.members.map((m) => `--- ${m.name}\n${safeRead(m.logFile).slice(-2000)}`).join('\n');
  }

  /**
   * Root user, `auth enable`, and a user whose role may read and write keys starting with `t-`
   * only. Passwords go to etcdctl through stdin and the environment, never its command line.
   */
  private enableAuth(): void {
    const user = this.testUser!;
    this.etcdctl(['user', 'add', 'root', '--interactive=false'], { stdin: `${this.rootPassword}\n` });
    this.etcdctl(['auth', 'enable']);
    const asRoot = { user: `root:${this.rootPassword}` };
    this.etcdctl(['user', 'add', user.user, '--interactive=false'], { ...asRoot, stdin: `${user.password}\n` });
    this.etcdctl(['role', 'add', 'vault-records'], asRoot);
    this.etcdctl(['role', 'grant-permission', 'vault-records', '--prefix=true', 'readwrite', TEST_PREFIX_START], asRoot);
    this.etcdctl(['user', 'grant-role', user.user, 'vault-records'], asRoot);
  }

  private etcdctl(args: string[], options: { user?: string; stdin?: string } = {}): void {
    const tlsArgs = this.pki
      ? [`--cacert=${this.pki.caFile}`, ...(this.options.tls === 'mutual' ? [`--cert=${this.pki.clientCertFile}`, `--key=${this.pki.clientKeyFile}`] : [])]
      : [];
    const scheme = this.pki ? 'https' : 'http';
    const result = spawnSync(
      ETCDCTL_BIN,
      [`--endpoints=${this.endpoints.map((e) => `${scheme}://${e}`).join(',')}`, '--command-timeout=10s', ...tlsArgs, ...args],
      {
        encoding: 'utf8',
        input: options.stdin ?? '',
        env: { ...process.env, ETCDCTL_API: '3', ...(options.user ? { ETCDCTL_USER: options.user } : {}) },
      },
    );
    if (result.error || result.status !== 0) {
      throw new Error(`etcdctl ${args.slice(0, 2).join(' ')} failed (${result.error?.message ?? `exit ${result.status}`}): ${result.stderr.slice(-1000)}`);
    }
  }

  private memberHealthy(port: number): Promise<boolean> {
    if (!this.pki) return getHealth(port);
    return this.httpsJson<{ health?: string }>(port, 'GET', '/health').then((body) => body?.health === 'true');
  }

  private memberStatus(port: number): Promise<MemberStatus | undefined> {
    if (!this.pki) return postJson(port, '/v3/maintenance/status', {});
    return this.httpsJson<MemberStatus>(port, 'POST', '/v3/maintenance/status', {});
  }

  /** A JSON request to a TLS member (presenting the client certificate), undefined on any failure. */
  private httpsJson<T>(port: number, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T | undefined> {
    const pki = this.pki!;
    return new Promise((resolve) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path,
          method,
          ca: readFileSync(pki.caFile),
          ...(this.options.tls === 'mutual' ? { cert: readFileSync(pki.clientCertFile), key: readFileSync(pki.clientKeyFile) } : {}),
          servername: 'localhost',
          timeout: 500,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => {
            try {
              resolve(res.statusCode === 200 ? (JSON.parse(text) as T) : undefined);
            } catch {
              resolve(undefined);
            }
          });
          res.on('error', () => resolve(undefined));
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  private spawnMember(index: number): void {
    const m = this.members[index]!;
    mkdirSync(m.dataDir, { recursive: true });
    const log = openSync(m.logFile, 'a');
    const clientScheme = this.pki ? 'https' : 'http';
    const tlsArgs = this.pki
      ? [
          `--cert-file=${this.pki.serverCertFile}`,
          `--key-file=${this.pki.serverKeyFile}`,
          ...(this.options.tls === 'mutual' ? [`--trusted-ca-file=${this.pki.caFile}`, '--client-cert-auth'] : []),
        ]
      : [];
    const args = [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=${clientScheme}://127.0.0.1:${m.clientPort}`,
      `--advertise-client-urls=${clientScheme}://127.0.0.1:${m.clientPort}`,
      ...tlsArgs,
      `--listen-peer-urls=http://127.0.0.1:${m.peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${m.peerPort}`,
      `--initial-cluster=${this.initialCluster}`,
      `--initial-cluster-token=${this.token}`,
      '--initial-cluster-state=new',
      // Short raft timers: a lost leader is replaced in well under a second.
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--logger=zap',
      '--log-level=warn',
    ];
    const child = spawn(ETCD_BIN, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    m.process = child;
    this.reaper.watch(child.pid!);
  }
}

async function getHealth(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(500) });
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

interface MemberStatus {
  leader?: string;
  header?: { member_id?: string };
}

async function postJson(port: number, path: string, body: unknown): Promise<MemberStatus | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(500),
    });
    return res.ok ? ((await res.json()) as MemberStatus) : undefined;
  } catch {
    return undefined;
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

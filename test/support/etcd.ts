// A throwaway etcd cluster for tests: N members on loopback ports, temp data dirs, short raft
// timers so elections take well under a second. Members can be killed (SIGKILL: a crash, no
// graceful leave) and restarted on their data dir. Without the `etcd` binary the etcd suites
// say why they skip, unless HSM_VAULT_REQUIRE_ETCD=1 (CI), where they fail instead.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Reaper } from './reaper.js';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePorts } from './ports.js';
import { skipOrRequire } from './requirement.js';

const ETCD_BIN = process.env.HSM_VAULT_TEST_ETCD_BIN ?? 'etcd';

/** Why etcd tests cannot run here, or undefined when they can. */
export function etcdMissingReason(): string | undefined {
  const probe = spawnSync(ETCD_BIN, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `etcd binary "${ETCD_BIN}" not found (apt-get install etcd-server etcd-client)`;
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

export class EtcdCluster {
  private constructor(
    readonly root: string,
    private readonly members: Member[],
    private readonly initialCluster: string,
    private readonly token: string,
    private readonly reaper: Reaper,
  ) {}

  /**
   * Starts `size` members and waits until the cluster has a leader. Free ports are found before
   * etcd binds them, so another process can take one in between: one retry on fresh ports.
   */
  static async start(size = 3): Promise<EtcdCluster> {
    try {
      return await EtcdCluster.startOnce(size);
    } catch {
      return EtcdCluster.startOnce(size);
    }
  }

  private static async startOnce(size: number): Promise<EtcdCluster> {
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
    const cluster = new EtcdCluster(root, members, initialCluster, `t-${randomBytes(6).toString('hex')}`, new Reaper(root));
    for (let i = 0; i < size; i++) cluster.spawnMember(i);
    try {
      await cluster.waitHealthy();
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

  /** A store URL for this cluster; a fresh prefix per call keeps tests apart. */
  storeUrl(options: { prefix?: string; timeoutMs?: number } = {}): string {
    const prefix = options.prefix ?? `t-${randomBytes(4).toString('hex')}/`;
    const timeout = options.timeoutMs === undefined ? '' : `&timeout-ms=${options.timeoutMs}`;
    return `etcd://${this.endpoints.join(',')}?prefix=${encodeURIComponent(prefix)}${timeout}`;
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
      this.members.map((m) => (m.process ? postJson(m.clientPort, '/v3/maintenance/status', {}) : undefined)),
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
        if (member.process && (await getHealth(member.clientPort))) return;
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

  private spawnMember(index: number): void {
    const m = this.members[index]!;
    mkdirSync(m.dataDir, { recursive: true });
    const log = openSync(m.logFile, 'a');
    const args = [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${m.clientPort}`,
      `--advertise-client-urls=http://127.0.0.1:${m.clientPort}`,
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

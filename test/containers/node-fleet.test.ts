// A containerized fleet, started with testcontainers on host networking: a 3-member etcd cluster
// (docker/etcd image), the compose fleet's key ceremony (docker/fleet-ceremony.sh in the node
// image: three SoftHSM2 tokens with their own PINs, `fleet init --transportable` on the first,
// `fleet join` to the others), and three vault node containers (docker/node image, its own
// `hsm-vault serve` CMD), each holding a copy of the ceremony's token directory and only its own
// PIN. From the host, with the SDK: registrations and recoveries across nodes, then one node
// container is stopped during a stream of recoveries; the others keep serving and no attempt is
// lost (a wrong-password stream counts down by exactly one per guess across nodes and locks the
// user at exactly maxAttempts).
//
// Needs a container engine and the images (HSM_VAULT_NODE_IMAGE, default hsm-vault/node:dev;
// HSM_VAULT_ETCD_IMAGE, default hsm-vault/etcd:dev; `.ci/containers.sh` builds them). Without them
// the suite skips with the reason, unless CONTAINERS_REQUIRED=1, where it fails.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPrivateKey, randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { VaultClient } from '../../src/client/vault-client.js';
import { Locked, NetworkError, VaultUnavailable, WrongPassword } from '../../src/client/errors.js';
import { decodeBase64url } from '../../src/client/base64url.js';
import { identityKsf } from '../../src/opaque/ksf.js';
import { signDevToken } from '../../src/server/dev-auth.js';
import { containersUnavailable, describeContainers } from '../support/containers.js';
import { freePorts } from '../support/ports.js';

const NODE_IMAGE = process.env.HSM_VAULT_NODE_IMAGE ?? 'hsm-vault/node:dev';
const ETCD_IMAGE = process.env.HSM_VAULT_ETCD_IMAGE ?? 'hsm-vault/etcd:dev';

const FLEET = `ct-fleet-${randomBytes(3).toString('hex')}`;
const LABELS = ['vault-1', 'vault-2', 'vault-3'] as const;
const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const CEREMONY_SCRIPT = resolve(import.meta.dirname, '../../docker/fleet-ceremony.sh');
const enc = new TextEncoder();

async function readStream(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

const pinFile = (label: string, kind: 'pin' | 'so_pin'): string => `/run/secrets/${label.replace(/-/g, '_')}_${kind}`;
const tokenUri = (label: string): string => `pkcs11:token=${label}?module-path=${MODULE}&pin-source=file:${pinFile(label, 'pin')}`;

const reason = await containersUnavailable([
  { image: NODE_IMAGE, build: `docker build --network host -f docker/node/Dockerfile -t ${NODE_IMAGE} .` },
  { image: ETCD_IMAGE, build: `docker build --network host -f docker/etcd/Dockerfile -t ${ETCD_IMAGE} docker/etcd` },
]);

describeContainers(reason, 'node fleet: 3 node containers, their own tokens with one fleet key set, 3 etcd containers', () => {
  const containers: StartedTestContainer[] = [];
  const etcd: StartedTestContainer[] = [];
  const nodes: StartedTestContainer[] = [];
  const nodePorts: number[] = [];
  const ceremonyRuns: { stdout: string; stderr: string; exitCode: number }[] = [];
  const pins: string[] = [];
  let published: { ake: string; hpke: string; signing: string };
  let issuerKey: ReturnType<typeof createPrivateKey>;
  let clients: VaultClient[];

  const getToken = (scope: 'register' | 'recover' | 'delete', userId: string): Promise<string> =>
    signDevToken({ kid: 'compose-ceremony-issuer', privateKey: issuerKey }, { fleetId: FLEET, userId, scope, lifetimeSeconds: 300 });

  beforeAll(async () => {
    const ports = await freePorts(9);
    const peer = (i: number): number => ports[3 + i]!;
    const client = (i: number): number => ports[i]!;
    nodePorts.push(ports[6]!, ports[7]!, ports[8]!);
    const initialCluster = [0, 1, 2].map((i) => `etcd-${i + 1}=http://127.0.0.1:${peer(i)}`).join(',');
    const store = `etcd://${[0, 1, 2].map((i) => `127.0.0.1:${client(i)}`).join(',')}`;

    // The etcd members and the ceremony start side by side.
    const etcdStarted = Promise.all([0, 1, 2].map(async (i) => {
      const member = await new GenericContainer(ETCD_IMAGE)
        .withNetworkMode('host')
        .withEnvironment({
          ETCD_NAME: `etcd-${i + 1}`,
          ETCD_LISTEN_CLIENT_URLS: `http://127.0.0.1:${client(i)}`,
          ETCD_ADVERTISE_CLIENT_URLS: `http://127.0.0.1:${client(i)}`,
          ETCD_LISTEN_PEER_URLS: `http://127.0.0.1:${peer(i)}`,
          ETCD_INITIAL_ADVERTISE_PEER_URLS: `http://127.0.0.1:${peer(i)}`,
          ETCD_INITIAL_CLUSTER: initialCluster,
          ETCD_INITIAL_CLUSTER_STATE: 'new',
          ETCD_INITIAL_CLUSTER_TOKEN: `hsm-vault-${FLEET}`,
        })
        .withWaitStrategy(Wait.forLogMessage('ready to serve client requests'))
        .withStartupTimeout(60_000)
        .start();
      containers.push(member);
      etcd[i] = member;
    }));

    // The compose file's ceremony, as compose runs it: started as root, dropping to uid 10001.
    const secrets = LABELS.flatMap((label) => (['pin', 'so_pin'] as const).map((kind) => ({
      content: randomBytes(12).toString('hex'), target: pinFile(label, kind), mode: 0o444,
    })));
    pins.push(...secrets.map((s) => s.content));
    const ceremony = await new GenericContainer(NODE_IMAGE)
      .withNetworkMode('none')
      .withUser('0:0')
      .withEnvironment({ HSM_VAULT_FLEET: FLEET, HSM_VAULT_TOKEN_INIT: '0' })
      .withCopyFilesToContainer([{ source: CEREMONY_SCRIPT, target: '/usr/local/lib/hsm-vault/fleet-ceremony.sh', mode: 0o555 }])
      .withCopyContentToContainer(secrets)
      .withCommand(['sleep', 'infinity'])
      .start();
    containers.push(ceremony);
    // Twice: the second run (a second `docker compose up`) must create and generate nothing.
    for (let run = 0; run < 2; run++) {
      ceremonyRuns.push(await ceremony.exec(['sh', '/usr/local/lib/hsm-vault/fleet-ceremony.sh']));
      if (ceremonyRuns[run]!.exitCode !== 0) throw new Error(`fleet-ceremony.sh failed: ${ceremonyRuns[run]!.stderr}`);
    }
    published = JSON.parse((await ceremony.exec(['cat', '/var/lib/hsm-vault-fleet/fleet-keys.json'])).stdout) as typeof published;
    const jwtPublicKey = (await ceremony.exec(['cat', '/var/lib/hsm-vault-fleet/account-service.pem'])).stdout;
    // The test plays the account service with the ceremony's development issuer key.
    issuerKey = createPrivateKey((await ceremony.exec(['cat', '/var/lib/hsm-vault-issuer/dev-auth-ed25519.pem'])).stdout);
    const tokens = await readStream(await ceremony.copyArchiveFromContainer('/var/lib/hsm-vault/softhsm'));
    await ceremony.stop({ timeout: 1_000 });
    containers.splice(containers.indexOf(ceremony), 1);
    await etcdStarted;

    // Each node: its own copy of the token directory, only its own user PIN, the image's CMD.
    await Promise.all(LABELS.map(async (label, i) => {
      const node = await new GenericContainer(NODE_IMAGE)
        .withNetworkMode('host')
        .withEnvironment({
          HSM_VAULT_HSM: tokenUri(label),
          HSM_VAULT_TOKEN_INIT: '0',
          HSM_VAULT_FLEET: FLEET,
          HSM_VAULT_STORE: store,
          HSM_VAULT_LISTEN: `127.0.0.1:${nodePorts[i]}`,
          HSM_VAULT_JWT_KEYS: '/var/lib/hsm-vault-fleet/account-service.pem',
          // The per-user guess limit (5 a minute per node) would throttle the streams below.
          HSM_VAULT_RECOVERY_LIMIT: '1000/1000',
          HSM_VAULT_USER_LIMIT: '1000/1000',
          HSM_VAULT_IP_LIMIT: '1000/1000',
        })
        .withCopyArchivesToContainer([{ tar: Readable.from(tokens), target: '/var/lib/hsm-vault' }])
        .withCopyContentToContainer([
          { content: secrets.find((s) => s.target === pinFile(label, 'pin'))!.content, target: pinFile(label, 'pin'), mode: 0o444 },
          { content: jwtPublicKey, target: '/var/lib/hsm-vault-fleet/account-service.pem', mode: 0o444 },
        ])
        .withTmpFs({ '/tmp': 'rw' })
        .withWaitStrategy(Wait.forLogMessage('vault node listening'))
        .withStartupTimeout(60_000)
        .start();
      containers.push(node);
      nodes[i] = node;
    }));

    const pinnedKeys = { ake: decodeBase64url(published.ake), hpke: decodeBase64url(published.hpke) };
    clients = nodePorts.map((port) => new VaultClient({ baseUrl: `http://127.0.0.1:${port}`, fleetId: FLEET, pinnedKeys, ksf: identityKsf, getToken }));
  }, 240_000);

  afterAll(async () => {
    await Promise.allSettled(containers.map((c) => c.stop({ timeout: 1_000 })));
  }, 60_000);

  it('the ceremony puts one key set in three tokens, and a second run generates nothing', () => {
    const [first, second] = ceremonyRuns;
    for (const label of LABELS) expect(first!.stderr).toContain(`created token "${label}"`);
    expect(first!.stderr).toContain('generated fleet');
    expect(first!.stderr).toContain('joined token vault-2');
    expect(first!.stderr).toContain('joined token vault-3');
    for (const label of LABELS) expect(second!.stderr).toContain(`fleet ${FLEET} already in token ${label}`);
    expect(second!.stderr).not.toMatch(/created token|generated fleet|joined token|created the dev auth key/);
    const keysOf = (out: string) => /public keys (\{.*\})/.exec(out)?.[1];
    expect(keysOf(second!.stderr)).toBe(keysOf(first!.stderr));
    expect(JSON.parse(keysOf(first!.stderr)!)).toEqual(published);
    // No PIN reached the ceremony's output.
    const output = ceremonyRuns.map((r) => `${r.stdout}${r.stderr}`).join('');
    expect(pins).toHaveLength(6);
    for (const pin of pins) expect(output).not.toContain(pin);
  });

  it('the node image runs `hsm-vault serve` (its CMD) with its own token: /healthz 200 over the host network', async () => {
    for (const [i, node] of nodes.entries()) {
      const cmdline = (await node.exec(['cat', '/proc/1/cmdline'])).stdout.split('\0').join(' ');
      expect(cmdline).toMatch(/node \/opt\/hsm-vault\/bin\/hsm-vault\.js serve/);
      const health = await fetch(`http://127.0.0.1:${nodePorts[i]}/healthz`);
      expect(health.status).toBe(200);
      // The image's HEALTHCHECK command agrees.
      expect((await node.exec(['node', '/opt/hsm-vault/docker/healthcheck.mjs'])).exitCode).toBe(0);
      // Every node serves the one fleet key set, from its own token.
      const fleet = (await (await fetch(`http://127.0.0.1:${nodePorts[i]}/v1/fleet`)).json()) as { fleetId: string; keys: typeof published };
      expect(fleet).toMatchObject({ fleetId: FLEET, keys: published });
      expect((await node.exec(['sh', '-c', 'echo "$HSM_VAULT_HSM"; ls /run/secrets'])).stdout.trim().split('\n'))
        .toEqual([tokenUri(LABELS[i]!), `${LABELS[i]!.replace('-', '_')}_pin`]);
    }
  });

  it('registers on one node and recovers on the others (the record lives in etcd, the keys in every token)', async () => {
    for (let i = 0; i < 3; i++) {
      const user = `xnode-${i}-${randomBytes(3).toString('hex')}`;
      const secret = randomBytes(32);
      await clients[i]!.register(user, enc.encode(`pw-${user}`), secret, { maxAttempts: 5 });
      for (const j of [(i + 1) % 3, (i + 2) % 3]) {
        const { secret: recovered } = await clients[j]!.recover(user, enc.encode(`pw-${user}`));
        expect(Buffer.from(recovered)).toEqual(secret);
      }
      // A wrong guess on one node is seen by the next.
      const guess = await clients[(i + 1) % 3]!.recover(user, enc.encode('nope')).catch((e: unknown) => e);
      expect(guess).toBeInstanceOf(WrongPassword);
      expect((guess as WrongPassword).attemptsRemaining).toBe(4);
      const again = await clients[(i + 2) % 3]!.recover(user, enc.encode('nope again')).catch((e: unknown) => e);
      expect((again as WrongPassword).attemptsRemaining).toBe(3);
    }
  });

  it('keeps serving when a node container stops mid-stream, with no attempt lost', async () => {
    const MAX = 12;
    const STOP_AFTER = 4;
    const STOPPED = 1; // vault-2
    const guesser = `guesser-${randomBytes(3).toString('hex')}`;
    await clients[0]!.register(guesser, enc.encode('right'), randomBytes(32), { maxAttempts: MAX });
    const recoverers = await Promise.all([0, 1, 2].map(async (i) => {
      const user = `steady-${i}-${randomBytes(3).toString('hex')}`;
      const secret = randomBytes(32);
      await clients[i]!.register(user, enc.encode(`pw-${user}`), secret, { maxAttempts: 3 });
      return { user, secret };
    }));

    let stopping: Promise<unknown> | undefined;
    let stopped = false;
    let streaming = true;
    const servedAfterStop = [0, 0, 0];
    const refusedAfterStop = [0, 0, 0];
    const unexpected: string[] = [];

    // Right-password recoveries, round robin over all three nodes, until the guesses are done.
    const steady = recoverers.map(async ({ user, secret }, k) => {
      for (let n = k; streaming; n++) {
        const i = n % 3;
        try {
          const { secret: got } = await clients[i]!.recover(user, enc.encode(`pw-${user}`));
          if (!Buffer.from(got).equals(secret)) unexpected.push(`wrong secret for ${user} from node ${i}`);
          if (stopped) servedAfterStop[i]!++;
        } catch (err) {
          // Only the stopped node may fail, and only by not answering (or, caught in its
          // shutdown, by a 503).
          if (i === STOPPED && stopping !== undefined && (err instanceof NetworkError || err instanceof VaultUnavailable)) {
            if (stopped) refusedAfterStop[i]!++;
            continue;
          }
          unexpected.push(`node ${i}, ${user}: ${String(err)}`);
        }
      }
    });

    // Wrong guesses, one at a time, round robin; after STOP_AFTER, vault-2's container is
    // stopped while the steady stream runs. A refused connection reached no node, so the guess
    // goes to the next one; every answered guess must be counted exactly once.
    const remaining: { node: number; attemptsRemaining: number }[] = [];
    let n = 0;
    while (remaining.length < MAX && n < 5 * MAX) {
      const i = n++ % 3;
      if (remaining.length === STOP_AFTER && stopping === undefined) {
        stopping = nodes[STOPPED]!.stop({ timeout: 0 }).then(() => (stopped = true));
        await stopping;
      }
      try {
        await clients[i]!.recover(guesser, enc.encode(`wrong-${remaining.length}`));
        unexpected.push(`a wrong password recovered on node ${i}`);
      } catch (err) {
        if (err instanceof WrongPassword) remaining.push({ node: i, attemptsRemaining: err.attemptsRemaining });
        else if (stopped && i === STOPPED && err instanceof NetworkError) refusedAfterStop[i]!++;
        else unexpected.push(`guess on node ${i}: ${String(err)}`);
      }
    }
    // Let the steady stream show both survivors serving after the stop (it normally has already).
    for (const deadline = Date.now() + 20_000; Date.now() < deadline && !(servedAfterStop[0]! > 0 && servedAfterStop[2]! > 0);) {
      await new Promise((r) => setTimeout(r, 50));
    }
    streaming = false;
    await Promise.all(steady);
    containers.splice(containers.indexOf(nodes[STOPPED]!), 1);

    expect(unexpected).toEqual([]);
    // Exactly one count per guess, across nodes, before and after the stop: MAX-1, ..., 0.
    expect(remaining.map((r) => r.attemptsRemaining)).toEqual(Array.from({ length: MAX }, (_, k) => MAX - 1 - k));
    expect(new Set(remaining.slice(0, STOP_AFTER).map((r) => r.node))).toEqual(new Set([0, 1, 2]));
    expect(remaining.slice(STOP_AFTER).every((r) => r.node !== STOPPED)).toBe(true);
    // The stopped node really was gone, and the other two served the stream after it.
    expect(refusedAfterStop[STOPPED]).toBeGreaterThan(0);
    expect(servedAfterStop[0]).toBeGreaterThan(0);
    expect(servedAfterStop[2]).toBeGreaterThan(0);
    await expect(fetch(`http://127.0.0.1:${nodePorts[STOPPED]}/healthz`)).rejects.toThrow();

    // MAX counted guesses lock the user: even the right password is refused, on every survivor.
    for (const i of [0, 2]) await expect(clients[i]!.recover(guesser, enc.encode('right'))).rejects.toBeInstanceOf(Locked);
    // The steady users' secrets are intact on both survivors.
    for (const { user, secret } of recoverers) {
      for (const i of [0, 2]) expect(Buffer.from((await clients[i]!.recover(user, enc.encode(`pw-${user}`))).secret)).toEqual(secret);
    }
  }, 120_000);
});

// The trust CLI end to end, as subprocesses on the fake backend persisted to a file: a witness
// process, two epochs of bundles logged + witnessed + countersigned by the token, verification
// (and its failures' exit codes), and the log commands.
// main.ts registration is not assumed: a tiny launcher mounts the three command groups.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyFleetUpdate } from '../../src/client/fleet-update.js';
import { createFleetKeys } from '../../src/fleet/keys.js';
import { SIGNATURE_TYPE_COSIGNATURE_V1, formatVerifierKey } from '../../src/fleet/signed-note.js';
import { FakeDriver } from '../../src/hsm/fake/driver.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const LAUNCHER = `
import { Command } from 'commander';
import { bundleCommands, logCommands, witnessCommands } from './src/cli/trust-commands.ts';
import { reportError } from './src/cli/context.ts';
const program = new Command('hsm-vault').addCommand(bundleCommands()).addCommand(witnessCommands()).addCommand(logCommands());
program.parseAsync(process.argv.slice(1), { from: 'user' }).catch(reportError);
`;
const nodeArgs = ['--import', 'tsx', '--input-type=module', '-e', LAUNCHER];

const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-trust-cli-'));
const tokenFile = join(dir, 'token.json');
const HSM = `fake:?path=${tokenFile}`;
const ORIGIN = 'vault.example/eu-1';
const logDir = join(dir, 'log');
const witnessDir = join(dir, 'witness');
const env = { HSM_VAULT_HSM: HSM, HSM_VAULT_FLEET: 'eu-1', HSM_VAULT_LOG_DIR: logDir, HSM_VAULT_LOG_ORIGIN: ORIGIN };

function cli(args: string[], extraEnv: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [...nodeArgs, ...args], { cwd: repo, env: { ...process.env, ...env, ...extraEnv }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[], extraEnv?: Record<string, string>): string {
  const r = cli(args, extraEnv);
  expect(r.status, `${args.join(' ')}\n${r.stderr}`).toBe(0);
  return r.stdout;
}

let server: ChildProcess | undefined;
let witnessUrl = '';
let witnessKey = '';
let witnessCosignatureKey = '';
let operatorKey = '';
let logKey = '';

beforeAll(async () => {
  const driver = await FakeDriver.open({ scheme: 'fake', path: tokenFile }, { onInsecure: () => undefined });
  operatorKey = Buffer.from((await createFleetKeys(driver, 'eu-1')).publicKeys.signing).toString('hex');
  await driver.close();

  const identity = JSON.parse(ok(['witness', 'keygen', '--dir', witnessDir, '--name', 'witness.example', '--json'])) as { publicKey: string; cosignatureKey: string };
  witnessKey = identity.publicKey;
  witnessCosignatureKey = identity.cosignatureKey;
  logKey = ok(['log', 'key']).trim();

  server = spawn(process.execPath, [...nodeArgs, 'witness', 'serve', '--dir', witnessDir, '--listen', '127.0.0.1:0', '--log-key', logKey], { cwd: repo });
  witnessUrl = await new Promise<string>((resolve, reject) => {
    let out = '';
    server!.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    server!.on('exit', (code) => reject(new Error(`witness exited early (${code})`)));
  });
}, 120_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server!.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

// Each CLI call is a fresh tsx process (~2 s), so these tests get more than the default minute.
describe('hsm-vault bundle / witness / log', { timeout: 180_000 }, () => {
  it('prints the log key from the token and the witness identity over HTTP', async () => {
    expect(logKey).toMatch(new RegExp(`^${ORIGIN.replace(/\./g, '\\.')}\\+[0-9a-f]{8}\\+`));
    const key = (await (await fetch(`${witnessUrl}/v1/key`)).json()) as { publicKey: string };
    expect(key.publicKey).toBe(witnessKey);
  });

  it('creates, cosigns and verifies bundles over two epochs; clients accept the updates', () => {
    const bodies = [1, 2].map((epoch) => {
      const file = join(dir, `body-${epoch}.json`);
      ok(['bundle', 'create', '--epoch', String(epoch), '--not-before', '1700000000', '--not-after', '1900000000', '--out', file]);
      return file;
    });
    const body1 = JSON.parse(readFileSync(bodies[0]!, 'utf8')) as { fleetId: string; keys: { signing: string } };
    expect(body1.fleetId).toBe('eu-1');
    expect(Buffer.from(body1.keys.signing, 'base64url').toString('hex')).toBe(operatorKey);

    const pinned = { witnessKey: Buffer.from(witnessKey, 'hex'), witnessName: 'witness.example', operatorKey: Buffer.from(operatorKey, 'hex'), logKey, origin: ORIGIN };
    let last = null;
    for (const [i, body] of bodies.entries()) {
      const out = join(dir, `bundle-${i + 1}.json`);
      const updateOut = join(dir, `update-${i + 1}.json`);
      const cosigned = JSON.parse(ok(['bundle', 'cosign', body, '--witness', witnessUrl, '--out', out, '--update-out', updateOut, '--json'])) as { leafIndex: number };
      expect(cosigned.leafIndex).toBe(i === 0 ? 0 : 2); // an evidence entry lands in between (below)
      const verified = ok(['bundle', 'verify', out, '--witness-key', witnessKey, '--operator-key', operatorKey, '--now', '1800000000', '--json']);
      expect(JSON.parse(verified)).toMatchObject({ ok: true, fleetId: 'eu-1', epoch: i + 1 });

      const update = JSON.parse(readFileSync(updateOut, 'utf8')) as { bundle: unknown; checkpoint: string; leafIndex: number; inclusionProof: string[] };
      const consistencyProof = last === null ? [] : (JSON.parse(ok(['log', 'prove', '--from', String(last.size), '--size', String(Number(update.checkpoint.split('\n')[1]))])) as { consistencyProof: string[] }).consistencyProof;
      const result = verifyFleetUpdate({ ...update, consistencyProof, pinned, last, now: 1_800_000_000 });
      expect(result.state.epoch).toBe(i + 1);
      if (i === 1) expect(result.diff?.changed).toEqual([]); // same token keys, new epoch
      last = result.state;

      if (i === 0) {
        // Evidence between the two epochs, checkpointed by the log key in the token.
        writeFileSync(join(dir, 'evidence.json'), '{"token":"fake"}\n');
        expect(ok(['log', 'append', join(dir, 'evidence.json')])).toMatch(/^1\t/);
        expect(ok(['log', 'checkpoint'])).toMatch(new RegExp(`^${ORIGIN.replace(/\./g, '\\.')}\n2\n`));
      }
    }
  });

  it('exits 1 with a one-line reason when a bundle or a witness signature does not verify', () => {
    const bundle = JSON.parse(readFileSync(join(dir, 'bundle-1.json'), 'utf8')) as { body: { notAfter: number }; witness: Record<string, unknown> };
    const tampered = join(dir, 'tampered.json');
    writeFileSync(tampered, JSON.stringify({ ...bundle, body: { ...bundle.body, notAfter: bundle.body.notAfter + 1 } }));
    const bad = cli(['bundle', 'verify', tampered, '--witness-key', witnessKey, '--now', '1800000000']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('artifact-digest');
    expect(bad.stderr).not.toContain('    at ');
    expect(cli(['bundle', 'verify', join(dir, 'bundle-1.json'), '--witness-key', operatorKey, '--now', '1800000000']).status).toBe(1);
    expect(cli(['bundle', 'verify', join(dir, 'bundle-1.json'), '--witness-key', witnessKey, '--now', '1950000000']).stderr).toContain('expired');

    const plexi = join(dir, 'plexi.json');
    writeFileSync(plexi, JSON.stringify(bundle.witness));
    expect(JSON.parse(ok(['witness', 'verify-signature', '--key', witnessKey, plexi, '--json']))).toMatchObject({ ok: true, namespace: 'eu-1', epoch: 1 });
    ok(['witness', 'verify-signature', '--key', witnessKey, plexi, '--namespace', 'eu-1', '--epoch', '1', '--digest', bundle.witness.digest as string]);
    expect(cli(['witness', 'verify-signature', '--key', operatorKey, plexi]).status).toBe(1);
    expect(cli(['witness', 'verify-signature', '--key', witnessKey, plexi, '--epoch', '2']).status).toBe(1);
    // Offline witnessing: countersign a SignatureResponse obtained out of band (here: a fresh log).
    const offline = { HSM_VAULT_LOG_DIR: join(dir, 'offline-log') };
    ok(['bundle', 'cosign', join(dir, 'body-1.json'), '--witness-response', plexi, '--out', join(dir, 'offline.json')], offline);
    ok(['bundle', 'verify', join(dir, 'offline.json'), '--witness-key', witnessKey, '--operator-key', operatorKey, '--now', '1800000000']);
    const mismatched = cli(['bundle', 'cosign', join(dir, 'body-2.json'), '--witness-response', plexi, '--out', join(dir, 'never.json')], offline);
    expect(mismatched.status).toBe(1);
    expect(mismatched.stderr).toContain('the witness signed something other than this bundle');

    writeFileSync(plexi, JSON.stringify({ ...bundle.witness, timestamp: (bundle.witness.timestamp as number) + 1 }));
    const forged = cli(['witness', 'verify-signature', '--key', witnessKey, plexi]);
    expect(forged.status).toBe(1);
    expect(forged.stderr).toContain('[PLEXI_INVALID_SIGNATURE]');
    writeFileSync(plexi, '{"version":2}');
    expect(cli(['witness', 'verify-signature', '--key', witnessKey, plexi]).status).toBe(1);
  });

  it('proves and audits the log, and notices a tampered entry', () => {
    const proof = JSON.parse(ok(['log', 'prove', '--index', '0'])) as { treeSize: number; inclusionProof: string[] };
    expect(proof.treeSize).toBe(3);
    expect(proof.inclusionProof).toHaveLength(2);
    const audit = JSON.parse(ok(['log', 'verify', '--log-key', logKey, '--json'])) as { ok: boolean; size: number; checkpointSize: number };
    expect(audit).toMatchObject({ ok: true, size: 3, checkpointSize: 3 });
    ok(['log', 'verify', '--log-key', logKey, '--witness-key', witnessCosignatureKey]);
    const otherWitness = formatVerifierKey('other.example', SIGNATURE_TYPE_COSIGNATURE_V1, new Uint8Array(32).fill(3));
    const uncosigned = cli(['log', 'verify', '--log-key', logKey, '--witness-key', otherWitness]);
    expect(uncosigned.status).toBe(1);
    expect(uncosigned.stderr).toContain('no cosignature by other.example');

    appendFileSync(join(logDir, 'entries', '0000000000000001'), ' ');
    const broken = cli(['log', 'verify', '--log-key', logKey]);
    expect(broken.status).toBe(1);
    expect(broken.stderr).toContain('[LOG_CORRUPT]');
  });

  it('the witness process refuses a forked log over HTTP and stops cleanly on SIGTERM', async () => {
    const state = (await (await fetch(`${witnessUrl}/v1/checkpoint?origin=${encodeURIComponent(ORIGIN)}`)).json()) as { size: number; checkpoint: string };
    expect(state.size).toBe(3);
    const res = await fetch(`${witnessUrl}/v1/sign`, { method: 'POST', body: JSON.stringify({ checkpoint: state.checkpoint.replace(/\n3\n[^\n]+\n/, '\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n'), consistencyProof: [] }) });
    expect([403, 409]).toContain(res.status); // the forged root no longer carries a valid log signature
    const exited = new Promise<number | null>((r) => server!.once('exit', r));
    server!.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

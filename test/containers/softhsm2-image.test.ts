// The SoftHSM2 image (docker/softhsm2), started with testcontainers: the token is created on
// first start from secret files, survives a restart in its volume, and `hsm-vault` plus the
// driver conformance suite run against it inside the container (where the vault must run: p11-kit
// remoting drops ECDH, AES-GCM, key wrap and EdDSA).
//
// Needs a container engine and the image (HSM_VAULT_SOFTHSM2_IMAGE, default hsm-vault/softhsm2:dev;
// `.ci/containers.sh` builds both). Without them the suite skips with the reason, unless
// CONTAINERS_REQUIRED=1, where it fails.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { GenericContainer, Wait, type StartedTestContainer } from 'testcontainers';
import { containersUnavailable, describeContainers } from '../support/containers.js';

const IMAGE = process.env.HSM_VAULT_SOFTHSM2_IMAGE ?? 'hsm-vault/softhsm2:dev';

const reason = await containersUnavailable([
  { image: IMAGE, build: `docker build --network host -f docker/softhsm2/Dockerfile -t ${IMAGE} .` },
]);

describeContainers(reason, 'softhsm2 image', () => {
  const label = `ct-${randomBytes(4).toString('hex')}`;
  let container: StartedTestContainer;

  async function run(command: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    return container.exec(command, { env, workingDir: '/opt/hsm-vault' });
  }

  async function hsmVaultJson<T>(args: string[]): Promise<T> {
    const result = await run(['hsm-vault', ...args, '--json']);
    expect(result.stderr, `hsm-vault ${args.join(' ')}`).toBe('');
    expect(result.exitCode).toBe(0);
    return JSON.parse(result.stdout) as T;
  }

  beforeAll(async () => {
    container = await new GenericContainer(IMAGE)
      .withNetworkMode('none')
      .withEnvironment({ HSM_VAULT_TOKEN_LABEL: label })
      .withCopyContentToContainer([
        { content: randomBytes(12).toString('hex'), target: '/run/secrets/hsm_vault_pin', mode: 0o444 },
        { content: randomBytes(12).toString('hex'), target: '/run/secrets/hsm_vault_so_pin', mode: 0o444 },
      ])
      .withCommand(['sleep', 'infinity'])
      // "created token "L"" on first start, "token "L" already initialised" after a restart.
      .withWaitStrategy(Wait.forLogMessage(`token "${label}"`))
      .withStartupTimeout(60_000)
      .start();
  }, 120_000);

  afterAll(async () => {
    await container?.stop({ timeout: 1_000 });
  });

  it('creates the token from the secret files and reports every mechanism present', async () => {
    const info = await hsmVaultJson<{ label: string; mechanisms: { name: string; present: boolean }[] }>(['hsm', 'info']);
    expect(info.label).toBe(label);
    expect(info.mechanisms.filter((m) => !m.present).map((m) => m.name)).toEqual([]);
  });

  it('generates, lists and destroys keys with `hsm-vault keys`', async () => {
    const generated = await run(['hsm-vault', 'keys', 'generate', '--label', 'ct-oprf', '--type', 'ec-p256-derive']);
    expect(generated.exitCode, generated.stderr).toBe(0);
    const keys = await hsmVaultJson<{ label: string; local: boolean; extractable: boolean; neverExtractable: boolean }[]>(['keys', 'list']);
    const key = keys.find((k) => k.label === 'ct-oprf');
    expect(key).toMatchObject({ local: true, extractable: false, neverExtractable: true });
    const destroyed = await run(['hsm-vault', 'keys', 'destroy', '--label', 'ct-oprf']);
    expect(destroyed.exitCode, destroyed.stderr).toBe(0);
    const after = await hsmVaultJson<{ label: string }[]>(['keys', 'list']);
    expect(after.map((k) => k.label)).not.toContain('ct-oprf');
  });

  it('refuses to create a token without PINs (none is baked into the image)', async () => {
    const result = await run(['hsm-vault-token-init'], {
      HSM_VAULT_STATE_DIR: '/tmp/no-pins',
      HSM_VAULT_PIN_FILE: '/nonexistent',
      HSM_VAULT_SO_PIN_FILE: '/nonexistent',
    });
    expect(result.exitCode).toBe(64);
    expect(result.stderr).toContain('no user PIN');
  });

  it('passes the driver conformance suite inside the container', async () => {
    const result = await run(['npx', 'vitest', 'run', 'test/conformance'], { HSM_VAULT_REQUIRE_SOFTHSM: '1', NO_COLOR: '1' });
    const stdout = result.stdout.replace(/\x1b\[[0-9;]*m/g, '');
    expect(result.exitCode, `${stdout}\n${result.stderr}`).toBe(0);
    expect(stdout).toMatch(/Tests\s+\d+ passed \(\d+\)/);
  }, 300_000);

  it('keeps the token and its keys in the volume across a restart', async () => {
    const generated = await run(['hsm-vault', 'keys', 'generate', '--label', 'ct-kept', '--type', 'aes-256']);
    expect(generated.exitCode, generated.stderr).toBe(0);
    await container.restart({ timeout: 1_000 });
    let keys: { label: string }[] = [];
    for (let attempt = 0; attempt < 40; attempt++) {
      const listed = await run(['hsm-vault', 'keys', 'list', '--json']);
      if (listed.exitCode === 0) {
        keys = JSON.parse(listed.stdout) as { label: string }[];
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(keys.map((k) => k.label)).toContain('ct-kept');
    const logs = await container.logs();
    const text = await new Promise<string>((resolve) => {
      let out = '';
      logs.on('data', (chunk: Buffer | string) => (out += chunk.toString()));
      setTimeout(() => { logs.destroy(); resolve(out); }, 1_000);
    });
    expect(text).toContain(`token "${label}" already initialised`);
  }, 60_000);
});

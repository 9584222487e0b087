// `hsm-vault demo`: the main job on embedded defaults. A throw-away SoftHSM2 token (or the fake
// backend when SoftHSM2 is missing), the fleet's keys generated inside it, a SQLite store, the
// HTTP node on a loopback port, and the client SDK registering and recovering backup keys over
// HTTP: right and wrong passwords, the attempt counter, destruction at the limit, an unknown user,
// and what an attacker holding the database or asking the token for its keys would get.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Command, Option } from 'commander';
import { openHsm } from '../hsm/open.js';
import type { HsmDriver } from '../hsm/driver.js';
import { NonExportableKey } from '../hsm/errors.js';
import { ensureSoftHsmConfig, findSoftHsmModule, initSoftHsmToken, softHsmToken, softHsmTokenLabels } from '../hsm/softhsm.js';
import { openFleetKeys } from '../fleet/keys.js';
import { SqliteStore } from '../store/sqlite.js';
import { argon2idKsf } from '../opaque/ksf.js';
import { VaultClient } from '../client/vault-client.js';
import { Locked, WrongPassword } from '../client/errors.js';
import { startLocalNode } from './local-node.js';

const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const hex = (b: Uint8Array, n = 8): string => `${Buffer.from(b).subarray(0, n).toString('hex')}…`;
const enc = new TextEncoder();
/** OWASP's minimum Argon2id (19 MiB, t=2): the demo's client stretch; production clients choose their own. */
const DEMO_KSF = argon2idKsf({ memoryKiB: 19456, iterations: 2, parallelism: 1 });

async function outcome<T>(p: Promise<T>): Promise<string> {
  return p.then(
    () => 'accepted',
    (e: unknown) => (e instanceof WrongPassword ? `refused: wrong password, ${e.attemptsRemaining} attempts left` : e instanceof Locked ? 'refused: locked (423), the backup key was destroyed' : `refused: ${(e as Error).name}`),
  );
}

async function run(driver: HsmDriver, dir: string): Promise<void> {
  const info = await driver.info();
  say(`token: ${info.label} — ${info.manufacturer} ${info.model}${info.insecure ? ' (INSECURE fake backend: SoftHSM2 is not installed)' : ''}`);
  const dbPath = join(dir, 'vault.db');
  const store = await SqliteStore.open(dbPath);
  const node = await startLocalNode({ driver, store, fleetId: 'demo' });
  try {
    const fleet = await openFleetKeys(driver, 'demo');
    say('\nfleet "demo": keys generated inside the token');
    for (const key of await driver.listKeys()) {
      say(`  ${key.label.padEnd(18)} ${key.type.padEnd(15)} local=${key.local} sensitive=${key.sensitive} neverExtractable=${key.neverExtractable}`);
    }
    say(`\nvault node on ${node.baseUrl} (SQLite store ${dbPath})`);
    const client = new VaultClient({
      baseUrl: node.baseUrl,
      fleetId: 'demo',
      // A real app pins these (or takes them from a witness-signed validation bundle).
      pinnedKeys: { ake: fleet.publicKeys.ake, hpke: fleet.publicKeys.hpke },
      ksf: DEMO_KSF,
      getToken: (scope, userId) => node.issueToken(scope, userId),
    });

    const backupKey = randomBytes(32);
    say(`\nalice registers backup key ${hex(backupKey)} with her password (OPAQUE; the key travels HPKE-sealed to the token)`);
    await client.register('alice', enc.encode('correct horse battery staple'), backupKey);
    const { secret } = await client.recover('alice', enc.encode('correct horse battery staple'));
    say(`alice recovers with the right password:  ${hex(secret)} ${Buffer.from(secret).equals(backupKey) ? '(same key)' : '(DIFFERENT KEY: bug)'}`);
    for (let i = 0; i < 3; i++) say(`alice tries a wrong password:           ${await outcome(client.recover('alice', enc.encode('Tr0ub4dor&3')))}`);
    say(`alice uses the right password again:    ${await outcome(client.recover('alice', enc.encode('correct horse battery staple')))} (the counter resets)`);

    say('\nbob registers with maxAttempts = 2');
    await client.register('bob', enc.encode('hunter2 but longer'), randomBytes(32), { maxAttempts: 2 });
    for (let i = 0; i < 2; i++) say(`someone guesses bob's password:         ${await outcome(client.recover('bob', enc.encode(`guess-${i}`)))}`);
    say(`bob, with the right password:           ${await outcome(client.recover('bob', enc.encode('hunter2 but longer')))}`);

    say(`\nan unknown user "carol":                ${await outcome(client.recover('carol', enc.encode('anything')))} (indistinguishable from a known user)`);

    const db = readFileSync(dbPath);
    say(`\nthe store holds sealed records only: alice's backup key appears in the database file: ${db.includes(backupKey) ? 'YES (bug)' : 'no'}`);
    const exported = await driver.exportKeyValue(fleet.refs.oprf).then(() => 'EXPORTED (bug)', (e: unknown) => (e instanceof NonExportableKey ? 'refused by the token' : (e as Error).name));
    say(`asking the token for the OPRF key's value: ${exported}`);
  } finally {
    await node.close();
    await store.close();
  }
}

const DEV_TOKEN = 'hsm-vault-dev';

/**
 * The SoftHSM2 development token under the state directory, made on first use with random PINs
 * kept in 0600 files beside it (a dev token; never a production pattern). Returns its URI.
 */
function devToken(stateDir: string): string {
  const softhsmDir = join(stateDir, 'softhsm');
  const pinFile = join(softhsmDir, `${DEV_TOKEN}.pin`);
  const { configPath, tokenDir } = ensureSoftHsmConfig(softhsmDir);
  process.env.SOFTHSM2_CONF = configPath;
  const modulePath = findSoftHsmModule()!;
  if (existsSync(pinFile) && softHsmTokenLabels(process.env).includes(DEV_TOKEN)) {
    say(`SoftHSM2 dev token "${DEV_TOKEN}" in ${tokenDir} (kept between runs)`);
    return softHsmToken(DEV_TOKEN, configPath, tokenDir, modulePath).uri(pinFile);
  }
  const pin = randomBytes(12).toString('hex');
  const token = initSoftHsmToken({ stateDir: softhsmDir, label: DEV_TOKEN, userPin: pin, soPin: randomBytes(12).toString('hex') });
  writeFileSync(pinFile, pin, { mode: 0o600 });
  say(`created SoftHSM2 dev token "${DEV_TOKEN}" in ${tokenDir} (random PINs; user PIN in ${pinFile})`);
  return token.uri(pinFile);
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('run the main job on embedded defaults: a throw-away token, a vault node on loopback, and a client over HTTP')
    .addOption(new Option('--backend <backend>', 'token to use').choices(['auto', 'softhsm2', 'fake']).default('auto').env('HSM_VAULT_DEMO_BACKEND'))
    .addOption(new Option('--state-dir <dir>', 'where the SoftHSM2 dev token lives (kept between runs)').default('.hsm-vault').env('HSM_VAULT_STATE_DIR'))
    .action(async (opts: { backend: string; stateDir: string }) => {
      const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-demo-'));
      try {
        const useSoftHsm = opts.backend === 'softhsm2' || (opts.backend === 'auto' && findSoftHsmModule() !== undefined);
        let uri = 'fake:';
        if (useSoftHsm) {
          uri = devToken(resolve(opts.stateDir));
        } else if (opts.backend === 'auto') {
          say('SoftHSM2 is not installed (apt-get install softhsm2): this run uses the fake backend, which is not a security boundary.');
        }
        const driver = await openHsm(uri);
        try {
          await run(driver, dir);
        } finally {
          await driver.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
}

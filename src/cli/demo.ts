// `hsm-vault demo`: runs the main job on embedded defaults. Today that is a tour of the HSM
// driver on a throw-away SoftHSM2 token (or the fake backend when SoftHSM2 is not installed):
// keys made inside the token, used only through token operations, and every export refused.
// (The vault's register/recover flow joins it when the vault layer lands.)

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { Command, Option } from 'commander';
import { p256 } from '@noble/curves/nist.js';
import { openHsm } from '../hsm/open.js';
import type { HsmDriver } from '../hsm/driver.js';
import { NonExportableKey } from '../hsm/errors.js';
import { findSoftHsmModule, initSoftHsmToken } from '../hsm/softhsm.js';

const say = (line = ''): void => void process.stdout.write(`${line}\n`);

async function tour(driver: HsmDriver): Promise<void> {
  const info = await driver.info();
  say(`token: ${info.label} — ${info.manufacturer} ${info.model}${info.insecure ? ' (INSECURE fake backend)' : ''}`);
  const missing = info.mechanisms.filter((m) => !m.present).map((m) => m.name);
  say(`mechanisms the vault needs: ${info.mechanisms.length - missing.length}/${info.mechanisms.length} present${missing.length ? ` (missing ${missing.join(', ')})` : ''}`);

  const oprf = await driver.generateKey({ label: 'demo-oprf', type: 'ec-p256-derive' });
  const signing = await driver.generateKey({ label: 'demo-signing', type: 'ed25519' });
  const sealing = await driver.generateKey({ label: 'demo-sealing', type: 'aes-256' });
  const seed = await driver.generateKey({ label: 'demo-oprf-seed', type: 'hmac-sha256' });
  say('\ngenerated inside the token:');
  for (const key of await driver.listKeys()) {
    say(`  ${key.label.padEnd(16)} ${key.type.padEnd(15)} local=${key.local} neverExtractable=${key.neverExtractable} alwaysSensitive=${key.alwaysSensitive} via ${key.keyGenMechanism}`);
  }

  const peer = p256.utils.randomSecretKey();
  const tokenSide = await driver.ecdh(oprf, p256.getPublicKey(peer, false));
  const peerSide = p256.getSharedSecret(peer, await driver.publicKey(oprf), true).subarray(1);
  say(`\nECDH in the token returns x(k·P): ${Buffer.from(tokenSide).equals(Buffer.from(peerSide)) ? 'matches' : 'DIFFERS FROM'} the peer's computation`);

  const message = Buffer.from('validation bundle digest');
  const signature = await driver.sign(signing, message);
  const edPub = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), await driver.publicKey(signing)]), format: 'der', type: 'spki' });
  say(`Ed25519 signature from the token verifies with node:crypto: ${verify(null, message, edPub, signature)}`);

  const backupKey = randomBytes(32);
  const sealed = await driver.sealAesGcm(sealing, backupKey, Buffer.from('user:alice|v1'));
  const opened = await driver.openAesGcm(sealing, sealed, Buffer.from('user:alice|v1'));
  say(`record sealed (AES-256-GCM, fresh 12-byte IV) and opened again: ${Buffer.from(opened).equals(backupKey)}`);
  const tampered = { ...sealed, ciphertext: sealed.ciphertext.map((b, i) => (i === 0 ? b ^ 1 : b)) };
  await driver.openAesGcm(sealing, tampered, Buffer.from('user:alice|v1')).then(
    () => say('tampered record: ACCEPTED (this is a bug)'),
    (e: Error) => say(`tampered record: refused (${e.name})`),
  );
  const mac = await driver.hmacSha256(seed, createHash('sha256').update('alice').digest());
  say(`per-user OPRF seed expansion (in-token HMAC): ${Buffer.from(mac).subarray(0, 8).toString('hex')}…`);

  say('\ntrying to get the keys out:');
  for (const key of [oprf, signing, sealing, seed]) {
    const outcome = await driver.exportKeyValue(key).then(() => 'EXPORTED (this is a bug)', (e: Error) => (e instanceof NonExportableKey ? 'refused' : e.name));
    say(`  read ${key.label}: ${outcome}`);
  }
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('run the main job on embedded defaults (a throw-away SoftHSM2 token, or the fake backend)')
    .addOption(new Option('--backend <backend>', 'token to use').choices(['auto', 'softhsm2', 'fake']).default('auto').env('HSM_VAULT_DEMO_BACKEND'))
    .action(async (opts: { backend: string }) => {
      const useSoftHsm = opts.backend === 'softhsm2' || (opts.backend === 'auto' && findSoftHsmModule() !== undefined);
      if (!useSoftHsm) {
        if (opts.backend === 'auto') say('SoftHSM2 is not installed (apt-get install softhsm2): using the fake backend.\n');
        const driver = await openHsm('fake:');
        try { await tour(driver); } finally { await driver.close(); }
        return;
      }
      const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-demo-'));
      try {
        const pin = randomBytes(12).toString('hex');
        const pinFile = join(dir, 'user.pin');
        writeFileSync(pinFile, pin, { mode: 0o600 });
        const token = initSoftHsmToken({ stateDir: dir, label: 'hsm-vault-demo', userPin: pin, soPin: randomBytes(12).toString('hex') });
        process.env.SOFTHSM2_CONF = token.configPath;
        say(`throw-away SoftHSM2 token in ${dir} (random PINs, deleted at the end)\n`);
        const driver = await openHsm(token.uri(pinFile));
        try { await tour(driver); } finally { await driver.close(); }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
}

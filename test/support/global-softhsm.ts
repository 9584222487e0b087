// Vitest global setup: one SoftHSM2 token for the whole run, in a fresh temporary directory, with
// random PINs (written to a 0600 file, never printed). Test processes inherit the environment.
// Without SoftHSM2 the token suites report why they skip, unless HSM_VAULT_REQUIRE_SOFTHSM=1,
// where they fail instead (CI sets it).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { findSoftHsmModule, initSoftHsmToken } from '../../src/hsm/softhsm.js';

export default function setup(): () => void {
  const module = findSoftHsmModule();
  if (!module) {
    process.env.HSM_VAULT_TEST_SOFTHSM_MISSING = 'SoftHSM2 is not installed (apt-get install softhsm2)';
    return () => {};
  }
  const stateDir = mkdtempSync(join(tmpdir(), 'hsm-vault-test-'));
  const userPin = randomBytes(12).toString('hex');
  const soPin = randomBytes(12).toString('hex');
  const token = initSoftHsmToken({ stateDir, label: 'conformance', userPin, soPin });
  const pinFile = join(stateDir, 'user.pin');
  writeFileSync(pinFile, userPin, { mode: 0o600 });
  const soPinFile = join(stateDir, 'so.pin');
  writeFileSync(soPinFile, soPin, { mode: 0o600 });
  process.env.SOFTHSM2_CONF = token.configPath;
  process.env.HSM_VAULT_TEST_SOFTHSM_URI = token.uri(pinFile);
  process.env.HSM_VAULT_TEST_SOFTHSM_DIR = stateDir;
  process.env.HSM_VAULT_TEST_SOFTHSM_SO_PIN_FILE = soPinFile;
  return () => rmSync(stateDir, { recursive: true, force: true });
}

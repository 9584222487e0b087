// `npm run demo` is the first thing a newcomer runs: it must finish, on both backends, and say
// what the vault promises. Run as a subprocess, as the README tells people to.

import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findSoftHsmModule } from '../../src/hsm/softhsm.js';
import { runCli } from '../support/cli.js';

const stateDir = mkdtempSync(join(tmpdir(), 'hsm-vault-demo-state-'));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

const backends = ['fake', ...(findSoftHsmModule() ? ['softhsm2'] : [])];

describe('hsm-vault demo', () => {
  for (const backend of backends) {
    it(`runs the main job end to end on ${backend}`, () => {
      const result = runCli(['demo', '--backend', backend], { HSM_VAULT_STATE_DIR: stateDir });
      expect(result.status, result.stderr).toBe(0);
      const out = result.stdout;
      expect(out).toContain('alice recovers with the right password:');
      expect(out).toContain('(same key)');
      expect(out).toMatch(/wrong password, 9 attempts left[\s\S]*wrong password, 8 attempts left[\s\S]*wrong password, 7 attempts left/);
      expect(out).toMatch(/bob, with the right password: +refused: locked/);
      expect(out).toMatch(/unknown user "carol": +refused: wrong password, 9 attempts left/);
      expect(out).toContain('appears in the database file: no');
      expect(out).toContain("OPRF key's value: refused by the token");
      expect(out).not.toMatch(/bug\)/);
    }, 90_000);
  }

  it.runIf(findSoftHsmModule())('keeps its SoftHSM2 dev token in the state directory and reuses it', () => {
    const again = runCli(['demo', '--backend', 'softhsm2'], { HSM_VAULT_STATE_DIR: stateDir });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain('(kept between runs)');
    expect(again.stdout).toContain('(same key)');
  }, 90_000);
});

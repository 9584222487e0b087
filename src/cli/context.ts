// Shared CLI plumbing: options with environment twins, driver opening, error reporting.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option } from 'commander';
import { openHsm } from '../hsm/open.js';
import type { HsmDriver } from '../hsm/driver.js';
import { HsmError, InvalidArgument } from '../hsm/errors.js';

export const hsmOption = (): Option =>
  new Option('--hsm <uri>', 'PKCS#11 URI (RFC 7512) of the token, or fake: / fake:?path=FILE').env('HSM_VAULT_HSM');
export const jsonOption = (): Option => new Option('--json', 'print JSON').env('HSM_VAULT_JSON');
export const stateDirOption = (): Option =>
  new Option('--state-dir <dir>', 'where development tokens and local state live').env('HSM_VAULT_STATE_DIR').default('.hsm-vault');

/** SoftHSM2 reads SOFTHSM2_CONF at C_Initialize: point it at the dev token when none is set. */
export function useDevTokenConfig(stateDir: string): void {
  if (process.env.SOFTHSM2_CONF) return;
  const conf = join(resolve(stateDir), 'softhsm', 'softhsm2.conf');
  if (existsSync(conf)) process.env.SOFTHSM2_CONF = conf;
}

export async function withDriver<T>(opts: { hsm?: string; stateDir?: string }, fn: (driver: HsmDriver) => Promise<T>): Promise<T> {
  if (!opts.hsm) throw new InvalidArgument('no HSM given: pass --hsm URI or set HSM_VAULT_HSM');
  useDevTokenConfig(opts.stateDir ?? '.hsm-vault');
  const driver = await openHsm(opts.hsm, { onInsecure: (m) => process.stderr.write(`warning: ${m}\n`) });
  try {
    return await fn(driver);
  } finally {
    await driver.close();
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** Typed errors become one clear line and exit code 1; anything else is a bug and shows its stack. */
export function reportError(err: unknown): never {
  // Every layer's typed errors carry a string code and a message that is safe to print.
  const code = (err as { code?: unknown } | null)?.code;
  if (err instanceof HsmError || (err instanceof Error && typeof code === 'string')) {
    process.stderr.write(`hsm-vault: ${err.message} [${String(code)}]\n`);
    process.exit(1);
  }
  process.stderr.write(`hsm-vault: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(70);
}

/**
 * A commander action whose typed failures (any layer's errors carry a string `code` and a message
 * safe to print) become one line and exit code 1; anything else goes to main's reportError.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      if (!(err instanceof Error) || typeof code !== 'string') throw err;
      process.stderr.write(`hsm-vault: ${err.message} [${code}]\n`);
      process.exitCode = 1;
    }
  };
}

/** A required option that may come from a flag or its environment twin. */
export function required<T>(value: T | undefined, what: string): T {
  if (value === undefined || value === '') throw new InvalidArgument(`no ${what} given`);
  return value;
}

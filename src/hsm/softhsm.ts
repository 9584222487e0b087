// Development tokens on SoftHSM2: a config file and a token directory in the project's state
// directory, initialised with PINs the caller supplies (flags, files or environment). Nothing
// here has a default PIN: a dev token's PINs are chosen by whoever creates it.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgument, TokenUnavailable } from './errors.js';

export const SOFTHSM_MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
];

export function findSoftHsmModule(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.SOFTHSM2_MODULE && existsSync(env.SOFTHSM2_MODULE)) return env.SOFTHSM2_MODULE;
  return SOFTHSM_MODULE_CANDIDATES.find((p) => existsSync(p));
}

function templatePath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '..', '..', 'native-config', 'softhsm2.conf.template');
}

export interface SoftHsmToken {
  readonly label: string;
  readonly configPath: string;
  readonly tokenDir: string;
  readonly modulePath: string;
  /** A URI that selects this token; the PIN comes from `pinSource` (a file) when given. */
  uri(pinSource?: string): string;
}

/** Writes `<stateDir>/softhsm2.conf` (if missing) and returns its path. */
export function ensureSoftHsmConfig(stateDir: string): { configPath: string; tokenDir: string } {
  const tokenDir = join(stateDir, 'tokens');
  const configPath = join(stateDir, 'softhsm2.conf');
  mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
  if (!existsSync(configPath)) {
    const template = readFileSync(templatePath(), 'utf8');
    writeFileSync(configPath, template.replace('${TOKEN_DIR}', tokenDir), { mode: 0o600 });
  }
  return { configPath, tokenDir };
}

/**
 * Initialises a SoftHSM2 token with the given label and PINs (softhsm2-util --init-token --free).
 * Refuses to create a second token with the same label. PINs are passed on the command line of a
 * child process, which is acceptable for a development token only.
 */
export function initSoftHsmToken(options: { stateDir: string; label: string; userPin: string; soPin: string }): SoftHsmToken {
  const { label, userPin, soPin } = options;
  if (!/^[\x21-\x7e][\x20-\x7e]{0,30}$/.test(label)) throw new InvalidArgument('token label must be 1..32 printable characters');
  if (userPin.length < 4 || soPin.length < 4) throw new InvalidArgument('SoftHSM2 PINs must be at least 4 characters');
  const modulePath = findSoftHsmModule();
  if (!modulePath) throw new TokenUnavailable('SoftHSM2 is not installed (apt-get install softhsm2)');
  const stateDir = resolve(options.stateDir);
  const { configPath, tokenDir } = ensureSoftHsmConfig(stateDir);
  const env = { ...process.env, SOFTHSM2_CONF: configPath };
  const existing = softHsmTokenLabels(env);
  if (existing.includes(label)) throw new InvalidArgument(`a SoftHSM2 token labelled "${label}" already exists in ${tokenDir}`);
  try {
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', userPin, '--so-pin', soPin], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').split('\n')[0];
    throw new TokenUnavailable(`softhsm2-util could not initialise the token: ${stderr}`);
  }
  return softHsmToken(label, configPath, tokenDir, modulePath);
}

export function softHsmToken(label: string, configPath: string, tokenDir: string, modulePath: string): SoftHsmToken {
  return {
    label, configPath, tokenDir, modulePath,
    uri(pinSource?: string): string {
      const q = [`module-path=${encodeURI(modulePath)}`];
      if (pinSource) q.push(`pin-source=file:${encodeURI(pinSource)}`);
      return `pkcs11:token=${encodeURIComponent(label)}?${q.join('&')}`;
    },
  };
}

export function softHsmTokenLabels(env: NodeJS.ProcessEnv): string[] {
  try {
    const out = execFileSync('softhsm2-util', ['--show-slots'], { env, stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    return [...out.matchAll(/^\s*Label:\s*(.*?)\s*$/gm)].map((m) => m[1]!).filter((l) => l !== '');
  } catch {
    return [];
  }
}

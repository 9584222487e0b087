// `hsm-vault auth token`: mints a short-lived JWT with the dev issuer key of a state directory,
// for nodes started with `serve --dev-auth`. Development only; real clients get their tokens from
// the account service. Prints the token and nothing else; the private key is never printed.

import { Command, InvalidArgumentError, Option } from 'commander';
import { USER_ID_PATTERN } from '../client/vault-client.js';
import type { Scope } from '../server/auth.js';
import { DEV_TOKEN_DEFAULT_SECONDS, DEV_TOKEN_MAX_SECONDS, DevAuthError, openDevAuthKey, signDevToken } from '../server/dev-auth.js';
import { reportError, stateDirOption } from './context.js';

const SCOPES: readonly Scope[] = ['register', 'recover', 'delete'];

interface TokenOptions {
  stateDir: string;
  fleet?: string;
  user?: string;
  scope?: Scope;
  ttl: number;
  issuer?: string;
}

function parseTtl(value: string): number {
  const seconds = Number(value);
  if (!/^[0-9]+$/.test(value) || seconds < 1 || seconds > DEV_TOKEN_MAX_SECONDS) throw new InvalidArgumentError(`expected whole seconds, 1..${DEV_TOKEN_MAX_SECONDS}`);
  return seconds;
}

export function authCommands(): Command {
  const auth = new Command('auth').description('development auth: tokens for nodes started with serve --dev-auth');
  auth
    .command('token')
    .description('print a short-lived JWT signed by the dev issuer key in --state-dir (created on first use)')
    .addOption(stateDirOption())
    .addOption(new Option('--fleet <id>', 'fleet id: the token audience').env('HSM_VAULT_FLEET'))
    .addOption(new Option('--user <id>', 'user id: the token subject').env('HSM_VAULT_USER'))
    .addOption(new Option('--scope <scope>', 'what the token allows').choices(SCOPES).env('HSM_VAULT_SCOPE'))
    .addOption(new Option('--ttl <seconds>', `lifetime, at most ${DEV_TOKEN_MAX_SECONDS}`).env('HSM_VAULT_TOKEN_TTL').argParser(parseTtl).default(DEV_TOKEN_DEFAULT_SECONDS))
    .addOption(new Option('--issuer <iss>', 'set "iss" (match the node\'s --jwt-issuer)').env('HSM_VAULT_JWT_ISSUER'))
    .addHelpText('after', '\nThe node must run with --dev-auth and the same --state-dir. Never use dev auth with real secrets.')
    .action(async (opts: TokenOptions) => {
      try {
        const fleetId = need(opts.fleet, 'fleet given: pass --fleet ID or set HSM_VAULT_FLEET');
        const userId = need(opts.user, 'user given: pass --user ID or set HSM_VAULT_USER');
        const scope = need(opts.scope, 'scope given: pass --scope register|recover|delete');
        if (!USER_ID_PATTERN.test(userId)) throw new DevAuthError('user id must match [A-Za-z0-9._@-]{1,128}');
        const key = openDevAuthKey(opts.stateDir);
        if (key.created) process.stderr.write(`hsm-vault: created the dev auth key ${key.path} (development only)\n`);
        const token = await signDevToken(key, { fleetId, userId, scope, lifetimeSeconds: opts.ttl, ...(opts.issuer ? { issuer: opts.issuer } : {}) });
        process.stdout.write(`${token}\n`);
      } catch (err) {
        if (err instanceof DevAuthError) {
          process.stderr.write(`hsm-vault auth token: ${err.message}\n`);
          process.exit(1);
        }
        reportError(err);
      }
    });
  return auth;
}

function need<T extends string>(value: T | undefined, what: string): T {
  if (value === undefined || value === '') throw new DevAuthError(`no ${what}`);
  return value;
}

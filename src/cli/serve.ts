// `hsm-vault serve`: runs a vault node — the HTTP API of DESIGN.md over a token and a store.
// Plain HTTP only: TLS is terminated in front (reverse proxy or load balancer), which also makes
// --trust-proxy necessary for per-IP limits to see real client addresses.

import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { FleetError } from '../fleet/errors.js';
import type { HsmDriver } from '../hsm/driver.js';
import { HsmError } from '../hsm/errors.js';
import { openHsm } from '../hsm/open.js';
import { JwtKeyError, loadJwtKeys, type VerificationKey } from '../server/auth.js';
import { DevAuthError, devAuthVerificationKey, openDevAuthKey } from '../server/dev-auth.js';
import { ServerMetrics, timed } from '../server/metrics.js';
import { createServer, type LoggerOptions } from '../server/server.js';
import type { BucketLimit } from '../server/rate-limit.js';
import { StoreError } from '../store/errors.js';
import type { RecordStore } from '../store/store.js';
import { describeStoreUrl, openStore, parseStoreUrl } from '../store/url.js';
import { VaultError } from '../vault/errors.js';
import { Vault } from '../vault/vault.js';
import { hsmOption, reportError, stateDirOption, useDevTokenConfig } from './context.js';

export const DEFAULT_LISTEN = '127.0.0.1:8080';
export const DEFAULT_STORE = 'sqlite:./hsm-vault.db';
/** In-flight requests get this long after SIGTERM before the process gives up on them. */
const DRAIN_TIMEOUT_MS = 20_000;

interface ServeOptions {
  hsm?: string;
  store: string;
  fleet?: string;
  listen: { host: string; port: number };
  jwtKeys?: string;
  jwtIssuer?: string;
  context?: Uint8Array;
  bundle?: string;
  trustProxy?: string;
  ipLimit?: BucketLimit;
  userLimit?: BucketLimit;
  recoveryLimit?: BucketLimit;
  logLevel: NonNullable<LoggerOptions['level']>;
  stateDir: string;
  devAuth?: boolean;
}

/** The environment twin of --dev-auth, read strictly: only an explicit yes turns dev auth on. */
export const DEV_AUTH_ENV = 'HSM_VAULT_DEV_AUTH';

export function devAuthFromEnv(value: string | undefined): boolean {
  if (value === undefined) return false;
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['', '0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ServeConfigError(`${DEV_AUTH_ENV} must be 1/true/yes/on or 0/false/no/off`);
}

/** `HOST:PORT` or `[IPv6]:PORT`. */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080');
  return { host: match[1] ?? match[2]!, port };
}

function parseContext(value: string): Uint8Array {
  if (!/^(?:[0-9A-Fa-f]{2}){0,1024}$/.test(value)) throw new InvalidArgumentError('expected an even number of hex digits (at most 1024 bytes)');
  return new Uint8Array(Buffer.from(value, 'hex'));
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const HELP = `
Routes: GET /v1/fleet, POST /v1/registrations/{user}/start|finish, POST /v1/recoveries/{user}/start|finish,
DELETE /v1/registrations/{user}, GET /healthz, GET /metrics (Prometheus).

Every /v1 route except GET /v1/fleet needs "Authorization: Bearer <JWT>" from the account service:
EdDSA or ES256, aud = the fleet id, sub = the user, scope register | recover | delete, exp at most
10 minutes out. --jwt-keys names a JWKS file or PEM public key file(s), comma-separated.

--dev-auth (development only) also accepts tokens signed by the dev issuer key in --state-dir
(created on first use, mode 0600); mint them with \`hsm-vault auth token\`. Anyone who can read
that file can act as any user: never turn it on for a node that holds real secrets.

The node speaks plain HTTP. Put TLS in front of it (reverse proxy, load balancer) and pass that
proxy's address with --trust-proxy so per-IP rate limits see the client address, not the proxy's.
/metrics and /healthz are unauthenticated: expose them only to your monitoring network.

SIGTERM / SIGINT: stop accepting, finish requests in flight (up to ${DRAIN_TIMEOUT_MS / 1000} s), close the store and the token.`;

export function serveCommand(): Command {
  return new Command('serve')
    .description('run a vault node: the HTTP API over the token and the record store')
    .addOption(hsmOption())
    .addOption(new Option('--store <url>', 'record store: sqlite:PATH, etcd://h1:2379,h2:2379,h3:2379 or memory:').env('HSM_VAULT_STORE').default(DEFAULT_STORE))
    .addOption(new Option('--fleet <id>', 'fleet id: the keys to serve and the JWT audience').env('HSM_VAULT_FLEET'))
    .addOption(new Option('--listen <host:port>', 'address to listen on (plain HTTP)').env('HSM_VAULT_LISTEN').default(parseListen(DEFAULT_LISTEN), DEFAULT_LISTEN).argParser(parseListen))
    .addOption(new Option('--jwt-keys <path>', 'JWKS or PEM file(s) with the account service public keys').env('HSM_VAULT_JWT_KEYS'))
    .addOption(new Option('--jwt-issuer <iss>', 'require this JWT "iss"').env('HSM_VAULT_JWT_ISSUER'))
    .addOption(new Option('--context <hex>', 'RFC 9807 OPAQUE context of the fleet, hex (default empty)').env('HSM_VAULT_CONTEXT').argParser(parseContext))
    .addOption(new Option('--bundle <path>', 'validation bundle (JSON) to serve at GET /v1/fleet').env('HSM_VAULT_BUNDLE'))
    .addOption(new Option('--trust-proxy <addresses>', 'comma-separated proxy addresses/CIDRs allowed to set X-Forwarded-For').env('HSM_VAULT_TRUST_PROXY'))
    .addOption(new Option('--ip-limit <rate/burst>', 'requests per second and burst per client IP (default 20/40)').env('HSM_VAULT_IP_LIMIT').argParser(parseBucket))
    .addOption(new Option('--user-limit <rate/burst>', 'authenticated requests per second and burst per user (default 1/20)').env('HSM_VAULT_USER_LIMIT').argParser(parseBucket))
    .addOption(new Option('--recovery-limit <rate/burst>', 'recovery starts (password guesses) per second and burst per user, per node (default 0.0833/5, i.e. 5 a minute)').env('HSM_VAULT_RECOVERY_LIMIT').argParser(parseBucket))
    .addOption(new Option('--log-level <level>', 'log level').env('HSM_VAULT_LOG_LEVEL').choices(LOG_LEVELS).default('info'))
    .addOption(stateDirOption())
    // No commander .env(): it would turn a boolean on for any value, HSM_VAULT_DEV_AUTH=0 included.
    .addOption(new Option('--dev-auth', `DEVELOPMENT ONLY: also accept tokens from the dev issuer key in --state-dir (env: ${DEV_AUTH_ENV}=1)`))
    .addHelpText('after', HELP)
    .action(async (opts: ServeOptions) => {
      try {
        await serve(opts);
      } catch (err) {
        reportConfigError(err);
      }
    });
}

function required(value: string | undefined, what: string): string {
  if (value === undefined || value === '') throw new ServeConfigError(`no ${what}`);
  return value;
}

class ServeConfigError extends Error {}

async function serve(opts: ServeOptions): Promise<void> {
  const hsmUri = required(opts.hsm, 'HSM given: pass --hsm URI or set HSM_VAULT_HSM');
  const fleetId = required(opts.fleet, 'fleet given: pass --fleet ID or set HSM_VAULT_FLEET');
  // Configuration that can be checked without the token is checked first.
  const devAuth = opts.devAuth === true || devAuthFromEnv(process.env[DEV_AUTH_ENV]);
  if (!devAuth) required(opts.jwtKeys, 'JWT keys given: pass --jwt-keys PATH or set HSM_VAULT_JWT_KEYS (or --dev-auth for development)');
  const jwtKeys: VerificationKey[] = opts.jwtKeys ? loadJwtKeys(opts.jwtKeys) : [];
  const storeUrl = parseStoreUrl(opts.store);
  const bundle = opts.bundle === undefined ? undefined : readBundle(opts.bundle);

  const metrics = new ServerMetrics({ processMetrics: true });
  useDevTokenConfig(opts.stateDir);
  const say = (line: string): void => void process.stderr.write(`hsm-vault: ${line}\n`);
  let devKid: string | undefined;
  if (devAuth) {
    const devKey = openDevAuthKey(opts.stateDir);
    devKid = devKey.kid;
    jwtKeys.push(devAuthVerificationKey(devKey));
    say(`WARNING: DEV AUTH IS ON: this node accepts any token signed by ${devKey.path} (${devKey.created ? 'created now' : 'existing key'}, kid ${devKey.kid}). Development only: never with real secrets.`);
  }
  let driver: HsmDriver | undefined;
  let store: RecordStore | undefined;
  let vault: Vault | undefined;
  const closeBackends = async (): Promise<void> => {
    // Reverse order of opening; each step runs even if an earlier one failed.
    for (const step of [() => vault?.close(), () => store?.close(), () => driver?.close()]) {
      await Promise.resolve()
        .then(step)
        .catch((err: unknown) => say(`close failed: ${err instanceof Error ? err.message : String(err)}`));
    }
  };

  try {
    driver = timed(await openHsm(hsmUri, { onInsecure: (m) => say(`warning: ${m}`) }), metrics.hsmOpDuration);
    store = timed(await openStore(storeUrl), metrics.storeOpDuration);
    vault = await Vault.open({ driver, store, fleetId, ...(opts.context ? { context: opts.context } : {}), ...(bundle === undefined ? {} : { bundle }) });
  } catch (err) {
    await closeBackends();
    throw err;
  }

  const app = await createServer(vault, {
    jwt: { keys: jwtKeys, ...(opts.jwtIssuer ? { issuer: opts.jwtIssuer } : {}) },
    logger: { level: opts.logLevel },
    metrics,
    ...(opts.trustProxy ? { trustProxy: opts.trustProxy.split(',').map((a) => a.trim()).filter((a) => a !== '') } : {}),
    rateLimits: {
      ...(opts.ipLimit ? { perIp: opts.ipLimit } : {}),
      ...(opts.userLimit ? { perUser: opts.userLimit } : {}),
      ...(opts.recoveryLimit ? { recoveriesPerUser: opts.recoveryLimit } : {}),
    },
  });

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      say(`${signal} again: exiting without draining`);
      process.exit(1);
    }
    stopping = true;
    app.log.info({ signal }, 'shutting down: draining requests');
    const force = setTimeout(() => {
      say(`requests still in flight after ${DRAIN_TIMEOUT_MS / 1000} s: exiting`);
      process.exit(1);
    }, DRAIN_TIMEOUT_MS);
    force.unref();
    app
      .close()
      .then(closeBackends)
      .then(() => {
        clearTimeout(force);
        app.log.info('stopped');
        process.exitCode ??= 0;
      })
      .catch((err: unknown) => {
        say(`shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  try {
    await app.listen({ host: opts.listen.host, port: opts.listen.port });
  } catch (err) {
    await app.close().catch(() => {});
    await closeBackends();
    throw err;
  }
  if (devKid !== undefined) app.log.warn({ devAuthKid: devKid }, 'DEV AUTH IS ON: tokens from the dev issuer key in the state directory are accepted (development only)');
  app.log.info({ fleet: fleetId, store: describeStoreUrl(storeUrl), listen: `${opts.listen.host}:${opts.listen.port}`, jwtKeys: jwtKeys.length, devAuth }, 'vault node listening (plain HTTP; terminate TLS in front)');
}

function readBundle(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (err) {
    throw new ServeConfigError(`cannot read validation bundle ${path}: ${err instanceof SyntaxError ? 'not valid JSON' : ((err as NodeJS.ErrnoException).code ?? 'error')}`);
  }
}

/** Configuration and startup errors are one line and exit 1; anything else goes to reportError. */
function reportConfigError(err: unknown): never {
  if (err instanceof HsmError) reportError(err);
  const known = err instanceof ServeConfigError || err instanceof JwtKeyError || err instanceof DevAuthError || err instanceof StoreError || err instanceof FleetError || err instanceof VaultError;
  const listenFailed = (err as NodeJS.ErrnoException | null)?.code === 'EADDRINUSE' || (err as NodeJS.ErrnoException | null)?.code === 'EACCES';
  if (known || listenFailed) {
    process.stderr.write(`hsm-vault serve: ${(err as Error).message}\n`);
    process.exit(1);
  }
  reportError(err);
}

/** `RATE/BURST`: tokens per second (a decimal) and bucket size (a whole number), e.g. `20/40`. */
export function parseBucket(value: string): BucketLimit {
  const match = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(value.trim());
  const perSecond = match ? Number(match[1]) : NaN;
  const burst = match ? Number(match[2]) : NaN;
  if (!match || !(perSecond > 0) || !Number.isSafeInteger(burst) || burst < 1) {
    throw new InvalidArgumentError(`expected RATE/BURST with RATE > 0 per second and BURST >= 1, e.g. 20/40 (got "${value}")`);
  }
  return { perSecond, burst };
}

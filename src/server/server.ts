// The vault node: DESIGN.md's HTTP API over a VaultService. Order of checks on a /v1 request:
// per-IP limit → bearer token (401) → user and scope (403) → per-user limits → body parse and
// schema (400/413/415) → vault. Every failure is a JSON `{error, message}`; only a bug gives 500.

import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { AuthenticationFailed, Locked, SessionInvalid, VaultError, VaultUnavailable } from '../vault/errors.js';
import type { VaultService } from '../vault/service.js';
import { authorize, bearerToken, loadJwtKeys, verifyToken, type Scope, type TokenPolicy, type VerificationKey } from './auth.js';
import { HttpError, tooManyRequests } from './http-errors.js';
import { ServerMetrics, type RecoveryOutcome } from './metrics.js';
import { DEFAULT_RATE_LIMITS, TokenBuckets, type RateLimitOptions } from './rate-limit.js';
import {
  FIELD_BYTES,
  decodeField,
  encodeField,
  recoveryFinishBody,
  recoveryStartBody,
  registrationFinishBody,
  registrationStartBody,
  responses,
  userParams,
} from './schemas.js';

export interface JwtOptions {
  /** Verification keys, or the path(s) of a JWKS / PEM file (comma-separated or a list). */
  readonly keys: readonly VerificationKey[] | string | readonly string[];
  /** Required `iss`, when the account service sets one. */
  readonly issuer?: string;
  /** Longest token lifetime accepted. Default 600 s (10 minutes). */
  readonly maxLifetimeSeconds?: number;
  /** Clock skew allowed on exp, nbf and iat. Default 30 s. */
  readonly clockToleranceSeconds?: number;
}

export interface LoggerOptions {
  readonly level?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Where JSON log lines go (default stdout). */
  readonly stream?: { write(line: string): unknown };
}

export interface ServerOptions {
  readonly jwt: JwtOptions;
  readonly rateLimits?: Partial<RateLimitOptions>;
  /** Largest request body. Default 8 KiB (the largest valid body is under 1 KiB). */
  readonly bodyLimitBytes?: number;
  /** Passed to fastify: which proxies may set X-Forwarded-For (needed for per-IP limits behind a TLS terminator). */
  readonly trustProxy?: boolean | string | string[];
  /** false: no logs. Default: info to stdout. */
  readonly logger?: LoggerOptions | false;
  /** Metrics to fill (create them first to also time the driver and store); default a fresh set. */
  readonly metrics?: ServerMetrics;
  /** A vault call that takes longer answers 503. Default 15 s. */
  readonly vaultTimeoutMs?: number;
  /** /healthz waits this long for VaultService.health(). Default 5 s. */
  readonly healthTimeoutMs?: number;
  /** Clock for tokens and rate limits, ms since the epoch (tests). */
  readonly now?: () => number;
}

export const DEFAULT_BODY_LIMIT_BYTES = 8 * 1024;
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  pragma: 'no-cache',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

/** Fixed messages for fastify's own 4xx errors: their texts can quote the request body. */
const FASTIFY_CLIENT_ERRORS: Readonly<Record<string, string>> = {
  FST_ERR_CTP_EMPTY_JSON_BODY: 'body is empty',
  FST_ERR_CTP_INVALID_JSON_BODY: 'body is not valid JSON',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'content-length does not match the body',
  FST_ERR_CTP_INVALID_TYPE: 'bad content-type',
  FST_ERR_CTP_EMPTY_TYPE: 'bad content-type',
};

interface UserRoute {
  Params: { user: string };
}

export async function createServer(vault: VaultService, options: ServerOptions): Promise<FastifyInstance> {
  const now = options.now ?? Date.now;
  const metrics = options.metrics ?? new ServerMetrics();
  const limits: RateLimitOptions = { ...DEFAULT_RATE_LIMITS, ...options.rateLimits };
  const ipBuckets = new TokenBuckets(limits.perIp, now, limits.maxKeys);
  const userBuckets = new TokenBuckets(limits.perUser, now, limits.maxKeys);
  const recoveryBuckets = new TokenBuckets(limits.recoveriesPerUser, now, limits.maxKeys);
  const vaultTimeoutMs = options.vaultTimeoutMs ?? 15_000;
  const healthTimeoutMs = options.healthTimeoutMs ?? 5_000;

  const keys = typeof options.jwt.keys === 'string' || isPathList(options.jwt.keys) ? loadJwtKeys(options.jwt.keys as string | string[]) : options.jwt.keys;
  if (keys.length === 0) throw new RangeError('no JWT verification keys');
  const policy: TokenPolicy = {
    keys,
    audience: vault.fleetId,
    ...(options.jwt.issuer === undefined ? {} : { issuer: options.jwt.issuer }),
    maxLifetimeSeconds: options.jwt.maxLifetimeSeconds ?? 600,
    clockToleranceSeconds: options.jwt.clockToleranceSeconds ?? 30,
    now,
  };

  const app = Fastify({
    logger: loggerConfig(options.logger),
    // One line per request from onResponse below instead of fastify's (which logs URLs and errors verbatim).
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'reqId' }),
    bodyLimit: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    trustProxy: options.trustProxy ?? false,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    requestIdHeader: false,
    // Slow clients cannot hold a connection open forever.
    requestTimeout: 30_000,
    connectionTimeout: 60_000,
    keepAliveTimeout: 5_000,
    routerOptions: { maxParamLength: 256 },
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Refuse unknown fields instead of silently dropping them; never coerce "5" into 5.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  });

  app.removeContentTypeParser('text/plain');

  // ---- hooks: headers, per-IP limit, logs and metrics -------------------------------------
  // Every request but monitoring's (which must keep working while the node is flooded).
  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url;
    if (route === '/healthz' || route === '/metrics') return;
    spend(ipBuckets, request.ip, 'ip');
  });

  app.addHook('onSend', async (request, reply, payload) => {
    reply.headers(SECURITY_HEADERS);
    reply.header('x-request-id', request.id);
    return payload;
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { route, method: request.method };
    metrics.httpRequests.inc({ ...labels, status: String(reply.statusCode) });
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    // Route pattern, not URL; never headers or body.
    request.log.info({ route, method: request.method, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler((error: unknown, request, reply) => {
    const answer = errorResponse(error);
    if (answer.status >= 500) {
      if (error instanceof VaultError) request.log.error({ errName: error.name, errCode: error.code }, error.message);
      else request.log.error({ err: describeError(error) }, 'unexpected error');
    } else {
      request.log.info({ errCode: answer.body.error, status: answer.status }, 'request refused');
    }
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  });

  app.setNotFoundHandler(async (_request, reply) => reply.code(404).send({ error: 'not_found', message: 'no such route' }));

  // ---- auth and per-user limits -----------------------------------------------------------
  const guard = (scope: Scope, extra?: TokenBuckets) =>
    async function authenticate(request: FastifyRequest): Promise<void> {
      const started = process.hrtime.bigint();
      try {
        const token = await verifyToken(bearerToken(request.headers.authorization), policy);
        authorize(token, (request.params as { user?: unknown }).user, scope);
      } catch (err) {
        if (err instanceof HttpError) metrics.authFailures.inc({ status: String(err.httpStatus) });
        throw err;
      } finally {
        metrics.tokenVerifyDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      }
      // Only after the token: a stranger cannot spend someone else's budget.
      const user = (request.params as { user: string }).user;
      spend(userBuckets, user, 'user');
      if (extra) spend(extra, user, 'user_recovery');
    };

  function spend(buckets: TokenBuckets, key: string, limit: string): void {
    const take = buckets.take(key);
    if (!take.allowed) {
      metrics.rateLimited.inc({ limit });
      throw tooManyRequests(take.retryAfterSeconds);
    }
  }

  /** A vault call, timed and bounded: a stuck token or store answers 503 rather than hanging. */
  async function call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const end = metrics.vaultCallDuration.startTimer({ operation });
    let timer: NodeJS.Timeout | undefined;
    const work = fn();
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VaultUnavailable(`vault ${operation} timed out`)), vaultTimeoutMs);
    });
    work.catch(() => {}); // settled after a timeout: nobody listens any more
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
      end();
    }
  }

  // ---- routes -----------------------------------------------------------------------------
  app.get('/v1/fleet', { schema: { response: { 200: responses.fleet } } }, async () => {
    const info = await call('fleetInfo', () => vault.fleetInfo());
    return {
      fleetId: info.fleetId,
      keys: { ake: encodeField(info.keys.ake), hpke: encodeField(info.keys.hpke), signing: encodeField(info.keys.signing) },
      bundle: info.bundle ?? null,
    };
  });

  app.post<UserRoute & { Body: { request: string } }>(
    '/v1/registrations/:user/start',
    { onRequest: guard('register'), schema: { params: userParams, body: registrationStartBody, response: { 200: responses.registrationStart } } },
    async (request) => {
      const requestBytes = decodeField(request.body.request, FIELD_BYTES.registrationRequest);
      const { response } = await counted(metrics.registrations, call('registrationStart', () => vault.registrationStart(request.params.user, requestBytes)), 'started');
      return { response: encodeField(response) };
    },
  );

  app.post<UserRoute & { Body: { record: string; enc: string; ciphertext: string; maxAttempts?: number } }>(
    '/v1/registrations/:user/finish',
    { onRequest: guard('register'), schema: { params: userParams, body: registrationFinishBody, response: { 200: responses.registrationFinish } } },
    async (request) => {
      const { body } = request;
      const upload = {
        record: decodeField(body.record, FIELD_BYTES.record),
        enc: decodeField(body.enc, FIELD_BYTES.enc),
        ciphertext: decodeField(body.ciphertext, FIELD_BYTES.uploadCiphertext.min, FIELD_BYTES.uploadCiphertext.max),
        ...(body.maxAttempts === undefined ? {} : { maxAttempts: body.maxAttempts }),
      };
      const result = await counted(metrics.registrations, call('registrationFinish', () => vault.registrationFinish(request.params.user, upload)), 'registered');
      return { maxAttempts: result.maxAttempts };
    },
  );

  app.delete<UserRoute>(
    '/v1/registrations/:user',
    { onRequest: guard('delete'), schema: { params: userParams } },
    async (request, reply) => {
      if (request.body !== undefined && request.body !== null && !(typeof request.body === 'object' && Object.keys(request.body).length === 0)) {
        throw new HttpError(400, 'invalid_request', 'DELETE takes no body');
      }
      await counted(metrics.registrations, call('deleteRegistration', () => vault.deleteRegistration(request.params.user)), 'deleted');
      return reply.code(204).send();
    },
  );

  app.post<UserRoute & { Body: { ke1: string } }>(
    '/v1/recoveries/:user/start',
    { onRequest: guard('recover', recoveryBuckets), schema: { params: userParams, body: recoveryStartBody, response: { 200: responses.recoveryStart } } },
    async (request) => {
      const ke1 = decodeField(request.body.ke1, FIELD_BYTES.ke1);
      const started = await recovery(call('recoveryStart', () => vault.recoveryStart(request.params.user, ke1)), 'started');
      return { ke2: encodeField(started.ke2), session: encodeField(started.session), attemptsRemaining: started.attemptsRemaining };
    },
  );

  app.post<UserRoute & { Body: { ke3: string; session: string } }>(
    '/v1/recoveries/:user/finish',
    { onRequest: guard('recover'), schema: { params: userParams, body: recoveryFinishBody, response: { 200: responses.recoveryFinish } } },
    async (request) => {
      const ke3 = decodeField(request.body.ke3, FIELD_BYTES.ke3);
      const session = decodeField(request.body.session, FIELD_BYTES.session.min, FIELD_BYTES.session.max);
      const released = await recovery(call('recoveryFinish', () => vault.recoveryFinish(request.params.user, ke3, session)), 'success');
      return { nonce: encodeField(released.nonce), ciphertext: encodeField(released.ciphertext) };
    },
  );

  async function recovery<T>(work: Promise<T>, onSuccess: RecoveryOutcome): Promise<T> {
    try {
      const result = await work;
      metrics.recoveries.inc({ outcome: onSuccess });
      return result;
    } catch (err) {
      metrics.recoveries.inc({ outcome: recoveryOutcome(err) });
      if (err instanceof AuthenticationFailed && err.attemptsRemaining === 0) metrics.lockouts.inc();
      throw err;
    }
  }

  app.get('/healthz', async (_request, reply) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const report = await Promise.race([
        vault.health(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('health check timed out')), healthTimeoutMs);
        }),
      ]);
      return reply.code(report.ok ? 200 : 503).send({ ok: report.ok, checks: report.checks });
    } catch (err) {
      _request.log.warn({ err: describeError(err) }, 'health check failed');
      return reply.code(503).send({ ok: false, checks: {} });
    } finally {
      clearTimeout(timer);
    }
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });

  await app.ready();
  return app;
}

async function counted<T>(counter: ServerMetrics['registrations'], work: Promise<T>, outcome: 'started' | 'registered' | 'deleted'): Promise<T> {
  try {
    const result = await work;
    counter.inc({ outcome });
    return result;
  } catch (err) {
    counter.inc({ outcome: 'error' });
    throw err;
  }
}

function recoveryOutcome(err: unknown): RecoveryOutcome {
  if (err instanceof AuthenticationFailed) return 'authentication_failed';
  if (err instanceof Locked) return 'locked';
  if (err instanceof SessionInvalid) return 'session_invalid';
  return 'error';
}

function isPathList(keys: JwtOptions['keys']): keys is readonly string[] {
  return Array.isArray(keys) && keys.every((k) => typeof k === 'string');
}

interface ErrorAnswer {
  readonly status: number;
  readonly body: Record<string, unknown> & { error: unknown };
  readonly headers: Readonly<Record<string, string>>;
}

export function errorResponse(error: unknown): ErrorAnswer {
  if (error instanceof HttpError) return { status: error.httpStatus, body: { ...error.toJSON(), error: error.code }, headers: error.headers };
  if (error instanceof VaultError) return { status: error.httpStatus, body: { ...error.toJSON(), error: error.code }, headers: {} };
  const fastifyError = error as Partial<FastifyError> | null;
  if (fastifyError && typeof fastifyError === 'object' && Array.isArray(fastifyError.validation)) {
    const first = fastifyError.validation[0];
    const where = `${fastifyError.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
    const what = first?.keyword === 'pattern' || first?.keyword === 'minLength' || first?.keyword === 'maxLength' ? 'must be base64url (no padding) of the right length' : (first?.message ?? 'is invalid');
    return { status: 400, body: { error: 'invalid_request', message: `${where} ${what}` }, headers: {} };
  }
  const status = typeof fastifyError?.statusCode === 'number' ? fastifyError.statusCode : 500;
  if (status === 413) return { status, body: { error: 'payload_too_large', message: 'request body too large' }, headers: {} };
  if (status === 415) return { status, body: { error: 'unsupported_media_type', message: 'send application/json' }, headers: {} };
  if (status >= 400 && status < 500) {
    const message = FASTIFY_CLIENT_ERRORS[fastifyError?.code ?? ''] ?? (fastifyError?.code === undefined ? 'malformed request' : 'malformed request body');
    return { status: status === 404 ? 404 : 400, body: { error: status === 404 ? 'not_found' : 'invalid_request', message }, headers: {} };
  }
  if (status === 503) return { status, body: { error: 'unavailable', message: 'server is shutting down' }, headers: {} };
  return { status: 500, body: { error: 'internal' }, headers: {} };
}

/** Name, code, message and stack of an unexpected error: no request content is attached to these. */
function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { value: typeof error };
  return { name: error.name, message: error.message, code: (error as { code?: unknown }).code, stack: error.stack };
}

function loggerConfig(logger: ServerOptions['logger']): FastifyServerOptions['logger'] {
  if (logger === false) return false;
  return {
    level: logger?.level ?? 'info',
    ...(logger?.stream ? { stream: logger.stream } : {}),
    // Belt and braces: fastify's request serializer does not log headers, but never let one slip.
    redact: { paths: ['req.headers.authorization', 'headers.authorization', 'req.body', 'body'], censor: '[redacted]' },
  } as FastifyServerOptions['logger'];
}

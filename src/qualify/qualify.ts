// `qualify(options)`: one qualification run against a token. It loads the module (with the
// LibraryParameters the URI or a native-config profile gives), opens the driver, runs every check
// isolated, always cleans up, and returns the report. It never throws for token behaviour; it
// throws only for usage errors (a malformed URI, an unreadable PIN file).

import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { HsmDriver, KeyRef, KeyType } from '../hsm/driver.js';
import { HsmError, InvalidArgument, InvalidUri } from '../hsm/errors.js';
import { splitFakeUri } from '../hsm/fake/capabilities.js';
import { FakeDriver } from '../hsm/fake/driver.js';
import { Pkcs11Driver, type Pkcs11DriverOptions } from '../hsm/pkcs11/driver.js';
import { acquireModule, type ModuleLease } from '../hsm/pkcs11/module-registry.js';
import { loadProfileFile, profilesDirectory, type Profile } from '../hsm/pkcs11/profile.js';
import { parseHsmUri, redactUri, resolvePin, type HsmUri } from '../hsm/uri.js';
import { destroyTracked, snapshot, sweep, sweepFake, userSession, type Snapshot } from './cleanup.js';
import { behaviourChecks } from './checks/behaviour.js';
import { evidenceChecks } from './checks/evidence.js';
import { faultChecks } from './checks/faults.js';
import { mechanismChecks } from './checks/mechanisms.js';
import { moduleChecks } from './checks/module.js';
import { performanceChecks } from './checks/performance.js';
import { protectionChecks } from './checks/protection.js';
import { protocolChecks, unavailableProtocolLeg } from './checks/protocol.js';
import { RawToken, attempt, findSlot } from './raw.js';
import { describeError, runChecks, verdictOf, type RunnerEvents } from './runner.js';
import type {
  Check, CheckResult, Phase, PerformanceFigure, ProtocolLeg, QualifyContext, QualifyOptions, Report, SessionProbe, SetupFacts, TokenSummary,
} from './types.js';

export interface QualifyRunOptions extends Partial<QualifyOptions> {
  /** PKCS#11 URI (RFC 7512) or fake: (which may carry the fake's capabilities: hsm/fake/capabilities.ts). */
  readonly hsm: string;
  /** SO PIN for the CKA_TRUSTED checks (never reported). */
  readonly soPin?: string;
  /** A native-config profile by name, or a path to a profile JSON file (may carry libraryParameters). */
  readonly profile?: string;
  readonly protocol?: ProtocolLeg;
  /** Opens the driver (either backend); tests wrap it to simulate broken tokens. */
  readonly openDriver?: (uri: HsmUri, options: Pkcs11DriverOptions) => Promise<HsmDriver>;
  readonly signal?: AbortSignal;
  readonly events?: QualifyEvents;
  /** Label prefix of every object the run creates (default `hvq-<8 hex>-`). */
  readonly labelPrefix?: string;
}

export interface QualifyEvents extends RunnerEvents {
  onPlan?(checks: ReadonlyArray<{ id: string; phase: Phase }>): void;
}

export const ALL_CHECKS: readonly Check[] = [
  ...moduleChecks, ...mechanismChecks, ...protectionChecks, ...evidenceChecks, ...behaviourChecks,
  ...protocolChecks, ...faultChecks, ...performanceChecks,
];

export const CLEANUP_CHECKS = [
  { id: 'cleanup.objects', phase: 'cleanup' as const, proves: 'every object the run created under its label prefix is destroyed (also after a failure or Ctrl-C)', required: true },
  { id: 'cleanup.untouched', phase: 'cleanup' as const, proves: 'no object outside the run\'s prefix was destroyed or added by the run', required: false },
];

export const DEFAULTS: QualifyOptions = { destructive: false, perfMs: 500, concurrency: 0, maxSessionsProbe: 64 };

/** A profile's LibraryParameters: profiles may carry a top-level "libraryParameters" string. */
function profileSource(name: string | undefined): { profile?: Profile; libraryParameters?: string } {
  if (name === undefined) return {};
  let path: string | undefined;
  if (name.endsWith('.json') || existsSync(name)) path = name;
  else {
    const dir = profilesDirectory();
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
    for (const f of files) {
      const json = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { name?: string };
      if (json.name === name) path = join(dir, f);
    }
    if (!path) throw new InvalidArgument(`no native-config profile named "${name}"`);
  }
  const json = JSON.parse(readFileSync(path, 'utf8')) as { libraryParameters?: unknown };
  const libraryParameters = typeof json.libraryParameters === 'string' ? json.libraryParameters : undefined;
  return { profile: loadProfileFile(path), ...(libraryParameters !== undefined ? { libraryParameters } : {}) };
}

const secretsOf = (...pins: Array<string | undefined>): string[] => pins.filter((p): p is string => p !== undefined && p.length >= 4);

/** Replaces any PIN occurrence in every string of the report (defence in depth: none should be there). */
export function scrub<T>(value: T, secrets: readonly string[]): T {
  if (secrets.length === 0) return value;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return secrets.reduce((s, pin) => s.split(pin).join('***'), v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}

/** Sessions beside the driver's: through raw PKCS#11, or the fake token's own session model. */
function sessionProbe(driver: HsmDriver, raw: RawToken | undefined): SessionProbe | undefined {
  if (raw) {
    return {
      async open() {
        const a = attempt(() => raw.openSession());
        return a.ok ? { ok: true, close: () => raw.closeSession(a.value) } : { ok: false, why: a.ckr };
      },
    };
  }
  if (driver instanceof FakeDriver) {
    return {
      async open() {
        try {
          const s = await driver.openSession();
          return { ok: true, close: () => void driver.closeSession(s) };
        } catch (err) {
          return { ok: false, why: describeError(err) };
        }
      },
    };
  }
  return undefined;
}

export async function qualify(options: QualifyRunOptions): Promise<Report> {
  const started = Date.now();
  const { uri: hsmUri, capabilities } = splitFakeUri(options.hsm);
  const parsed = parseHsmUri(hsmUri);
  const prefix = options.labelPrefix ?? `hvq-${randomBytes(4).toString('hex')}-`;
  const signal = options.signal ?? new AbortController().signal;
  const events = options.events ?? {};
  const plan = [...ALL_CHECKS.map((c) => ({ id: c.id, phase: c.phase })), ...CLEANUP_CHECKS];
  events.onPlan?.(plan);

  let lease: ModuleLease | undefined;
  let raw: RawToken | undefined;
  let driver: HsmDriver | undefined;
  let userPin: string | undefined;
  let setupError: string | undefined;
  const setup: { -readonly [K in keyof SetupFacts]: SetupFacts[K] } = { libraryParameters: 'none' };

  if (parsed.scheme === 'fake') {
    driver = await (options.openDriver ? options.openDriver(parsed, {}) : FakeDriver.open(parsed, { onInsecure: () => {}, capabilities }));
  } else {
    const modulePath = parsed.modulePath ?? process.env.HSM_VAULT_PKCS11_MODULE;
    if (!modulePath) throw new InvalidUri('PKCS#11 URI needs module-path (or set HSM_VAULT_PKCS11_MODULE)');
    setup.modulePath = modulePath;
    const { profile, libraryParameters: fromProfile } = profileSource(options.profile ?? parsed.profile);
    if (profile) setup.profile = profile.name;
    const libraryParameters = parsed.libraryParameters ?? fromProfile;
    setup.libraryParameters = parsed.libraryParameters !== undefined ? 'uri' : fromProfile !== undefined ? 'profile' : 'none';
    userPin = resolvePin(parsed);
    try {
      // Our lease first: the driver then shares this module, initialized with these parameters.
      lease = acquireModule(modulePath, libraryParameters !== undefined ? { libraryParameters } : {});
      const info = lease.pkcs11.C_GetInfo();
      setup.library = `${info.libraryDescription.trim()} ${info.libraryVersion.major}.${info.libraryVersion.minor} (${info.manufacturerID.trim()})`;
      setup.cryptokiVersion = `${info.cryptokiVersion.major}.${info.cryptokiVersion.minor}`;
      raw = new RawToken(lease, findSlot(lease.pkcs11, parsed));
      const driverOptions: Pkcs11DriverOptions = profile ? { profile } : {};
      driver = await (options.openDriver ? options.openDriver(parsed, driverOptions) : Pkcs11Driver.open(parsed, driverOptions));
    } catch (err) {
      const text = describeError(err);
      if (!lease) {
        if (err instanceof HsmError && err.pkcs11?.fn === 'C_Initialize') setup.initializeError = text;
        else setup.loadError = text;
      }
      setupError = text;
    }
  }

  const tracked: KeyRef[] = [];
  const performance: PerformanceFigure[] = [];
  let token: TokenSummary | null = null;
  let results: CheckResult[] = [];
  const cleanupResults: CheckResult[] = [];

  try {
    if (!driver) {
      results = setupFailure(setup, setupError ?? 'unknown error', events);
    } else {
      const d = driver;
      const info = await d.info().catch(() => undefined);
      if (info) {
        token = {
          backend: info.backend, label: info.label, manufacturer: info.manufacturer, model: info.model, serial: info.serial,
          firmwareVersion: info.firmwareVersion, library: `${info.library.description} ${info.library.version}`, quirks: info.quirks,
        };
      }
      const concurrency = options.concurrency || Math.min(16, Math.max(2, (info?.poolSize ?? 2) * 2));
      const shared = new Map<string, Promise<unknown>>();
      const ctx: QualifyContext = {
        driver: d, raw, setup, prefix, signal, userPin, soPin: options.soPin, sessions: sessionProbe(d, raw),
        protocol: options.protocol ?? unavailableProtocolLeg,
        options: {
          destructive: options.destructive ?? DEFAULTS.destructive,
          perfMs: options.perfMs ?? DEFAULTS.perfMs,
          concurrency,
          maxSessionsProbe: options.maxSessionsProbe ?? DEFAULTS.maxSessionsProbe,
        },
        label: (name) => `${prefix}${name}`,
        track: (key) => void tracked.push(key),
        shared<T>(name: string, make: () => Promise<T>): Promise<T> {
          let p = shared.get(name) as Promise<T> | undefined;
          if (!p) {
            p = make();
            shared.set(name, p);
            p.catch(() => shared.delete(name));
          }
          return p;
        },
        key(type: KeyType): Promise<KeyRef> {
          return this.shared(`key:${type}`, async () => {
            const key = await d.generateKey({ label: `${prefix}${type}`, type });
            tracked.push(key);
            return key;
          });
        },
        recordPerformance: (figure) => void performance.push(figure),
      };
      let before: Snapshot | undefined;
      let beforeError = '';
      try {
        before = await snapshot(d, raw, prefix);
      } catch (err) {
        beforeError = describeError(err);
      }
      try {
        results = await runChecks(ALL_CHECKS, ctx, events);
      } finally {
        cleanupResults.push(...(await cleanUp(ctx, tracked, before, beforeError, events)));
      }
    }
  } finally {
    try { await driver?.close(); } catch { /* closing is best effort once the run is over */ }
    raw?.closeAll();
    lease?.release();
  }

  const checks = [...results, ...cleanupResults];
  const { verdict, reasons } = verdictOf(checks, signal.aborted);
  const report: Report = {
    tool: 'hsm-vault qualify',
    version: 1,
    verdict,
    reasons,
    quirks: checks.filter((c) => c.status === 'quirk').map((c) => `${c.id}: ${c.detail}`),
    hsm: redactUri(options.hsm),
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    labelPrefix: prefix,
    destructive: options.destructive ?? false,
    token,
    checks,
    performance,
  };
  return scrub(report, secretsOf(userPin, options.soPin));
}

function setupFailure(setup: SetupFacts, error: string, events: RunnerEvents): CheckResult[] {
  const results: CheckResult[] = [];
  const all = [...ALL_CHECKS, ...CLEANUP_CHECKS];
  for (const [index, c] of all.entries()) {
    let status: CheckResult['status'] = 'skip';
    let detail = `the token could not be opened: ${error}`;
    if (c.id === 'module.load') {
      status = setup.loadError ? 'fail' : 'pass';
      detail = setup.loadError ?? `${setup.modulePath}: ${setup.library ?? ''}`;
    } else if (c.id === 'module.initialize') {
      status = setup.initializeError ? 'fail' : setup.loadError ? 'skip' : 'pass';
      detail = setup.initializeError ?? (setup.loadError ? 'the module did not load' : 'initialized with CKF_OS_LOCKING_OK');
    } else if (c.id === 'token.login' && !setup.loadError && !setup.initializeError) {
      status = 'fail';
      detail = `the token could not be opened and logged in: ${error}`;
    } else if (c.id === 'cleanup.objects') {
      status = 'pass';
      detail = 'nothing was created';
    }
    const result: CheckResult = { id: c.id, phase: c.phase, status, detail, proves: c.proves, required: c.required, durationMs: 0 };
    results.push(result);
    events.onResult?.(result, index, all.length);
  }
  return results;
}

async function cleanUp(ctx: QualifyContext, tracked: readonly KeyRef[], before: Snapshot | undefined, beforeError: string, events: RunnerEvents): Promise<CheckResult[]> {
  const total = ALL_CHECKS.length + CLEANUP_CHECKS.length;
  const base = ALL_CHECKS.length;
  const t0 = performance.now();
  const [objectsCheck, untouchedCheck] = CLEANUP_CHECKS;
  events.onStart?.({ ...objectsCheck!, run: async () => ({ status: 'skip', detail: '' }) }, base, total);
  let status: CheckResult['status'] = 'pass';
  let detail: string;
  let after: Snapshot | undefined;
  try {
    const viaDriver = await destroyTracked(ctx.driver, tracked, ctx.prefix);
    const raw = ctx.raw;
    if (raw) {
      // A session of our own keeps the login while the driver's sessions close.
      raw.closeAll();
      const s = userSession(raw, ctx.userPin);
      try {
        await ctx.driver.close();
        const swept = sweep(raw, s, ctx.prefix);
        after = await snapshot(ctx.driver, raw, ctx.prefix, s);
        detail = `${viaDriver.destroyed} keys destroyed through the driver, ${swept.destroyed} more objects swept; ${swept.remaining.length} remain under "${ctx.prefix}"`;
        if (swept.remaining.length) status = 'fail';
        const errors = [...viaDriver.errors, ...swept.errors];
        if (swept.remaining.length) detail += ` (${swept.remaining.slice(0, 5).join(', ')}) — remove them with \`hsm-vault keys destroy --label …\``;
        if (errors.length) detail += `; errors: ${errors.slice(0, 3).join('; ')}`;
      } finally {
        raw.closeSession(s);
      }
    } else {
      const swept = await sweepFake(ctx.driver, ctx.prefix);
      after = await snapshot(ctx.driver, undefined, ctx.prefix);
      detail = `${viaDriver.destroyed} keys destroyed, ${swept.destroyed} more swept; ${swept.remaining.length} remain under "${ctx.prefix}"`;
      if (swept.remaining.length) status = 'fail';
    }
  } catch (err) {
    status = 'fail';
    detail = `cleanup failed: ${describeError(err)} — objects labelled "${ctx.prefix}…" may remain; list them with \`hsm-vault keys list\``;
  }
  const objects: CheckResult = { ...pick(objectsCheck!), status, detail, durationMs: Math.round(performance.now() - t0) };
  events.onResult?.(objects, base, total);

  events.onStart?.({ ...untouchedCheck!, run: async () => ({ status: 'skip', detail: '' }) }, base + 1, total);
  let u: Pick<CheckResult, 'status' | 'detail'>;
  if (!before || !after) u = { status: 'skip', detail: `could not list the token's objects${beforeError ? `: ${beforeError}` : ''}` };
  else {
    const gone = before.others.filter((o) => !after!.others.includes(o));
    const added = after.others.filter((o) => !before.others.includes(o));
    const earlier = before.earlierRuns ? `; ${before.earlierRuns} objects of earlier interrupted qualify runs (hvq-…) were left alone` : '';
    if (gone.length || added.length) {
      u = { status: 'quirk', detail: `${before.others.length} objects outside the prefix before, ${after.others.length} after (${gone.length} gone, ${added.length} new): another application is using this token — qualify destroys only objects under its own prefix${earlier}` };
    } else u = { status: 'pass', detail: `${before.others.length} objects outside the prefix, unchanged${earlier}` };
  }
  const untouched: CheckResult = { ...pick(untouchedCheck!), ...u, durationMs: 0 };
  events.onResult?.(untouched, base + 1, total);
  return [objects, untouched];
}

function pick(c: (typeof CLEANUP_CHECKS)[number]): Omit<CheckResult, 'status' | 'detail' | 'durationMs'> {
  return { id: c.id, phase: c.phase, proves: c.proves, required: c.required };
}

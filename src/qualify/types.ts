// The vocabulary of a qualification run: checks, their outcomes, the verdict and the report.
// Everything here ends up in report.json, so nothing here may ever hold a PIN.

import type { HsmDriver, KeyRef, KeyType } from '../hsm/driver.js';
import type { Quirks } from '../hsm/pkcs11/profile.js';
import type { RawToken } from './raw.js';

export type CheckStatus = 'pass' | 'fail' | 'quirk' | 'skip';

export interface Outcome {
  readonly status: CheckStatus;
  /** One or a few sentences: what was seen, with PKCS#11 return codes where the token gave one. */
  readonly detail: string;
  /** Native-config quirk settings this check measured; they go into the run's profile.json. */
  readonly measured?: Partial<Quirks>;
}

/** The outcome, with the quirk settings it measured attached. */
export const measuring = (outcome: Outcome, measured: Partial<Quirks>): Outcome => ({ ...outcome, measured });

export const pass = (detail: string): Outcome => ({ status: 'pass', detail });
export const fail = (detail: string): Outcome => ({ status: 'fail', detail });
export const quirk = (detail: string): Outcome => ({ status: 'quirk', detail });
export const skip = (reason: string): Outcome => ({ status: 'skip', detail: reason });

export type Phase = 'module' | 'mechanisms' | 'protection' | 'evidence' | 'behaviour' | 'protocol' | 'faults' | 'performance' | 'cleanup';

export const PHASES: readonly Phase[] = ['module', 'mechanisms', 'protection', 'evidence', 'behaviour', 'protocol', 'faults', 'performance', 'cleanup'];

export interface Check {
  readonly id: string;
  readonly phase: Phase;
  /** What a pass proves, in one sentence (shown in the reports). */
  readonly proves: string;
  /**
   * A required check must run: when it is skipped the verdict is "inconclusive". Any check that
   * fails makes the verdict "does not qualify", required or not.
   */
  readonly required: boolean;
  /** Needs raw PKCS#11 (skipped with a reason on the fake backend). */
  readonly raw?: boolean;
  readonly timeoutMs?: number;
  run(ctx: QualifyContext): Promise<Outcome>;
}

export interface CheckResult {
  readonly id: string;
  readonly phase: Phase;
  readonly status: CheckStatus;
  readonly detail: string;
  readonly proves: string;
  readonly required: boolean;
  readonly durationMs: number;
  /** Quirk settings the check measured (see Outcome.measured); absent when none. */
  readonly measured?: Partial<Quirks>;
}

export interface PerformanceFigure {
  readonly operation: string;
  /** Operations per second with one call in flight. */
  readonly single: number;
  /** Operations per second with `concurrency` calls in flight. */
  readonly concurrent: number;
  readonly concurrency: number;
}

export type Verdict = 'qualifies' | 'does not qualify' | 'inconclusive' | 'interrupted';

export interface TokenSummary {
  readonly backend: 'pkcs11' | 'fake';
  readonly label: string;
  readonly manufacturer: string;
  readonly model: string;
  readonly serial: string;
  readonly firmwareVersion: string;
  readonly library: string;
  readonly quirks: readonly string[];
}

export interface Report {
  readonly tool: 'hsm-vault qualify';
  readonly version: 1;
  readonly verdict: Verdict;
  /** Why, in a few lines: failing checks, or the required checks that could not run. */
  readonly reasons: readonly string[];
  readonly quirks: readonly string[];
  readonly hsm: string; // the URI with any PIN value removed
  readonly startedAt: string;
  readonly durationMs: number;
  readonly labelPrefix: string;
  readonly destructive: boolean;
  readonly token: TokenSummary | null;
  readonly checks: readonly CheckResult[];
  readonly performance: readonly PerformanceFigure[];
}

/**
 * The protocol leg: an OPAQUE login through the token and a register/recover through the vault
 * layer. Those layers plug in here when they exist; until then both checks report a skip.
 */
export interface ProtocolLeg {
  /** Why the leg cannot run, or undefined when it can. */
  readonly unavailable?: string;
  /** One full OPAQUE registration and login whose server keys live in the token. */
  opaqueLogin(session: ProtocolSession): Promise<Outcome>;
  /** Register a secret and recover it through the vault layer. */
  registerRecover(session: ProtocolSession): Promise<Outcome>;
  /** OPAQUE logins per second for `durationMs` (bounded); undefined when not measurable. */
  loginsPerSecond?(session: ProtocolSession, durationMs: number): Promise<number>;
}

/** What a protocol leg gets: the driver and a way to name (and so clean up) every key it makes. */
export interface ProtocolSession {
  readonly driver: HsmDriver;
  /** A label under the run's prefix; keys generated with it are destroyed at the end of the run. */
  label(name: string): string;
  readonly signal: AbortSignal;
}

export interface QualifyOptions {
  readonly destructive: boolean;
  /** Duration of each performance measurement (ms). */
  readonly perfMs: number;
  /** Calls in flight for the concurrent measurements and the thread-safety check. */
  readonly concurrency: number;
  /** Upper bound of sessions the session-limit probe opens. */
  readonly maxSessionsProbe: number;
}

/** What happened before the checks ran (module load, initialization), for the module checks. */
export interface SetupFacts {
  /** Where C_Initialize's LibraryParameters came from (never their value: it may name secrets). */
  readonly libraryParameters: 'uri' | 'profile' | 'none';
  readonly modulePath?: string;
  readonly loadError?: string;
  readonly initializeError?: string;
  /** The module was already initialized in this process (by another binding instance). */
  readonly alreadyInitialized?: boolean;
  readonly cryptokiVersion?: string;
  readonly library?: string;
  readonly profile?: string;
}

/** Opens sessions beside the driver's, for the session-limit probe (raw PKCS#11, or the fake's own). */
export interface SessionProbe {
  /** One more session, or why the token refused it (e.g. CKR_SESSION_COUNT). */
  open(): Promise<{ readonly ok: true; close(): void } | { readonly ok: false; readonly why: string }>;
}

export interface QualifyContext {
  readonly driver: HsmDriver;
  /** Undefined when neither raw PKCS#11 nor the fake's session model is available. */
  readonly sessions: SessionProbe | undefined;
  readonly setup: SetupFacts;
  /** Raw PKCS#11 access for probes the driver does not expose; undefined on the fake backend. */
  readonly raw: RawToken | undefined;
  readonly prefix: string;
  readonly options: QualifyOptions;
  readonly signal: AbortSignal;
  readonly protocol: ProtocolLeg;
  /** SO PIN when the operator gave one (never reported). */
  readonly soPin: string | undefined;
  /** User PIN, for logging back in after the SO check (never reported). */
  readonly userPin: string | undefined;
  /** A label under the run's prefix, remembered for cleanup. */
  label(name: string): string;
  /** One shared driver key per type under the run's prefix, generated on first use. */
  key(type: KeyType): Promise<KeyRef>;
  /** A value made once per run and shared by the checks that need it (a failed make is retried). */
  shared<T>(name: string, make: () => Promise<T>): Promise<T>;
  /** Remembers a key the check made itself, for cleanup. */
  track(key: KeyRef): void;
  recordPerformance(figure: PerformanceFigure): void;
}

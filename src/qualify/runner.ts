// Runs checks one at a time, each isolated: a timeout, and any exception turned into a fail with
// a clear detail, so that no token behaviour can crash the run. A token that stops answering
// fails the check it died in; the checks after it are skipped with that reason.

import { DriverClosed, HsmError, TokenUnavailable } from '../hsm/errors.js';
import type { Check, CheckResult, Outcome, QualifyContext, Verdict } from './types.js';
import { fail, skip } from './types.js';

export const DEFAULT_TIMEOUT_MS = 30_000;

export interface RunnerEvents {
  onStart?(check: Check, index: number, total: number): void;
  onResult?(result: CheckResult, index: number, total: number): void;
}

/** A safe one-line description of an error (typed errors are safe to show by construction). */
export function describeError(err: unknown): string {
  if (err instanceof HsmError) return `${err.name}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message.split('\n')[0]}`;
  return String(err);
}

export async function runCheck(check: Check, ctx: QualifyContext): Promise<Outcome> {
  if (ctx.signal.aborted) return skip('interrupted before this check ran');
  if (check.raw && !ctx.raw) {
    return skip(ctx.driver.backend === 'fake' ? 'needs raw PKCS#11, which the fake backend does not have' : 'raw PKCS#11 access is not available');
  }
  const timeoutMs = check.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve(fail(`timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  const body = (async () => check.run(ctx))().catch((err: unknown) => fail(`unexpected error: ${describeError(err)}`));
  try {
    return await Promise.race([body, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * After a failed check: does the token still answer? Undefined when it does (or failed for some
 * other reason); the error when it reports itself unavailable, so the run stops asking it.
 */
async function tokenLost(ctx: QualifyContext): Promise<string | undefined> {
  const probe = ctx.driver.randomBytes(1).then(() => undefined, (err: unknown) =>
    err instanceof TokenUnavailable || err instanceof DriverClosed ? describeError(err) : undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('the token did not answer a 1-byte C_GenerateRandom within 10 s'), 10_000);
  });
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runChecks(checks: readonly Check[], ctx: QualifyContext, events: RunnerEvents = {}): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  let lostDuring: string | undefined;
  for (const [index, check] of checks.entries()) {
    events.onStart?.(check, index, checks.length);
    const started = performance.now();
    let outcome = lostDuring ? skip(lostDuring) : await runCheck(check, ctx);
    if (!lostDuring && outcome.status === 'fail') {
      // A token that stops answering would fail every later check for the same reason: report it
      // once, at the check where it happened, and skip the rest with that reason.
      const lost = await tokenLost(ctx);
      if (lost) {
        const left = checks.length - index - 1;
        outcome = { ...outcome, detail: `${outcome.detail}; the token then stopped answering (${lost}): the ${left} checks after this one did not run` };
        lostDuring = `not run: the token stopped answering during ${check.id} (${lost})`;
      }
    }
    const result: CheckResult = {
      id: check.id, phase: check.phase, status: outcome.status, detail: outcome.detail, proves: check.proves, required: check.required,
      durationMs: Math.round(performance.now() - started),
      ...(outcome.measured && Object.keys(outcome.measured).length ? { measured: outcome.measured } : {}),
    };
    results.push(result);
    events.onResult?.(result, index, checks.length);
  }
  return results;
}

/**
 * Any failed check: does not qualify. Otherwise a required check that did not run: inconclusive.
 * Otherwise the token qualifies (its quirks listed). An interrupted run never qualifies.
 */
export function verdictOf(results: readonly CheckResult[], interrupted: boolean): { verdict: Verdict; reasons: string[] } {
  const failed = results.filter((r) => r.status === 'fail');
  if (failed.length > 0) return { verdict: 'does not qualify', reasons: failed.map((r) => `${r.id}: ${r.detail}`) };
  if (interrupted) return { verdict: 'interrupted', reasons: ['the run was interrupted before every check ran'] };
  const missing = results.filter((r) => r.status === 'skip' && r.required);
  if (missing.length > 0) return { verdict: 'inconclusive', reasons: missing.map((r) => `${r.id} did not run: ${r.detail}`) };
  return { verdict: 'qualifies', reasons: [] };
}

export function exitCodeOf(verdict: Verdict): number {
  switch (verdict) {
    case 'qualifies': return 0;
    case 'does not qualify': return 3;
    case 'inconclusive': return 4;
    case 'interrupted': return 130;
  }
}

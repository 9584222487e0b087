// Faults: how the token reports a closed session and a logout, and that the driver recovers
// from both under load. Closing every session of the slot and logging out from another session
// can disturb other applications that share the token's state, so those run only --destructive.

import * as C from '../../hsm/pkcs11/constants.js';
import type { Pkcs11Driver } from '../../hsm/pkcs11/driver.js';
import { attempt, describe } from '../raw.js';
import { fail, pass, quirk, skip, type Check, type QualifyContext } from '../types.js';
import { firstFew, mixedLoad, workload } from './util.js';

const CKR_SESSION_CLOSED = 0xb0;
const CKR_SESSION_HANDLE_INVALID = 0xb3;
const NEEDS_DESTRUCTIVE = 'needs --destructive (it closes every session of this application on the slot / logs the application out)';

async function underLoad(ctx: QualifyContext, what: string, action: () => unknown) {
  const w = await workload(ctx);
  const before = ctx.driver.stats.recoveries;
  const inFlight = Math.max(4, ctx.options.concurrency * 2);
  const load = await mixedLoad(ctx.driver, w, 400, inFlight, { index: 200, action });
  const recoveries = ctx.driver.stats.recoveries - before;
  const after = await mixedLoad(ctx.driver, w, 50, inFlight);
  const summary = `${what} under ${inFlight} calls in flight: ${load.ok}/400 correct, ${load.errors.length} failed, ${recoveries} driver recoveries; afterwards ${after.ok}/50 correct`;
  if (load.wrong.length || after.wrong.length) return fail(`${summary}; WRONG results: ${firstFew([...load.wrong, ...after.wrong])}`);
  if (after.ok !== 50) return fail(`${summary}: the driver did not recover (${firstFew(after.errors)})`);
  if (load.errors.length) return quirk(`${summary}; calls in flight failed: ${firstFew(load.errors)}`);
  return pass(summary);
}

export const faultChecks: Check[] = [
  {
    id: 'fault.closed-session',
    phase: 'faults',
    proves: 'a call on a session closed while the token is under load fails with a session error, and the load is unaffected',
    required: true,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      const w = await workload(ctx);
      const s = raw.openSession();
      let code = '';
      const load = await mixedLoad(ctx.driver, w, 200, Math.max(4, ctx.options.concurrency * 2), {
        index: 100,
        action: () => {
          raw.closeSession(s); // our own idle session: nothing is in flight on it
          const r = attempt(() => raw.pkcs11.C_GenerateRandom(s, Buffer.alloc(8)));
          const f = attempt(() => raw.pkcs11.C_FindObjectsInit(s, [{ type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }]));
          code = r.ok || f.ok ? 'ACCEPTED' : r.ckr;
          if (!r.ok && r.rv !== CKR_SESSION_HANDLE_INVALID && r.rv !== CKR_SESSION_CLOSED) code = `unexpected ${r.ckr}`;
          if (f.ok) attempt(() => raw.pkcs11.C_FindObjectsFinal(s));
        },
      });
      if (code === 'ACCEPTED') return fail('the token ACCEPTED calls on a closed session');
      const loadText = `${load.ok}/200 concurrent driver calls correct`;
      if (load.wrong.length || load.errors.length) return fail(`closing an unrelated session disturbed the load: ${firstFew([...load.wrong, ...load.errors])}`);
      if (code.startsWith('unexpected')) return quirk(`closed session reported as ${code.slice(11)} (not a session error); ${loadText}`);
      return pass(`closed session reported as ${code}; ${loadText}`);
    },
  },
  {
    id: 'fault.close-all-sessions',
    phase: 'faults',
    proves: 'after C_CloseAllSessions under load the driver reopens sessions, logs in again and keeps giving correct results',
    required: false,
    raw: true,
    timeoutMs: 60_000,
    async run(ctx) {
      if (!ctx.options.destructive) return skip(NEEDS_DESTRUCTIVE);
      const raw = ctx.raw!;
      const close = (): void => {
        raw.pkcs11.C_CloseAllSessions(raw.slot);
        raw.forgetSessions();
      };
      // Between the driver's calls (others queued behind), as a token reset or failover does:
      // closing a session under a call in flight on it is undefined behaviour, and SoftHSM2
      // crashes the process on it (measured).
      const driver = ctx.driver as Partial<Pick<Pkcs11Driver, 'whileIdle'>>;
      return underLoad(ctx, 'C_CloseAllSessions', () => (driver.whileIdle ? driver.whileIdle(close) : close()));
    },
  },
  {
    id: 'fault.logout-elsewhere',
    phase: 'faults',
    proves: 'how the token reports a logout from another session, and that the driver logs in again under load',
    required: false,
    raw: true,
    timeoutMs: 60_000,
    async run(ctx) {
      if (!ctx.options.destructive) return skip(NEEDS_DESTRUCTIVE);
      const raw = ctx.raw!;
      const key = await ctx.key('ec-p256-sign');
      // Quiet probe first: what does a private-key operation on a live session say after a logout?
      const seen = raw.withSession((s) => {
        const [handle] = raw.find(s, [{ type: C.CKA_CLASS, value: C.CKO_PRIVATE_KEY }, { type: C.CKA_LABEL, value: key.label }], 2);
        if (!handle) return 'key not found';
        attempt(() => raw.pkcs11.C_Logout(s));
        const r = attempt(() => raw.pkcs11.C_SignInit(s, { mechanism: C.CKM_ECDSA }, handle));
        return `a private-key call after the logout is ${describe(r)}`;
      });
      const outcome = await underLoad(ctx, 'logout from another session', () => {
        raw.withSession((s) => attempt(() => raw.pkcs11.C_Logout(s)));
      });
      return { status: outcome.status, detail: `${seen}; ${outcome.detail}` };
    },
  },
];

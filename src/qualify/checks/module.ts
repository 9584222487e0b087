// Module and token basics: the module loads, initializes with OS locking, the token is present
// and logged in, how many sessions it really opens, and whether concurrent calls stay correct.

import {
  CKF_LOGIN_REQUIRED, CKF_TOKEN_INITIALIZED, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_INITIALIZED,
  CKF_USER_PIN_LOCKED, CKS_RW_USER_FUNCTIONS,
} from '../raw.js';
import { fail, measuring, pass, quirk, skip, type Check } from '../types.js';
import { firstFew, leftOut, mixedLoad, workload } from './util.js';

const trim = (s: string): string => s.replace(/[\s\0]+$/, '');

export const moduleChecks: Check[] = [
  {
    id: 'module.load',
    phase: 'module',
    proves: 'the vendor PKCS#11 module loads into this process and answers C_GetInfo',
    required: true,
    async run(ctx) {
      if (ctx.driver.backend === 'fake') return skip('fake backend: there is no PKCS#11 module');
      const s = ctx.setup;
      if (s.loadError) return fail(s.loadError);
      return pass(`${s.modulePath ?? '?'}: ${s.library ?? 'library info unavailable'}, Cryptoki ${s.cryptokiVersion ?? '?'}`);
    },
  },
  {
    id: 'module.initialize',
    phase: 'module',
    proves: 'C_Initialize succeeds with CKF_OS_LOCKING_OK (required for concurrent calls), with LibraryParameters when the module needs them',
    required: true,
    async run(ctx) {
      if (ctx.driver.backend === 'fake') return skip('fake backend: there is no PKCS#11 module');
      const s = ctx.setup;
      if (s.initializeError) return fail(s.initializeError);
      const params = s.libraryParameters === 'none' ? 'no LibraryParameters' : `LibraryParameters from the ${s.libraryParameters === 'uri' ? 'URI (x-library-parameters)' : 'native-config profile'}`;
      if (s.alreadyInitialized) return quirk(`the module was already initialized in this process by another binding; OS locking could not be requested (${params})`);
      return pass(`initialized with CKF_OS_LOCKING_OK, ${params}`);
    },
  },
  {
    id: 'token.backend',
    phase: 'module',
    proves: 'the backend keeps keys inside a token; the fake backend never qualifies (it is insecure by design: keys live in host memory)',
    required: true,
    async run(ctx) {
      const info = await ctx.driver.info();
      if (info.insecure || ctx.driver.backend === 'fake') return fail('fake backend: key material lives in host memory (node:crypto); it is insecure by design and never qualifies');
      return pass(`PKCS#11 token "${info.label}" (${info.manufacturer} ${info.model})`);
    },
  },
  {
    id: 'token.info',
    phase: 'module',
    proves: 'the token is present and initialized, reports its identity, and its user PIN is usable (not locked)',
    required: true,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      const t = raw.pkcs11.C_GetTokenInfo(raw.slot);
      const info = await ctx.driver.info();
      const identity = `"${trim(t.label)}" ${trim(t.manufacturerID)} ${trim(t.model)} serial ${trim(t.serialNumber) || '-'} firmware ${t.firmwareVersion.major}.${t.firmwareVersion.minor}`;
      const notes: string[] = [];
      if ((t.flags & CKF_TOKEN_INITIALIZED) === 0) return fail(`${identity}: token is not initialized`);
      if ((t.flags & CKF_USER_PIN_INITIALIZED) === 0) return fail(`${identity}: the user PIN is not initialized`);
      if (t.flags & CKF_USER_PIN_LOCKED) return fail(`${identity}: the user PIN is locked`);
      if ((t.flags & CKF_LOGIN_REQUIRED) === 0) notes.push('token does not require login (CKF_LOGIN_REQUIRED unset): private objects may be reachable without a PIN');
      if (t.flags & (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY)) notes.push('a wrong user PIN was entered recently (PIN count low / final try)');
      const quirks = info.quirks.length ? `; driver profile quirks: ${info.quirks.join(', ')}` : '; no native-config profile matched (conservative defaults)';
      if (notes.length) return quirk(`${identity}; ${notes.join('; ')}${quirks}`);
      return pass(`${identity}${quirks}`);
    },
  },
  {
    id: 'token.login',
    phase: 'module',
    proves: 'the user PIN logs in, and sessions opened afterwards share the login (application-wide login state)',
    required: true,
    raw: true,
    async run(ctx) {
      const raw = ctx.raw!;
      return raw.withSession((s) => {
        const state = raw.pkcs11.C_GetSessionInfo(s).state;
        if (state !== CKS_RW_USER_FUNCTIONS) return fail(`a new R/W session is in state ${state}, not CKS_RW_USER_FUNCTIONS (3): the login does not carry over`);
        return pass('logged in as the user; new R/W sessions start in CKS_RW_USER_FUNCTIONS');
      });
    },
  },
  {
    id: 'token.sessions',
    phase: 'module',
    proves: 'how many sessions the token really opens beside the driver\'s (bounded probe; every probe session is closed again)',
    required: true,
    timeoutMs: 60_000,
    async run(ctx) {
      const probe = ctx.sessions;
      if (!probe) return skip('raw PKCS#11 access is not available to open probe sessions');
      const bound = ctx.options.maxSessionsProbe;
      const opened: Array<() => void> = [];
      let stop = '';
      try {
        while (opened.length < bound) {
          const a = await probe.open();
          if (!a.ok) {
            stop = a.why;
            break;
          }
          opened.push(() => a.close());
        }
      } finally {
        for (const close of opened) close();
      }
      const info = await ctx.driver.info();
      const claimed = info.maxSessionCount;
      const pool = info.poolSize + 1; // worker sessions + the driver's own
      const summary = `opened ${opened.length}${stop ? ` (then ${stop})` : ` (probe bound ${bound})`} beside the driver's ${pool}; token claims ${claimed ?? 'no limit'}; all probe sessions closed`;
      if (opened.length < 2) return fail(`${summary}: the vault needs at least two more sessions for recovery and ceremonies`);
      const cap = { maxSessions: opened.length + pool };
      if (stop && claimed !== null && opened.length + pool < claimed) return measuring(quirk(`${summary}: fewer than the token claims — set the profile quirk maxSessions=${cap.maxSessions}`), cap);
      if (stop) return measuring(quirk(`${summary}: at most ${cap.maxSessions} sessions in all (profile quirk maxSessions); size the driver pool (x-pool-size) below this limit`), cap);
      return pass(summary);
    },
  },
  {
    id: 'token.threads',
    phase: 'module',
    proves: 'concurrent calls from the driver\'s worker threads all return correct results (ECDH, ECDSA, Ed25519, HMAC, AES-GCM checked in software)',
    required: true,
    timeoutMs: 60_000,
    async run(ctx) {
      const w = await workload(ctx);
      const inFlight = Math.max(4, ctx.options.concurrency * 2);
      const count = 100 * 5;
      const r = await mixedLoad(ctx.driver, w, count, inFlight);
      if (r.wrong.length) return fail(`${r.wrong.length}/${count} concurrent results were WRONG: ${firstFew(r.wrong)}`);
      if (r.errors.length) return fail(`${r.errors.length}/${count} concurrent calls failed: ${firstFew(r.errors)}`);
      return pass(`${count} mixed operations, ${inFlight} in flight, all correct${leftOut(w.unusable)}`);
    },
  },
];


// Throughput of each operation the vault runs per login, one call in flight and many, in short
// bounded runs. Figures are indicative (they depend on the host and on other load on the token).

import { createHash, randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { fail, pass, skip, type Check, type QualifyContext } from '../types.js';
import { importedHmac, unusableOperations, type OperationKind } from './util.js';
import { protocolBlocked, protocolSession } from './protocol.js';

/** Operations per second of `op` with `inFlight` calls outstanding, for about `ms` milliseconds. */
export async function measure(op: () => Promise<unknown>, ms: number, inFlight: number, signal: AbortSignal): Promise<number> {
  const started = performance.now();
  const end = started + ms;
  let done = 0;
  const lane = async (): Promise<void> => {
    while (performance.now() < end && !signal.aborted) {
      await op();
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  const seconds = (performance.now() - started) / 1000;
  return seconds > 0 ? done / seconds : 0;
}

export const fmtRate = (n: number): string => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n >= 1000 ? `${(n / 1000).toFixed(2)}k` : n.toFixed(0));

type Op = (ctx: QualifyContext) => Promise<() => Promise<unknown>>;

const OPERATIONS: ReadonlyArray<{ id: string; name: string; kind?: OperationKind; op: Op }> = [
  {
    id: 'perf.ecdh', name: 'ECDH P-256', kind: 'ecdh',
    op: async (ctx) => {
      const key = await ctx.key('ec-p256-derive');
      const peer = p256.getPublicKey(p256.utils.randomSecretKey(), false);
      return () => ctx.driver.ecdh(key, peer);
    },
  },
  {
    id: 'perf.ecdsa', name: 'ECDSA P-256', kind: 'ecdsa',
    op: async (ctx) => {
      const key = await ctx.key('ec-p256-sign');
      const digest = createHash('sha256').update('qualify').digest();
      return () => ctx.driver.sign(key, digest);
    },
  },
  {
    id: 'perf.ed25519', name: 'Ed25519 sign', kind: 'ed25519',
    op: async (ctx) => {
      const key = await ctx.key('ed25519');
      const message = randomBytes(64);
      return () => ctx.driver.sign(key, message);
    },
  },
  {
    id: 'perf.hmac', name: 'HMAC-SHA256', kind: 'hmac',
    op: async (ctx) => {
      const { key } = await importedHmac(ctx);
      const data = randomBytes(64);
      return () => ctx.driver.hmacSha256(key, data);
    },
  },
  {
    id: 'perf.gcm-seal', name: 'AES-GCM seal', kind: 'gcm',
    op: async (ctx) => {
      const key = await ctx.key('aes-256');
      const record = randomBytes(256);
      const aad = Buffer.from('user|v1');
      return () => ctx.driver.sealAesGcm(key, record, aad);
    },
  },
  {
    id: 'perf.gcm-open', name: 'AES-GCM open', kind: 'gcm',
    op: async (ctx) => {
      const key = await ctx.key('aes-256');
      const aad = Buffer.from('user|v1');
      const sealed = await ctx.driver.sealAesGcm(key, randomBytes(256), aad);
      return () => ctx.driver.openAesGcm(key, sealed, aad);
    },
  },
  {
    id: 'perf.random', name: 'random 32 B',
    op: async (ctx) => {
      return () => ctx.driver.randomBytes(32);
    },
  },
];

export const performanceChecks: Check[] = [
  ...OPERATIONS.map(({ id, name, kind, op }): Check => ({
    id,
    phase: 'performance',
    proves: `${name} throughput, one call in flight and several`,
    required: false,
    timeoutMs: 30_000,
    async run(ctx) {
      const unusable = kind ? (await unusableOperations(ctx)).get(kind) : undefined;
      if (unusable) return skip(`not measured: ${unusable}`);
      const call = await op(ctx);
      await call(); // warm-up (key lookup, session copies)
      const single = await measure(call, ctx.options.perfMs, 1, ctx.signal);
      const concurrent = await measure(call, ctx.options.perfMs, ctx.options.concurrency, ctx.signal);
      if (single <= 0 || concurrent <= 0) return fail('no operation completed in the measurement window');
      ctx.recordPerformance({ operation: name, single: Math.round(single), concurrent: Math.round(concurrent), concurrency: ctx.options.concurrency });
      return pass(`${fmtRate(single)}/s single, ${fmtRate(concurrent)}/s with ${ctx.options.concurrency} in flight (×${(concurrent / single).toFixed(2)})`);
    },
  })),
  {
    id: 'perf.opaque-login',
    phase: 'performance',
    proves: 'complete OPAQUE logins per second through the token',
    required: false,
    timeoutMs: 60_000,
    async run(ctx) {
      const blocked = await protocolBlocked(ctx);
      if (blocked) return blocked;
      if (!ctx.protocol.loginsPerSecond) return skip('the protocol leg does not measure logins');
      const rate = await ctx.protocol.loginsPerSecond(protocolSession(ctx), ctx.options.perfMs);
      ctx.recordPerformance({ operation: 'OPAQUE login', single: Math.round(rate), concurrent: Math.round(rate), concurrency: 1 });
      return pass(`${fmtRate(rate)} logins/s`);
    },
  },
];

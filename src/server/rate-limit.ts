// Token buckets keyed by client IP or user id. A bucket holds up to `burst` tokens and refills
// at `perSecond`; a request takes one token or is refused with the wait until one is there.
// Memory is bounded: past `maxKeys` buckets, idle (full) buckets are dropped, then the least
// recently used — a dropped bucket comes back full, which only ever errs towards allowing.

export interface BucketLimit {
  /** Tokens added per second (5 per minute is 5 / 60). */
  readonly perSecond: number;
  /** Bucket capacity: the most requests allowed at once. */
  readonly burst: number;
}

export interface Take {
  readonly allowed: boolean;
  /** Whole seconds until a token is available (0 when allowed). */
  readonly retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweepMs = -Infinity;

  constructor(
    readonly limit: BucketLimit,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = 100_000,
  ) {
    if (!(limit.perSecond > 0) || !Number.isFinite(limit.perSecond)) throw new RangeError('rate limit perSecond must be a positive number');
    if (!Number.isInteger(limit.burst) || limit.burst < 1) throw new RangeError('rate limit burst must be a positive integer');
  }

  get size(): number {
    return this.buckets.size;
  }

  take(key: string): Take {
    const nowMs = this.now();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      this.makeRoom(nowMs);
      bucket = { tokens: this.limit.burst, updatedMs: nowMs };
    } else {
      this.buckets.delete(key); // re-inserted below: Map order is least recently used first
      const elapsed = Math.max(0, nowMs - bucket.updatedMs) / 1000;
      bucket.tokens = Math.min(this.limit.burst, bucket.tokens + elapsed * this.limit.perSecond);
      bucket.updatedMs = nowMs;
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, retryAfterSeconds: 0 };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.limit.perSecond)) };
  }

  private makeRoom(nowMs: number): void {
    if (this.buckets.size < this.maxKeys) return;
    if (nowMs - this.lastSweepMs >= 1000) {
      this.lastSweepMs = nowMs;
      for (const [key, b] of this.buckets) {
        if (b.tokens + ((nowMs - b.updatedMs) / 1000) * this.limit.perSecond >= this.limit.burst) this.buckets.delete(key);
      }
    }
    while (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
  }
}

export interface RateLimitOptions {
  /** Every /v1 request, per client IP. Default 20/s, burst 40. */
  readonly perIp: BucketLimit;
  /** Every authenticated request, per user id. Default 1/s, burst 20. */
  readonly perUser: BucketLimit;
  /** Recovery starts (each one is a counted password guess), per user id. Default 5/min, burst 5. */
  readonly recoveriesPerUser: BucketLimit;
  /** Most distinct keys remembered per limiter. Default 100 000. */
  readonly maxKeys: number;
}

export const DEFAULT_RATE_LIMITS: RateLimitOptions = {
  perIp: { perSecond: 20, burst: 40 },
  perUser: { perSecond: 1, burst: 20 },
  recoveriesPerUser: { perSecond: 5 / 60, burst: 5 },
  maxKeys: 100_000,
};

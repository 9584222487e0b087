// Measurement helpers shared by the benchmarks: medians of rounds, a rate with one caller, and a
// rate with many concurrent callers.

export interface BenchOptions {
  readonly json: boolean;
  readonly seconds: number;
  readonly rounds: number;
  readonly concurrency: number;
}

/** The q-quantile (0..1) of xs, nearest rank. */
export const percentile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
};

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function rate(seconds: number, count: number | undefined, once: () => Promise<unknown> | unknown): Promise<number> {
  const start = performance.now();
  let n = 0;
  if (count !== undefined) {
    for (; n < count; n++) await once();
  } else {
    const end = start + seconds * 1000;
    while (performance.now() < end) {
      for (let i = 0; i < 16; i++) await once();
      n += 16;
    }
  }
  return (n * 1000) / (performance.now() - start);
}

/**
 * Many concurrent callers. Each yields to the event loop after every call, as a server's callers
 * (requests arriving by I/O) do: a call that settles without a turn of the loop (one run inline on
 * the event-loop thread) would otherwise chain callers through microtasks forever, starving timers
 * and I/O, and the lag monitor, which then takes no sample, would report no lag at all.
 */
export async function saturated(seconds: number, count: number | undefined, concurrency: number, once: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  const end = start + seconds * 1000;
  let n = 0;
  let started = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (count !== undefined ? started < count : performance.now() < end) {
        started++;
        await once();
        n++;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }),
  );
  return (n * 1000) / (performance.now() - start);
}

/**
 * Calls `once` `count` times, each 1 ms after the last settled (requests arriving by I/O, with
 * the driver's workers asleep in between), and returns how long each call held the event loop
 * before it returned its promise (ms): what a server's other requests wait for.
 */
export async function spacedHolds(count: number, once: () => Promise<unknown>): Promise<number[]> {
  const holds: number[] = [];
  for (let i = 0; i < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
    const start = performance.now();
    const pending = once();
    holds.push(performance.now() - start);
    await pending;
  }
  return holds;
}


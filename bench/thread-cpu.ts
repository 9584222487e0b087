// CPU time per thread of this process, from Linux's /proc/self/task/<tid>/stat (utime + stime).
// The vault bench uses it to say where a recovery's CPU goes (the node's event-loop thread, the
// token's worker threads, the load generator, the rest) next to a library login's, measured over
// the same run. Elsewhere than Linux, `available` is false and the bench leaves the columns out.

import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second for utime/stime: 100 on every Linux this bench runs on (USER_HZ). */
const TICKS_PER_SECOND = 100;

export type ThreadCpu = ReadonlyMap<number, number>;

export const threadCpuAvailable = ((): boolean => {
  try {
    return readdirSync('/proc/self/task').length > 0;
  } catch {
    return false;
  }
})();

/** CPU milliseconds so far of every live thread of this process, by thread id. */
export function threadCpu(): ThreadCpu {
  const out = new Map<number, number>();
  if (!threadCpuAvailable) return out;
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended between the listing and the read
    }
    // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND);
  }
  return out;
}

/** Thread ids that exist now and did not in `before`: the threads something just started. */
export function newThreads(before: ThreadCpu, after: ThreadCpu = threadCpu()): number[] {
  return [...after.keys()].filter((tid) => !before.has(tid));
}

/** The calling thread's id (Linux): the event-loop thread's is the process id. */
export function currentThreadId(): number | undefined {
  try {
    return Number(readFileSync('/proc/thread-self/stat', 'utf8').split(' ', 1)[0]);
  } catch {
    return undefined;
  }
}

/**
 * CPU milliseconds spent between two samples, summed per named group of threads; threads in no
 * group count as `other`. A thread that ended in between is missed (none of ours do mid-run).
 */
export function cpuByGroup(before: ThreadCpu, after: ThreadCpu, groups: Readonly<Record<string, readonly number[]>>): Record<string, number> {
  const out: Record<string, number> = { other: 0 };
  const groupOf = new Map<number, string>();
  for (const [name, tids] of Object.entries(groups)) {
    out[name] = 0;
    for (const tid of tids) groupOf.set(tid, name);
  }
  for (const [tid, ms] of after) {
    const spent = ms - (before.get(tid) ?? 0);
    const group = groupOf.get(tid) ?? 'other';
    out[group] = (out[group] ?? 0) + spent;
  }
  return out;
}

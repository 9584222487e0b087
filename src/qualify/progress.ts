// Live progress on stderr: on a terminal, a bar per phase with the check in flight (redrawn with
// \r); otherwise one plain line per finished check. Details never carry a PIN (see qualify.ts).

import type { CheckResult, Phase } from './types.js';
import type { QualifyEvents } from './qualify.js';

interface Writable {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

const MARK: Record<CheckResult['status'], string> = { pass: 'pass ', fail: 'FAIL ', quirk: 'quirk', skip: 'skip ' };
const COLOUR: Record<CheckResult['status'], string> = { pass: '\x1b[32m', fail: '\x1b[31m', quirk: '\x1b[33m', skip: '\x1b[2m' };
const RESET = '\x1b[0m';

export function progressReporter(out: Writable = process.stderr, tty = out.isTTY === true): QualifyEvents {
  let plan: Array<{ id: string; phase: Phase }> = [];
  const perPhase = new Map<Phase, { total: number; done: number; counts: Record<CheckResult['status'], number> }>();
  let current: Phase | undefined;

  const bar = (done: number, total: number, width = 20): string => {
    const filled = total === 0 ? width : Math.round((done / total) * width);
    return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
  };
  const width = (): number => Math.max(40, (out.columns ?? 100) - 1);
  const fit = (line: string): string => (line.length > width() ? `${line.slice(0, width() - 1)}…` : line);
  const liveLine = (phase: Phase, id: string): void => {
    const p = perPhase.get(phase)!;
    out.write(`\r\x1b[2K${fit(`${phase.padEnd(12)} ${bar(p.done, p.total)} ${p.done}/${p.total}  ${id}…`)}`);
  };
  const finishPhase = (phase: Phase): void => {
    const p = perPhase.get(phase)!;
    const c = p.counts;
    const summary = [c.pass && `${c.pass} pass`, c.quirk && `${c.quirk} quirk`, c.fail && `${c.fail} FAIL`, c.skip && `${c.skip} skip`].filter(Boolean).join(', ');
    out.write(`\r\x1b[2K${phase.padEnd(12)} ${bar(p.done, p.total)} ${p.done}/${p.total}  ${summary}\n`);
  };

  return {
    onPlan(checks) {
      plan = [...checks];
      for (const c of plan) {
        const p = perPhase.get(c.phase) ?? { total: 0, done: 0, counts: { pass: 0, fail: 0, quirk: 0, skip: 0 } };
        p.total++;
        perPhase.set(c.phase, p);
      }
    },
    onStart(check) {
      if (!tty) return;
      if (current !== undefined && current !== check.phase) finishPhase(current);
      current = check.phase;
      liveLine(check.phase, check.id);
    },
    onResult(result) {
      const p = perPhase.get(result.phase);
      if (p) {
        p.done++;
        p.counts[result.status]++;
      }
      if (!tty) {
        out.write(`[qualify] ${result.status.padEnd(5)} ${result.id} — ${result.detail}\n`);
        return;
      }
      if (current !== undefined && current !== result.phase) finishPhase(current);
      current = result.phase;
      if (result.status !== 'pass') out.write(`\r\x1b[2K  ${COLOUR[result.status]}${MARK[result.status]}${RESET} ${fit(`${result.id} — ${result.detail}`)}\n`);
      if (p && p.done === p.total) {
        finishPhase(result.phase);
        current = undefined;
      } else liveLine(result.phase, '');
    },
  };
}

// A reaper for processes a test worker starts (etcd members, vault nodes).
//
// vitest ends fork workers with SIGTERM, so no exit hook or afterAll runs after a crash or a
// timeout. A reaper process holds the read end of a pipe from this worker: when the worker dies,
// however it dies, the pipe reaches EOF and the reaper kills what it watches and removes `root`.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

const REAPER_SCRIPT = `
const { rmSync } = require('node:fs');
const pids = new Set();
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  pending += chunk;
  for (let i; (i = pending.indexOf('\\n')) !== -1; pending = pending.slice(i + 1)) {
    const [op, pid] = pending.slice(0, i).split(' ');
    if (op === '+') pids.add(Number(pid)); else pids.delete(Number(pid));
  }
});
process.stdin.on('end', () => {
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch {} }
  rmSync(process.argv[1], { recursive: true, force: true });
});
`;

/** Kills every watched pid and removes `root` when the worker dies, however it dies. */
export class Reaper {
  private readonly process: ChildProcessWithoutNullStreams;

  constructor(root: string) {
    this.process = spawn(process.execPath, ['-e', REAPER_SCRIPT, root], { stdio: 'pipe' });
    // Neither the reaper nor its pipe may keep this worker alive.
    this.process.unref();
    for (const stream of [this.process.stdin, this.process.stdout, this.process.stderr]) {
      (stream as unknown as { unref?: () => void }).unref?.();
    }
  }

  watch(pid: number): void {
    this.process.stdin.write(`+ ${pid}\n`);
  }

  forget(pid: number): void {
    this.process.stdin.write(`- ${pid}\n`);
  }

  /** Normal shutdown: everything is already stopped; EOF lets the reaper exit. */
  close(): void {
    this.process.stdin.end();
  }
}

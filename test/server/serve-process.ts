// `hsm-vault serve` as a child process for the tests (test/server/fixtures/serve-main.ts): its
// output, its exit, and the address once it listens. Every process started is killed after the
// file's tests.

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const ENTRY = join(import.meta.dirname, 'fixtures', 'serve-main.ts');
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

export function startServe(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /Server listening at (http:\/\/[0-9.]+:[0-9]+)/.exec(stdout);
      if (m) {
        clearInterval(timer);
        resolve(m[1]!);
      }
    }, 50);
    void exited.then(() => {
      clearInterval(timer);
      reject(new Error(`serve exited early: ${stderr}`));
    });
  });
  return { child, exited, listening, output: () => ({ stdout, stderr }) };
}

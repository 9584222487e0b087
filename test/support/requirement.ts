// What a suite does when something it needs (a SoftHSM2 token, etcd, a container engine) is not
// on this machine: skip with the reason locally, fail when the environment variable says it is
// required (CI sets them), so a suite never passes silently by not running.

import { describe, it } from 'vitest';

export function skipOrRequire(what: string, requiredVar: string, reason: string): void {
  if (process.env[requiredVar] === '1') {
    describe(`${what} (required)`, () => {
      it(`has ${what}`, () => {
        throw new Error(`${requiredVar}=1 but ${reason}`);
      });
    });
  } else {
    process.stderr.write(`${what} skipped: ${reason}\n`);
    describe.skip(`${what} skipped: ${reason}`, () => {
      it(what, () => {});
    });
  }
}

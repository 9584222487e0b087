#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (run by `npm ci` via `prepare`).
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('hsm-vault: dist/ is missing; run `npm run build` first (or `npm run cli -- ...`)\n');
    process.exit(2);
  }
  throw err;
});

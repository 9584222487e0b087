// npm run bench -- <suite> [--json] [--seconds S] [--rounds R]
import { benchHsm } from './hsm.js';
import { benchOpaque } from './opaque.js';
import { benchVault } from './vault.js';

const [suite = 'hsm', ...rest] = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : undefined;
};
const options = {
  json: rest.includes('--json'),
  seconds: Number(flag('--seconds') ?? 1),
  rounds: Number(flag('--rounds') ?? 3),
  concurrency: Number(flag('--concurrency') ?? 16),
};

const suites: Record<string, (o: typeof options) => Promise<void>> = { hsm: benchHsm, opaque: benchOpaque, vault: benchVault };
const run = suites[suite];
if (!run) {
  process.stderr.write(`unknown bench suite "${suite}"; available: ${Object.keys(suites).join(', ')}\n`);
  process.exit(2);
}
await run(options);

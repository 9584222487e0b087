// Child process for the two-process sqlite test: increments a counter record N times with
// read-modify-CAS-retry through its own SqliteStore, then prints how many conflicts it hit.
// Usage: node --import tsx sqlite-incrementer.ts FILE USER COUNT
// It prints "ready", waits for a line on stdin (so both processes start together), and yields
// a millisecond between read and write, as the vault does while the token works, so the two
// processes really race.

import { SqliteStore } from '../../src/store/sqlite.js';
import { VersionConflict } from '../../src/store/errors.js';

const [file, userId, countArg] = process.argv.slice(2);
const store = SqliteStore.open(file!, { busyTimeoutMs: 10_000 });
let conflicts = 0;
process.stdout.write('ready\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.destroy();
for (let i = 0; i < Number(countArg); i++) {
  for (;;) {
    const current = await store.get(userId!);
    const count = current ? new DataView(current.value.buffer).getUint32(0) : 0;
    const next = new Uint8Array(4);
    new DataView(next.buffer).setUint32(0, count + 1);
    await new Promise((resolve) => setTimeout(resolve, 1));
    try {
      await store.put(userId!, next, current?.version ?? null);
      break;
    } catch (err) {
      if (!(err instanceof VersionConflict)) throw err;
      conflicts++;
    }
  }
}
await store.close();
process.stdout.write(JSON.stringify({ conflicts }));

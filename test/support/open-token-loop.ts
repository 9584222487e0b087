// Child process for the multi-process open test: opens and closes the token named by argv[2]
// argv[3] times and prints {"ok": n, "failures": ["<error name>: <message>", …]} as one line.

import { Pkcs11Driver } from '../../src/hsm/pkcs11/driver.js';
import { parseHsmUri, type Pkcs11Uri } from '../../src/hsm/uri.js';

const [uri, times] = process.argv.slice(2);
let ok = 0;
const failures: string[] = [];
for (let i = 0; i < Number(times); i++) {
  try {
    const driver = await Pkcs11Driver.open(parseHsmUri(uri!) as Pkcs11Uri, { poolSize: 1 });
    await driver.close();
    ok++;
  } catch (err) {
    failures.push(`${(err as Error).name}: ${(err as Error).message}`);
  }
}
process.stdout.write(`${JSON.stringify({ ok, failures })}\n`);

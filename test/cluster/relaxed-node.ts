// A vault node process like `hsm-vault serve`, configured by the same environment twins
// (HSM_VAULT_HSM, HSM_VAULT_STORE, HSM_VAULT_FLEET, HSM_VAULT_LISTEN, HSM_VAULT_JWT_KEYS), but with
// rate limits high enough that a guess storm on one user reaches the vault. `serve` has no flag
// for the limits yet; once it has one, the storm suite should run `serve` with it instead.

import { openHsm } from '../../src/hsm/open.js';
import type { HsmDriver } from '../../src/hsm/driver.js';
import { createServer } from '../../src/server/server.js';
import { openStore } from '../../src/store/url.js';
import type { RecordStore } from '../../src/store/store.js';
import { Vault } from '../../src/vault/vault.js';

const UNLIMITED = { perSecond: 1e6, burst: 1e6 };

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`relaxed-node: ${name} is not set`);
  return value;
}

async function main(): Promise<void> {
  const [host, port] = env('HSM_VAULT_LISTEN').split(':');
  let driver: HsmDriver | undefined;
  let store: RecordStore | undefined;
  driver = await openHsm(env('HSM_VAULT_HSM'), { onInsecure: () => {} });
  store = await openStore(env('HSM_VAULT_STORE'));
  const vault = await Vault.open({ driver, store, fleetId: env('HSM_VAULT_FLEET') });
  const app = await createServer(vault, {
    jwt: { keys: env('HSM_VAULT_JWT_KEYS') },
    logger: { level: 'warn' },
    rateLimits: { perIp: UNLIMITED, perUser: UNLIMITED, recoveriesPerUser: UNLIMITED },
  });
  const stop = (): void => {
    void app
      .close()
      .then(() => store?.close())
      .then(() => driver?.close())
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await app.listen({ host: host!, port: Number(port) });
}

main().catch((err: unknown) => {
  process.stderr.write(`relaxed-node: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});

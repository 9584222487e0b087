// A whole vault node in this process, for the demo and the end-to-end tests: fleet keys in the
// given token, a store, the HTTP node on a loopback port, and a stand-in account service that
// mints the short-lived JWTs clients present. Real deployments run `hsm-vault serve` and get
// their JWTs from the account service.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { FastifyInstance } from 'fastify';
import type { HsmDriver } from '../hsm/driver.js';
import { createFleetKeys, openFleetKeys } from '../fleet/keys.js';
import { KeyNotFound } from '../hsm/errors.js';
import type { RecordStore } from '../store/store.js';
import { Vault } from '../vault/vault.js';
import { createServer } from '../server/server.js';

export interface LocalNode {
  readonly baseUrl: string;
  readonly fleetId: string;
  readonly vault: Vault;
  readonly app: FastifyInstance;
  /** What the account service would hand the signed-in user: a 5-minute JWT for one scope. */
  issueToken(scope: 'register' | 'recover' | 'delete', userId: string): Promise<string>;
  close(): Promise<void>;
}

export async function startLocalNode(options: { driver: HsmDriver; store: RecordStore; fleetId: string; quiet?: boolean }): Promise<LocalNode> {
  const { driver, store, fleetId } = options;
  await openFleetKeys(driver, fleetId).catch(async (err: unknown) => {
    if (err instanceof KeyNotFound) return createFleetKeys(driver, fleetId);
    throw err;
  });
  const vault = await Vault.open({ driver, store, fleetId });
  const account = generateKeyPairSync('ed25519');
  const app = await createServer(vault, {
    jwt: { keys: [{ alg: 'EdDSA', kid: 'account-service', key: account.publicKey }] },
    logger: options.quiet === false ? {} : false,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('the node did not get a TCP port');
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    fleetId,
    vault,
    app,
    issueToken: (scope, userId) =>
      new SignJWT({ scope, jti: randomBytes(8).toString('hex') })
        .setProtectedHeader({ alg: 'EdDSA', kid: 'account-service' })
        .setSubject(userId)
        .setAudience(fleetId)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(account.privateKey),
    async close() {
      await app.close();
      await vault.close();
    },
  };
}

// OPAQUE server benchmark: logins per second (KE1 -> KE2, then the KE3 check; client work is done
// before the clock starts) through the token-backed server, on the fake backend and on a
// throw-away SoftHSM2 token, against the floor measured in the same run:
//   SoftHSM2: the raw pkcs11js calls one login needs (4 ECDH, 1 HMAC) plus the node:crypto ECDH
//             it does in software (8 scalar multiplications);
//   fake:     the node:crypto ECDH it needs (8 in the protocol + 4 behind the fake token) and its HMAC.
// "saturated" runs many logins at once; its ratio is against the same single-thread floor.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createECDH, createHmac, randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { findSoftHsmModule, initSoftHsmToken } from '../src/hsm/softhsm.js';
import { Pkcs11Driver } from '../src/hsm/pkcs11/driver.js';
import { FakeDriver } from '../src/hsm/fake/driver.js';
import { parseHsmUri, type Pkcs11Uri } from '../src/hsm/uri.js';
import type { HsmDriver } from '../src/hsm/driver.js';
import * as C from '../src/hsm/pkcs11/constants.js';
import { ecdhOutputTemplate } from '../src/hsm/pkcs11/templates.js';
import { OpaqueClient, OpaqueServer, identityKsf, parseRegistrationRecord } from '../src/opaque/index.js';
import { tokenServerKeys } from '../src/vault/token-server-keys.js';
import { median, rate, saturated, type BenchOptions } from './measure.js';

/** Software scalar multiplications per server login (see the header). */
const SOFTWARE_ECDH_PER_LOGIN = 8;
const TOKEN_ECDH_PER_LOGIN = 4;

async function prepare(driver: HsmDriver): Promise<{ login: () => Promise<void> }> {
  const label = (role: string) => `bench-opaque-${role}-${randomBytes(4).toString('hex')}`;
  const keys = await tokenServerKeys(driver, {
    oprfKey: await driver.generateKey({ label: label('oprf'), type: 'ec-p256-derive' }),
    oprfSeed: await driver.generateKey({ label: label('seed'), type: 'hmac-sha256' }),
    akeKey: await driver.generateKey({ label: label('ake'), type: 'ec-p256-derive' }),
  });
  return { login: await serverLogin(new OpaqueServer(keys)) };
}

/**
 * One server login (KE1 -> KE2, then the KE3 check) per call, on a user registered here. Client
 * work happens before any clock: fixed server randomness makes each KE2, and so the KE3 that
 * answers it, reproducible.
 */
export async function serverLogin(server: OpaqueServer): Promise<() => Promise<void>> {
  const client = new OpaqueClient({ ksf: identityKsf });
  const userId = new TextEncoder().encode('bench-user');
  const password = new TextEncoder().encode('bench password');
  const { request, state } = client.createRegistrationRequest(password);
  const { record: recordBytes } = await client.finalizeRegistrationRequest(state, await server.createRegistrationResponse(request, userId));
  const record = parseRegistrationRecord(recordBytes);
  const sessions: Array<{ ke1: Uint8Array; fixed: { maskingNonce: Uint8Array; serverNonce: Uint8Array; serverKeyshareSeed: Uint8Array }; ke3: Uint8Array }> = [];
  for (let i = 0; i < 32; i++) {
    const fixed = { maskingNonce: randomBytes(32), serverNonce: randomBytes(32), serverKeyshareSeed: randomBytes(32) };
    const { ke1, state: loginState } = client.generateKE1(password);
    const { ke2 } = await server.generateKE2(ke1, record, userId, undefined, fixed);
    sessions.push({ ke1, fixed, ke3: (await client.generateKE3(loginState, ke2)).ke3 });
  }
  let next = 0;
  return async () => {
    const s = sessions[next++ % sessions.length]!;
    const { state: serverState } = await server.generateKE2(s.ke1, record, userId, undefined, s.fixed);
    server.finish(serverState, s.ke3);
  };
}

function softwareEcdh(): () => void {
  const a = createECDH('prime256v1');
  a.generateKeys();
  const peer = Buffer.from(p256.getPublicKey(p256.utils.randomSecretKey(), false));
  return () => void a.computeSecret(peer);
}

export async function benchOpaque(o: BenchOptions): Promise<void> {
  const results: Array<Record<string, unknown>> = [];
  const ecdh = softwareEcdh();
  const hmacKey = randomBytes(32);
  const hmacInput = randomBytes(40);

  // ---- fake backend
  {
    const driver = await FakeDriver.open();
    const { login } = await prepare(driver);
    const logins: number[] = [];
    const sat: number[] = [];
    const floors: number[] = [];
    for (let round = 0; round < o.rounds; round++) {
      const ecdhRate = await rate(o.seconds, undefined, ecdh);
      const hmacRate = await rate(o.seconds / 4, undefined, () => createHmac('sha256', hmacKey).update(hmacInput).digest());
      floors.push(1 / ((SOFTWARE_ECDH_PER_LOGIN + TOKEN_ECDH_PER_LOGIN) / ecdhRate + 1 / hmacRate));
      logins.push(await rate(o.seconds, undefined, login));
      sat.push(await saturated(o.seconds, undefined, o.concurrency, login));
      if (!o.json) process.stderr.write(`round ${round + 1}/${o.rounds} fake\n`);
    }
    results.push(row('fake', median(logins), median(sat), median(floors)));
    await driver.close();
  }

  // ---- SoftHSM2
  const modulePath = findSoftHsmModule();
  if (!modulePath) {
    process.stderr.write('SoftHSM2 is not installed (apt-get install softhsm2): softhsm2 row skipped\n');
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'hsm-vault-bench-'));
    const pin = randomBytes(8).toString('hex');
    const pinFile = join(dir, 'pin');
    writeFileSync(pinFile, pin, { mode: 0o600 });
    const token = initSoftHsmToken({ stateDir: dir, label: 'bench-opaque', userPin: pin, soPin: randomBytes(8).toString('hex') });
    process.env.SOFTHSM2_CONF = token.configPath;
    const driver = await Pkcs11Driver.open(parseHsmUri(token.uri(pinFile)) as Pkcs11Uri);
    try {
      const { login } = await prepare(driver);
      const raw = rawTokenOps(driver);
      const logins: number[] = [];
      const sat: number[] = [];
      const floors: number[] = [];
      for (let round = 0; round < o.rounds; round++) {
        const tokenEcdh = await rate(o.seconds, undefined, raw.ecdh);
        const tokenHmac = await rate(o.seconds / 4, undefined, raw.hmac);
        const ecdhRate = await rate(o.seconds, undefined, ecdh);
        floors.push(1 / (TOKEN_ECDH_PER_LOGIN / tokenEcdh + 1 / tokenHmac + SOFTWARE_ECDH_PER_LOGIN / ecdhRate));
        logins.push(await rate(o.seconds, undefined, login));
        sat.push(await saturated(o.seconds, undefined, o.concurrency, login));
        if (!o.json) process.stderr.write(`round ${round + 1}/${o.rounds} softhsm2\n`);
      }
      raw.close();
      results.push(row('softhsm2', median(logins), median(sat), median(floors)));
    } finally {
      await driver.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  if (o.json) {
    process.stdout.write(`${JSON.stringify({ rounds: o.rounds, seconds_per_run: o.seconds, concurrency: o.concurrency, backends: results }, null, 2)}\n`);
    return;
  }
  const rows = [['backend', 'logins/s', 'floor/s', 'ratio', 'saturated/s', 'sat ratio'],
    ...results.map((r) => [String(r.backend), String(r.logins_s), String(r.floor_logins_s), String(r.ratio), String(r.saturated_logins_s), String(r.saturated_ratio)])];
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  process.stdout.write(`${rows.map((r) => r.map((c, i) => c.padStart(w[i]!)).join('  ')).join('\n')}\n`);
  process.stdout.write(`\nfloor: softhsm2 = ${TOKEN_ECDH_PER_LOGIN} raw token ECDH + 1 raw HMAC + ${SOFTWARE_ECDH_PER_LOGIN} node:crypto ECDH; fake = ${SOFTWARE_ECDH_PER_LOGIN + TOKEN_ECDH_PER_LOGIN} node:crypto ECDH + 1 HMAC. targets: ratio >= 0.85\n`);
}

function row(backend: string, logins: number, sat: number, floor: number) {
  return {
    backend,
    logins_s: Math.round(logins),
    floor_logins_s: Math.round(floor),
    ratio: Number((logins / floor).toFixed(3)),
    saturated_logins_s: Math.round(sat),
    saturated_ratio: Number((sat / floor).toFixed(3)),
  };
}

/** Raw pkcs11js calls on the driver's own module and slot: the token part of the floor. */
function rawTokenOps(driver: Pkcs11Driver) {
  const { pkcs11: p, slot } = driver.rawModule;
  const session = p.C_OpenSession(slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION);
  const [ecKey] = [p.C_GenerateKeyPair(session, { mechanism: C.CKM_EC_KEY_PAIR_GEN }, [
    { type: C.CKA_TOKEN, value: false }, { type: C.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') },
  ], [{ type: C.CKA_TOKEN, value: false }, { type: C.CKA_PRIVATE, value: true }, { type: C.CKA_SENSITIVE, value: true }, { type: C.CKA_DERIVE, value: true }]).privateKey];
  const macKey = p.C_GenerateKey(session, { mechanism: C.CKM_GENERIC_SECRET_KEY_GEN }, [
    { type: C.CKA_TOKEN, value: false }, { type: C.CKA_SIGN, value: true }, { type: C.CKA_VALUE_LEN, value: 32 }, { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
  ]);
  const peer = Buffer.from(p256.getPublicKey(p256.utils.randomSecretKey(), false));
  const mechanism = { mechanism: C.CKM_ECDH1_DERIVE, parameter: { type: 6, kdf: C.CKD_NULL, publicData: peer } };
  const template = ecdhOutputTemplate(driver.quirks); // the driver's own output template
  const data = randomBytes(40);
  return {
    ecdh() {
      const h = p.C_DeriveKey(session, mechanism, ecKey!, template);
      p.C_GetAttributeValue(session, h, [{ type: C.CKA_VALUE }]);
      p.C_DestroyObject(session, h);
    },
    hmac() {
      p.C_SignInit(session, { mechanism: C.CKM_SHA256_HMAC }, macKey);
      p.C_Sign(session, data, Buffer.alloc(32));
    },
    close() {
      p.C_CloseSession(session);
    },
  };
}

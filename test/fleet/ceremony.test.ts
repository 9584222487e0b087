// Fleet key ceremonies: init in one token, join others under a trusted transport key, signed
// transcripts. The fake backend for the rules; three SoftHSM2 tokens (in this file's own SoftHSM2
// configuration) for the real thing, ending with an OPAQUE registration through token 1 and a
// login through token 3.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { HsmDriver } from '../../src/hsm/driver.js';
import { KeyExists, KeyNotFound, LoginFailed, NonExportableKey } from '../../src/hsm/errors.js';
import { FakeDriver } from '../../src/hsm/fake/driver.js';
import { openHsm } from '../../src/hsm/open.js';
import type { Pkcs11Driver } from '../../src/hsm/pkcs11/driver.js';
import { findSoftHsmModule, initSoftHsmToken } from '../../src/hsm/softhsm.js';
import { softwareKcv } from '../../src/hsm/kcv.js';
import { initFleet, joinFleet } from '../../src/fleet/ceremony.js';
import { CeremonyError } from '../../src/fleet/ceremony-errors.js';
import { ROLE_NAMES, fleetKeyLabel, openFleetKeys } from '../../src/fleet/keys.js';
import { canonicalJson, formatTranscript, verifyTranscript, type SignedTranscript } from '../../src/fleet/transcript.js';
import { encodeBase64Url } from '../../src/fleet/bytes.js';
import { OpaqueClient } from '../../src/opaque/client.js';
import { identityKsf } from '../../src/opaque/ksf.js';
import { OpaqueServer } from '../../src/opaque/server.js';
import { parseRegistrationRecord } from '../../src/opaque/messages.js';
import { tokenServerKeys } from '../../src/vault/token-server-keys.js';
import { skipOrRequire } from '../support/requirement.js';

const SO = 'fake-so-pin';
const transport = { soPinFrom: SO, soPinTo: SO };

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => expect.fail('expected a rejection'), (e: unknown) => e);
}

describe('fleet ceremonies (fake backend)', () => {
  it('init: a one-token fleet is never extractable; the transcript is signed by the fleet key and verifies', async () => {
    const token = await FakeDriver.open();
    const { keys, transcript } = await initFleet(token, 'solo', { operators: ['alice', 'bob'] });
    for (const role of ROLE_NAMES) {
      expect(await token.keyAttributes(keys.refs[role])).toMatchObject({ local: true, extractable: false, neverExtractable: true, wrapWithTrusted: false });
    }
    const verified = verifyTranscript(JSON.parse(formatTranscript(transcript)), { signingPublicKey: keys.publicKeys.signing });
    expect(verified).toMatchObject({ kind: 'fleet-init', fleetId: 'solo', transportable: false, operators: ['alice', 'bob'], transport: null });
    expect(verified.publicKeys).toEqual({ ake: encodeBase64Url(keys.publicKeys.ake), hpke: encodeBase64Url(keys.publicKeys.hpke), signing: encodeBase64Url(keys.publicKeys.signing) });
    await expect(initFleet(token, 'solo')).rejects.toBeInstanceOf(KeyExists);
  });

  it('join: a one-token fleet refuses with a clear error and leaves the destination untouched', async () => {
    const [a, b] = [await FakeDriver.open(), await FakeDriver.open()];
    await initFleet(a, 'solo');
    const err = await rejection(joinFleet(a, b, 'solo', { transport }));
    expect(err).toBeInstanceOf(CeremonyError);
    expect((err as CeremonyError).code).toBe('NOT_TRANSPORTABLE');
    expect((err as Error).message).toMatch(/one-token fleet.*--transportable/);
    expect(await b.listKeys()).toEqual([]);
  });

  it('join: copies every key with equal KCVs, signing key public-only where Ed25519 cannot travel, transport keys destroyed', async () => {
    const [a, b] = [await FakeDriver.open(), await FakeDriver.open()];
    const init = await initFleet(a, 'multi', { transportable: true });
    const components = [{ custodian: 'so-1', value: randomBytes(32) }, { custodian: 'so-2', value: randomBytes(32) }];
    const { keys, transcript } = await joinFleet(a, b, 'multi', { transport: { ...transport, components }, operators: ['carol'] });
    const t = verifyTranscript(transcript, { signingPublicKey: init.keys.publicKeys.signing });
    expect(keys.publicKeys).toEqual(init.keys.publicKeys);
    expect(keys.holdsSigningKey).toBe(false);
    expect(t.transport).toMatchObject({ componentSource: 'operators', createdIn: [0, 1], destroyedIn: [0, 1] });
    expect(t.transport!.components.map((c) => c.kcv)).toEqual(components.map((c) => Buffer.from(softwareKcv('aes-256-wrap', c.value)).toString('hex')));
    for (const key of t.keys) {
      expect(new Set(key.holdings.map((h) => h.kcv)).size).toBe(1);
      expect(key.holdings[1]!.method).toBe(key.role === 'signing' ? 'public-only' : 'unwrapped');
    }
    expect((await a.listKeys()).some((k) => k.label.includes('/transport-'))).toBe(false);
    expect((await b.listKeys()).some((k) => k.label.includes('/transport-'))).toBe(false);
    await expect(joinFleet(a, b, 'multi', { transport })).rejects.toBeInstanceOf(KeyExists);
  });

  it('join: where the token wraps Ed25519, the signing key travels too', async () => {
    const [a, b] = [await FakeDriver.open({ scheme: 'fake' }, { wrapsEd25519: true }), await FakeDriver.open()];
    const init = await initFleet(a, 'all', { transportable: true });
    const { keys, transcript } = await joinFleet(a, b, 'all', { transport });
    expect(keys.holdsSigningKey).toBe(true);
    expect(Buffer.from(await b.sign(keys.refs.signing, Buffer.from('m')))).toEqual(Buffer.from(await a.sign(init.keys.refs.signing, Buffer.from('m'))));
    expect(verifyTranscript(transcript).transport!.componentSource).toBe('generated');
  });

  it('join: a failure half-way destroys what it made in the destination and both transport keys', async () => {
    const [a, b] = [await FakeDriver.open(), await FakeDriver.open()];
    await initFleet(a, 'half', { transportable: true });
    let unwraps = 0;
    const failing = new Proxy(b, {
      get(target, prop, receiver) {
        if (prop === 'unwrapKey') {
          return async (...args: Parameters<HsmDriver['unwrapKey']>) => {
            if (++unwraps === 3) throw new Error('token removed');
            return target.unwrapKey(...args);
          };
        }
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    await expect(joinFleet(a, failing, 'half', { transport })).rejects.toThrow('token removed');
    expect(unwraps).toBe(3);
    expect(await b.listKeys()).toEqual([]);
    expect((await a.listKeys()).filter((k) => k.trusted)).toEqual([]);
    // and the join can simply be run again
    expect((await joinFleet(a, b, 'half', { transport })).keys.refs.oprf.label).toBe('half/oprf');
  });

  it('a tampered or re-signed transcript does not verify', async () => {
    const [a, b] = [await FakeDriver.open(), await FakeDriver.open()];
    await initFleet(a, 'tamper', { transportable: true });
    const { transcript } = await joinFleet(a, b, 'tamper', { transport });
    const copy = JSON.parse(JSON.stringify(transcript)) as SignedTranscript & { transcript: { operators: string[] } };
    copy.transcript.operators.push('mallory');
    expect(() => verifyTranscript(copy)).toThrow(/signature/);
    expect(() => verifyTranscript(transcript, { signingPublicKey: new Uint8Array(32).fill(9) })).toThrow(CeremonyError);
    expect(() => verifyTranscript('{"transcript":{}}')).toThrow(CeremonyError);
    // canonical JSON is independent of member order
    expect(canonicalJson({ b: 1, a: [true, null, 'x'] })).toBe('{"a":[true,null,"x"],"b":1}');
  });
});

/** How many objects of any kind, token or session, carry this label (a raw PKCS#11 search). */
function objectsLabelled(driver: HsmDriver, label: string): number {
  const { pkcs11, slot } = (driver as Pkcs11Driver).rawModule;
  const session = pkcs11.C_OpenSession(slot, 0x06);
  try {
    pkcs11.C_FindObjectsInit(session, [{ type: 0x03 /* CKA_LABEL */, value: label }]);
    const found = pkcs11.C_FindObjects(session, 16);
    pkcs11.C_FindObjectsFinal(session);
    return found.length;
  } finally {
    pkcs11.C_CloseSession(session);
  }
}

const softhsm = findSoftHsmModule();
// Skip with the reason locally, fail where HSM_VAULT_REQUIRE_SOFTHSM=1 (CI): never pass by not running.
if (!softhsm) skipOrRequire('softhsm2', 'HSM_VAULT_REQUIRE_SOFTHSM', 'SoftHSM2 is not installed (apt-get install softhsm2)');
const softDescribe = softhsm ? describe : describe.skip;

softDescribe('fleet ceremony across three SoftHSM2 tokens', () => {
  let dir: string;
  const drivers: HsmDriver[] = [];
  const soPins: string[] = [];
  const fleet = `f${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    // A SoftHSM2 configuration of our own: SOFTHSM2_CONF is read at C_Initialize, which has not
    // happened yet in this process (each test file runs in its own process).
    // All three tokens exist before the first C_Initialize: SoftHSM2 reads its slots there.
    dir = mkdtempSync(join(tmpdir(), 'hsm-vault-ceremony-'));
    const uris: string[] = [];
    for (const n of [1, 2, 3]) {
      const userPin = randomBytes(8).toString('hex');
      const soPin = randomBytes(8).toString('hex');
      const token = initSoftHsmToken({ stateDir: dir, label: `node-${n}`, userPin, soPin });
      process.env.SOFTHSM2_CONF = token.configPath;
      const pinFile = join(dir, `node-${n}.pin`);
      writeFileSync(pinFile, userPin, { mode: 0o600 });
      soPins.push(soPin);
      uris.push(token.uri(pinFile));
    }
    for (const uri of uris) drivers.push(await openHsm(uri));
  }, 60_000);

  afterAll(async () => {
    for (const d of drivers) await d.close();
    rmSync(dir, { recursive: true, force: true });
  });

  let initTranscript: SignedTranscript;
  const joins: SignedTranscript[] = [];

  it('init on token 1, join 1→2 and 1→3: the same public keys and key check values everywhere', async () => {
    const [n1, n2, n3] = drivers as [HsmDriver, HsmDriver, HsmDriver];
    const init = await initFleet(n1, fleet, { transportable: true, operators: ['alice'] });
    initTranscript = init.transcript;
    for (const [n, target] of [[1, n2], [2, n3]] as const) {
      const { keys, transcript } = await joinFleet(n1, target, fleet, { transport: { soPinFrom: soPins[0]!, soPinTo: soPins[n]! }, operators: ['alice', 'bob'] });
      expect(keys.publicKeys).toEqual(init.keys.publicKeys);
      joins.push(transcript);
    }
    const kcvs = (t: SignedTranscript) => Object.fromEntries(t.transcript.keys.map((k) => [k.role, k.holdings.map((h) => h.kcv)]));
    const initKcvs = kcvs(initTranscript);
    for (const t of joins) {
      for (const [role, values] of Object.entries(kcvs(t))) expect(values).toEqual([initKcvs[role]![0], initKcvs[role]![0]]);
      const verified = verifyTranscript(JSON.parse(formatTranscript(t)), { signingPublicKey: init.keys.publicKeys.signing });
      expect(verified.tokens.map((x) => x.label)).toEqual(['node-1', joins.indexOf(t) === 0 ? 'node-2' : 'node-3']);
      expect(verified.tokens[0]).toMatchObject({ manufacturer: 'SoftHSM project', model: 'SoftHSM v2' });
    }
    expect(verifyTranscript(initTranscript).kind).toBe('fleet-init');
  });

  it('the transport keys are gone from every token', async () => {
    for (const t of joins) expect(t.transcript.transport).toMatchObject({ createdIn: [0, 1], destroyedIn: [0, 1] });
    for (const d of drivers) expect((await d.listKeys()).filter((k) => k.trusted || k.label.includes('/transport-'))).toEqual([]);
    // Search every object (token and session objects alike) the way any application could.
    for (const d of drivers) {
      for (const t of joins) expect(objectsLabelled(d, t.transcript.transport!.label)).toBe(0);
    }
  });

  it('the copies in tokens 2 and 3 are sensitive, not local, and no untrusted key can wrap them', async () => {
    for (const d of drivers.slice(1)) {
      const keys = await openFleetKeys(d, fleet);
      expect(keys.holdsSigningKey).toBe(false); // SoftHSM 2.6.1 cannot wrap Ed25519: the signing key stays in token 1
      const untrusted = await d.generateKey({ label: `${fleet}/probe-${randomBytes(3).toString('hex')}`, type: 'aes-256-wrap' });
      for (const role of ROLE_NAMES.filter((r) => r !== 'signing')) {
        expect(await d.keyAttributes(keys.refs[role])).toMatchObject({ sensitive: true, local: false, extractable: true, wrapWithTrusted: true, keyGenMechanism: null });
        await expect(d.wrapKey(untrusted, keys.refs[role])).rejects.toBeInstanceOf(NonExportableKey);
        await expect(d.exportKeyValue(keys.refs[role])).rejects.toBeInstanceOf(NonExportableKey);
      }
      await d.destroyKey(untrusted);
      await expect(d.sign(keys.refs.signing, Buffer.from('x'))).rejects.toBeInstanceOf(KeyNotFound);
    }
  });

  it('OPAQUE: register through node 1, log in through node 3; a record sealed by node 1 opens on node 3', async () => {
    const [n1, , n3] = drivers as [HsmDriver, HsmDriver, HsmDriver];
    const [k1, k3] = [await openFleetKeys(n1, fleet), await openFleetKeys(n3, fleet)];
    const server = async (d: HsmDriver, k: typeof k1) => new OpaqueServer(await tokenServerKeys(d, { oprfKey: k.refs.oprf, oprfSeed: k.refs.oprfSeed, akeKey: k.refs.ake }));
    const [s1, s3] = [await server(n1, k1), await server(n3, k3)];
    const client = new OpaqueClient({ ksf: identityKsf });
    const enc = new TextEncoder();
    const userId = enc.encode('alice@example.com');
    const password = enc.encode('correct horse battery staple');
    const reg = client.createRegistrationRequest(password);
    const { record } = await client.finalizeRegistrationRequest(reg.state, await s1.createRegistrationResponse(reg.request, userId));
    const { ke1, state } = client.generateKE1(password);
    const { ke2, state: serverState } = await s3.generateKE2(ke1, parseRegistrationRecord(record), userId);
    const result = await client.generateKE3(state, ke2);
    expect(Buffer.from(s3.finish(serverState, result.ke3))).toEqual(Buffer.from(result.sessionKey));
    const sealed = await n1.sealAesGcm(k1.refs.sealing, enc.encode('sealed record'), userId);
    expect(new TextDecoder().decode(await n3.openAesGcm(k3.refs.sealing, sealed, userId))).toBe('sealed record');
  });

  it('a one-token fleet refuses to join; a wrong SO PIN fails cleanly, leaving nothing behind', async () => {
    const [n1, n2] = drivers as [HsmDriver, HsmDriver];
    const solo = `${fleet}-solo`;
    await initFleet(n1, solo);
    const err = await rejection(joinFleet(n1, n2, solo, { transport: { soPinFrom: soPins[0]!, soPinTo: soPins[1]! } }));
    expect(err).toBeInstanceOf(CeremonyError);
    expect((err as CeremonyError).code).toBe('NOT_TRANSPORTABLE');

    const other = `${fleet}-b`;
    await initFleet(n1, other, { transportable: true });
    const bad = await rejection(joinFleet(n1, n2, other, { transport: { soPinFrom: soPins[0]!, soPinTo: `${soPins[1]}-wrong` } }));
    expect(bad).toBeInstanceOf(LoginFailed);
    expect(String((bad as Error).message)).not.toContain(soPins[1]!);
    for (const d of [n1, n2]) expect((await d.listKeys()).filter((k) => k.trusted || k.label.includes('/transport-'))).toEqual([]);
    expect((await n2.listKeys()).filter((k) => k.label.startsWith(`${other}/`))).toEqual([]);
    await expect(n2.findPublicKey(fleetKeyLabel(other, 'signing'), 'ed25519')).rejects.toBeInstanceOf(KeyNotFound);
    // and the user sessions still work on both tokens after the SO logins
    const k1 = await openFleetKeys(n1, other);
    expect((await n1.hmacSha256(k1.refs.oprfSeed, Buffer.from('x'))).length).toBe(32);
  });
});

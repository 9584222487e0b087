// Fleet key ceremonies (DESIGN.md "Fleet trust"). `initFleet` generates the fleet's key set inside
// one token; `joinFleet` copies it into another token under a trusted transport key and proves the
// copies equal by key check values and public keys. Both return a transcript signed with the fleet
// signing key in the source token.
//
// Transport: the security officers' split-knowledge components are XOR-combined on the ceremony
// host (no PKCS#11 token we support combines them inside), imported as the same CKA_TRUSTED
// session key into both tokens by each token's SO, and destroyed in both tokens at the end, on
// success and on failure. Only keys generated `transportable` (CKA_WRAP_WITH_TRUSTED) can be
// wrapped at all; a one-token fleet's keys are never extractable and `joinFleet` refuses them.
// A token that cannot wrap Ed25519 keys (SoftHSM 2.6.1) keeps the signing key home: the joining
// token gets its public half only, and the transcript says so.

import { randomBytes } from 'node:crypto';
import type { HsmDriver, KeyAttributes, KeyRef, TokenInfo } from '../hsm/driver.js';
import { KeyNotFound, NonExportableKey } from '../hsm/errors.js';
import { publicKeyKcv, softwareKcv } from '../hsm/kcv.js';
import { encodeBase64Url } from './bytes.js';
import { CeremonyError } from './ceremony-errors.js';
import { FLEET_ROLES, ROLE_NAMES, assertNoFleetKeys, checkFleetId, createFleetKeys, openFleetKeys, type FleetKeySet, type FleetRole } from './keys.js';
import {
  protectionAttributes, signTranscript, type CeremonyTranscript, type SignedTranscript, type TranscriptAttributes, type TranscriptHolding, type TranscriptKey,
  type TranscriptStep, type TranscriptToken, type TranscriptTransport,
} from './transcript.js';

export interface CeremonyOptions {
  /** Who ran the ceremony (recorded in the transcript). 1..64 printable characters each. */
  readonly operators?: readonly string[];
  /** Clock for the transcript (tests). */
  readonly now?: () => Date;
}

export interface InitFleetOptions extends CeremonyOptions {
  /** Multi-token fleet: keys extractable only under a trusted key. Default false (one token). */
  readonly transportable?: boolean;
}

export interface TransportComponent {
  /** Who entered it (recorded); its value never is. */
  readonly custodian?: string;
  /** 32 bytes. */
  readonly value: Uint8Array;
}

export interface TransportAccess {
  /** Security officer PIN of the source and of the destination token: used, never recorded. */
  readonly soPinFrom: string;
  readonly soPinTo: string;
  /**
   * Split-knowledge components, XOR-combined into the transport key (at least two). When absent
   * the ceremony host draws two from the source token's RNG (no split knowledge; recorded so).
   */
  readonly components?: readonly TransportComponent[];
}

export interface JoinFleetOptions extends CeremonyOptions {
  readonly transport: TransportAccess;
}

export interface CeremonyResult {
  /** The fleet's key set in the token that now holds it (init: the token; join: `to`). */
  readonly keys: FleetKeySet;
  readonly transcript: SignedTranscript;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const OPERATOR = /^[\x21-\x7e](?:[\x20-\x7e]{0,62}[\x21-\x7e])?$/;
const hasPublicKey = (role: FleetRole): boolean => FLEET_ROLES[role] !== 'aes-256' && FLEET_ROLES[role] !== 'hmac-sha256';

class StepLog {
  readonly steps: TranscriptStep[] = [];
  constructor(private readonly now: () => Date) {}
  add(action: string, token: number | null = null, detail: string | null = null): void {
    this.steps.push({ at: this.now().toISOString(), action, token, detail });
  }
}

function checkOperators(operators: readonly string[] | undefined): string[] {
  const list = [...(operators ?? [])];
  for (const name of list) {
    if (typeof name !== 'string' || !OPERATOR.test(name)) throw new CeremonyError('INVALID_ARGUMENT', 'operator names must be 1..64 printable characters');
  }
  return list;
}

function tokenOf(info: TokenInfo): TranscriptToken {
  return {
    backend: info.backend, label: info.label, manufacturer: info.manufacturer, model: info.model, serial: info.serial,
    firmwareVersion: info.firmwareVersion, hardwareVersion: info.hardwareVersion, library: `${info.library.description} ${info.library.version}`,
  };
}

async function holdingOf(driver: HsmDriver, ref: KeyRef, token: number, method?: TranscriptHolding['method']): Promise<TranscriptHolding> {
  const attributes = await driver.keyAttributes(ref);
  return { token, method: method ?? (attributes.local ? 'generated' : 'unwrapped'), kcv: hex(await driver.keyCheckValue(ref)), attributes: protectionAttributes(attributes) };
}

function publicKeysOf(keys: FleetKeySet): CeremonyTranscript['publicKeys'] {
  return { ake: encodeBase64Url(keys.publicKeys.ake), hpke: encodeBase64Url(keys.publicKeys.hpke), signing: encodeBase64Url(keys.publicKeys.signing) };
}

async function sign(driver: HsmDriver, keys: FleetKeySet, transcript: CeremonyTranscript): Promise<SignedTranscript> {
  return signTranscript(transcript, { publicKey: keys.publicKeys.signing, sign: (m) => driver.sign(keys.refs.signing, m) });
}

/**
 * Creates the fleet's key set in the token (refusing to overwrite any key of the fleet) and a
 * signed transcript. One-token fleets (the default) are never extractable; `transportable` fleets
 * can later `joinFleet` other tokens.
 */
export async function initFleet(driver: HsmDriver, fleetId: string, options: InitFleetOptions = {}): Promise<CeremonyResult> {
  checkFleetId(fleetId);
  const operators = checkOperators(options.operators);
  const now = options.now ?? (() => new Date());
  const log = new StepLog(now);
  const startedAt = now().toISOString();
  const transportable = options.transportable === true;
  const token = tokenOf(await driver.info());
  log.add('token identified', 0, `${token.manufacturer} ${token.model} serial ${token.serial}`);
  const keys = await createFleetKeys(driver, fleetId, { transportable });
  log.add('fleet keys generated', 0, transportable ? 'transportable: extractable only under a trusted key' : 'one-token fleet: never extractable');
  const entries: TranscriptKey[] = [];
  for (const role of ROLE_NAMES) {
    const ref = keys.refs[role];
    entries.push({
      role, label: ref.label, id: hex(ref.id), type: ref.type,
      publicKey: hasPublicKey(role) ? encodeBase64Url(await driver.publicKey(ref)) : null,
      holdings: [await holdingOf(driver, ref, 0)],
    });
  }
  log.add('key check values computed', 0);
  const transcript: CeremonyTranscript = {
    version: 1, kind: 'fleet-init', fleetId, transportable, startedAt, finishedAt: now().toISOString(), operators,
    tokens: [token], keys: entries, transport: null, publicKeys: publicKeysOf(keys), steps: log.steps,
  };
  return { keys, transcript: await sign(driver, keys, transcript) };
}

function combineComponents(access: TransportAccess, source: Uint8Array[]): { secret: Uint8Array; record: TranscriptTransport['components']; fromOperators: boolean } {
  const given = access.components;
  if (given !== undefined && given.length < 2) throw new CeremonyError('INVALID_ARGUMENT', 'split knowledge needs at least two transport key components');
  const components: readonly TransportComponent[] = given ?? source.map((value) => ({ value }));
  const secret = new Uint8Array(32);
  const record: Array<{ custodian: string | null; kcv: string }> = [];
  for (const c of components) {
    if (!(c.value instanceof Uint8Array) || c.value.length !== 32) throw new CeremonyError('INVALID_ARGUMENT', 'every transport key component is 32 bytes');
    if (c.custodian !== undefined && !OPERATOR.test(c.custodian)) throw new CeremonyError('INVALID_ARGUMENT', 'custodian names must be 1..64 printable characters');
    for (let i = 0; i < 32; i++) secret[i]! ^= c.value[i]!;
    record.push({ custodian: c.custodian ?? null, kcv: hex(softwareKcv('aes-256-wrap', c.value)) });
  }
  if (secret.every((b) => b === 0)) throw new CeremonyError('INVALID_ARGUMENT', 'the transport key components cancel out');
  return { secret, record, fromOperators: given !== undefined };
}

/**
 * Copies a transportable fleet's key set from `from` into `to` under a trusted transport key,
 * compares key check values and public keys, destroys the transport key in both tokens (also on
 * failure, when anything made in `to` is destroyed too) and returns a transcript signed by the
 * fleet signing key in `from`.
 */
export async function joinFleet(from: HsmDriver, to: HsmDriver, fleetId: string, options: JoinFleetOptions): Promise<CeremonyResult> {
  checkFleetId(fleetId);
  const operators = checkOperators(options.operators);
  const now = options.now ?? (() => new Date());
  const log = new StepLog(now);
  const startedAt = now().toISOString();
  const access = options.transport;
  if (!access || typeof access.soPinFrom !== 'string' || typeof access.soPinTo !== 'string' || !access.soPinFrom || !access.soPinTo) {
    throw new CeremonyError('INVALID_ARGUMENT', 'joining a token needs the security officer PIN of both tokens');
  }

  const [fromInfo, toInfo] = await Promise.all([from.info(), to.info()]);
  const tokens = [tokenOf(fromInfo), tokenOf(toInfo)];
  if (from === to || (fromInfo.backend === 'pkcs11' && canonicalToken(tokens[0]!) === canonicalToken(tokens[1]!))) {
    throw new CeremonyError('SAME_TOKEN', 'source and destination are the same token');
  }
  log.add('tokens identified', null, tokens.map((t, i) => `${i}: ${t.manufacturer} ${t.model} "${t.label}" serial ${t.serial}`).join('; '));

  const source = await openFleetKeys(from, fleetId);
  if (!source.holdsSigningKey) throw new CeremonyError('NO_SIGNING_KEY', `the source token holds only the public half of ${source.refs.signing.label}: join from the token that holds it`);
  const sourceAttributes = new Map<FleetRole, KeyAttributes>();
  for (const role of ROLE_NAMES) {
    const a = await from.keyAttributes(source.refs[role]);
    if (!a.extractable || !a.wrapWithTrusted) {
      throw new CeremonyError('NOT_TRANSPORTABLE', `fleet "${fleetId}" is a one-token fleet: ${a.label} is not extractable and can never leave its token (create the fleet with --transportable to span several tokens)`);
    }
    sourceAttributes.set(role, a);
  }
  await assertNoFleetKeys(to, fleetId);
  log.add('source keys are transportable; destination holds no key of the fleet');

  const generated = access.components ? [] : [await from.randomBytes(32), await from.randomBytes(32)];
  const { secret, record, fromOperators } = combineComponents(access, generated);
  for (const g of generated) g.fill(0);
  const transportKcv = hex(softwareKcv('aes-256-wrap', secret));
  const transportSpec = { label: `${fleetId}/transport-${randomBytes(4).toString('hex')}`, type: 'aes-256-wrap' as const, id: new Uint8Array(randomBytes(16)) };
  log.add('transport key combined', null, `${record.length} components (${fromOperators ? 'entered by custodians' : 'generated by the ceremony host'}), KCV ${transportKcv}`);

  const transports: Array<{ driver: HsmDriver; ref: KeyRef; token: number }> = [];
  const madeInTo: KeyRef[] = [];
  const destroyedIn: number[] = [];
  const entries: TranscriptKey[] = [];
  let failed = true;
  try {
    try {
      transports.push({ driver: from, ref: await from.importTrustedKey(transportSpec, secret, { soPin: access.soPinFrom }), token: 0 });
      log.add('trusted transport key created by the security officer', 0);
      transports.push({ driver: to, ref: await to.importTrustedKey(transportSpec, secret, { soPin: access.soPinTo }), token: 1 });
      log.add('trusted transport key created by the security officer', 1);
    } finally {
      secret.fill(0);
    }
    for (const t of transports) {
      const kcv = hex(await t.driver.keyCheckValue(t.ref));
      if (kcv !== transportKcv) throw new CeremonyError('KCV_MISMATCH', `transport key in token ${t.token} has KCV ${kcv}, the components give ${transportKcv}`);
    }
    log.add('transport key check values agree in both tokens', null, transportKcv);
    const [tFrom, tTo] = [transports[0]!.ref, transports[1]!.ref];

    for (const role of ROLE_NAMES) {
      const ref = source.refs[role];
      const publicKey = hasPublicKey(role) ? await from.publicKey(ref) : undefined;
      const sourceHolding = await holdingOf(from, ref, 0);
      let holding: TranscriptHolding;
      let blob: Uint8Array | undefined;
      try {
        blob = await from.wrapKey(tFrom, ref);
      } catch (err) {
        // The token refuses to wrap an Ed25519 key even under a trusted key (SoftHSM 2.6.1):
        // the signing key stays in the source token; the destination stores its public half.
        if (!(err instanceof NonExportableKey) || role !== 'signing') throw err;
      }
      if (blob) {
        const copy = await to.unwrapKey(tTo, blob, { label: ref.label, type: ref.type, id: ref.id, ...(publicKey ? { publicKey } : {}) });
        madeInTo.push(copy);
        holding = await holdingOf(to, copy, 1, 'unwrapped');
        log.add('key wrapped and unwrapped', 1, ref.label);
      } else {
        const copy = await to.importPublicKey({ label: ref.label, type: ref.type, id: ref.id }, publicKey!);
        madeInTo.push(copy);
        const found = await to.findPublicKey(ref.label, ref.type);
        holding = { token: 1, method: 'public-only', kcv: hex(publicKeyKcv(found.publicKey)), attributes: null };
        log.add('signing key stays in the source token (it cannot wrap Ed25519 keys); public half stored', 1, ref.label);
      }
      if (holding.kcv !== sourceHolding.kcv) {
        throw new CeremonyError('KCV_MISMATCH', `${ref.label}: key check value ${holding.kcv} in the destination, ${sourceHolding.kcv} in the source`);
      }
      if (holding.attributes && (!holding.attributes.sensitive || !holding.attributes.wrapWithTrusted)) {
        throw new CeremonyError('NOT_TRANSPORTABLE', `${ref.label} arrived without CKA_SENSITIVE and CKA_WRAP_WITH_TRUSTED`);
      }
      entries.push({ role, label: ref.label, id: hex(ref.id), type: ref.type, publicKey: publicKey ? encodeBase64Url(publicKey) : null, holdings: [sourceHolding, holding] });
    }
    log.add('key check values agree for every key');
    failed = false;
  } finally {
    for (const t of transports) {
      try {
        await t.driver.destroyKey(t.ref);
      } catch (err) {
        if (!(err instanceof KeyNotFound)) throw err;
      }
      try {
        await t.driver.keyAttributes(t.ref);
      } catch (err) {
        if (err instanceof KeyNotFound) {
          destroyedIn.push(t.token);
          log.add('transport key destroyed', t.token);
          continue;
        }
        throw err;
      }
      throw new CeremonyError('TRANSCRIPT_INCONSISTENT', `the transport key is still present in token ${t.token} after destruction`);
    }
    if (failed) for (const key of madeInTo.reverse()) await to.destroyKey(key).catch(() => undefined);
  }

  const joined = await openFleetKeys(to, fleetId);
  for (const name of ['ake', 'hpke', 'signing'] as const) {
    if (encodeBase64Url(joined.publicKeys[name]) !== encodeBase64Url(source.publicKeys[name])) {
      throw new CeremonyError('PUBLIC_KEY_MISMATCH', `the ${name} public key differs between the tokens`);
    }
  }
  log.add('public keys agree in both tokens');
  const transcript: CeremonyTranscript = {
    version: 1, kind: 'fleet-join', fleetId, transportable: true, startedAt, finishedAt: now().toISOString(), operators, tokens, keys: entries,
    transport: { label: transportSpec.label, kcv: transportKcv, componentSource: fromOperators ? 'operators' : 'generated', components: record, createdIn: transports.map((t) => t.token), destroyedIn },
    publicKeys: publicKeysOf(source), steps: log.steps,
  };
  return { keys: joined, transcript: await sign(from, source, transcript) };
}

function canonicalToken(t: TranscriptToken): string {
  return `${t.manufacturer}\0${t.model}\0${t.serial}\0${t.label}`;
}

// `hsm-vault bundle ...`, `hsm-vault witness ...`, `hsm-vault log ...`: validation bundles, the
// witness process and the audit log (DESIGN.md "Fleet trust").
//
// Files written here:
//   bundle create     -> BundleBody JSON (bundle.ts), unsigned
//   bundle cosign     -> ValidationBundle JSON {body, witness, operatorSignature}; with
//                        --update-out also a FleetUpdate JSON for clients (client-verify.ts):
//                        {bundle, checkpoint, leafIndex, inclusionProof, consistencyProof: []}
//   log prove         -> {leafIndex, treeSize, rootHash, inclusionProof} or
//                        {first, second, firstRoot, secondRoot, consistencyProof} (base64 hashes)
// Verification failures print one line `hsm-vault: <message> [<CODE>]` and exit 1.

import { readFileSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { HsmDriver } from '../hsm/driver.js';
import { InvalidArgument } from '../hsm/errors.js';
import { decodeHex, encodeBase64, encodeBase64Url, encodeHex } from '../fleet/bytes.js';
import { bundleDigest, createBundle, parseBundleBody, verifyBundle } from '../fleet/bundle.js';
import { parseCheckpoint, parseCosignatureVerifierKey } from '../fleet/checkpoint.js';
import type { Ed25519Signer } from '../fleet/ed25519.js';
import { FleetError } from '../fleet/errors.js';
import { openFleetKeys } from '../fleet/keys.js';
import { LogStore, LogStoreError } from '../fleet/log-store.js';
import { parsePlexiResponse, verifyPlexiSignature } from '../fleet/plexi.js';
import { type NoteSigner, type NoteVerifier, SIGNATURE_TYPE_ED25519, ed25519NoteSigner, formatVerifierKey, parseNote, parseSignerKey, parseVerifierKey } from '../fleet/signed-note.js';
import { Witness, bundleLogEntry, generateWitnessKey } from '../fleet/witness.js';
import { parseListen, startWitnessServer, witnessClient } from '../fleet/witness-server.js';
import { action, hsmOption, jsonOption, printJson, required, stateDirOption, withDriver } from './context.js';

interface HsmOpts {
  hsm?: string;
  stateDir: string;
}

const fleetOption = (): Option => new Option('--fleet <id>', 'fleet id').env('HSM_VAULT_FLEET');
const logDirOption = (): Option => new Option('--log <dir>', 'audit log directory').env('HSM_VAULT_LOG_DIR').makeOptionMandatory();
const originOption = (): Option => new Option('--origin <origin>', 'log origin (the log key name)').env('HSM_VAULT_LOG_ORIGIN');
const witnessDirOption = (): Option => new Option('--dir <dir>', 'witness state directory').env('HSM_VAULT_WITNESS_DIR').makeOptionMandatory();

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new InvalidArgument(`${path} is not readable JSON: ${(cause as Error).message}`);
  }
}

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
}

function hexKey(text: string | undefined, what: string): Uint8Array {
  const bytes = text === undefined ? undefined : decodeHex(text);
  if (bytes?.length !== 32) throw new InvalidArgument(`${what} must be 64 hex digits (an Ed25519 public key)`);
  return bytes;
}

function uintOption(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^(?:0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(Number(text))) throw new InvalidArgument(`${what} must be a non-negative integer`);
  return Number(text);
}

/** The fleet's Ed25519 signing key in the token, as a signer. */
async function tokenSigner(driver: HsmDriver, fleetId: string): Promise<Ed25519Signer> {
  const keys = await openFleetKeys(driver, fleetId);
  return { publicKey: keys.publicKeys.signing, sign: (message) => driver.sign(keys.refs.signing, message) };
}

/** The log's note signer: a software signer key file (development) or the fleet signing key in the token. */
async function withLogSigner<T>(
  opts: HsmOpts & { fleet?: string; origin?: string; signerKeyFile?: string },
  fn: (signer: NoteSigner) => Promise<T>,
): Promise<T> {
  if (opts.signerKeyFile !== undefined) {
    const signer = parseSignerKey(readFileSync(opts.signerKeyFile, 'utf8').trim());
    if (opts.origin !== undefined && opts.origin !== signer.name) throw new InvalidArgument(`signer key is named ${signer.name}, not the origin ${opts.origin}`);
    return fn(signer);
  }
  const origin = required(opts.origin, 'origin: pass --origin or set HSM_VAULT_LOG_ORIGIN');
  const fleet = required(opts.fleet, 'fleet: pass --fleet or set HSM_VAULT_FLEET');
  return withDriver(opts, async (driver) => fn(ed25519NoteSigner(origin, await tokenSigner(driver, fleet))));
}

const b64List = (hashes: readonly Uint8Array[]): string[] => hashes.map(encodeBase64);

// --- bundle ---

export function bundleCommands(): Command {
  const bundle = new Command('bundle').description('validation bundles: fleet public keys, witnessed and countersigned');

  bundle
    .command('create')
    .description("write a bundle body from the token's fleet public keys")
    .addOption(fleetOption().makeOptionMandatory())
    .addOption(hsmOption())
    .addOption(stateDirOption())
    .addOption(new Option('--epoch <n>', 'key epoch').env('HSM_VAULT_EPOCH').default('1'))
    .addOption(new Option('--not-before <seconds>', 'validity start, POSIX seconds (default now)'))
    .addOption(new Option('--not-after <seconds>', 'validity end, POSIX seconds (default not-before + 90 days)'))
    .requiredOption('--out <file>', 'where to write the body JSON')
    .action(
      action(async (opts: HsmOpts & { fleet: string; epoch: string; notBefore?: string; notAfter?: string; out: string }) => {
        const keys = await withDriver(opts, (driver) => openFleetKeys(driver, opts.fleet));
        const notBefore = uintOption(opts.notBefore, '--not-before') ?? Math.floor(Date.now() / 1000);
        const body = parseBundleBody({
          fleetId: opts.fleet,
          epoch: uintOption(opts.epoch, '--epoch'),
          keys: { ake: encodeBase64Url(keys.publicKeys.ake), hpke: encodeBase64Url(keys.publicKeys.hpke), signing: encodeBase64Url(keys.publicKeys.signing) },
          notBefore,
          notAfter: uintOption(opts.notAfter, '--not-after') ?? notBefore + 90 * 86400,
        });
        writeJson(opts.out, body);
        process.stdout.write(`wrote bundle body for fleet ${body.fleetId} epoch ${body.epoch} (digest ${encodeHex(bundleDigest(body))}) to ${opts.out}\n`);
      }),
    );

  bundle
    .command('cosign')
    .description('log the body, get the witness signature and cosigned checkpoint, countersign with the token')
    .argument('<body>', 'bundle body JSON (from bundle create)')
    .addOption(fleetOption().makeOptionMandatory())
    .addOption(hsmOption())
    .addOption(stateDirOption())
    .addOption(logDirOption())
    .addOption(originOption().makeOptionMandatory())
    .addOption(new Option('--witness <url>', 'witness base URL (hsm-vault witness serve)').env('HSM_VAULT_WITNESS_URL'))
    .addOption(new Option('--witness-response <file>', 'a Plexi SignatureResponse JSON obtained out of band (no checkpoint cosignature)'))
    .addOption(new Option('--namespace <ns>', 'Plexi namespace (default: the fleet id)'))
    .requiredOption('--out <file>', 'where to write the validation bundle')
    .addOption(new Option('--update-out <file>', 'also write the client fleet update (bundle + checkpoint + inclusion proof)'))
    .addOption(jsonOption())
    .action(
      action(async (bodyFile: string, opts: HsmOpts & { fleet: string; log: string; origin: string; witness?: string; witnessResponse?: string; namespace?: string; out: string; updateOut?: string; json?: boolean }) => {
        if ((opts.witness === undefined) === (opts.witnessResponse === undefined)) throw new InvalidArgument('give exactly one of --witness URL and --witness-response FILE');
        const body = parseBundleBody(readJson(bodyFile));
        if (body.fleetId !== opts.fleet) throw new InvalidArgument(`body is for fleet ${body.fleetId}, not ${opts.fleet}`);
        const namespace = opts.namespace ?? body.fleetId;
        const result = await withDriver(opts, async (driver) => {
          const operator = await tokenSigner(driver, opts.fleet);
          if (encodeBase64Url(operator.publicKey) !== body.keys.signing) throw new InvalidArgument("body's signing key is not this token's fleet signing key");
          const log = LogStore.open(opts.log);
          const logSigner = ed25519NoteSigner(opts.origin, operator);
          const leafIndex = await log.append(bundleLogEntry(body));
          let checkpoint = await log.checkpoint(opts.origin, logSigner);
          const size = parseCheckpoint(parseNote(checkpoint).text).size;
          const inclusionProof = b64List(log.inclusionProof(leafIndex, size));

          let plexi: unknown;
          if (opts.witness !== undefined) {
            const client = witnessClient(opts.witness);
            const last = await client.checkpoint(opts.origin);
            const consistencyProof = last === undefined ? [] : b64List(log.consistencyProof(last.size, size));
            const answer = await client.sign({ checkpoint, consistencyProof, bundle: { body, leafIndex, inclusionProof, namespace } });
            await log.storeCheckpoint(answer.checkpoint);
            checkpoint = answer.checkpoint;
            plexi = answer.plexi;
          } else {
            plexi = readJson(opts.witnessResponse as string);
          }
          const witnessSig = parsePlexiResponse(plexi);
          const bundle = await createBundle(body, { witness: async () => witnessSig, operator, namespace });
          return { bundle, update: { bundle, checkpoint, leafIndex, inclusionProof, consistencyProof: [] as string[] }, leafIndex, size };
        });
        writeJson(opts.out, result.bundle);
        if (opts.updateOut !== undefined) writeJson(opts.updateOut, result.update);
        if (opts.json) return printJson({ leafIndex: result.leafIndex, treeSize: result.size, bundle: opts.out, update: opts.updateOut ?? null });
        process.stdout.write(`logged bundle as entry ${result.leafIndex} (tree size ${result.size}); wrote ${opts.out}\n`);
      }),
    );

  bundle
    .command('verify')
    .description('verify a validation bundle: digest, witness signature, countersignature, validity')
    .argument('<file>', 'validation bundle JSON')
    .addOption(new Option('--witness-key <hex>', 'witness Ed25519 public key').env('HSM_VAULT_WITNESS_KEY').makeOptionMandatory())
    .addOption(new Option('--operator-key <hex>', "operator's countersigning Ed25519 key (default: the body's signing key)").env('HSM_VAULT_OPERATOR_KEY'))
    .addOption(new Option('--namespace <ns>', 'witness namespace (default: the fleet id)'))
    .addOption(new Option('--now <seconds>', 'POSIX seconds to check validity at (default now)'))
    .addOption(jsonOption())
    .action(
      action((file: string, opts: { witnessKey: string; operatorKey?: string; namespace?: string; now?: string; json?: boolean }) => {
        const verified = verifyBundle(readJson(file), {
          witnessKey: hexKey(opts.witnessKey, '--witness-key'),
          ...(opts.operatorKey === undefined ? {} : { operatorKey: hexKey(opts.operatorKey, '--operator-key') }),
          ...(opts.namespace === undefined ? {} : { namespace: opts.namespace }),
          now: uintOption(opts.now, '--now') ?? Math.floor(Date.now() / 1000),
        });
        const summary = { ok: true, fleetId: verified.body.fleetId, epoch: verified.body.epoch, digest: encodeHex(verified.digest), notBefore: verified.body.notBefore, notAfter: verified.body.notAfter };
        if (opts.json) return printJson(summary);
        process.stdout.write(`ok: fleet ${summary.fleetId} epoch ${summary.epoch} digest ${summary.digest}\n`);
      }),
    );

  return bundle;
}

// --- witness ---

export function witnessCommands(): Command {
  const witness = new Command('witness').description('the witness: cosigns log checkpoints and signs bundle digests (Plexi format)');

  witness
    .command('keygen')
    .description('create the witness key (0600) in its state directory')
    .addOption(witnessDirOption())
    .addOption(new Option('--name <name>', 'witness key name (on cosignature lines)').env('HSM_VAULT_WITNESS_NAME').default('hsm-vault-witness'))
    .addOption(jsonOption())
    .action(
      action((opts: { dir: string; name: string; json?: boolean }) => {
        const identity = generateWitnessKey(opts.dir, opts.name);
        if (opts.json) return printJson(identity);
        process.stdout.write(`witness ${identity.name}\npublic key         ${identity.publicKey}\ncosignature key    ${identity.cosignatureKey}\n`);
      }),
    );

  witness
    .command('serve')
    .description('serve POST /v1/sign, GET /v1/key and GET /v1/checkpoint')
    .addOption(witnessDirOption())
    .addOption(new Option('--listen <host:port>', 'address to listen on').env('HSM_VAULT_WITNESS_LISTEN').default('127.0.0.1:8480'))
    .addOption(
      new Option('--log-key <vkey...>', 'trusted log note key(s), <origin>+<id>+<key>; the key name is the origin').env('HSM_VAULT_LOG_KEY').makeOptionMandatory(),
    )
    .action(
      action(async (opts: { dir: string; listen: string; logKey: string[] | string }) => {
        const vkeys = (Array.isArray(opts.logKey) ? opts.logKey : opts.logKey.split(/[\s,]+/)).filter((k) => k !== '');
        const logs = vkeys.map((key) => ({ origin: parseVerifierKey(key).name, key }));
        const instance = await Witness.open(opts.dir, { logs });
        const running = await startWitnessServer(instance, parseListen(opts.listen));
        process.stdout.write(`witness ${instance.name} listening on ${running.url} (key ${instance.identity.publicKey})\n`);
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            running.close().then(resolve, resolve);
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
      }),
    );

  witness
    .command('verify-signature')
    .description('verify a Plexi SignatureResponse JSON against a witness key; exits 1 on any mismatch')
    .argument('<file>', 'SignatureResponse JSON')
    .addOption(new Option('--key <hex>', 'witness Ed25519 public key').env('HSM_VAULT_WITNESS_KEY').makeOptionMandatory())
    .addOption(new Option('--namespace <ns>', 'also require this namespace'))
    .addOption(new Option('--epoch <n>', 'also require this epoch'))
    .addOption(new Option('--digest <hex>', 'also require this digest'))
    .addOption(jsonOption())
    .action(
      action((file: string, opts: { key: string; namespace?: string; epoch?: string; digest?: string; json?: boolean }) => {
        const response = parsePlexiResponse(readFileSync(file, 'utf8'));
        verifyPlexiSignature(response, hexKey(opts.key, '--key'));
        const mismatch = (what: string) => new FleetError('PLEXI_INVALID_SIGNATURE', `signed ${what} differs from the one required`);
        if (opts.namespace !== undefined && response.namespace !== opts.namespace) throw mismatch('namespace');
        if (opts.epoch !== undefined && response.epoch !== BigInt(uintOption(opts.epoch, '--epoch') as number)) throw mismatch('epoch');
        if (opts.digest !== undefined && encodeHex(response.digest) !== opts.digest.toLowerCase()) throw mismatch('digest');
        const summary = { ok: true, namespace: response.namespace, epoch: Number(response.epoch), timestamp: Number(response.timestamp), digest: encodeHex(response.digest) };
        if (opts.json) return printJson(summary);
        process.stdout.write(`ok: namespace ${summary.namespace} epoch ${summary.epoch} digest ${summary.digest}\n`);
      }),
    );

  return witness;
}

// --- log ---

export function logCommands(): Command {
  const log = new Command('log').description('the audit log: an RFC 9162 Merkle log of bundles and evidence, with C2SP checkpoints');

  const signerOptions = (c: Command): Command =>
    c
      .addOption(originOption())
      .addOption(fleetOption())
      .addOption(hsmOption())
      .addOption(stateDirOption())
      .addOption(new Option('--signer-key-file <file>', 'development only: a PRIVATE+KEY+... note signer key instead of the token').env('HSM_VAULT_LOG_SIGNER_KEY_FILE'));

  log
    .command('append')
    .description('append files as entries; prints each index')
    .argument('<files...>', 'entry files (bundle bodies, evidence)')
    .addOption(logDirOption())
    .addOption(jsonOption())
    .action(
      action(async (files: string[], opts: { log: string; json?: boolean }) => {
        const store = LogStore.open(opts.log);
        const appended = [];
        for (const file of files) {
          const index = await store.append(new Uint8Array(readFileSync(file)));
          appended.push({ file, index, leafHash: encodeBase64(store.leafHash(index)) });
        }
        if (opts.json) return printJson({ appended, size: store.size });
        for (const a of appended) process.stdout.write(`${a.index}\t${a.file}\n`);
      }),
    );

  signerOptions(
    log
      .command('key')
      .description("print the log's note verifier key (what witnesses and clients pin)"),
  ).action(
    action(async (opts: HsmOpts & { origin?: string; fleet?: string; signerKeyFile?: string }) => {
      let name: string;
      let publicKey: Uint8Array;
      if (opts.signerKeyFile !== undefined) {
        ({ name, publicKey } = parseSignerKey(readFileSync(opts.signerKeyFile, 'utf8').trim()));
      } else {
        name = required(opts.origin, 'origin: pass --origin or set HSM_VAULT_LOG_ORIGIN');
        const fleet = required(opts.fleet, 'fleet: pass --fleet or set HSM_VAULT_FLEET');
        publicKey = (await withDriver(opts, (driver) => openFleetKeys(driver, fleet))).publicKeys.signing;
      }
      process.stdout.write(`${formatVerifierKey(name, SIGNATURE_TYPE_ED25519, publicKey)}\n`);
    }),
  );

  signerOptions(
    log
      .command('checkpoint')
      .description('sign a checkpoint of the whole log with the log key and store it')
      .addOption(logDirOption()),
  ).action(
    action(async (opts: HsmOpts & { log: string; origin?: string; fleet?: string; signerKeyFile?: string }) => {
      const store = LogStore.open(opts.log);
      const note = await withLogSigner(opts, (signer) => store.checkpoint(opts.origin ?? signer.name, signer));
      process.stdout.write(note);
    }),
  );

  log
    .command('prove')
    .description('inclusion proof (--index) or consistency proof (--from), as JSON')
    .addOption(logDirOption())
    .addOption(new Option('--index <n>', 'leaf index to prove included'))
    .addOption(new Option('--from <size>', 'older tree size to prove consistent'))
    .addOption(new Option('--size <n>', 'tree size (default: the whole log)'))
    .action(
      action((opts: { log: string; index?: string; from?: string; size?: string }) => {
        if ((opts.index === undefined) === (opts.from === undefined)) throw new InvalidArgument('give exactly one of --index and --from');
        const store = LogStore.open(opts.log);
        const size = uintOption(opts.size, '--size') ?? store.size;
        if (opts.index !== undefined) {
          const leafIndex = uintOption(opts.index, '--index') as number;
          return printJson({ leafIndex, treeSize: size, rootHash: encodeBase64(store.root(size)), inclusionProof: b64List(store.inclusionProof(leafIndex, size)) });
        }
        const first = uintOption(opts.from, '--from') as number;
        printJson({ first, second: size, firstRoot: encodeBase64(store.root(first)), secondRoot: encodeBase64(store.root(size)), consistencyProof: b64List(store.consistencyProof(first, size)) });
      }),
    );

  log
    .command('verify')
    .description('re-read every entry, recompute the root at the stored checkpoint, check its signatures')
    .addOption(logDirOption())
    .addOption(new Option('--log-key <vkey>', "the log's note verifier key").env('HSM_VAULT_LOG_KEY'))
    .addOption(new Option('--witness-key <vkey>', "the witness's cosignature/v1 verifier key (requires its cosignature)").env('HSM_VAULT_WITNESS_COSIGNATURE_KEY'))
    .addOption(jsonOption())
    .action(
      action((opts: { log: string; logKey?: string; witnessKey?: string; json?: boolean }) => {
        const store = LogStore.open(opts.log);
        const verifiers: NoteVerifier[] = [];
        if (opts.logKey !== undefined) verifiers.push(parseVerifierKey(opts.logKey));
        const witness = opts.witnessKey === undefined ? undefined : parseCosignatureVerifierKey(opts.witnessKey);
        if (witness !== undefined) verifiers.push(witness);
        const checkpoint = store.verify(verifiers);
        if (witness !== undefined) {
          const note = store.latestCheckpoint();
          const signed = note === undefined ? [] : parseNote(note).signatures;
          if (!signed.some((s) => s.name === witness.name && s.keyId === witness.keyId)) {
            throw new LogStoreError('LOG_CORRUPT', `stored checkpoint carries no cosignature by ${witness.name}`);
          }
        }
        const summary = { ok: true, size: store.size, checkpointSize: checkpoint?.size ?? null, rootHash: encodeBase64(store.root()) };
        if (opts.json) return printJson(summary);
        process.stdout.write(`ok: ${summary.size} entries; checkpoint at size ${summary.checkpointSize ?? '-'} matches\n`);
      }),
    );

  return log;
}

// `hsm-vault fleet ...`: the fleet's key set and its ceremonies (DESIGN.md "Fleet trust").
//
//   fleet init               generate the key set in one token; print the public keys (JSON)
//   fleet join               copy a transportable fleet into another token under a trusted key
//   fleet show               public keys, and each key's attributes and key check value
//   fleet verify-transcript  check a ceremony transcript's signature and rules
//
// Security officer PINs come from files (--so-pin-source-from/-to file:PATH, or their env twins)
// or from HSM_VAULT_SO_PIN_FROM / HSM_VAULT_SO_PIN_TO / HSM_VAULT_SO_PIN; never from a flag value,
// so they stay out of shell history and process listings, and no message ever repeats one.
// Failures print one line `hsm-vault: <message> [<CODE>]` and exit 1.

import { readFileSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { HsmDriver } from '../hsm/driver.js';
import { InvalidArgument } from '../hsm/errors.js';
import { openHsm } from '../hsm/open.js';
import { decodeBase64Url, decodeHex, encodeBase64Url } from '../fleet/bytes.js';
import { initFleet, joinFleet, type TransportComponent } from '../fleet/ceremony.js';
import { ROLE_NAMES, openFleetKeys, type FleetPublicKeys } from '../fleet/keys.js';
import { formatTranscript, verifyTranscript, type SignedTranscript } from '../fleet/transcript.js';
import { action, hsmOption, jsonOption, printJson, required, stateDirOption, table, useDevTokenConfig, withDriver } from './context.js';

const fleetOption = (): Option => new Option('--fleet <id>', 'fleet id (key labels are <fleet>/<role>)').env('HSM_VAULT_FLEET');
const operatorOption = (): Option =>
  new Option('--operator <name...>', 'who runs the ceremony (repeatable; recorded in the transcript)').env('HSM_VAULT_OPERATOR');
const transcriptOption = (): Option => new Option('--transcript <file>', 'write the signed ceremony transcript here (never overwrites)').env('HSM_VAULT_TRANSCRIPT');

/** Variadic options arrive as arrays from flags but as one string from their env twin. */
function list(value: string[] | string | undefined): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : value.split(',')).map((s) => s.trim()).filter((s) => s !== '');
}

/** `file:PATH` (or a bare path), one trailing newline dropped. */
function readSecretFile(source: string, what: string): string {
  const path = source.startsWith('file:') ? source.slice(5) : source;
  if (path === '') throw new InvalidArgument(`${what}: empty file path`);
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new InvalidArgument(`cannot read ${what} from ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

function soPin(source: string | undefined, side: 'FROM' | 'TO'): string {
  const pin = source !== undefined ? readSecretFile(source, `the ${side.toLowerCase()} token's SO PIN`) : (process.env[`HSM_VAULT_SO_PIN_${side}`] ?? process.env.HSM_VAULT_SO_PIN);
  if (!pin) {
    throw new InvalidArgument(`no security officer PIN for the ${side.toLowerCase()} token: pass --so-pin-source-${side.toLowerCase()} file:PATH or set HSM_VAULT_SO_PIN_${side}`);
  }
  return pin;
}

/** `[CUSTODIAN=]file:PATH`: a file holding one 32-byte component as 64 hex digits. */
function readComponent(spec: string): TransportComponent {
  const eq = spec.indexOf('=');
  const custodian = eq > 0 && !spec.startsWith('file:') ? spec.slice(0, eq) : undefined;
  const text = readSecretFile(custodian === undefined ? spec : spec.slice(eq + 1), 'a transport key component').trim();
  const value = /^[0-9a-fA-F]{64}$/.test(text) ? decodeHex(text.toLowerCase()) : undefined;
  if (!value) throw new InvalidArgument('a transport key component file holds 64 hex digits (32 bytes)');
  return custodian === undefined ? { value } : { custodian, value };
}

function writeTranscript(path: string | undefined, signed: SignedTranscript): void {
  if (path === undefined) return;
  try {
    writeFileSync(path, formatTranscript(signed), { flag: 'wx', mode: 0o644 });
  } catch (err) {
    throw new InvalidArgument(`cannot write the transcript to ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** FleetPublicKeys as JSON: base64url without padding. */
function publicKeysJson(keys: FleetPublicKeys): Record<'ake' | 'hpke' | 'signing', string> {
  return { ake: encodeBase64Url(keys.ake), hpke: encodeBase64Url(keys.hpke), signing: encodeBase64Url(keys.signing) };
}

async function withTwoDrivers<T>(from: string, to: string, stateDir: string, fn: (a: HsmDriver, b: HsmDriver) => Promise<T>): Promise<T> {
  useDevTokenConfig(stateDir);
  const warn = { onInsecure: (m: string) => process.stderr.write(`warning: ${m}\n`) };
  const a = await openHsm(from, warn);
  try {
    const b = await openHsm(to, warn);
    try {
      return await fn(a, b);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}

interface InitOpts { hsm?: string; fleet?: string; transportable?: boolean; operator?: string[] | string; transcript?: string; stateDir: string }
interface JoinOpts {
  from?: string; to?: string; fleet?: string; soPinSourceFrom?: string; soPinSourceTo?: string; component?: string[] | string;
  operator?: string[] | string; transcript?: string; stateDir: string;
}
interface ShowOpts { hsm?: string; fleet?: string; json?: boolean; stateDir: string }

export function fleetCommands(): Command {
  const fleet = new Command('fleet').description("the fleet's key set in its tokens, and the ceremonies that make and copy it");

  fleet
    .command('init')
    .description('generate the fleet key set inside the token (never overwrites) and print its public keys as JSON')
    .addOption(hsmOption())
    .addOption(fleetOption())
    .addOption(new Option('--transportable', 'keys may join other tokens, only wrapped under a trusted key (multi-token fleet)').env('HSM_VAULT_TRANSPORTABLE'))
    .addOption(operatorOption())
    .addOption(transcriptOption())
    .addOption(stateDirOption())
    .action(action(async (opts: InitOpts) => {
      const fleetId = required(opts.fleet, 'fleet id: pass --fleet ID or set HSM_VAULT_FLEET');
      const { keys, transcript } = await withDriver(opts, (d) => initFleet(d, fleetId, { transportable: opts.transportable === true, operators: list(opts.operator) }));
      writeTranscript(opts.transcript, transcript);
      printJson(publicKeysJson(keys.publicKeys));
    }));

  fleet
    .command('join')
    .description("copy a transportable fleet's keys into another token under a trusted transport key")
    .addOption(new Option('--from <uri>', 'token that holds the fleet (and its signing key)').env('HSM_VAULT_FROM'))
    .addOption(new Option('--to <uri>', 'token to receive the fleet').env('HSM_VAULT_TO'))
    .addOption(fleetOption())
    .addOption(new Option('--so-pin-source-from <source>', "file:PATH holding the source token's security officer PIN").env('HSM_VAULT_SO_PIN_SOURCE_FROM'))
    .addOption(new Option('--so-pin-source-to <source>', "file:PATH holding the destination token's security officer PIN").env('HSM_VAULT_SO_PIN_SOURCE_TO'))
    .addOption(new Option('--component <source...>', 'transport key component, [CUSTODIAN=]file:PATH with 64 hex digits (two or more; default: drawn by the host)').env('HSM_VAULT_TRANSPORT_COMPONENTS'))
    .addOption(operatorOption())
    .addOption(transcriptOption())
    .addOption(stateDirOption())
    .action(action(async (opts: JoinOpts) => {
      const from = required(opts.from, 'source token: pass --from URI or set HSM_VAULT_FROM');
      const to = required(opts.to, 'destination token: pass --to URI or set HSM_VAULT_TO');
      const fleetId = required(opts.fleet, 'fleet id: pass --fleet ID or set HSM_VAULT_FLEET');
      const transcriptPath = required(opts.transcript, 'transcript file: pass --transcript FILE or set HSM_VAULT_TRANSCRIPT');
      const components = list(opts.component).map(readComponent);
      const transport = {
        soPinFrom: soPin(opts.soPinSourceFrom, 'FROM'),
        soPinTo: soPin(opts.soPinSourceTo, 'TO'),
        ...(components.length > 0 ? { components } : {}),
      };
      const { keys, transcript } = await withTwoDrivers(from, to, opts.stateDir, (a, b) => joinFleet(a, b, fleetId, { transport, operators: list(opts.operator) }));
      for (const c of components) c.value.fill(0);
      writeTranscript(transcriptPath, transcript);
      if (!keys.holdsSigningKey) process.stderr.write('note: the source token cannot wrap Ed25519 keys; the signing key stays there and the new token holds its public half\n');
      printJson(publicKeysJson(keys.publicKeys));
    }));

  fleet
    .command('show')
    .description("the fleet's public keys, and each key's protection attributes and key check value")
    .addOption(hsmOption())
    .addOption(fleetOption())
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .action(action(async (opts: ShowOpts) => {
      const fleetId = required(opts.fleet, 'fleet id: pass --fleet ID or set HSM_VAULT_FLEET');
      const shown = await withDriver(opts, async (d) => {
        const keys = await openFleetKeys(d, fleetId);
        const roles = [];
        for (const role of ROLE_NAMES) {
          const ref = keys.refs[role];
          if (role === 'signing' && !keys.holdsSigningKey) {
            roles.push({ role, label: ref.label, id: Buffer.from(ref.id).toString('hex'), type: ref.type, held: 'public-only' as const, kcv: null, attributes: null });
            continue;
          }
          const attributes = await d.keyAttributes(ref);
          roles.push({ role, label: ref.label, id: attributes.id, type: ref.type, held: 'private' as const, kcv: Buffer.from(await d.keyCheckValue(ref)).toString('hex'), attributes });
        }
        return { fleetId, publicKeys: publicKeysJson(keys.publicKeys), holdsSigningKey: keys.holdsSigningKey, keys: roles };
      });
      if (opts.json) return printJson(shown);
      const yes = (b: boolean | undefined) => (b === undefined ? '-' : b ? 'yes' : 'no');
      process.stdout.write(
        `fleet ${fleetId}\n  ake      ${shown.publicKeys.ake}\n  hpke     ${shown.publicKeys.hpke}\n  signing  ${shown.publicKeys.signing}${shown.holdsSigningKey ? '' : ' (public half only in this token)'}\n\n` +
          `${table([
            ['label', 'type', 'kcv', 'local', 'sensitive', 'extractable', 'wrap-with-trusted', 'never-extr'],
            ...shown.keys.map((k) => [k.label, k.type, k.kcv ?? 'public-only', yes(k.attributes?.local), yes(k.attributes?.sensitive), yes(k.attributes?.extractable), yes(k.attributes?.wrapWithTrusted), yes(k.attributes?.neverExtractable)]),
          ])}\n`,
      );
    }));

  fleet
    .command('verify-transcript')
    .description("check a ceremony transcript: the fleet signing key's signature and the ceremony rules")
    .argument('<file>', 'signed transcript (JSON)')
    .addOption(new Option('--signing-key <base64url>', 'expected fleet signing public key (pins the signer)').env('HSM_VAULT_FLEET_SIGNING_KEY'))
    .addOption(jsonOption())
    .action(action(async (file: string, opts: { signingKey?: string; json?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new InvalidArgument(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      let pinned: Uint8Array | undefined;
      if (opts.signingKey !== undefined) {
        pinned = decodeBase64Url(opts.signingKey);
        if (!pinned || pinned.length !== 32) throw new InvalidArgument('--signing-key must be a 32-byte base64url Ed25519 public key');
      }
      const t = verifyTranscript(text, pinned ? { signingPublicKey: pinned } : {});
      if (opts.json) return printJson({ valid: true, transcript: t });
      const tokens = t.tokens.map((x, i) => `  token ${i}: ${x.manufacturer} ${x.model} "${x.label}" serial ${x.serial} firmware ${x.firmwareVersion}`);
      const keys = t.keys.map((k) => `  ${k.label.padEnd(24)} ${k.type.padEnd(15)} kcv ${k.holdings.map((h) => `${h.kcv}${h.method === 'public-only' ? ' (public only)' : ''}`).join(' = ')}`);
      process.stdout.write(
        `valid ${t.kind} transcript for fleet ${t.fleetId}, signed by ${t.publicKeys.signing}\n` +
          `  ${t.startedAt} .. ${t.finishedAt}; operators: ${t.operators.join(', ') || '-'}\n${tokens.join('\n')}\n${keys.join('\n')}\n` +
          (t.transport ? `  transport key ${t.transport.label} kcv ${t.transport.kcv} (components ${t.transport.components.map((c) => `${c.custodian ?? '-'}:${c.kcv}`).join(', ')}; ${t.transport.componentSource}), destroyed in tokens ${t.transport.destroyedIn.join(', ')}\n` : ''),
      );
    }));

  return fleet;
}

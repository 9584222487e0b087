// `hsm-vault hsm ...` and `hsm-vault keys ...`: token inspection and key management.

import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { KEY_TYPES, isKeyType } from '../hsm/driver.js';
import { InvalidArgument } from '../hsm/errors.js';
import { initSoftHsmToken } from '../hsm/softhsm.js';
import { hsmOption, jsonOption, printJson, stateDirOption, table, withDriver } from './context.js';

interface Common {
  hsm?: string;
  json?: boolean;
  stateDir: string;
}

function secretFrom(what: string, flag: string | undefined, file: string | undefined, envName: string): string {
  if (flag !== undefined) return flag;
  if (file !== undefined) return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  const fromEnv = process.env[envName];
  if (fromEnv) return fromEnv;
  throw new InvalidArgument(`no ${what}: pass --${what.replace(/ /g, '-')}-file FILE or set ${envName} (no default PIN exists)`);
}

export function hsmCommands(): Command {
  const hsm = new Command('hsm').description('inspect tokens and create development tokens');

  hsm
    .command('info')
    .description('token identity, session limits, and every mechanism the vault needs (present or missing)')
    .addOption(hsmOption())
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .action(async (opts: Common) => {
      const info = await withDriver(opts, (d) => d.info());
      if (opts.json) return printJson(info);
      const lines = [
        `token        ${info.label} (${info.manufacturer} ${info.model}, serial ${info.serial || '-'})`,
        `firmware     ${info.firmwareVersion}   hardware ${info.hardwareVersion}`,
        `library      ${info.library.description} ${info.library.version} (${info.library.path})`,
        `sessions     max ${info.maxSessionCount ?? 'unlimited'}, driver pool ${info.poolSize}`,
        `quirks       ${info.quirks.join(', ') || 'none'}`,
      ];
      if (info.insecure) lines.push('WARNING      fake backend: never for production secrets');
      lines.push('', table([['mechanism', 'status', 'used for'], ...info.mechanisms.map((m) => [m.name, m.present ? 'present' : 'MISSING', m.purpose])]));
      process.stdout.write(`${lines.join('\n')}\n`);
      const missing = info.mechanisms.filter((m) => !m.present);
      if (missing.length > 0) process.exitCode = 3;
    });

  hsm
    .command('init-softhsm')
    .description('create a SoftHSM2 development token in the state directory')
    .requiredOption('--label <label>', 'token label')
    .addOption(new Option('--pin <pin>', 'user PIN (prefer --pin-file or HSM_VAULT_PIN)'))
    .addOption(new Option('--pin-file <file>', 'file holding the user PIN'))
    .addOption(new Option('--so-pin <pin>', 'security officer PIN (prefer --so-pin-file or HSM_VAULT_SO_PIN)'))
    .addOption(new Option('--so-pin-file <file>', 'file holding the SO PIN'))
    .addOption(stateDirOption())
    .addOption(jsonOption())
    .action((opts: Common & { label: string; pin?: string; pinFile?: string; soPin?: string; soPinFile?: string }) => {
      const userPin = secretFrom('pin', opts.pin, opts.pinFile, 'HSM_VAULT_PIN');
      const soPin = secretFrom('so pin', opts.soPin, opts.soPinFile, 'HSM_VAULT_SO_PIN');
      const stateDir = join(resolve(opts.stateDir), 'softhsm');
      const token = initSoftHsmToken({ stateDir, label: opts.label, userPin, soPin });
      let pinFile = opts.pinFile ? resolve(opts.pinFile) : undefined;
      if (!pinFile) {
        pinFile = join(stateDir, `${opts.label}.pin`);
        writeFileSync(pinFile, userPin, { mode: 0o600 });
      }
      const result = { label: token.label, config: token.configPath, uri: token.uri(pinFile) };
      if (opts.json) return printJson(result);
      process.stdout.write(
        `created SoftHSM2 token "${token.label}" in ${token.tokenDir}\n` +
          `export SOFTHSM2_CONF=${token.configPath}\n` +
          `export HSM_VAULT_HSM='${result.uri}'\n`,
      );
    });

  return hsm;
}

export function keyCommands(): Command {
  const keys = new Command('keys').description('generate, list and destroy keys in a token');

  keys
    .command('generate')
    .description('generate a non-extractable key inside the token')
    .addOption(hsmOption())
    .requiredOption('--label <label>', 'key label (unique on the token)')
    .addOption(new Option('--type <type>', 'key role').choices([...KEY_TYPES]).makeOptionMandatory())
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .action(async (opts: Common & { label: string; type: string }) => {
      if (!isKeyType(opts.type)) throw new InvalidArgument(`unknown key type ${opts.type}`);
      const type = opts.type;
      const attrs = await withDriver(opts, async (d) => d.keyAttributes(await d.generateKey({ label: opts.label, type })));
      if (opts.json) return printJson(attrs);
      process.stdout.write(`generated ${attrs.type} key "${attrs.label}" (id ${attrs.id})\n`);
    });

  keys
    .command('list')
    .description('list private and secret keys with their protection attributes')
    .addOption(hsmOption())
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .action(async (opts: Common) => {
      const list = await withDriver(opts, (d) => d.listKeys());
      if (opts.json) return printJson(list);
      const yes = (b: boolean) => (b ? 'yes' : 'no');
      process.stdout.write(
        `${table([
          ['label', 'type', 'local', 'sensitive', 'always-sens', 'extractable', 'never-extr', 'generated by'],
          ...list.map((k) => [k.label, k.type, yes(k.local), yes(k.sensitive), yes(k.alwaysSensitive), yes(k.extractable), yes(k.neverExtractable), k.keyGenMechanism ?? '-']),
        ])}\n`,
      );
    });

  keys
    .command('destroy')
    .description('destroy a key (and its public half) by label')
    .addOption(hsmOption())
    .requiredOption('--label <label>', 'key label')
    .addOption(stateDirOption())
    .action(async (opts: Common & { label: string }) => {
      await withDriver(opts, async (d) => d.destroyKey(await d.findKey({ label: opts.label })));
      process.stdout.write(`destroyed key "${opts.label}"\n`);
    });

  return keys;
}

// `hsm-vault qualify`: points the qualification run at a token and writes its reports.

import { vaultProtocolLeg } from './protocol-leg.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { resolvePin } from '../hsm/uri.js';
import { InvalidArgument } from '../hsm/errors.js';
import { exitCodeOf, progressReporter, qualify, writeReports } from '../qualify/index.js';
import { hsmOption, jsonOption, printJson, stateDirOption, useDevTokenConfig } from './context.js';

interface QualifyCliOptions {
  hsm?: string;
  out: string;
  json?: boolean;
  destructive?: boolean;
  soPinSource?: string;
  profile?: string;
  profileName?: string;
  perfMs: number;
  concurrency?: number;
  maxSessions: number;
  stateDir: string;
}

function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`must be an integer 1..${max}`);
    return n;
  };
}

const HELP = `
What it checks (each check: pass | fail | quirk | skip with a reason):
  module and token (load, C_Initialize with OS locking, info, login, session limit, threads),
  every mechanism the vault needs, key protection enforced by the token (unreadable values, no
  attribute weakening, no wrapping of non-extractable keys, WRAP_WITH_TRUSTED, CKA_TRUSTED for the
  SO only), evidence attributes, EC point and GCM IV behaviour, faults, and performance.
  Every object the run creates is labelled hvq-<random>- and destroyed at the end, also after a
  failure or Ctrl-C. Nothing else on the token is touched.

--so-pin-source  enables the CKA_TRUSTED checks: the run logs this process's user session out,
                 logs the SO in, creates a trusted session key, and logs the user back in.
--destructive    additionally closes every session of this application on the slot
                 (C_CloseAllSessions) and logs the application out from another session, both under
                 load, to prove the driver recovers. On tokens whose sessions or login state are shared
                 through a proxy or daemon, this can disturb other applications using the token.

Exit codes: 0 qualifies, 3 does not qualify, 4 inconclusive (a required check could not run),
130 interrupted, 1 usage or setup error. A fake: token never qualifies (it is insecure by design).
Reports: DIR/report.json, DIR/report.md, DIR/report.html, and DIR/profile.json: the quirks the run
measured as a native-config profile (--profile-name, default from the token's manufacturer/model),
each citing this run. No PIN appears in any output.
A fake: URI may pose as a deficient token: fake:?missing=CKM_EDDSA,CKM_AES_GCM&leaky=1&gcm-iv=token
&max-sessions=4&fail-after=N (see src/hsm/fake/capabilities.ts).`;

export function qualifyCommand(): Command {
  return new Command('qualify')
    .description('qualify a PKCS#11 token for the vault: a verdict with reasons, quirks and performance')
    .addOption(hsmOption())
    .addOption(new Option('--out <dir>', 'directory for report.json, report.md and report.html').env('HSM_VAULT_QUALIFY_OUT').makeOptionMandatory())
    .addOption(jsonOption())
    .addOption(new Option('--destructive', 'also run checks that close all sessions / log out (see below)').env('HSM_VAULT_QUALIFY_DESTRUCTIVE'))
    .addOption(new Option('--so-pin-source <source>', 'SO PIN as file:PATH, for the CKA_TRUSTED checks').env('HSM_VAULT_SO_PIN_SOURCE'))
    .addOption(new Option('--profile <name|file>', 'native-config profile by name or JSON file (may carry libraryParameters)').env('HSM_VAULT_PROFILE'))
    .addOption(new Option('--profile-name <name>', 'name of the profile written to DIR/profile.json'))
    .addOption(new Option('--perf-ms <ms>', 'duration of each performance measurement').argParser(positiveInt(60_000)).default(500).env('HSM_VAULT_QUALIFY_PERF_MS'))
    .addOption(new Option('--concurrency <n>', 'calls in flight for concurrent measurements (default: 2 per driver session, max 16)').argParser(positiveInt(256)).env('HSM_VAULT_QUALIFY_CONCURRENCY'))
    .addOption(new Option('--max-sessions <n>', 'upper bound of the session-limit probe').argParser(positiveInt(1024)).default(64).env('HSM_VAULT_QUALIFY_MAX_SESSIONS'))
    .addOption(stateDirOption())
    .addHelpText('after', HELP)
    .action(async (opts: QualifyCliOptions) => {
      if (!opts.hsm) throw new InvalidArgument('no HSM given: pass --hsm URI or set HSM_VAULT_HSM');
      useDevTokenConfig(opts.stateDir);
      const soPin = opts.soPinSource !== undefined ? resolvePin({ scheme: 'pkcs11', pinSource: opts.soPinSource }, {}) : undefined;
      const abort = new AbortController();
      let interrupts = 0;
      const onSignal = (): void => {
        interrupts++;
        if (interrupts === 1) {
          process.stderr.write('\ninterrupted: finishing the current check, then destroying every object this run created (Ctrl-C again to quit at once)\n');
          abort.abort();
        } else {
          process.stderr.write('quitting without cleanup: objects labelled hvq-… may remain (hsm-vault keys list)\n');
          process.exit(130);
        }
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const report = await qualify({
          hsm: opts.hsm,
          ...(soPin !== undefined ? { soPin } : {}),
          ...(opts.profile !== undefined ? { profile: opts.profile } : {}),
          ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
          destructive: opts.destructive === true,
          perfMs: opts.perfMs,
          maxSessionsProbe: opts.maxSessions,
          signal: abort.signal,
          events: progressReporter(process.stderr),
          protocol: vaultProtocolLeg(),
        });
        const paths = writeReports(report, opts.out, opts.profileName !== undefined ? { profileName: opts.profileName } : {});
        if (opts.json) printJson(report);
        else {
          process.stdout.write(`verdict: ${report.verdict}\n`);
          for (const reason of report.reasons) process.stdout.write(`  - ${reason}\n`);
          if (report.quirks.length) process.stdout.write(`quirks: ${report.quirks.length} (see the report)\n`);
          process.stdout.write(`reports: ${paths.json}, ${paths.markdown}, ${paths.html}${paths.profile ? `; profile: ${paths.profile}` : ''}\n`);
        }
        process.exitCode = exitCodeOf(report.verdict);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

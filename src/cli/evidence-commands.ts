// `hsm-vault evidence ...`: deployment evidence (DESIGN.md "Fleet trust", src/fleet/evidence.ts).
//
//   evidence create  token info, every fleet key's attributes, the ceremony transcript and the
//                    node software's digest, signed by the fleet signing key in the token; written
//                    to --out (canonical JSON, never overwrites) and, with --log DIR, appended to
//                    the audit log (the entry is the same bytes, without the final newline)
//   evidence audit   re-checks every step; --out DIR writes audit.json, audit.md and audit.html.
//                    Exit 0: consistent; 1: inconsistent (or an error); 2: consistent, but
//                    unprovable on this token (SoftHSM2, the fake backend).
//
// Failures print one line `hsm-vault: <message> [<CODE>]` and exit 1.

import { readFileSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { HsmError, InvalidArgument } from '../hsm/errors.js';
import { parseBundleBody } from '../fleet/bundle.js';
import { decodeBase64Url, decodeHex } from '../fleet/bytes.js';
import { isValidEd25519PublicKey } from '../fleet/ed25519.js';
import { createEvidence, evidenceBytes, formatEvidence } from '../fleet/evidence.js';
import { auditEvidence, writeAuditReports, type AuditOptions, type EvidenceAudit } from '../fleet/evidence-audit.js';
import { LogStore } from '../fleet/log-store.js';
import { action, hsmOption, jsonOption, printJson, required, stateDirOption, withDriver } from './context.js';

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgument(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** 64 hex digits or 43 base64url characters: a 32-byte Ed25519 public key. */
export function parseFleetKey(text: string): Uint8Array {
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? decodeHex(text) : decodeBase64Url(text);
  if (!key || key.length !== 32 || !isValidEd25519PublicKey(key)) throw new InvalidArgument('--fleet-key must be an Ed25519 public key: 64 hex digits or base64url');
  return key;
}

/** A validation bundle file ({body, witness, operatorSignature}) or a bundle body: its fleet signing key. */
function bundlePin(path: string): NonNullable<AuditOptions['pin']> {
  let json: unknown;
  try {
    json = JSON.parse(readText(path, 'the bundle'));
  } catch (err) {
    if (err instanceof HsmError) throw err;
    throw new InvalidArgument(`${path} is not JSON`);
  }
  const body = parseBundleBody(typeof json === 'object' && json !== null && 'body' in json ? (json as { body: unknown }).body : json);
  return { key: decodeBase64Url(body.keys.signing)!, source: `bundle ${path} (epoch ${body.epoch}; its witness signature is not checked here: use bundle verify)`, fleetId: body.fleetId };
}

interface CreateOpts { hsm?: string; fleet?: string; out?: string; transcript?: string; log?: string; source?: string; json?: boolean; stateDir: string }
interface AuditOpts { fleetKey?: string; bundle?: string; source?: string; log?: string; out?: string; json?: boolean }

const VERDICT_EXIT: Record<EvidenceAudit['verdict'], number> = { consistent: 0, inconsistent: 1, 'consistent, but unprovable on this token': 2 };

function summary(a: EvidenceAudit): string {
  const width = Math.max(...a.steps.map((s) => s.id.length));
  return `${a.verdict.toUpperCase()}: evidence for fleet ${a.fleetId ?? '-'}\n${a.steps.map((s) => `  ${s.status.padEnd(4)}  ${s.id.padEnd(width)}  ${s.summary}`).join('\n')}\n` +
    `what this cannot prove:\n${a.cannotProve.map((c) => `  - ${c}`).join('\n')}\n`;
}

export function evidenceCommands(): Command {
  const evidence = new Command('evidence').description('deployment evidence: token, key attributes, ceremony and software, signed by the fleet key');

  evidence
    .command('create')
    .description('gather and sign deployment evidence for the fleet in this token')
    .addOption(hsmOption())
    .addOption(new Option('--fleet <id>', 'fleet id').env('HSM_VAULT_FLEET'))
    .addOption(new Option('--out <file>', 'where to write the evidence (canonical JSON; never overwrites)').env('HSM_VAULT_EVIDENCE'))
    .addOption(new Option('--transcript <file>', "the fleet's signed ceremony transcript, embedded after it verifies").env('HSM_VAULT_TRANSCRIPT'))
    .addOption(new Option('--log <dir>', 'append the evidence to this audit log and print its index').env('HSM_VAULT_LOG_DIR'))
    .addOption(new Option('--source <dir>', 'checkout whose package-lock.json and dist/ are digested (default: this installation)').env('HSM_VAULT_SOURCE'))
    .addOption(jsonOption())
    .addOption(stateDirOption())
    .action(action(async (opts: CreateOpts) => {
      const fleetId = required(opts.fleet, 'fleet id: pass --fleet ID or set HSM_VAULT_FLEET');
      const out = required(opts.out, 'output file: pass --out FILE or set HSM_VAULT_EVIDENCE');
      const transcript = opts.transcript === undefined ? undefined : readText(opts.transcript, 'the transcript');
      const log = opts.log === undefined ? undefined : LogStore.open(opts.log);
      const made = await withDriver(opts, (d) => createEvidence(d, fleetId, { ...(transcript !== undefined ? { transcript } : {}), ...(opts.source !== undefined ? { softwareRoot: opts.source } : {}) }));
      try {
        writeFileSync(out, formatEvidence(made), { flag: 'wx', mode: 0o644 });
      } catch (err) {
        throw new InvalidArgument(`cannot write the evidence to ${out}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      const index = log ? await log.append(evidenceBytes(made)) : null;
      if (opts.json) return printJson({ out, logIndex: index, fleetId, signer: made.signer.publicKey, distSha256: made.software.distSha256 });
      process.stdout.write(`wrote evidence for fleet ${fleetId} (${made.token.manufacturer} ${made.token.model}, serial ${made.token.serial}) to ${out}\n`);
      if (made.software.distSha256 === null) process.stdout.write('note: dist/ is absent (run npm run build): the evidence records that no built output was digested\n');
      if (index !== null) process.stdout.write(`appended to the audit log ${opts.log} at index ${index}\n`);
    }));

  evidence
    .command('audit')
    .description('re-check every step of a deployment evidence file; exit 0 only when consistent')
    .argument('<file>', 'evidence JSON')
    .addOption(new Option('--fleet-key <key>', 'the fleet signing public key to pin (hex or base64url)').env('HSM_VAULT_FLEET_SIGNING_KEY'))
    .addOption(new Option('--bundle <file>', 'take the fleet signing key to pin from this validation bundle (or bundle body)').env('HSM_VAULT_BUNDLE'))
    .addOption(new Option('--source <dir>', 'recompute the package-lock.json and dist/ digests from this checkout').env('HSM_VAULT_SOURCE'))
    .addOption(new Option('--log <dir>', 'check that the evidence is an entry of this audit log').env('HSM_VAULT_LOG_DIR'))
    .addOption(new Option('--out <dir>', 'write audit.json, audit.md and audit.html here').env('HSM_VAULT_AUDIT_OUT'))
    .addOption(jsonOption())
    .action(action(async (file: string, opts: AuditOpts) => {
      const text = readText(file, 'the evidence');
      if (opts.fleetKey !== undefined && opts.bundle !== undefined) throw new InvalidArgument('pass --fleet-key or --bundle, not both');
      const pin = opts.fleetKey !== undefined ? { key: parseFleetKey(opts.fleetKey), source: '--fleet-key' } : opts.bundle !== undefined ? bundlePin(opts.bundle) : undefined;
      const log = opts.log === undefined ? undefined : LogStore.open(opts.log);
      const audit = auditEvidence(text, { ...(pin ? { pin } : {}), ...(opts.source !== undefined ? { source: opts.source } : {}), ...(log ? { log } : {}) });
      if (opts.out !== undefined) {
        const paths = writeAuditReports(audit, opts.out);
        process.stderr.write(`wrote ${paths.json}, ${paths.markdown} and ${paths.html}\n`);
      }
      if (opts.json) printJson(audit);
      else process.stdout.write(summary(audit));
      process.exitCode = VERDICT_EXIT[audit.verdict];
    }));

  return evidence;
}

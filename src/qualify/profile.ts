// The quirks a run measured, as a native-config profile the PKCS#11 driver can load
// (src/hsm/pkcs11/profile.ts). Each quirk cites the run itself: its date, the token's identity,
// and the check that measured it with that check's detail.

import type { Citation, Profile, Quirks } from '../hsm/pkcs11/profile.js';
import type { Report } from './types.js';

/** A profile name from the token's manufacturer and model: lower case, dashes. */
export function profileNameOf(manufacturer: string, model: string): string {
  const slug = `${manufacturer} ${model}`.toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/^-+|-+$/g, '');
  return slug || 'qualified-token';
}

/** The profile for this run's token, or undefined when the token was never opened. */
export function profileOf(report: Report, name?: string): Profile | undefined {
  const t = report.token;
  if (!t) return undefined;
  const date = report.startedAt.slice(0, 10);
  const identity = `"${t.label}" ${t.manufacturer} ${t.model}, serial ${t.serial || '-'}, firmware ${t.firmwareVersion}, library ${t.library}`;
  const quirks: Partial<Record<keyof Quirks, unknown>> = {};
  const citations: Citation[] = [];
  for (const check of report.checks) {
    for (const [quirk, value] of Object.entries(check.measured ?? {})) {
      const key = quirk as keyof Quirks;
      if (!(key in quirks)) quirks[key] = value; // the first check to measure a quirk sets it
      citations.push({
        quirk,
        source: `hsm-vault qualify run of ${report.startedAt} on ${identity}: check ${check.id} (${check.status})`,
        note: `${quirk}=${String(value)}: ${check.detail}`,
      });
    }
  }
  const manufacturer = t.manufacturer.trim();
  const model = t.model.trim();
  return {
    name: name ?? profileNameOf(manufacturer, model),
    description: `Quirks measured by hsm-vault qualify on ${date} against ${manufacturer} ${model} (firmware ${t.firmwareVersion}, library ${t.library}); verdict of that run: ${report.verdict}. To ship it, copy it to native-config/profiles/NAME.json and add the vendor's own sources where there are any (docs/vendor-quirks.md).`,
    match: { ...(manufacturer ? { manufacturer } : {}), ...(model ? { model } : {}) },
    quirks: quirks as Partial<Quirks>,
    citations,
  };
}

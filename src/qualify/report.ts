// The report files: report.json (machine-readable), report.md (for tickets and reviews),
// report.html (self-contained, with an inline SVG chart of the performance figures), and
// profile.json (the quirks measured, as a native-config profile the driver can load).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { profileOf } from './profile.js';
import type { CheckResult, PerformanceFigure, Report } from './types.js';
import { PHASES } from './types.js';

export interface ReportPaths {
  readonly json: string;
  readonly markdown: string;
  readonly html: string;
  /** Absent when the token was never opened (nothing was measured). */
  readonly profile?: string;
}

export interface ReportOptions {
  /** Name of the written profile (default: derived from the token's manufacturer and model). */
  readonly profileName?: string;
}

export function writeReports(report: Report, dir: string, options: ReportOptions = {}): ReportPaths {
  mkdirSync(dir, { recursive: true });
  const paths = { json: join(dir, 'report.json'), markdown: join(dir, 'report.md'), html: join(dir, 'report.html') };
  writeFileSync(paths.json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(paths.markdown, markdownReport(report));
  writeFileSync(paths.html, htmlReport(report));
  const profile = profileOf(report, options.profileName);
  if (!profile) return paths;
  const profilePath = join(dir, 'profile.json');
  writeFileSync(profilePath, `${JSON.stringify(profile, null, 2)}\n`);
  return { ...paths, profile: profilePath };
}

const VERDICT_TEXT: Record<Report['verdict'], string> = {
  qualifies: 'QUALIFIES',
  'does not qualify': 'DOES NOT QUALIFY',
  inconclusive: 'INCONCLUSIVE (required checks did not run)',
  interrupted: 'INTERRUPTED',
};

const mdCell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const rate = (n: number): string => n.toLocaleString('en-US');

function tokenLine(r: Report): string {
  const t = r.token;
  if (!t) return 'token: not opened';
  return `${t.label} — ${t.manufacturer} ${t.model}, serial ${t.serial || '-'}, firmware ${t.firmwareVersion}; library ${t.library}`;
}

export function markdownReport(r: Report): string {
  const lines = [
    `# hsm-vault qualify: ${VERDICT_TEXT[r.verdict]}`,
    '',
    `- HSM: \`${r.hsm}\``,
    `- Token: ${tokenLine(r)}`,
    `- Run: ${r.startedAt}, ${(r.durationMs / 1000).toFixed(1)} s, label prefix \`${r.labelPrefix}\`, ${r.destructive ? 'destructive checks included' : 'non-destructive'}`,
    '',
  ];
  if (r.reasons.length) lines.push('## Why', '', ...r.reasons.map((x) => `- ${x}`), '');
  if (r.quirks.length) lines.push('## Quirks', '', ...r.quirks.map((x) => `- ${x}`), '');
  lines.push('## Checks', '', '| check | result | detail | proves |', '|---|---|---|---|');
  for (const c of r.checks) lines.push(`| \`${c.id}\`${c.required ? '' : ' (optional)'} | ${c.status} | ${mdCell(c.detail)} | ${mdCell(c.proves)} |`);
  if (r.performance.length) {
    lines.push('', '## Performance (operations per second)', '', '| operation | one in flight | concurrent | in flight |', '|---|---:|---:|---:|');
    for (const p of r.performance) lines.push(`| ${p.operation} | ${rate(p.single)} | ${rate(p.concurrent)} | ${p.concurrency} |`);
  }
  return `${lines.join('\n')}\n`;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Horizontal bars, two per operation (single, concurrent), on a log scale so 1k/s and 100k/s both read. */
export function performanceSvg(figures: readonly PerformanceFigure[]): string {
  if (figures.length === 0) return '<p>No performance figures were measured.</p>';
  const labelWidth = 150;
  const plot = 520;
  const row = 34;
  const height = figures.length * row + 50;
  const max = Math.max(...figures.flatMap((f) => [f.single, f.concurrent]), 10);
  const decades = Math.ceil(Math.log10(max));
  const x = (v: number): number => (v <= 1 ? 0 : (Math.log10(v) / decades) * plot);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + plot + 90}" height="${height}" role="img" aria-label="operations per second">`,
    '<style>text{font:12px sans-serif;fill:#222}.grid{stroke:#ddd}.s{fill:#4a78c2}.c{fill:#e08a2c}</style>',
  ];
  for (let d = 0; d <= decades; d++) {
    const gx = labelWidth + (d / decades) * plot;
    parts.push(`<line class="grid" x1="${gx}" y1="10" x2="${gx}" y2="${height - 30}"/>`, `<text x="${gx - 8}" y="${height - 14}">${d === 0 ? '1' : `1e${d}`}</text>`);
  }
  figures.forEach((f, i) => {
    const y = 12 + i * row;
    parts.push(
      `<text x="4" y="${y + 18}">${esc(f.operation)}</text>`,
      `<rect class="s" x="${labelWidth}" y="${y}" width="${x(f.single).toFixed(1)}" height="12"><title>${esc(f.operation)}: ${f.single}/s, one in flight</title></rect>`,
      `<text x="${labelWidth + x(f.single) + 4}" y="${y + 10}">${rate(f.single)}</text>`,
      `<rect class="c" x="${labelWidth}" y="${y + 14}" width="${x(f.concurrent).toFixed(1)}" height="12"><title>${esc(f.operation)}: ${f.concurrent}/s, ${f.concurrency} in flight</title></rect>`,
      `<text x="${labelWidth + x(f.concurrent) + 4}" y="${y + 24}">${rate(f.concurrent)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

const STATUS_CLASS: Record<CheckResult['status'], string> = { pass: 'pass', fail: 'fail', quirk: 'quirk', skip: 'skip' };

export function htmlReport(r: Report): string {
  const rows = PHASES.flatMap((phase) => r.checks.filter((c) => c.phase === phase)).map((c) =>
    `<tr><td><code>${esc(c.id)}</code>${c.required ? '' : ' <small>(optional)</small>'}</td><td class="${STATUS_CLASS[c.status]}">${c.status}</td><td>${esc(c.detail)}</td><td><small>${esc(c.proves)}</small></td></tr>`);
  const list = (title: string, items: readonly string[]): string => (items.length ? `<h2>${title}</h2><ul>${items.map((i) => `<li>${esc(i)}</li>`).join('')}</ul>` : '');
  const concurrency = r.performance[0]?.concurrency;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hsm-vault qualify: ${esc(VERDICT_TEXT[r.verdict])}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
.verdict{font-size:1.6em;font-weight:bold}.v-qualifies{color:#1a7f37}.v-no{color:#c62828}.v-other{color:#b26a00}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left}
.pass{color:#1a7f37}.fail{color:#c62828;font-weight:bold}.quirk{color:#b26a00}.skip{color:#777}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
</style></head><body>
<h1>hsm-vault qualify</h1>
<p class="verdict ${r.verdict === 'qualifies' ? 'v-qualifies' : r.verdict === 'does not qualify' ? 'v-no' : 'v-other'}">${esc(VERDICT_TEXT[r.verdict])}</p>
<p>HSM <code>${esc(r.hsm)}</code><br>Token: ${esc(tokenLine(r))}<br>Run ${esc(r.startedAt)}, ${(r.durationMs / 1000).toFixed(1)} s, label prefix <code>${esc(r.labelPrefix)}</code>, ${r.destructive ? 'destructive checks included' : 'non-destructive'}</p>
${list('Why', r.reasons)}${list('Quirks', r.quirks)}
<h2>Checks</h2>
<table><thead><tr><th>check</th><th>result</th><th>detail</th><th>proves</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>
<h2>Performance (operations per second, log scale)</h2>
<p class="legend"><span style="background:#4a78c2"></span>one call in flight<span style="background:#e08a2c"></span>${concurrency ?? 'several'} calls in flight</p>
${performanceSvg(r.performance)}
</body></html>
`;
}

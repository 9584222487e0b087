// The SDK must run in browsers: walk the static import graph from src/client/index.ts (relative
// imports followed file by file, bare specifiers checked against an allow-list) and fail on any
// `node:` or Node built-in specifier, on the server half of src/opaque, and on src/fleet (whose
// verification rules the SDK reaches only through the browser-safe src/trust).

import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const entry = resolve(repo, 'src/client/index.ts');

/** Packages the SDK may use: all of them run in browsers on WebCrypto or pure JS. */
const ALLOWED_PACKAGES = [/^@hpke\/core$/, /^@noble\/curves\/[a-z0-9/._-]+$/, /^@noble\/hashes\/[a-z0-9/._-]+$/];
const FORBIDDEN_FILES = [/^src\/opaque\/server[^/]*\.ts$/, /^src\/opaque\/full-point\.ts$/, /^src\/opaque\/index\.ts$/, /^src\/(hsm|vault|store|fleet|server|cli|qualify)\//];
const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

// import … from '…', export … from '…', import '…', import('…'), including `import type` (harmless, but
// kept: a type-only import of a server file still says the layering is wrong).
const SPECIFIER = /(?:^|[\s;}])(?:import|export)\s*(?:type\s+)?(?:[\w*${}\s,]+?\s+from\s+)?['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

function specifiersOf(source: string): string[] {
  const withoutComments = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
  return [...withoutComments.matchAll(SPECIFIER)].map((m) => (m[1] ?? m[2])!);
}

function walk(start: string): { files: string[]; packages: Set<string> } {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const specifier of specifiersOf(readFileSync(file, 'utf8'))) {
      if (specifier.startsWith('.')) queue.push(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
      else packages.add(specifier);
    }
  }
  return { files: [...seen].map((f) => relative(repo, f)).sort(), packages };
}

describe('src/client import graph', () => {
  const graph = walk(entry);

  it('the scanner sees imports (sanity: it finds the OPAQUE client and @hpke/core)', () => {
    expect(graph.files).toContain('src/client/vault-client.ts');
    expect(graph.files).toContain('src/opaque/client.ts');
    expect(graph.files).toContain('src/trust/bundle.ts');
    expect(graph.packages).toContain('@hpke/core');
    expect(specifiersOf("import { x } from 'node:crypto';\nexport * from './a.js';\nconst m = await import('fs');")).toEqual(['node:crypto', './a.js', 'fs']);
  });

  it('contains no node: specifier and no Node built-in', () => {
    const offending = [...graph.packages].filter((p) => p.startsWith('node:') || NODE_BUILTINS.has(p) || NODE_BUILTINS.has(p.split('/')[0]!));
    expect(offending).toEqual([]);
  });

  it('imports only allow-listed packages', () => {
    expect([...graph.packages].filter((p) => !ALLOWED_PACKAGES.some((rule) => rule.test(p)))).toEqual([]);
  });

  it('does not reach the OPAQUE server, its node:crypto helpers, or any server-side layer', () => {
    expect(graph.files.filter((f) => FORBIDDEN_FILES.some((rule) => rule.test(f)))).toEqual([]);
    expect(graph.files.every((f) => f.startsWith('src/client/') || f.startsWith('src/opaque/') || f.startsWith('src/trust/'))).toBe(true);
  });

  it('the entry point loads and exports the client', async () => {
    const sdk = await import('../../src/client/index.js');
    expect(typeof sdk.VaultClient).toBe('function');
  });
});

// Store selection strings (DESIGN.md "Configuration conventions"):
//   memory:                              in process, nothing persists
//   sqlite:PATH                          embedded default; PATH relative to the working directory or absolute
//   etcd://h1:2379,h2:2379,h3:2379[/][?prefix=hsm-vault/records/&timeout-ms=2000]
// Unknown parameters are errors, so a typo never silently falls back to a default.

import { isAbsolute, resolve } from 'node:path';
import { InvalidStoreUrl } from './errors.js';
import { DEFAULT_ETCD_PREFIX, DEFAULT_ETCD_TIMEOUT_MS, EtcdStore } from './etcd.js';
import { MemoryStore } from './memory.js';
import { SqliteStore } from './sqlite.js';
import type { RecordStore } from './store.js';

export type StoreUrl =
  | { readonly scheme: 'memory' }
  | { readonly scheme: 'sqlite'; readonly path: string }
  | { readonly scheme: 'etcd'; readonly hosts: readonly string[]; readonly prefix: string; readonly timeoutMs: number };

const ETCD_DEFAULT_PORT = 2379;
const MAX_TIMEOUT_MS = 600_000;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;
/** Prefix characters: printable ASCII without the URL's own delimiters. */
const PREFIX = /^[A-Za-z0-9._:@/-]{1,256}$/;

export function parseStoreUrl(url: string): StoreUrl {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new InvalidStoreUrl('empty store URL; use memory:, sqlite:PATH or etcd://host:port,...');
  }
  if (url === 'memory:') return { scheme: 'memory' };
  if (url.startsWith('memory:')) throw new InvalidStoreUrl('memory: takes no path or parameters');
  if (url.startsWith('sqlite:')) return parseSqlite(url.slice('sqlite:'.length));
  if (url.startsWith('etcd://')) return parseEtcd(url.slice('etcd://'.length));
  if (url.startsWith('etcd:')) throw new InvalidStoreUrl('etcd URLs look like etcd://host:2379,host:2379,host:2379');
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1];
  throw new InvalidStoreUrl(
    scheme ? `unknown store scheme "${scheme}:"; use memory:, sqlite:PATH or etcd://host:port,...` : 'store URL has no scheme; use memory:, sqlite:PATH or etcd://host:port,...',
  );
}

function parseSqlite(rest: string): StoreUrl {
  if (rest === '') throw new InvalidStoreUrl('sqlite: needs a file path, e.g. sqlite:./vault.db or sqlite:/var/lib/hsm-vault/vault.db');
  if (rest === ':memory:') throw new InvalidStoreUrl('sqlite::memory: is not supported; use memory:');
  // `sqlite:///abs/path` is the habit from SQLAlchemy-style URLs; accept it as the absolute path.
  const path = rest.startsWith('///') ? rest.slice(2) : rest;
  if (path.startsWith('//')) throw new InvalidStoreUrl('sqlite: takes a file path, not a host (sqlite:/abs/path or sqlite:rel/path)');
  if (path.includes('\0')) throw new InvalidStoreUrl('sqlite path contains a NUL byte');
  return { scheme: 'sqlite', path: isAbsolute(path) ? path : resolve(path) };
}

function parseEtcd(rest: string): StoreUrl {
  const queryStart = rest.indexOf('?');
  let authority = queryStart === -1 ? rest : rest.slice(0, queryStart);
  const query = queryStart === -1 ? '' : rest.slice(queryStart + 1);
  if (authority.endsWith('/')) authority = authority.slice(0, -1);
  if (authority.includes('/')) throw new InvalidStoreUrl('etcd URL takes no path; set the key prefix with ?prefix=');
  if (authority.includes('@')) throw new InvalidStoreUrl('etcd URL credentials are not supported');
  if (authority === '') throw new InvalidStoreUrl('etcd URL needs at least one host, e.g. etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379');
  const hosts = authority.split(',').map(parseHost);
  if (new Set(hosts).size !== hosts.length) throw new InvalidStoreUrl('etcd URL lists the same host twice');

  let prefix = DEFAULT_ETCD_PREFIX;
  let timeoutMs = DEFAULT_ETCD_TIMEOUT_MS;
  const seen = new Set<string>();
  for (const pair of query === '' ? [] : query.split('&')) {
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const raw = eq === -1 ? '' : pair.slice(eq + 1);
    if (seen.has(name)) throw new InvalidStoreUrl(`etcd URL parameter "${name}" given twice`);
    seen.add(name);
    const value = decode(raw, name);
    if (name === 'prefix') {
      if (!PREFIX.test(value)) throw new InvalidStoreUrl('etcd prefix must be 1..256 characters of [A-Za-z0-9._:@/-]');
      prefix = value;
    } else if (name === 'timeout-ms') {
      if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > MAX_TIMEOUT_MS) {
        throw new InvalidStoreUrl(`etcd timeout-ms must be an integer 1..${MAX_TIMEOUT_MS}`);
      }
      timeoutMs = Number(value);
    } else {
      throw new InvalidStoreUrl(`unknown etcd URL parameter "${name}"; known: prefix, timeout-ms`);
    }
  }
  return { scheme: 'etcd', hosts, prefix, timeoutMs };
}

/** `host`, `host:port` or `[v6]:port`; returns `host:port` with the default port filled in. */
function parseHost(entry: string): string {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::([0-9]+))?$/.exec(entry);
  if (!match) throw new InvalidStoreUrl(`bad etcd host "${entry}"; use host:port`);
  const host = match[1]!;
  if (!host.startsWith('[') && !HOSTNAME.test(host)) throw new InvalidStoreUrl(`bad etcd host name "${host}"`);
  const port = match[2] === undefined ? ETCD_DEFAULT_PORT : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidStoreUrl(`bad etcd port in "${entry}"`);
  return `${host}:${port}`;
}

function decode(value: string, name: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new InvalidStoreUrl(`bad percent-encoding in etcd URL parameter "${name}"`);
  }
}

/** Opens the store a URL names. etcd connects lazily: a down cluster shows up in calls and health(). */
export async function openStore(url: string | StoreUrl): Promise<RecordStore> {
  const parsed = typeof url === 'string' ? parseStoreUrl(url) : url;
  switch (parsed.scheme) {
    case 'memory':
      return new MemoryStore();
    case 'sqlite':
      return SqliteStore.open(parsed.path);
    case 'etcd':
      return new EtcdStore({ hosts: parsed.hosts, prefix: parsed.prefix, timeoutMs: parsed.timeoutMs });
  }
}

/** The URL without anything secret-looking, for logs and /healthz (today nothing is secret). */
export function describeStoreUrl(url: StoreUrl): string {
  switch (url.scheme) {
    case 'memory':
      return 'memory:';
    case 'sqlite':
      return `sqlite:${url.path}`;
    case 'etcd':
      return `etcd://${url.hosts.join(',')}?prefix=${encodeURIComponent(url.prefix)}&timeout-ms=${url.timeoutMs}`;
  }
}

// Store selection strings (DESIGN.md "Configuration conventions"):
//   memory:                              in process, nothing persists
//   sqlite:PATH                          embedded default; PATH relative to the working directory or absolute
//   etcd://h1:2379,h2:2379,h3:2379[/][?prefix=hsm-vault/records/&timeout-ms=2000]
//        [&tls=1][&ca-file=PATH][&cert-file=PATH&key-file=PATH][&user=NAME&password-file=PATH]
// Unknown parameters are errors, so a typo never silently falls back to a default.
//
// etcd TLS and auth: any of ca-file, cert-file, key-file implies tls=1 (https endpoints); without
// ca-file the servers are verified against the default roots. cert-file and key-file (mutual
// TLS) go together, as do user and password-file. The password is only ever read from a file,
// when the store opens: a URL ends up in shell history, process lists and logs. Paths resolve
// against the working directory, as sqlite paths do.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { isAbsolute, resolve } from 'node:path';
import { InvalidStoreUrl } from './errors.js';
import { DEFAULT_ETCD_PREFIX, DEFAULT_ETCD_TIMEOUT_MS, EtcdStore, type EtcdAuthOptions, type EtcdTlsOptions } from './etcd.js';
import { MemoryStore } from './memory.js';
import { SqliteStore } from './sqlite.js';
import type { RecordStore } from './store.js';

export type StoreUrl =
  | { readonly scheme: 'memory' }
  | { readonly scheme: 'sqlite'; readonly path: string }
  | {
      readonly scheme: 'etcd';
      readonly hosts: readonly string[];
      readonly prefix: string;
      readonly timeoutMs: number;
      /** Present: connect over TLS. Absolute paths. */
      readonly tls?: EtcdTlsFiles;
      readonly auth?: EtcdAuthFile;
      /** Not from the URL: for tests and embedders (default DEFAULT_ETCD_AUTH_RETRY_MS). */
      readonly authRetryMs?: number;
    };

export interface EtcdTlsFiles {
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
}

export interface EtcdAuthFile {
  readonly user: string;
  readonly passwordFile: string;
}

const ETCD_DEFAULT_PORT = 2379;
const MAX_TIMEOUT_MS = 600_000;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;
/** Prefix characters: printable ASCII without the URL's own delimiters. */
const PREFIX = /^[A-Za-z0-9._:@/-]{1,256}$/;
/** etcd user names: printable ASCII without spaces (etcd itself takes any non-empty string). */
const ETCD_USER = /^[\x21-\x7e]{1,128}$/;
const ETCD_PARAMETERS = 'prefix, timeout-ms, tls, ca-file, cert-file, key-file, user, password-file';
const ETCD_FILE_PARAMETERS = { 'ca-file': 'caFile', 'cert-file': 'certFile', 'key-file': 'keyFile', 'password-file': 'passwordFile' } as const;
type EtcdFileParameter = keyof typeof ETCD_FILE_PARAMETERS;

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
  if (authority.includes('@')) {
    throw new InvalidStoreUrl('etcd URL credentials are not supported before the host; use ?user=NAME&password-file=PATH (the password is read from the file)');
  }
  if (authority === '') throw new InvalidStoreUrl('etcd URL needs at least one host, e.g. etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379');
  const hosts = authority.split(',').map(parseHost);
  if (new Set(hosts).size !== hosts.length) throw new InvalidStoreUrl('etcd URL lists the same host twice');

  let prefix = DEFAULT_ETCD_PREFIX;
  let timeoutMs = DEFAULT_ETCD_TIMEOUT_MS;
  let tls: boolean | undefined;
  let user: string | undefined;
  const files: { caFile?: string; certFile?: string; keyFile?: string; passwordFile?: string } = {};
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
    } else if (name === 'tls') {
      if (value !== '0' && value !== '1') throw new InvalidStoreUrl('etcd tls must be 1 (TLS) or 0 (plain gRPC)');
      tls = value === '1';
    } else if (name === 'user') {
      if (!ETCD_USER.test(value)) throw new InvalidStoreUrl('etcd user must be 1..128 printable ASCII characters without spaces');
      user = value;
    } else if (name === 'password') {
      throw new InvalidStoreUrl('etcd URLs never take a password inline (URLs end up in logs and shell history); put it in a file and pass password-file=PATH');
    } else if (isFileParameter(name)) {
      files[ETCD_FILE_PARAMETERS[name]] = parsePath(value, name);
    } else {
      throw new InvalidStoreUrl(`unknown etcd URL parameter "${name}"; known: ${ETCD_PARAMETERS}`);
    }
  }

  const { caFile, certFile, keyFile, passwordFile } = files;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new InvalidStoreUrl('etcd cert-file and key-file go together: mutual TLS needs the client certificate and its key');
  }
  if ((user === undefined) !== (passwordFile === undefined)) {
    throw new InvalidStoreUrl('etcd user and password-file go together: give both for etcd user authentication, or neither');
  }
  const anyTlsFile = caFile !== undefined || certFile !== undefined;
  if (tls === false && anyTlsFile) throw new InvalidStoreUrl('etcd tls=0 contradicts ca-file, cert-file and key-file, which need TLS');
  const tlsFiles: EtcdTlsFiles | undefined =
    tls === true || anyTlsFile
      ? { ...(caFile === undefined ? {} : { caFile }), ...(certFile === undefined ? {} : { certFile }), ...(keyFile === undefined ? {} : { keyFile }) }
      : undefined;
  return {
    scheme: 'etcd',
    hosts,
    prefix,
    timeoutMs,
    ...(tlsFiles ? { tls: tlsFiles } : {}),
    ...(user !== undefined && passwordFile !== undefined ? { auth: { user, passwordFile } } : {}),
  };
}

function isFileParameter(name: string): name is EtcdFileParameter {
  return Object.hasOwn(ETCD_FILE_PARAMETERS, name);
}

function parsePath(value: string, name: string): string {
  if (value === '') throw new InvalidStoreUrl(`etcd ${name} needs a file path`);
  if (value.includes('\0')) throw new InvalidStoreUrl(`etcd ${name} path contains a NUL byte`);
  return isAbsolute(value) ? value : resolve(value);
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
    case 'etcd': {
      const tls = parsed.tls ? await loadTls(parsed.tls) : undefined;
      const auth = parsed.auth ? await loadAuth(parsed.auth) : undefined;
      return new EtcdStore({
        hosts: parsed.hosts,
        prefix: parsed.prefix,
        timeoutMs: parsed.timeoutMs,
        ...(tls ? { tls } : {}),
        ...(auth ? { auth } : {}),
        ...(parsed.authRetryMs !== undefined ? { authRetryMs: parsed.authRetryMs } : {}),
      });
    }
  }
}

/** Reads ca-file, cert-file and key-file and checks that node's TLS accepts them together. */
async function loadTls(files: EtcdTlsFiles): Promise<EtcdTlsOptions> {
  const rootCertificate = files.caFile === undefined ? undefined : await readPem(files.caFile, 'ca-file', 'CERTIFICATE');
  const certChain = files.certFile === undefined ? undefined : await readPem(files.certFile, 'cert-file', 'CERTIFICATE');
  const privateKey = files.keyFile === undefined ? undefined : await readPem(files.keyFile, 'key-file', 'PRIVATE KEY');
  try {
    // What grpc does with them when the store connects; OpenSSL's message names no key material.
    createSecureContext({ ...(rootCertificate ? { ca: rootCertificate } : {}), ...(certChain ? { cert: certChain } : {}), ...(privateKey ? { key: privateKey } : {}) });
    // OpenSSL keeps one certificate slot per key type, so an RSA certificate with an EC key loads
    // without complaint and then presents no usable pair: compare them ourselves.
    if (certChain && privateKey && !new X509Certificate(certChain).checkPrivateKey(createPrivateKey(privateKey))) {
      throw new Error('the key in key-file is not the key of the (first) certificate in cert-file');
    }
  } catch (err) {
    const given = [['ca-file', files.caFile], ['cert-file', files.certFile], ['key-file', files.keyFile]].filter(([, path]) => path !== undefined);
    const which = given.map(([name, path]) => `${name} ${path}`).join(', ');
    throw new InvalidStoreUrl(`etcd TLS files do not load together (${which}): ${err instanceof Error ? err.message.slice(0, 200) : 'unknown error'}`);
  }
  return {
    ...(rootCertificate ? { rootCertificate } : {}),
    ...(certChain ? { certChain } : {}),
    ...(privateKey ? { privateKey } : {}),
  };
}

/** Reads the password: the file's content without its trailing newline(s). */
async function loadAuth(auth: EtcdAuthFile): Promise<EtcdAuthOptions> {
  const password = (await readParameterFile(auth.passwordFile, 'password-file')).toString('utf8').replace(/[\r\n]+$/, '');
  if (password === '') throw new InvalidStoreUrl(`etcd password-file ${auth.passwordFile} is empty`);
  return { username: auth.user, password };
}

/** A PEM file must hold at least one block of the given label ("PRIVATE KEY" matches "EC PRIVATE KEY" too). */
async function readPem(path: string, name: string, label: string): Promise<Buffer> {
  const bytes = await readParameterFile(path, name);
  if (!new RegExp(`-----BEGIN ([A-Z0-9]+ )?${label}-----`).test(bytes.toString('latin1'))) {
    throw new InvalidStoreUrl(`etcd ${name} ${path} holds no PEM ${label.toLowerCase()}`);
  }
  return bytes;
}

/** Errors name the parameter, the path and the reason (ENOENT, EACCES…), never the content. */
async function readParameterFile(path: string, name: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (code ?? 'read failed');
    throw new InvalidStoreUrl(`etcd ${name} ${path} cannot be read: ${reason}`);
  }
}

/**
 * The URL for logs and /healthz: parameters and file paths, never a password (the URL only ever
 * names the password's file). Parses back to the same StoreUrl.
 */
export function describeStoreUrl(url: StoreUrl): string {
  switch (url.scheme) {
    case 'memory':
      return 'memory:';
    case 'sqlite':
      return `sqlite:${url.path}`;
    case 'etcd': {
      const parameters = [`prefix=${encodeURIComponent(url.prefix)}`, `timeout-ms=${url.timeoutMs}`];
      if (url.tls) {
        parameters.push('tls=1');
        if (url.tls.caFile !== undefined) parameters.push(`ca-file=${encodePath(url.tls.caFile)}`);
        if (url.tls.certFile !== undefined) parameters.push(`cert-file=${encodePath(url.tls.certFile)}`);
        if (url.tls.keyFile !== undefined) parameters.push(`key-file=${encodePath(url.tls.keyFile)}`);
      }
      if (url.auth) parameters.push(`user=${encodeURIComponent(url.auth.user)}`, `password-file=${encodePath(url.auth.passwordFile)}`);
      return `etcd://${url.hosts.join(',')}?${parameters.join('&')}`;
    }
  }
}

/** Percent-encodes a path for a URL parameter, leaving its slashes readable. */
function encodePath(path: string): string {
  return encodeURIComponent(path).replace(/%2F/g, '/');
}

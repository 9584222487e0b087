// Store URLs: what parses to what, and errors that say what is accepted.

import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { rootCertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidStoreUrl } from '../../src/store/errors.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { MemoryStore } from '../../src/store/memory.js';
import { describeStoreUrl, openStore, parseStoreUrl } from '../../src/store/url.js';

describe('parseStoreUrl', () => {
  it('parses memory:', () => {
    expect(parseStoreUrl('memory:')).toEqual({ scheme: 'memory' });
  });

  it('parses sqlite paths, relative ones against the working directory', () => {
    expect(parseStoreUrl('sqlite:/var/lib/hsm-vault/vault.db')).toEqual({ scheme: 'sqlite', path: '/var/lib/hsm-vault/vault.db' });
    expect(parseStoreUrl('sqlite:///var/lib/vault.db')).toEqual({ scheme: 'sqlite', path: '/var/lib/vault.db' });
    expect(parseStoreUrl('sqlite:vault.db')).toEqual({ scheme: 'sqlite', path: resolve('vault.db') });
    expect(parseStoreUrl('sqlite:./data/v.db')).toEqual({ scheme: 'sqlite', path: resolve('data/v.db') });
  });

  it('parses etcd host lists with defaults', () => {
    expect(parseStoreUrl('etcd://h1:2379,h2:2379,h3:2379')).toEqual({
      scheme: 'etcd',
      hosts: ['h1:2379', 'h2:2379', 'h3:2379'],
      prefix: 'hsm-vault/records/',
      timeoutMs: 2000,
    });
    expect(parseStoreUrl('etcd://10.0.0.1,[::1]:2380/')).toMatchObject({ hosts: ['10.0.0.1:2379', '[::1]:2380'] });
  });

  it('parses etcd prefix and timeout-ms', () => {
    expect(parseStoreUrl('etcd://h1:2379?prefix=fleet-a%2Frecords%2F&timeout-ms=500')).toMatchObject({
      hosts: ['h1:2379'],
      prefix: 'fleet-a/records/',
      timeoutMs: 500,
    });
    expect(parseStoreUrl('etcd://h1/?prefix=p/')).toMatchObject({ prefix: 'p/' });
  });

  it.each([
    ['', /empty store URL/],
    ['vault.db', /no scheme/],
    ['postgres://x', /unknown store scheme "postgres:"/],
    ['memory:x', /memory: takes no path/],
    ['sqlite:', /needs a file path/],
    ['sqlite::memory:', /use memory:/],
    ['sqlite://host/x.db', /not a host/],
    ['etcd:h1:2379', /etcd:\/\/host/],
    ['etcd://', /at least one host/],
    ['etcd://h1:2379/records', /takes no path/],
    ['etcd://user:pw@h1:2379', /credentials are not supported before the host; use \?user=NAME&password-file=PATH/],
    ['etcd://h1:99999', /bad etcd port/],
    ['etcd://h1:0', /bad etcd port/],
    ['etcd://h1:2379,,h2', /bad etcd host/],
    ['etcd://h_1:2379', /bad etcd host name/],
    ['etcd://h1,h1:2379', /same host twice/],
    ['etcd://h1?timeout=5', /unknown etcd URL parameter "timeout"; known: prefix, timeout-ms, tls, ca-file, cert-file, key-file, user, password-file/],
    ['etcd://h1?tls=yes', /tls must be 1 \(TLS\) or 0/],
    ['etcd://h1?tls=', /tls must be 1 \(TLS\) or 0/],
    ['etcd://h1?tls', /tls must be 1 \(TLS\) or 0/],
    ['etcd://h1?tls=1&tls=1', /"tls" given twice/],
    ['etcd://h1?tls=0&ca-file=/etc/ca.pem', /tls=0 contradicts ca-file/],
    ['etcd://h1?tls=0&cert-file=/c.pem&key-file=/k.pem', /tls=0 contradicts/],
    ['etcd://h1?ca-file=', /ca-file needs a file path/],
    ['etcd://h1?ca-file=a%00b', /ca-file path contains a NUL byte/],
    ['etcd://h1?ca-file=%zz', /bad percent-encoding in etcd URL parameter "ca-file"/],
    ['etcd://h1?ca-file=/a&ca-file=/b', /"ca-file" given twice/],
    ['etcd://h1?cert-file=/c.pem', /cert-file and key-file go together/],
    ['etcd://h1?key-file=/k.pem', /cert-file and key-file go together/],
    ['etcd://h1?ca-file=/ca.pem&key-file=/k.pem', /cert-file and key-file go together/],
    ['etcd://h1?user=vault', /user and password-file go together/],
    ['etcd://h1?password-file=/run/pw', /user and password-file go together/],
    ['etcd://h1?user=&password-file=/run/pw', /user must be 1\.\.128 printable ASCII/],
    ['etcd://h1?user=a%20b&password-file=/run/pw', /user must be 1\.\.128 printable ASCII/],
    [`etcd://h1?user=${'u'.repeat(129)}&password-file=/run/pw`, /user must be 1\.\.128/],
    ['etcd://h1?user=vault&password-file=', /password-file needs a file path/],
    ['etcd://h1?user=vault&password-file=/a&password-file=/b', /"password-file" given twice/],
    ['etcd://h1?user=vault&password=hunter2', /never take a password inline .*password-file=PATH/],
    ['etcd://h1?password=', /never take a password inline/],
    ['etcd://h1?timeout-ms=0', /timeout-ms must be an integer/],
    ['etcd://h1?timeout-ms=2s', /timeout-ms must be an integer/],
    ['etcd://h1?timeout-ms=1&timeout-ms=2', /given twice/],
    ['etcd://h1?prefix=', /prefix must be/],
    ['etcd://h1?prefix=a%20b', /prefix must be/],
    ['etcd://h1?prefix=%zz', /bad percent-encoding/],
  ])('rejects %j', (url, message) => {
    expect(() => parseStoreUrl(url)).toThrow(InvalidStoreUrl);
    expect(() => parseStoreUrl(url)).toThrow(message);
  });

  it('never echoes an inline password in its refusal', () => {
    expect(() => parseStoreUrl('etcd://h1?user=vault&password=hunter2')).toThrow(expect.objectContaining({ message: expect.not.stringContaining('hunter2') }));
    expect(() => parseStoreUrl('etcd://vault:hunter2@h1')).toThrow(expect.objectContaining({ message: expect.not.stringContaining('hunter2') }));
  });

  it('parses tls=1 (default roots) and tls=0 (plain, as without it)', () => {
    expect(parseStoreUrl('etcd://h1:2379?tls=1')).toEqual({ scheme: 'etcd', hosts: ['h1:2379'], prefix: 'hsm-vault/records/', timeoutMs: 2000, tls: {} });
    expect(parseStoreUrl('etcd://h1:2379?tls=0')).toStrictEqual(parseStoreUrl('etcd://h1:2379'));
    expect(parseStoreUrl('etcd://h1:2379')).not.toHaveProperty('tls');
    expect(parseStoreUrl('etcd://h1:2379')).not.toHaveProperty('auth');
  });

  it('parses ca-file, cert-file and key-file: each implies TLS; relative paths resolve like sqlite paths', () => {
    expect(parseStoreUrl('etcd://h1?ca-file=/etc/hsm-vault/etcd-ca.pem')).toMatchObject({ tls: { caFile: '/etc/hsm-vault/etcd-ca.pem' } });
    expect(parseStoreUrl('etcd://h1?ca-file=certs%2Fca%20bundle.pem&tls=1')).toMatchObject({ tls: { caFile: resolve('certs/ca bundle.pem') } });
    expect(parseStoreUrl('etcd://h1?cert-file=client.pem&key-file=./keys/client-key.pem')).toEqual({
      scheme: 'etcd',
      hosts: ['h1:2379'],
      prefix: 'hsm-vault/records/',
      timeoutMs: 2000,
      tls: { certFile: resolve('client.pem'), keyFile: resolve('keys/client-key.pem') },
    });
    expect(parseStoreUrl('etcd://h1?tls=1&ca-file=/ca.pem&cert-file=/c.pem&key-file=/k.pem')).toMatchObject({
      tls: { caFile: '/ca.pem', certFile: '/c.pem', keyFile: '/k.pem' },
    });
  });

  it('parses user and password-file (percent-decoded), with or without TLS', () => {
    expect(parseStoreUrl('etcd://h1?user=vault%40fleet-a&password-file=%2Frun%2Fsecrets%2Fetcd-password')).toEqual({
      scheme: 'etcd',
      hosts: ['h1:2379'],
      prefix: 'hsm-vault/records/',
      timeoutMs: 2000,
      auth: { user: 'vault@fleet-a', passwordFile: '/run/secrets/etcd-password' },
    });
    expect(parseStoreUrl('etcd://h1?ca-file=/ca.pem&user=vault&password-file=pw.txt')).toMatchObject({
      tls: { caFile: '/ca.pem' },
      auth: { user: 'vault', passwordFile: resolve('pw.txt') },
    });
  });

  it('describes a URL so that it parses back to the same thing', () => {
    for (const url of [
      'memory:',
      'sqlite:/tmp/v.db',
      'etcd://h1:2379,h2:2379?prefix=a%2Fb%2F&timeout-ms=750',
      'etcd://h1:2379?tls=1',
      'etcd://h1?ca-file=/etc/ca%20dir/ca.pem&cert-file=c%26d.pem&key-file=/k.pem&user=v%26x&password-file=/run/p%3Dw',
      'etcd://h1?user=vault&password-file=/run/pw',
    ]) {
      const parsed = parseStoreUrl(url);
      expect(parseStoreUrl(describeStoreUrl(parsed))).toEqual(parsed);
    }
  });

  it('describes TLS files and the user, and of the password only its file', () => {
    const described = describeStoreUrl(
      parseStoreUrl('etcd://h1:2379?ca-file=/etc/hsm-vault/ca.pem&cert-file=/etc/hsm-vault/client.pem&key-file=/etc/hsm-vault/client-key.pem&user=vault&password-file=/run/secrets/etcd-pw'),
    );
    expect(described).toBe(
      'etcd://h1:2379?prefix=hsm-vault%2Frecords%2F&timeout-ms=2000&tls=1&ca-file=/etc/hsm-vault/ca.pem&cert-file=/etc/hsm-vault/client.pem' +
        '&key-file=/etc/hsm-vault/client-key.pem&user=vault&password-file=/run/secrets/etcd-pw',
    );
    expect(describeStoreUrl(parseStoreUrl('etcd://h1:2379'))).toBe('etcd://h1:2379?prefix=hsm-vault%2Frecords%2F&timeout-ms=2000');
  });
});

describe('openStore', () => {
  it('opens each scheme without contacting etcd', async () => {
    const memory = await openStore('memory:');
    expect(memory).toBeInstanceOf(MemoryStore);
    await memory.close();
    const etcd = await openStore('etcd://127.0.0.1:1?timeout-ms=200');
    expect(etcd).toBeInstanceOf(EtcdStore);
    expect(etcd).toMatchObject({ hosts: ['127.0.0.1:1'], timeoutMs: 200 });
    await etcd.close();
  });

  it('throws InvalidStoreUrl for a bad URL', async () => {
    await expect(openStore('nope:')).rejects.toBeInstanceOf(InvalidStoreUrl);
  });
});

describe('openStore with etcd TLS and password files', () => {
  let dir: string;
  // A real CA certificate and an EC key, without openssl: an RSA root from node's bundle, and a
  // fresh key that certifies nothing (so it does not match that certificate, nor its key type).
  const caPem = `${rootCertificates.find((pem) => new X509Certificate(pem).publicKey.asymmetricKeyType === 'rsa')}\n`;
  const keyPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const file = (name: string, content: string): string => {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };
  /** The store is never contacted: nothing listens on port 1. */
  const etcd = (parameters: string) => `etcd://127.0.0.1:1?timeout-ms=200&${parameters}`;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'hsm-vault-url-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('opens a TLS store with the default roots, a ca-file, and a user whose password comes from a file', async () => {
    for (const [url, expected] of [
      [etcd('tls=1'), { tls: true, user: undefined }],
      [etcd(`ca-file=${file('ca.pem', caPem)}`), { tls: true, user: undefined }],
      [etcd(`ca-file=${file('ca.pem', caPem)}&user=vault&password-file=${file('pw', 'secret\n')}`), { tls: true, user: 'vault' }],
      [etcd(`user=vault&password-file=${file('pw', 'secret\r\n')}`), { tls: false, user: 'vault' }],
    ] as const) {
      const store = await openStore(url);
      try {
        expect(store).toBeInstanceOf(EtcdStore);
        expect(store).toMatchObject({ hosts: ['127.0.0.1:1'], ...expected });
      } finally {
        await store.close();
      }
    }
  });

  it('names the parameter and path of a file it cannot read, never its content', async () => {
    const missing = join(dir, 'nope.pem');
    const directory = join(dir, 'a-directory');
    mkdirSync(directory, { recursive: true });
    const cases: [string, RegExp][] = [
      [etcd(`ca-file=${missing}`), new RegExp(`etcd ca-file ${missing} cannot be read: no such file`)],
      [etcd(`ca-file=${directory}`), new RegExp(`etcd ca-file ${directory} cannot be read: is a directory`)],
      [etcd(`cert-file=${missing}&key-file=${file('k.pem', keyPem)}`), new RegExp(`etcd cert-file ${missing} cannot be read`)],
      [etcd(`cert-file=${file('c.pem', caPem)}&key-file=${missing}`), new RegExp(`etcd key-file ${missing} cannot be read`)],
      [etcd(`user=vault&password-file=${missing}`), new RegExp(`etcd password-file ${missing} cannot be read: no such file`)],
    ];
    for (const [url, message] of cases) {
      await expect(openStore(url)).rejects.toThrow(InvalidStoreUrl);
      await expect(openStore(url)).rejects.toThrow(message);
    }
  });

  it('refuses files that hold no PEM of the right kind, without quoting them', async () => {
    const notPem = file('not-pem', 'sekrit-bytes-not-a-certificate\n');
    for (const [url, message] of [
      [etcd(`ca-file=${notPem}`), /etcd ca-file .*not-pem holds no PEM certificate/],
      [etcd(`cert-file=${notPem}&key-file=${file('k.pem', keyPem)}`), /etcd cert-file .*not-pem holds no PEM certificate/],
      [etcd(`cert-file=${file('c.pem', caPem)}&key-file=${file('cert-as-key.pem', caPem)}`), /etcd key-file .*cert-as-key\.pem holds no PEM private key/],
    ] as const) {
      const error = await openStore(url).then(
        () => undefined,
        (err: unknown) => err as Error,
      );
      expect(error).toBeInstanceOf(InvalidStoreUrl);
      expect(error!.message).toMatch(message);
      expect(error!.message).not.toContain('sekrit');
      expect(error!.message).not.toContain('BEGIN');
    }
  });

  it('refuses a certificate and key that do not belong together', async () => {
    const url = etcd(`cert-file=${file('c.pem', caPem)}&key-file=${file('k.pem', keyPem)}`);
    await expect(openStore(url)).rejects.toThrow(/etcd TLS files do not load together \(cert-file .*c\.pem, key-file .*k\.pem\): the key in key-file is not the key of the \(first\) certificate in cert-file/);
  });

  it('refuses an empty password file', async () => {
    for (const content of ['', '\n', '\r\n\n']) {
      const path = file('empty-pw', content);
      await expect(openStore(etcd(`user=vault&password-file=${path}`))).rejects.toThrow(new RegExp(`etcd password-file ${path} is empty`));
    }
  });

  it('reads files when the store opens, not when the URL parses', async () => {
    const later = join(dir, 'later.pem');
    const parsed = parseStoreUrl(etcd(`ca-file=${later}`));
    await expect(openStore(parsed)).rejects.toThrow(/cannot be read/);
    writeFileSync(later, caPem);
    const store = await openStore(parsed);
    await store.close();
  });
});

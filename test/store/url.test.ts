// Store URLs: what parses to what, and errors that say what is accepted.

import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
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
    ['etcd://user:pw@h1:2379', /credentials are not supported/],
    ['etcd://h1:99999', /bad etcd port/],
    ['etcd://h1:0', /bad etcd port/],
    ['etcd://h1:2379,,h2', /bad etcd host/],
    ['etcd://h_1:2379', /bad etcd host name/],
    ['etcd://h1,h1:2379', /same host twice/],
    ['etcd://h1?timeout=5', /unknown etcd URL parameter "timeout"/],
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

  it('describes a URL so that it parses back to the same thing', () => {
    for (const url of ['memory:', 'sqlite:/tmp/v.db', 'etcd://h1:2379,h2:2379?prefix=a%2Fb%2F&timeout-ms=750']) {
      const parsed = parseStoreUrl(url);
      expect(parseStoreUrl(describeStoreUrl(parsed))).toEqual(parsed);
    }
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

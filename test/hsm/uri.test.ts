import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidUri } from '../../src/hsm/errors.js';
import { parseHsmUri, redactUri, resolvePin, type Pkcs11Uri } from '../../src/hsm/uri.js';

describe('PKCS#11 URI (RFC 7512)', () => {
  it('parses path and query attributes with percent-encoding', () => {
    const uri = parseHsmUri('pkcs11:token=vault%20dev;manufacturer=SoftHSM%20project;serial=abc;slot-id=7;object=fleet-oprf;id=%01%02A?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin&x-pool-size=3');
    expect(uri).toEqual({
      scheme: 'pkcs11', token: 'vault dev', manufacturer: 'SoftHSM project', serial: 'abc', slotId: 7, object: 'fleet-oprf',
      id: Uint8Array.of(1, 2, 0x41), modulePath: '/usr/lib/softhsm/libsofthsm2.so', pinSource: 'file:/run/pin', poolSize: 3,
    });
  });

  it.each([
    ['http://x', 'must start with'],
    ['pkcs11:token', 'has no value'],
    ['pkcs11:bogus=1', 'unknown path attribute'],
    ['pkcs11:token=a;token=b', 'given twice'],
    ['pkcs11:token=a?pin-value=1&pin-source=file:/x', 'not both'],
    ['pkcs11:slot-id=x', 'decimal'],
    ['pkcs11:token=%zz', 'percent-encoding'],
    ['pkcs11:?x-pool-size=0', '1..64'],
    ['pkcs11:?module-name=softhsm2', 'module-path'],
    ['fake:path=x', 'only query attributes'],
  ])('rejects %s', (text, message) => {
    expect(() => parseHsmUri(text)).toThrow(InvalidUri);
    expect(() => parseHsmUri(text)).toThrow(message);
  });

  it('parses fake URIs', () => {
    expect(parseHsmUri('fake:')).toEqual({ scheme: 'fake' });
    expect(parseHsmUri('fake:?path=/tmp/t.json')).toEqual({ scheme: 'fake', path: '/tmp/t.json' });
  });

  it('resolves the PIN from pin-value, a pin-source file, or HSM_VAULT_PIN, and never echoes it in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'uri-'));
    const pinFile = join(dir, 'pin');
    writeFileSync(pinFile, 'secret-pin-1\n');
    expect(resolvePin(parseHsmUri('pkcs11:?pin-value=abc') as Pkcs11Uri, {})).toBe('abc');
    expect(resolvePin(parseHsmUri(`pkcs11:?pin-source=file:${pinFile}`) as Pkcs11Uri, {})).toBe('secret-pin-1');
    expect(resolvePin(parseHsmUri('pkcs11:token=x') as Pkcs11Uri, { HSM_VAULT_PIN: 'env-pin' })).toBe('env-pin');
    expect(() => resolvePin(parseHsmUri('pkcs11:?pin-source=https://x/pin') as Pkcs11Uri, {})).toThrow('only file:');
    expect(() => resolvePin(parseHsmUri(`pkcs11:?pin-source=file:${dir}/missing`) as Pkcs11Uri, {})).toThrow('ENOENT');
  });

  it('redacts pin-value for logs', () => {
    expect(redactUri('pkcs11:token=a?pin-value=1234&module-path=/x')).toBe('pkcs11:token=a?pin-value=***&module-path=/x');
  });
});

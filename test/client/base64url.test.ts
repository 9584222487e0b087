import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Base64urlError, decodeBase64url, encodeBase64url } from '../../src/client/base64url.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('base64url without padding', () => {
  // RFC 4648 §10 vectors, padding removed.
  const vectors: Array<[string, string]> = [
    ['', ''], ['f', 'Zg'], ['fo', 'Zm8'], ['foo', 'Zm9v'], ['foob', 'Zm9vYg'], ['fooba', 'Zm9vYmE'], ['foobar', 'Zm9vYmFy'],
  ];
  it.each(vectors)('RFC 4648 vector %j', (plain, encoded) => {
    expect(encodeBase64url(ascii(plain))).toBe(encoded);
    expect(decodeBase64url(encoded)).toEqual(ascii(plain));
  });

  it('uses the URL-safe alphabet', () => {
    expect(encodeBase64url(new Uint8Array([0xfb, 0xff, 0xbf]))).toBe('-_-_');
    expect(decodeBase64url('-_-_')).toEqual(new Uint8Array([0xfb, 0xff, 0xbf]));
  });

  it('agrees with Node Buffer both ways for any bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const encoded = encodeBase64url(bytes);
      expect(encoded).toBe(Buffer.from(bytes).toString('base64url'));
      expect(decodeBase64url(encoded)).toEqual(bytes);
    }), { numRuns: 500 });
  });

  it.each([
    ['padding', 'Zg=='],
    ['standard alphabet +', 'ab+c'],
    ['standard alphabet /', 'ab/c'],
    ['whitespace', 'Zm9v Yg'],
    ['impossible length 4n+1', 'Zm9vY'],
    ['non-canonical trailing bits', 'Zh'],
    ['non-ASCII', 'Zm9é'],
  ])('rejects %s', (_name, text) => {
    expect(() => decodeBase64url(text)).toThrow(Base64urlError);
  });
});

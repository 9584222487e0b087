// The encoding of executor requests and replies in shared memory: every value PKCS#11 parameters
// are made of round-trips exactly, bytes come back as Buffers that own their memory (the cell is
// reused), and what does not fit or cannot be encoded fails loudly instead of being truncated.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EncodingOverflow, decodeValue, encodeValue } from '../../src/hsm/pkcs11/executor-codec.js';
import { CELL_CAPACITY, channelViews, createChannelBuffer, DEPTH } from '../../src/hsm/pkcs11/executor-channel.js';

const cell = (size = 4096) => new Uint8Array(new SharedArrayBuffer(size));

function roundTrip(value: unknown, bytes = cell()): unknown {
  return decodeValue(bytes, encodeValue(value, bytes));
}

describe('executor codec', () => {
  it('round-trips a request as the driver builds it', () => {
    const request = {
      op: 'call',
      params: {
        fn: 'C_GenerateKeyPair',
        args: [
          Buffer.from('0102030405060708', 'hex'),
          { mechanism: 0x1040 },
          [{ type: 0x180, value: Buffer.from('06082a8648ce3d030107', 'hex') }, { type: 0x01, value: true }, { type: 0x03, value: 'vault-oprf é€' }],
          [{ type: 0x162, value: false }, { type: 0x161, value: 32 }, { type: 0x8000_0001, value: 4294967295 }],
        ],
        spare: [null, undefined, -1, 1.5, 2 ** 40, '', 'x'.repeat(300)],
      },
    };
    const back = roundTrip(request) as typeof request;
    expect(back).toEqual(request);
    expect(Buffer.isBuffer(back.params.args[0])).toBe(true);
  });

  it('reuses decoded property names only when every byte matches', () => {
    // 'Aa' and 'BB' have the same hash in the name cache (31 * 65 + 97 = 31 * 66 + 66).
    for (let i = 0; i < 3; i++) {
      expect(roundTrip({ Aa: 1, BB: 2, é: 3, [`n${i}`]: 4 })).toEqual({ Aa: 1, BB: 2, é: 3, [`n${i}`]: 4 });
      expect(Object.keys(roundTrip({ BB: 0, Aa: 0 }) as object)).toEqual(['BB', 'Aa']);
    }
  });

  it('decodes bytes into memory of their own, not views on the shared cell', () => {
    const bytes = cell();
    const value = { data: Buffer.from('secret bytes') };
    const back = decodeValue(bytes, encodeValue(value, bytes)) as { data: Buffer };
    bytes.fill(0);
    expect(back.data.toString()).toBe('secret bytes');
    expect(back.data.buffer).not.toBe(bytes.buffer);
  });

  it('gives empty byte strings a real backing store', () => {
    const back = roundTrip({ data: new Uint8Array(0) }) as { data: Buffer };
    expect(Buffer.isBuffer(back.data)).toBe(true);
    expect(back.data.length).toBe(0);
    expect(back.data.buffer.byteLength).toBeGreaterThan(0);
  });

  it('refuses what does not fit, and values it cannot carry', () => {
    expect(() => encodeValue({ data: Buffer.alloc(5000) }, cell())).toThrow(EncodingOverflow);
    expect(() => encodeValue({ s: 'é'.repeat(2000) }, cell())).toThrow(EncodingOverflow);
    expect(() => encodeValue({ f: () => 1 }, cell())).toThrow(TypeError);
    expect(() => encodeValue({ d: new Date() }, cell())).toThrow(TypeError);
    expect(() => encodeValue({ b: 1n }, cell())).toThrow(TypeError);
  });

  it('rejects corrupt input instead of misreading it', () => {
    const bytes = cell();
    const n = encodeValue({ a: [1, 2, 3] }, bytes);
    expect(() => decodeValue(bytes, n + 1)).toThrow(/trailing|corrupt/);
    bytes[0] = 200;
    expect(() => decodeValue(bytes, n)).toThrow(/corrupt/);
    expect(() => decodeValue(bytes, bytes.length + 1)).toThrow(/corrupt/);
  });

  it('round-trips arbitrary JSON-like values with bytes', () => {
    const leaf = fc.oneof(
      fc.constant(null), fc.constant(undefined), fc.boolean(), fc.double({ noNaN: true }), fc.integer(), fc.string(), fc.string({ unit: 'binary' }),
      fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('node'), { maxLength: 5 }), fc.dictionary(fc.string({ maxLength: 8 }), tie('node'), { maxKeys: 5 })),
    })).node;
    fc.assert(fc.property(value, (v) => {
      expect(roundTrip(v, cell(64 * 1024))).toEqual(v);
    }), { numRuns: 300 });
  });

  it('has room in a cell for the largest request the driver sends (64 KiB data and 64 KiB AAD)', () => {
    const { cells } = channelViews(createChannelBuffer());
    expect(cells.length).toBe(DEPTH);
    const request = { op: 'decrypt', params: { session: Buffer.alloc(8), key: Buffer.alloc(8), iv: Buffer.alloc(12), aad: Buffer.alloc(64 * 1024), data: Buffer.alloc(64 * 1024 + 16), outLength: 64 * 1024 + 16 } };
    expect(encodeValue(request, cells[0]!.bytes)).toBeLessThanOrEqual(CELL_CAPACITY);
  });
});

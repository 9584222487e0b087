// The byte encoding of requests and replies between the event-loop thread and the executor
// workers, written into shared memory (executor-channel.js). Plain JavaScript with no project
// imports so a worker loads it under tsx, vitest and from dist/ alike.
//
// Why not structured clone or v8.serialize: a request is ~20 small values (a mechanism, a
// template, handles) and structured clone through a MessagePort cost ~45 µs per round trip on our
// 2-core VMs, v8.serialize + deserialize ~43 µs; this encoder does both ways in a few µs. It knows
// exactly the values PKCS#11 parameters are made of: undefined, null, booleans, numbers, strings,
// bytes (decoded as Buffers, which pkcs11js wants), arrays and plain objects.

const T_UNDEFINED = 0;
const T_NULL = 1;
const T_FALSE = 2;
const T_TRUE = 3;
const T_UINT32 = 4;
const T_FLOAT64 = 5;
const T_STRING = 6;
const T_BYTES = 7;
const T_ARRAY = 8;
const T_OBJECT = 9;

// Empty byte strings are views on a real allocation: a zero-length Buffer of its own can have no
// data pointer at all, and tokens answer a NULL pData with CKR_ARGUMENTS_BAD even for length 0
// (SoftHSM2's C_Sign does, for an empty Ed25519 message).
const EMPTY_BACKING = new ArrayBuffer(1);

// Property names repeat in every message (`op`, `params`, `session`, `publicData` …): decoded ones
// are kept by a hash of their bytes and reused after a byte-for-byte check, instead of building
// each again a character at a time. Only names are kept, never values (labels, data).
const NAMES = new Map();
const NAMES_MAX = 512;

/** The property name in bytes[at, at + n), from NAMES when it is there. */
function propertyName(bytes, at, n) {
  if (n > 64) return Buffer.prototype.utf8Slice.call(bytes, at, at + n);
  let hash = n;
  for (let i = 0; i < n; i++) {
    const c = bytes[at + i];
    if (c >= 0x80) return Buffer.prototype.utf8Slice.call(bytes, at, at + n);
    hash = (Math.imul(hash, 31) + c) | 0;
  }
  const known = NAMES.get(hash);
  if (known !== undefined && known.length === n) {
    let i = 0;
    while (i < n && known.charCodeAt(i) === bytes[at + i]) i++;
    if (i === n) return known;
  }
  const name = Buffer.prototype.latin1Slice.call(bytes, at, at + n);
  if (NAMES.size < NAMES_MAX) NAMES.set(hash, name);
  return name;
}

/** A value that does not fit the space it has. */
export class EncodingOverflow extends Error {}

/**
 * Writes `value` into `bytes` (a view on shared memory) and returns the number of bytes written.
 * Throws EncodingOverflow when it does not fit, and TypeError for a value it cannot encode.
 */
export function encodeValue(value, bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const room = (n) => {
    if (at + n > bytes.byteLength) throw new EncodingOverflow(`executor message exceeds ${bytes.byteLength} bytes`);
  };
  const u32 = (n) => {
    room(4);
    view.setUint32(at, n, true);
    at += 4;
  };
  const tag = (t) => {
    room(1);
    bytes[at++] = t;
  };
  const text = (s) => {
    // A string's UTF-8 form is at most 3 bytes per UTF-16 unit.
    room(4 + s.length * 3);
    let n = 0;
    if (s.length <= 64) {
      // Short ASCII strings (property names, function names) without a native call.
      for (; n < s.length; n++) {
        const c = s.charCodeAt(n);
        if (c > 0x7f) break;
        bytes[at + 4 + n] = c;
      }
    }
    if (n < s.length) n = Buffer.prototype.utf8Write.call(bytes, s, at + 4);
    view.setUint32(at, n, true);
    at += 4 + n;
  };
  const write = (v) => {
    if (v === undefined) return tag(T_UNDEFINED);
    if (v === null) return tag(T_NULL);
    switch (typeof v) {
      case 'boolean':
        return tag(v ? T_TRUE : T_FALSE);
      case 'number':
        if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff && !Object.is(v, -0)) {
          tag(T_UINT32);
          return u32(v);
        }
        tag(T_FLOAT64);
        room(8);
        view.setFloat64(at, v, true);
        at += 8;
        return;
      case 'string':
        tag(T_STRING);
        return text(v);
      case 'object':
        if (v instanceof Uint8Array) {
          tag(T_BYTES);
          u32(v.byteLength);
          room(v.byteLength);
          bytes.set(v, at);
          at += v.byteLength;
          return;
        }
        if (Array.isArray(v)) {
          tag(T_ARRAY);
          u32(v.length);
          for (const item of v) write(item);
          return;
        }
        if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
          const keys = Object.keys(v);
          tag(T_OBJECT);
          u32(keys.length);
          for (const key of keys) {
            text(key);
            write(v[key]);
          }
          return;
        }
        throw new TypeError(`executor messages cannot carry ${v.constructor?.name ?? 'this object'}`);
      default:
        throw new TypeError(`executor messages cannot carry a ${typeof v}`);
    }
  };
  write(value);
  return at;
}

/** Reads a value written by encodeValue. Bytes come back as Buffers that own their memory. */
export function decodeValue(bytes, length) {
  if (!(length >= 0 && length <= bytes.byteLength)) throw new TypeError('corrupt executor message (length)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, length);
  let at = 0;
  const u32 = () => {
    const n = view.getUint32(at, true);
    at += 4;
    return n;
  };
  const text = () => {
    const n = u32();
    let s = '';
    if (n <= 64) {
      let i = 0;
      for (; i < n && bytes[at + i] < 0x80; i++) s += String.fromCharCode(bytes[at + i]);
      if (i < n) s = Buffer.prototype.utf8Slice.call(bytes, at, at + n);
    } else {
      s = Buffer.prototype.utf8Slice.call(bytes, at, at + n);
    }
    at += n;
    return s;
  };
  const read = () => {
    const t = bytes[at++];
    switch (t) {
      case T_UNDEFINED: return undefined;
      case T_NULL: return null;
      case T_FALSE: return false;
      case T_TRUE: return true;
      case T_UINT32: return u32();
      case T_FLOAT64: {
        const f = view.getFloat64(at, true);
        at += 8;
        return f;
      }
      case T_STRING: return text();
      case T_BYTES: {
        const n = u32();
        if (n === 0) return Buffer.from(EMPTY_BACKING, 0, 0);
        const out = Buffer.allocUnsafeSlow(n); // its own memory: the shared cell is reused
        out.set(bytes.subarray(at, at + n));
        at += n;
        return out;
      }
      case T_ARRAY: {
        const n = u32();
        const out = new Array(n);
        for (let i = 0; i < n; i++) out[i] = read();
        return out;
      }
      case T_OBJECT: {
        const n = u32();
        const out = {};
        for (let i = 0; i < n; i++) {
          const size = u32();
          const key = propertyName(bytes, at, size);
          at += size;
          out[key] = read();
        }
        return out;
      }
      default:
        throw new TypeError(`corrupt executor message (tag ${t} at ${at - 1})`);
    }
  };
  const value = read();
  if (at !== length) throw new TypeError('corrupt executor message (trailing bytes)');
  return value;
}

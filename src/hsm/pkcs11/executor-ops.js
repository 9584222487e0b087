// The PKCS#11 call sequences the driver runs, shared by the worker threads and by the event-loop
// thread (for cheap calls on local software tokens). Plain JavaScript with no project imports so
// that a worker can load it under tsx, vitest and from dist/ alike.

/** A PKCS#11 call that failed: which function, which CK_RV (-1 when not a PKCS#11 error). */
export class CallFailed extends Error {
  constructor(fn, err) {
    const text = err && err.message ? String(err.message).split('\n')[0] : 'unknown error';
    super(text);
    this.fn = (err && err.method) || fn;
    this.tainted = false;
    // pkcs11js sets `code` for most calls, but some (C_SetAttributeValue) only say "CKR_X:16".
    const parsed = /^(CKR_\w+)(?::(\d+))?/.exec(text);
    if (err && typeof err.code === 'number' && parsed) this.rv = err.code;
    else if (parsed && parsed[2] !== undefined) this.rv = Number(parsed[2]);
    else this.rv = -1;
  }
}

/** Structured clone turns Buffers into Uint8Arrays; pkcs11js wants Buffers. */
export function toBuffers(value) {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return value.map(toBuffers);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = toBuffers(v);
    return out;
  }
  return value;
}

/**
 * Marks a failure that happened after an *Init succeeded: the session may still hold an active
 * operation (SoftHSM2 keeps it after CKR_ARGUMENTS_BAD), so the driver must replace the session.
 */
function tainting(fn) {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CallFailed) err.tainted = true;
    throw err;
  }
}

export function createOps(pkcs11) {
  function call(fn, ...args) {
    try {
      return pkcs11[fn](...args);
    } catch (err) {
      throw new CallFailed(fn, err);
    }
  }
  return {
    call({ fn, args }) {
      return call(fn, ...args);
    },
    /** ECDH1_DERIVE into a session object, read its value, destroy it: x(k·P). */
    ecdh({ session, key, mechanism, template, valueType }) {
      const derived = call('C_DeriveKey', session, mechanism, key, template);
      try {
        const [attr] = call('C_GetAttributeValue', session, derived, [{ type: valueType }]);
        return attr.value;
      } finally {
        try { pkcs11.C_DestroyObject(session, derived); } catch { /* a session object: gone at session close anyway */ }
      }
    },
    sign({ session, mechanism, key, data, outLength }) {
      call('C_SignInit', session, mechanism, key);
      return tainting(() => call('C_Sign', session, data, Buffer.alloc(outLength)));
    },
    encrypt({ session, mechanism, key, data, outLength }) {
      call('C_EncryptInit', session, mechanism, key);
      return tainting(() => call('C_Encrypt', session, data, Buffer.alloc(outLength)));
    },
    decrypt({ session, mechanism, key, data, outLength }) {
      call('C_DecryptInit', session, mechanism, key);
      return tainting(() => call('C_Decrypt', session, data, Buffer.alloc(outLength)));
    },
    find({ session, template, max }) {
      call('C_FindObjectsInit', session, template);
      try {
        return tainting(() => call('C_FindObjects', session, max));
      } finally {
        try { pkcs11.C_FindObjectsFinal(session); } catch { /* nothing to clean on a dead session */ }
      }
    },
    random({ session, length }) {
      return call('C_GenerateRandom', session, Buffer.alloc(length));
    },
  };
}

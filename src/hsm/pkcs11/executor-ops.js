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

/**
 * @param pkcs11 a loaded pkcs11js instance
 * @param options.shapes the mechanism numbers and the ECDH output template (from the driver's
 *   constants and templates), so requests carry only what varies: handles, points, data
 * @param options.copyKeys run operations on a session-object copy of each key (profile quirk
 *   `sessionKeyCopies`). Copies are per session, made by the thread that owns the session:
 *   SoftHSM2 locks an object on every use, so threads sharing one key object contend, and its
 *   token objects are slower still (their file is re-checked). A copy keeps CKA_SENSITIVE and
 *   CKA_EXTRACTABLE=false (PKCS#11 forbids weakening them in C_CopyObject) and dies with its
 *   session, which the driver renews whenever a key is destroyed or handles go stale.
 */
export function createOps(pkcs11, { shapes, copyKeys = false }) {
  function call(fn, ...args) {
    try {
      return pkcs11[fn](...args);
    } catch (err) {
      throw new CallFailed(fn, err);
    }
  }
  const gcm = (iv, aad) => ({ mechanism: shapes.gcm.mechanism, parameter: { type: shapes.gcm.parameterType, iv, ivBits: 96, aad, tagBits: 128 } });
  let copiesSession = null;
  const copies = new Map();
  /** The handle to operate with in `session`: the token object, or this session's copy of it. */
  function operand(session, key) {
    if (!copyKeys) return key;
    if (copiesSession === null || !copiesSession.equals(session)) {
      copies.clear(); // another session: the old session's copies died with it
      copiesSession = session;
    }
    const id = key.toString('hex');
    let copy = copies.get(id);
    if (copy === undefined) {
      copy = call('C_CopyObject', session, key, [{ type: 0x01 /* CKA_TOKEN */, value: false }]);
      copies.set(id, copy);
    }
    return copy;
  }
  return {
    /** Destroys this thread's copies (a key was destroyed, or handles went stale). */
    dropCopies() {
      for (const copy of copies.values()) {
        try { pkcs11.C_DestroyObject(copiesSession, copy); } catch { /* gone with its session */ }
      }
      copies.clear();
    },
    /** Forgets the copies without touching the token: their session was closed (handles may be reused). */
    forgetCopies() {
      copies.clear();
      copiesSession = null;
    },
    call({ fn, args }) {
      return call(fn, ...args);
    },
    /** ECDH1_DERIVE (no KDF) into a session object, read its value, destroy it: x(k·P). */
    ecdh({ session, key, publicData }) {
      const mechanism = { mechanism: shapes.ecdh.mechanism, parameter: { type: shapes.ecdh.parameterType, kdf: shapes.ecdh.kdf, publicData } };
      const derived = call('C_DeriveKey', session, mechanism, operand(session, key), shapes.ecdh.template);
      try {
        const [attr] = call('C_GetAttributeValue', session, derived, [{ type: shapes.ecdh.valueType }]);
        return attr.value;
      } finally {
        try { pkcs11.C_DestroyObject(session, derived); } catch { /* a session object: gone at session close anyway */ }
      }
    },
    sign({ session, mechanism, key, data, outLength }) {
      call('C_SignInit', session, { mechanism }, operand(session, key));
      return tainting(() => call('C_Sign', session, data, Buffer.alloc(outLength)));
    },
    /** AES-GCM with a 96-bit IV and a 128-bit tag. */
    encrypt({ session, key, iv, aad, data, outLength }) {
      call('C_EncryptInit', session, gcm(iv, aad), operand(session, key));
      return tainting(() => call('C_Encrypt', session, data, Buffer.alloc(outLength)));
    },
    decrypt({ session, key, iv, aad, data, outLength }) {
      call('C_DecryptInit', session, gcm(iv, aad), operand(session, key));
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

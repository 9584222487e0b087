// Handing bytes to pkcs11js: every input the driver passes goes through `buf`.

// An empty Uint8Array may have no backing store, which pkcs11js passes as a NULL pointer that
// tokens reject (CKR_ARGUMENTS_BAD); an empty view of a real allocation is a valid empty input.
export const buf = (b: Uint8Array): Buffer => (b.byteLength === 0 ? Buffer.alloc(1).subarray(0, 0) : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

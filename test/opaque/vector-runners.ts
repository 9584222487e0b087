// Runs one RFC 9807 vector through a client and a server built on any server-keys port, so the
// software keys and the token-backed keys are held to the same bytes.

import { expect } from 'vitest';
import { OpaqueClient } from '../../src/opaque/client.js';
import { identityKsf } from '../../src/opaque/ksf.js';
import { OpaqueServer, fakeRecord } from '../../src/opaque/server.js';
import type { OpaqueServerKeys } from '../../src/opaque/server-keys.js';
import { parseRegistrationRecord } from '../../src/opaque/messages.js';
import { bytesToBigInt } from '../../src/opaque/group.js';
import { hex, toHex, type OpaqueVector } from './vectors.js';

export function runRealVector(v: OpaqueVector, keys: OpaqueServerKeys) {
  const i = v.inputs;
  const context = hex(v.config.Context!);
  const identities = {
    ...(i.server_identity ? { serverIdentity: hex(i.server_identity) } : {}),
    ...(i.client_identity ? { clientIdentity: hex(i.client_identity) } : {}),
  };
  return async () => {
    const client = new OpaqueClient({ ksf: identityKsf, context });
    const server = new OpaqueServer(keys, { context, ...(identities.serverIdentity ? { serverIdentity: identities.serverIdentity } : {}) });
    const credentialId = hex(i.credential_identifier!);
    const password = hex(i.password!);
    expect(toHex(server.publicKey)).toBe(i.server_public_key);

    const { request, state: regState } = client.createRegistrationRequest(password, { blind: bytesToBigInt(hex(i.blind_registration!)) });
    expect(toHex(request)).toBe(v.outputs.registration_request);
    const response = await server.createRegistrationResponse(request, credentialId);
    expect(toHex(response)).toBe(v.outputs.registration_response);
    const { record, exportKey: regExportKey } = await client.finalizeRegistrationRequest(regState, response, identities, { envelopeNonce: hex(i.envelope_nonce!) });
    expect(toHex(record)).toBe(v.outputs.registration_upload);
    expect(toHex(regExportKey)).toBe(v.outputs.export_key);

    const { ke1, state } = client.generateKE1(password, {
      blind: bytesToBigInt(hex(i.blind_login!)), clientNonce: hex(i.client_nonce!), clientKeyshareSeed: hex(i.client_keyshare_seed!),
    });
    expect(toHex(ke1)).toBe(v.outputs.KE1);
    const { ke2, state: serverState } = await server.generateKE2(ke1, parseRegistrationRecord(record), credentialId, identities.clientIdentity, {
      maskingNonce: hex(i.masking_nonce!), serverNonce: hex(i.server_nonce!), serverKeyshareSeed: hex(i.server_keyshare_seed!),
    });
    expect(toHex(ke2)).toBe(v.outputs.KE2);
    // The vault's path: KE1 and record parsed (and their points decoded) once, before KE2.
    const parsed = await server.generateKE2(server.parseKE1(ke1), server.parseRecord(record), credentialId, identities.clientIdentity, {
      maskingNonce: hex(i.masking_nonce!), serverNonce: hex(i.server_nonce!), serverKeyshareSeed: hex(i.server_keyshare_seed!),
    });
    expect(toHex(parsed.ke2)).toBe(v.outputs.KE2);
    const result = await client.generateKE3(state, ke2, identities);
    expect(toHex(result.ke3)).toBe(v.outputs.KE3);
    expect(toHex(result.sessionKey)).toBe(v.outputs.session_key);
    expect(toHex(result.exportKey)).toBe(v.outputs.export_key);
    expect(toHex(server.finish(serverState, result.ke3))).toBe(v.outputs.session_key);
  };
}

export function runFakeVector(v: OpaqueVector, keys: OpaqueServerKeys) {
  const i = v.inputs;
  const context = hex(v.config.Context!);
  return async () => {
    const server = new OpaqueServer(keys, { context, serverIdentity: hex(i.server_identity!) });
    const record = fakeRecord(hex(i.client_public_key!), hex(i.masking_key!));
    const fixed = { maskingNonce: hex(i.masking_nonce!), serverNonce: hex(i.server_nonce!), serverKeyshareSeed: hex(i.server_keyshare_seed!) };
    const { ke2 } = await server.generateKE2(hex(i.KE1!), record, hex(i.credential_identifier!), hex(i.client_identity!), fixed);
    expect(toHex(ke2)).toBe(v.outputs.KE2);
    // The same record without its decoded key, and the KE1 parsed first: the other input forms.
    const { clientPublicKeyPoint: _decoded, ...plain } = record;
    const other = await server.generateKE2(server.parseKE1(hex(i.KE1!)), plain, hex(i.credential_identifier!), hex(i.client_identity!), fixed);
    expect(toHex(other.ke2)).toBe(v.outputs.KE2);
  };
}

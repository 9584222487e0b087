// Property tests: random and mutated messages never raise anything but InvalidMessage (or, where a
// well-formed message simply fails to authenticate, the protocol's authentication errors).

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { OpaqueClient } from '../../src/opaque/client.js';
import { identityKsf } from '../../src/opaque/ksf.js';
import { OpaqueServer } from '../../src/opaque/server.js';
import { softwareServerKeys } from '../../src/opaque/server-keys.js';
import { SIZES, parseKE1, parseKE2, parseRegistrationRecord, parseRegistrationRequest, parseRegistrationResponse } from '../../src/opaque/messages.js';
import {
  ClientAuthenticationError, EnvelopeRecoveryError, InvalidMessage, ServerAuthenticationError,
} from '../../src/opaque/errors.js';

const enc = new TextEncoder();
const server = new OpaqueServer(softwareServerKeys({ oprfSeed: new Uint8Array(32).fill(1), serverPrivateKey: new Uint8Array(32).fill(2) }));
const client = new OpaqueClient({ ksf: identityKsf });
const userId = enc.encode('user-1');
const password = enc.encode('pw');

async function registered(): Promise<Uint8Array> {
  const { request, state } = client.createRegistrationRequest(password);
  return (await client.finalizeRegistrationRequest(state, await server.createRegistrationResponse(request, userId))).record;
}

/** A valid message with bytes flipped, cut, extended, or points swapped for garbage. */
function mutated(valid: Uint8Array) {
  return fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: valid.length + 40 }),
    fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
      const m = valid.slice();
      m[i]! ^= x;
      return m;
    }),
    fc.nat(valid.length - 1).map((n) => valid.slice(0, n)),
    fc.uint8Array({ minLength: 1, maxLength: 8 }).map((extra) => Uint8Array.from([...valid, ...extra])),
  );
}

const onlyInvalidMessage = (err: unknown) => {
  expect(err).toBeInstanceOf(InvalidMessage);
  expect((err as InvalidMessage).field.length).toBeGreaterThan(0);
};

describe('malformed OPAQUE messages', () => {
  it('parsers accept exactly the valid shapes and refuse the rest with InvalidMessage', async () => {
    const record = await registered();
    const { ke1 } = client.generateKE1(password);
    const { ke2 } = await server.generateKE2(ke1, parseRegistrationRecord(record), userId);
    const { request } = client.createRegistrationRequest(password);
    const response = await server.createRegistrationResponse(request, userId);
    const cases: Array<[Uint8Array, (b: Uint8Array) => unknown]> = [
      [request, parseRegistrationRequest], [response, parseRegistrationResponse], [record, parseRegistrationRecord], [ke1, parseKE1], [ke2, parseKE2],
    ];
    for (const [valid, parse] of cases) {
      fc.assert(fc.property(mutated(valid), (bytes) => {
        try {
          parse(bytes);
        } catch (err) {
          onlyInvalidMessage(err);
        }
      }), { numRuns: 400 });
    }
  });

  it('the server meets mutated registration requests, KE1s, records and KE3s with typed errors only', async () => {
    const record = await registered();
    const { ke1 } = client.generateKE1(password);
    const { request } = client.createRegistrationRequest(password);
    await fc.assert(fc.asyncProperty(mutated(request), async (bytes) => {
      await server.createRegistrationResponse(bytes, userId).catch(onlyInvalidMessage);
    }), { numRuns: 150 });
    await fc.assert(fc.asyncProperty(mutated(ke1), async (bytes) => {
      await server.generateKE2(bytes, parseRegistrationRecord(record), userId).catch(onlyInvalidMessage);
    }), { numRuns: 150 });
    const { state } = await server.generateKE2(ke1, parseRegistrationRecord(record), userId);
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 64 }), (bytes) => {
      try {
        server.finish(state, bytes);
        throw new Error('a random KE3 finished a login');
      } catch (err) {
        if (bytes.length === SIZES.ke3) expect(err).toBeInstanceOf(ClientAuthenticationError);
        else onlyInvalidMessage(err);
      }
    }), { numRuns: 300 });
  });

  it('the client meets mutated KE2s with InvalidMessage or a failed authentication, never anything else', async () => {
    const record = await registered();
    const { ke1, state } = client.generateKE1(password);
    const { ke2 } = await server.generateKE2(ke1, parseRegistrationRecord(record), userId);
    await fc.assert(fc.asyncProperty(mutated(ke2), async (bytes) => {
      if (Buffer.from(bytes).equals(Buffer.from(ke2))) return;
      const err = await client.generateKE3(state, bytes).then(() => new Error('a mutated KE2 authenticated'), (e: unknown) => e);
      const allowed = [InvalidMessage, EnvelopeRecoveryError, ServerAuthenticationError];
      expect(allowed.some((type) => err instanceof type), String(err)).toBe(true);
    }), { numRuns: 150 });
  });
});

describe('the server\'s OpenSSL element decoder', () => {
  it('accepts and refuses exactly what the strict decoder does, with the same points', async () => {
    const { deserializeElementFast } = await import('../../src/opaque/full-point.js');
    const { deserializeElement } = await import('../../src/opaque/group.js');
    const { p256 } = await import('@noble/curves/nist.js');
    const valid = fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((b) => b.some((x) => x !== 0))
      .map((b) => { try { return p256.getPublicKey(b, true); } catch { return p256.getPublicKey(new Uint8Array(32).fill(9), true); } });
    const anyBytes = fc.oneof(valid, fc.uint8Array({ minLength: 33, maxLength: 33 }), fc.uint8Array({ minLength: 0, maxLength: 66 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((x) => Uint8Array.from([2, ...x])));
    fc.assert(fc.property(anyBytes, (bytes) => {
      const strict = (() => { try { return deserializeElement(bytes); } catch (e) { return e as Error; } })();
      const fast = (() => { try { return deserializeElementFast(bytes); } catch (e) { return e as Error; } })();
      if (strict instanceof Error) {
        expect(fast).toBeInstanceOf(InvalidMessage);
      } else {
        expect(fast).not.toBeInstanceOf(Error);
        expect((fast as typeof strict).equals(strict)).toBe(true);
      }
    }), { numRuns: 2000 });
  });
});

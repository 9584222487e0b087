import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  cosignatureKeyId,
  cosignatureSigner,
  cosignatureVerifier,
  cosignedMessage,
  formatCheckpoint,
  openCheckpoint,
  parseCheckpoint,
  parseCosignature,
  parseCosignatureVerifierKey,
} from '../../src/fleet/checkpoint.js';
import { softwareEd25519Signer, verifyEd25519 } from '../../src/fleet/ed25519.js';
import { FleetError } from '../../src/fleet/errors.js';
import { treeHead } from '../../src/fleet/merkle.js';
import {
  addNoteSignatures,
  formatVerifierKey,
  openNote,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
} from '../../src/fleet/signed-note.js';
import merkle from '../fixtures/vectors/merkle-rfc6962.json' with { type: 'json' };
import vectors from '../fixtures/vectors/signed-note-c2sp.json' with { type: 'json' };

const textOf = (note: string): string => note.slice(0, note.lastIndexOf('\n\n') + 1);

describe('tlog-checkpoint bodies from signed-note-c2sp.json', () => {
  const withCheckpoint = vectors.cases.filter((c) => c.checkpoint !== undefined);

  it.each(withCheckpoint)('$id parses and formats back', (c) => {
    const cp = parseCheckpoint(textOf(c.note));
    expect(cp.origin).toBe(c.checkpoint!.origin);
    expect(cp.size).toBe(c.checkpoint!.size);
    expect(Buffer.from(cp.rootHash).toString('base64')).toBe(c.checkpoint!.rootHashB64);
    expect(cp.extensions).toEqual([]);
    expect(formatCheckpoint(cp)).toBe(textOf(c.note));
  });

  it('the derived size-8 checkpoint commits to the RFC 6962 root of merkle-rfc6962.json', () => {
    const c = vectors.cases.find((x) => x.id === 'derived-checkpoint-peter-size8')!;
    const opened = openCheckpoint(c.note, c.vkeys.map(parseVerifierKey), 'PeterNeumann');
    const root = treeHead(merkle.leafHashes.map((h) => new Uint8Array(Buffer.from(h, 'hex'))));
    expect(opened.checkpoint.rootHash).toEqual(root);
    expect(() => openCheckpoint(c.note, c.vkeys.map(parseVerifierKey), 'other')).toThrow(FleetError);
  });

  it.each([
    ['no final newline', 'o\n1\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg='],
    ['two lines', 'o\n1\n'],
    ['leading zero', 'o\n01\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n'],
    ['signed size', 'o\n+1\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n'],
    ['empty origin', '\n1\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n'],
    ['short root', 'o\n1\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQ==\n'],
    ['unpadded root', 'o\n1\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n'],
    ['empty extension line', 'o\n1\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\next\n'],
    ['size beyond 2^53', 'o\n9007199254740993\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n'],
  ])('rejects %s', (_why, text) => {
    expect(() => parseCheckpoint(text)).toThrow(expect.objectContaining({ code: 'CHECKPOINT_MALFORMED' }));
  });

  it('keeps extension lines', () => {
    const text = 'o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next one\next two\n';
    expect(parseCheckpoint(text).extensions).toEqual(['ext one', 'ext two']);
    expect(formatCheckpoint(parseCheckpoint(text))).toBe(text);
  });
});

describe('tlog-cosignature v1 (Ed25519, type 0x04)', () => {
  const checkpoint = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';

  it('signed message is exactly the spec example', () => {
    const expected =
      'cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
    expect(new TextDecoder().decode(cosignedMessage(1679315147n, checkpoint))).toBe(expected);
  });

  it('parses the spec example signature line: key ID, then u64 BE timestamp 1679315147, then 64 bytes', () => {
    const example =
      '\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n';
    const [sig] = parseNote(`${checkpoint}\n${example}`).signatures;
    expect(sig!.keyId).toBe(0x8d66cf3f);
    const cosig = parseCosignature(sig!.signature);
    expect(cosig.timestamp).toBe(1679315147n);
    expect(cosig.signature).toHaveLength(64);
  });

  it('cosigns a log-signed checkpoint; log key and witness key both verify', async () => {
    const log = vectors.cases.find((x) => x.id === 'derived-checkpoint-peter-size8')!;
    const witnessKey = softwareEd25519Signer(new Uint8Array(32).fill(4));
    const witness = cosignatureSigner('witness.example/w1', witnessKey, () => 1_700_000_000n);
    const cosigned = await addNoteSignatures(log.note, [witness]);
    const vkey = formatVerifierKey('witness.example/w1', 0x04, witnessKey.publicKey);
    const verifiers = [parseVerifierKey(log.vkeys[0]!), parseCosignatureVerifierKey(vkey)];
    const opened = openCheckpoint(cosigned, verifiers, 'PeterNeumann');
    expect(opened.verified.map((s) => s.name)).toEqual(['PeterNeumann', 'witness.example/w1']);
    const cosig = parseCosignature(opened.verified[1]!.signature);
    expect(cosig.timestamp).toBe(1_700_000_000n);
    expect(witness.keyId).toBe(cosignatureKeyId('witness.example/w1', witnessKey.publicKey));
    // The Ed25519 signature is over the cosigned message, not the bare note text.
    expect(verifyEd25519(witnessKey.publicKey, cosignedMessage(cosig.timestamp, opened.text), cosig.signature)).toBe(true);
  });

  it('a cosignature does not verify as a plain note signature, nor for another checkpoint', async () => {
    const key = softwareEd25519Signer(new Uint8Array(32).fill(5));
    const note = await signNote(checkpoint, [cosignatureSigner('w', key, () => 5n)]);
    const verifier = cosignatureVerifier('w', key.publicKey);
    expect(openNote(note, [verifier]).verified).toHaveLength(1);
    const other = note.replace('20852163', '20852164');
    expect(() => openNote(other, [verifier])).toThrow(expect.objectContaining({ code: 'NOTE_INVALID_SIGNATURE' }));
    const plain = parseVerifierKey(formatVerifierKey('w', 0x01, key.publicKey));
    expect(() => openNote(note, [plain])).toThrow(expect.objectContaining({ code: 'NOTE_UNVERIFIED' }));
  });

  it('rejects cosignatures from the future when a clock is given, and non-checkpoint text', async () => {
    const key = softwareEd25519Signer(new Uint8Array(32).fill(6));
    const note = await signNote(checkpoint, [cosignatureSigner('w', key, () => 1000n)]);
    expect(() => openNote(note, [cosignatureVerifier('w', key.publicKey, { now: () => 999n })])).toThrow(FleetError);
    expect(openNote(note, [cosignatureVerifier('w', key.publicKey, { now: () => 990n, maxFutureSeconds: 10n })]).verified).toHaveLength(1);
    await expect(signNote('not a checkpoint\n', [cosignatureSigner('w', key, () => 1n)])).rejects.toThrow(FleetError);
    expect(() => parseCosignature(new Uint8Array(71))).toThrow(FleetError);
    const overflow = new Uint8Array(72);
    overflow[0] = 0x80;
    expect(() => parseCosignature(overflow)).toThrow(FleetError);
  });

  it('a parsed log signer key reproduces its vector checkpoint byte for byte', async () => {
    const c = vectors.cases.find((x) => x.id === 'derived-checkpoint-peter-size8')!;
    expect(await signNote(textOf(c.note), [parseSignerKey(c.signerKey!)])).toBe(c.note);
  });

  it('property: format/parse round trip', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9./-]{1,20}$/),
        fc.nat({ max: Number.MAX_SAFE_INTEGER }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(fc.stringMatching(/^[ -~]{1,10}$/), { maxLength: 3 }),
        (origin, size, rootHash, extensions) => {
          const text = formatCheckpoint({ origin, size, rootHash, extensions });
          expect(parseCheckpoint(text)).toEqual({ origin, size, rootHash, extensions });
        },
      ),
    );
  });
});

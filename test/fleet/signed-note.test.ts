import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { softwareEd25519Signer } from '../../src/fleet/ed25519.js';
import { FleetError } from '../../src/fleet/errors.js';
import {
  addNoteSignatures,
  decodeVerifierKey,
  ed25519KeyId,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatVerifierKey,
  generateNoteKey,
  isValidKeyName,
  openNote,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
} from '../../src/fleet/signed-note.js';
import vectors from '../fixtures/vectors/signed-note-c2sp.json' with { type: 'json' };

const label = (s: { name: string; keyId: number }): string => `${s.name}+${s.keyId.toString(16).padStart(8, '0')}`;

describe('signed-note-c2sp.json', () => {
  it(`has ${vectors.cases.length} cases`, () => expect(vectors.cases.length).toBe(19));

  it.each(vectors.cases)('$id', (c) => {
    const verifiers = c.vkeys.map(parseVerifierKey);
    if (c.expect.ok) {
      const opened = openNote(c.note, verifiers);
      expect(opened.verified.map(label)).toEqual(c.expect.verified);
      expect(opened.unverified.map(label)).toEqual(c.expect.unverified ?? []);
      expect(opened.text).toBe(c.note.slice(0, c.note.lastIndexOf('\n\n') + 1));
    } else {
      expect(() => openNote(c.note, verifiers)).toThrow(FleetError);
      expect(() => openNote(c.note, verifiers)).toThrow(c.expect.error);
    }
  });

  it.each(vectors.cases.filter((c) => c.signerKey !== undefined))('$id: signing reproduces the note', async (c) => {
    const signer = parseSignerKey(c.signerKey!);
    const text = c.note.slice(0, c.note.lastIndexOf('\n\n') + 1);
    expect(await signNote(text, [signer])).toBe(c.note);
    expect(formatVerifierKey(signer.name, 0x01, signer.publicKey)).toBe(c.vkeys[0]);
  });

  it.each(vectors.badVerifierKeys)('rejects verifier key: $why', ({ vkey }) => {
    expect(() => decodeVerifierKey(vkey)).toThrow(FleetError);
    expect(() => parseVerifierKey(vkey)).toThrow(expect.objectContaining({ code: 'NOTE_INVALID_KEY' }));
  });

  it('key IDs are SHA-256(name || 0x0A || 0x01 || key)[:4]', () => {
    for (const vkey of vectors.cases.flatMap((c) => c.vkeys)) {
      const v = parseVerifierKey(vkey);
      expect(ed25519KeyId(v.name, v.publicKey)).toBe(v.keyId);
      expect(formatVerifierKey(v.name, 0x01, v.publicKey)).toBe(vkey);
    }
  });
});

describe('format rules', () => {
  const signer = ed25519NoteSigner('example.com/log', softwareEd25519Signer(new Uint8Array(32).fill(7)));
  const verifier = ed25519NoteVerifier('example.com/log', softwareEd25519Signer(new Uint8Array(32).fill(7)).publicKey);

  it('keeps blank lines inside the text: the LAST blank line separates', async () => {
    const note = await signNote('a\n\nb\n\n', [signer]);
    expect(openNote(note, [verifier]).text).toBe('a\n\nb\n\n');
  });

  it('rejects text without a final newline, control characters, bad names', async () => {
    await expect(signNote('no newline', [signer])).rejects.toThrow(FleetError);
    await expect(signNote('tab\there\n', [signer])).rejects.toThrow(FleetError);
    expect(() => parseNote('text\n\n\u2014 name AAAAAAA=\r\n')).toThrow('malformed note');
    expect(() => parseNote('text\n\n\u2014 na+me AAAAAAA=\n')).toThrow('malformed note');
    expect(() => parseNote('text\n\n\u2014 name AAAA\n')).toThrow('malformed note'); // < 5 bytes
    expect(() => parseNote('text\n\n- name AAAAAAA=\n')).toThrow('malformed note');
    expect(() => parseNote(new Uint8Array([0x61, 0x0a, 0x0a, 0xff, 0x0a]))).toThrow('malformed note');
    expect(isValidKeyName('a\u00a0b')).toBe(false);
    expect(isValidKeyName('a\u0085b')).toBe(false);
    expect(isValidKeyName('example.com/ok')).toBe(true);
  });

  it('rejects non-canonical base64 (trailing bits set)', async () => {
    const note = await signNote('x\n', [signer]);
    const b64 = note.split(' ').at(-1)!.trim(); // ends in "=" : one padding char
    const last = b64.at(-2)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const tweaked = alphabet[alphabet.indexOf(last) ^ 1]!;
    const bad = note.replace(b64, b64.slice(0, -2) + tweaked + '=');
    expect(() => openNote(bad, [verifier])).toThrow('malformed note');
  });

  it('caps signatures at 100', () => {
    const line = '\u2014 w AAAAAAA=\n';
    expect(parseNote('t\n\n' + line.repeat(100)).signatures).toHaveLength(100);
    expect(() => parseNote('t\n\n' + line.repeat(101))).toThrow('malformed note');
  });

  it('ignores a signature by a key sharing only the name or only the ID', async () => {
    const other = ed25519NoteSigner('example.com/log', softwareEd25519Signer(new Uint8Array(32).fill(8)));
    const sameId = { name: 'example.com/other', keyId: signer.keyId, sign: other.sign };
    const note = await signNote('x\n', [other, sameId, signer]);
    const opened = openNote(note, [verifier]);
    expect(opened.verified.map(label)).toEqual([label(signer)]);
    expect(opened.unverified).toHaveLength(2);
  });

  it('adds a cosignature to a signed note, replacing the same key only', async () => {
    const witness = generateNoteKey('witness.example/w1', new Uint8Array(32).fill(9));
    const signed = await signNote('x\n', [signer]);
    const cosigned = await addNoteSignatures(signed, [parseSignerKey(witness.skey)]);
    const again = await addNoteSignatures(cosigned, [parseSignerKey(witness.skey)]);
    expect(again).toBe(cosigned);
    const opened = openNote(cosigned, [verifier, parseVerifierKey(witness.vkey)]);
    expect(opened.verified.map((s) => s.name)).toEqual(['example.com/log', 'witness.example/w1']);
  });

  it('rejects two verifiers for one key', () => {
    expect(() => openNote('x\n\n\u2014 a AAAAAAA=\n', [verifier, verifier])).toThrow(
      expect.objectContaining({ code: 'NOTE_AMBIGUOUS_KEY' }),
    );
  });
});

describe('properties', () => {
  const text = fc
    .array(fc.stringMatching(/^[^\u0000-\u001f]*$/), { minLength: 1, maxLength: 5 })
    .map((lines) => lines.join('\n') + '\n')
    .filter((t) => t.isWellFormed());

  it('sign then open round-trips any valid text', async () => {
    await fc.assert(
      fc.asyncProperty(text, fc.uint8Array({ minLength: 32, maxLength: 32 }), async (t, seed) => {
        const { skey, vkey } = generateNoteKey('k.example/x', seed);
        const note = await signNote(t, [parseSignerKey(skey)]);
        const opened = openNote(note, [parseVerifierKey(vkey)]);
        expect(opened.text).toBe(t);
        expect(opened.verified).toHaveLength(1);
      }),
      { numRuns: 50 },
    );
  });

  it('changing any text character breaks the signature or the format', async () => {
    const { skey, vkey } = generateNoteKey('k.example/x', new Uint8Array(32).fill(1));
    await fc.assert(
      fc.asyncProperty(text, fc.nat(), async (t, at) => {
        const note = await signNote(t, [parseSignerKey(skey)]);
        const i = at % t.length;
        const replacement = t[i] === 'a' ? 'b' : 'a';
        const tampered = note.slice(0, i) + replacement + note.slice(i + 1);
        expect(() => openNote(tampered, [parseVerifierKey(vkey)])).toThrow(FleetError);
      }),
      { numRuns: 50 },
    );
  });
});

// serve's rate-limit flags: RATE/BURST, refused when malformed.

import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from 'commander';
import { parseBucket } from '../../src/cli/serve.js';

describe('serve --ip-limit / --user-limit / --recovery-limit', () => {
  it('reads RATE/BURST', () => {
    expect(parseBucket('20/40')).toEqual({ perSecond: 20, burst: 40 });
    expect(parseBucket('0.0833/5')).toEqual({ perSecond: 0.0833, burst: 5 });
  });
  it('refuses anything else', () => {
    for (const bad of ['20', '0/5', '5/0', '-1/5', '5/2.5', 'a/b', '5/5/5', '']) expect(() => parseBucket(bad)).toThrow(InvalidArgumentError);
  });
});

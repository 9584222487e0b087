// The protocol leg: an OPAQUE login through the token and a register/recover through the vault
// layer. Those layers plug in through `ProtocolLeg`; this build has none, so both checks skip.

import { skip, type Check, type Outcome, type ProtocolLeg, type ProtocolSession, type QualifyContext } from '../types.js';
import { leftOut, unusableOperations } from './util.js';

export const PROTOCOL_UNAVAILABLE = 'protocol layer not available in this build';

export const unavailableProtocolLeg: ProtocolLeg = {
  unavailable: PROTOCOL_UNAVAILABLE,
  async opaqueLogin() {
    return skip(PROTOCOL_UNAVAILABLE);
  },
  async registerRecover() {
    return skip(PROTOCOL_UNAVAILABLE);
  },
};

export function protocolSession(ctx: QualifyContext): ProtocolSession {
  return { driver: ctx.driver, label: (name) => ctx.label(name), signal: ctx.signal };
}

/**
 * The vault layer needs every operation: on a token that cannot do one, the check that diagnoses
 * it fails, and the protocol leg is skipped with that reason rather than failing for it again.
 */
export async function protocolBlocked(ctx: QualifyContext): Promise<Outcome | undefined> {
  if (ctx.protocol.unavailable) return skip(ctx.protocol.unavailable);
  const unusable = await unusableOperations(ctx);
  if (unusable.size) return skip(`not run: the vault layer needs every operation${leftOut(unusable).replace('; left out', ', and this token lacks')}`);
  return undefined;
}

export const protocolChecks: Check[] = [
  {
    id: 'protocol.opaque-login',
    phase: 'protocol',
    proves: 'an OPAQUE (RFC 9807) registration and login complete with the server keys inside the token',
    required: false,
    timeoutMs: 60_000,
    async run(ctx) {
      return (await protocolBlocked(ctx)) ?? ctx.protocol.opaqueLogin(protocolSession(ctx));
    },
  },
  {
    id: 'protocol.register-recover',
    phase: 'protocol',
    proves: 'a secret registered through the vault layer is recovered with the right password and refused with a wrong one',
    required: false,
    timeoutMs: 60_000,
    async run(ctx) {
      return (await protocolBlocked(ctx)) ?? ctx.protocol.registerRecover(protocolSession(ctx));
    },
  },
];

// HTTP front of a Witness (node:http, JSON):
//   GET  /v1/key                     -> WitnessIdentity
//   GET  /v1/checkpoint?origin=O     -> WitnessLogState, or 404 when nothing was signed for O
//   POST /v1/sign  WitnessSignRequest -> WitnessSignResponse
// Errors answer {"error": CODE, "message": TEXT}: 400 for a malformed request, 403 for an
// untrusted log or bad log signature, 409 for fork / rollback / inconsistency / not included.
// Signing is serialized inside Witness, so concurrent requests are safe.
// `witnessClient(url)` is the matching client the CLI uses.

import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Witness, WitnessError, type WitnessErrorCode, type WitnessIdentity, type WitnessLogState, type WitnessSignRequest, type WitnessSignResponse } from './witness.js';

const MAX_BODY = 1 << 20;

const STATUS: Record<WitnessErrorCode, number> = {
  WITNESS_BAD_REQUEST: 400,
  WITNESS_UNKNOWN_LOG: 403,
  WITNESS_BAD_LOG_SIGNATURE: 403,
  WITNESS_FORK: 409,
  WITNESS_ROLLBACK: 409,
  WITNESS_INCONSISTENT: 409,
  WITNESS_NOT_INCLUDED: 409,
  WITNESS_STATE: 500,
};

export interface RunningWitnessServer {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  /** Stops accepting connections, waits for open ones, then closes the witness. */
  close(): Promise<void>;
}

/** Parses `host:port` (`[v6]:port` too). Port 0 picks an ephemeral port. */
export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new WitnessError('WITNESS_BAD_REQUEST', `--listen must be HOST:PORT, got "${listen}"`);
  return { host: (match[1] ?? match[2]) as string, port };
}

export async function startWitnessServer(witness: Witness, listen: { host: string; port: number }): Promise<RunningWitnessServer> {
  const server = createServer((req, res) => {
    handle(witness, req, res).catch((err: unknown) => send(res, 500, { error: 'INTERNAL', message: err instanceof Error ? err.message : 'error' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return {
    url: `http://${host}:${port}`,
    port,
    server,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await witness.close();
    },
  };
}

async function handle(witness: Witness, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://witness');
  if (url.pathname === '/v1/key' && req.method === 'GET') return send(res, 200, witness.identity);
  if (url.pathname === '/v1/checkpoint' && req.method === 'GET') {
    const origin = url.searchParams.get('origin');
    if (!origin) return send(res, 400, { error: 'WITNESS_BAD_REQUEST', message: 'origin query parameter required' });
    const state = witness.state(origin);
    return state === undefined ? send(res, 404, { error: 'NOT_FOUND', message: `nothing signed for ${origin}` }) : send(res, 200, state);
  }
  if (url.pathname === '/v1/sign' && req.method === 'POST') {
    let request: WitnessSignRequest;
    try {
      request = JSON.parse(await readBody(req)) as WitnessSignRequest;
    } catch (err) {
      return send(res, 400, { error: 'WITNESS_BAD_REQUEST', message: err instanceof Error ? err.message : 'unreadable body' });
    }
    try {
      return send(res, 200, await witness.sign(request));
    } catch (err) {
      if (err instanceof WitnessError) return send(res, STATUS[err.code], { error: err.code, message: err.message });
      throw err;
    }
  }
  if (['/v1/key', '/v1/checkpoint', '/v1/sign'].includes(url.pathname)) return send(res, 405, { error: 'METHOD_NOT_ALLOWED', message: req.method ?? '' });
  return send(res, 404, { error: 'NOT_FOUND', message: url.pathname });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

// --- client ---

export interface WitnessClient {
  key(): Promise<WitnessIdentity>;
  /** The witness's last signed checkpoint for `origin`, or undefined when it has signed none. */
  checkpoint(origin: string): Promise<WitnessLogState | undefined>;
  sign(request: WitnessSignRequest): Promise<WitnessSignResponse>;
}

/** A client for a witness at `baseUrl`; witness refusals come back as WitnessError with the server's code. */
export function witnessClient(baseUrl: string): WitnessClient {
  const base = baseUrl.replace(/\/+$/, '');
  async function call<T>(path: string, init?: RequestInit, allow404 = false): Promise<T | undefined> {
    const res = await fetch(`${base}${path}`, init);
    const text = await res.text();
    if (res.status === 404 && allow404) return undefined;
    let json: { error?: string; message?: string } & Record<string, unknown>;
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      throw new WitnessError('WITNESS_BAD_REQUEST', `witness answered ${res.status} with non-JSON`);
    }
    if (!res.ok) {
      const code = (json.error && json.error in STATUS ? json.error : 'WITNESS_BAD_REQUEST') as WitnessErrorCode;
      throw new WitnessError(code, `witness refused (${res.status} ${json.error ?? ''}): ${json.message ?? ''}`);
    }
    return json as T;
  }
  return {
    key: async () => (await call<WitnessIdentity>('/v1/key')) as WitnessIdentity,
    checkpoint: (origin) => call<WitnessLogState>(`/v1/checkpoint?origin=${encodeURIComponent(origin)}`, undefined, true),
    sign: async (request) =>
      (await call<WitnessSignResponse>('/v1/sign', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) })) as WitnessSignResponse,
  };
}

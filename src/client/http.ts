// The HTTP transport of the SDK: one JSON request, and the node's error answers mapped onto the
// typed errors of errors.ts. Only `fetch`, so it runs in browsers, workers and Node alike.

import { Base64urlError, decodeBase64url } from './base64url.js';
import {
  AuthenticationFailed, InvalidRequest, Locked, NetworkError, NotFound, ProtocolError, RateLimited,
  ServerError, SessionInvalid, Unauthorized, VaultClientError, VaultUnavailable,
} from './errors.js';

export type FetchLike = typeof fetch;

export interface JsonRequest {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly token?: string;
  readonly body?: Record<string, unknown>;
}

export type JsonObject = Record<string, unknown>;

/** Sends one request; resolves to the JSON object of a 2xx answer (empty object for no body). */
export async function requestJson(fetchFn: FetchLike, baseUrl: string, request: JsonRequest): Promise<JsonObject> {
  const headers: Record<string, string> = { accept: 'application/json' };
  // No content-type without a body: fastify rejects an empty body declared as JSON.
  if (request.body !== undefined) headers['content-type'] = 'application/json';
  if (request.token !== undefined) headers.authorization = `Bearer ${request.token}`;
  let response: Response;
  try {
    response = await fetchFn(joinUrl(baseUrl, request.path), {
      method: request.method,
      headers,
      ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
    });
  } catch (cause) {
    throw new NetworkError({ cause });
  }
  let text: string;
  try {
    text = await response.text();
  } catch (cause) {
    throw new NetworkError({ cause });
  }
  const parsed = parseBody(text);
  if (response.status >= 200 && response.status < 300) {
    if (text.trim() === '') return {};
    if (parsed === undefined || !isObject(parsed)) throw new ProtocolError('response body is not a JSON object', response.status);
    return parsed;
  }
  throw errorFromResponse(response.status, isObject(parsed) ? parsed : {}, response.headers);
}

/**
 * DESIGN.md's error answers: 401 {error:"authentication_failed", attemptsRemaining},
 * 401 {error:"session_invalid"}, 423 {error:"locked"}, 404 not_found, 400 invalid_request,
 * 503 unavailable; any other 401/403 is the token check; 429 carries Retry-After.
 */
export function errorFromResponse(status: number, body: JsonObject, headers?: Headers): VaultClientError {
  const code = typeof body.error === 'string' ? body.error : undefined;
  if (status === 423 || code === 'locked') return new Locked(status);
  if (code === 'authentication_failed') {
    const remaining = body.attemptsRemaining;
    return new AuthenticationFailed(isCount(remaining) ? remaining : undefined, status);
  }
  if (code === 'session_invalid') return new SessionInvalid(status);
  if (status === 401 || status === 403) return new Unauthorized(status, code);
  if (status === 429) return new RateLimited(retryAfterSeconds(headers?.get('retry-after') ?? null, body.retryAfter), status);
  if (status === 503 || code === 'unavailable') return new VaultUnavailable(status);
  if (status === 404) return new NotFound(status);
  if (status === 400) return new InvalidRequest(status, code);
  return new ServerError(status, code);
}

/** Retry-After is delta-seconds or an HTTP-date (RFC 9110 §10.2.3); a JSON `retryAfter` is the fallback. */
export function retryAfterSeconds(header: string | null, bodyValue: unknown, now: number = Date.now()): number | undefined {
  if (header !== null) {
    const trimmed = header.trim();
    if (/^\d+$/.test(trimmed)) return Number(trimmed);
    const date = Date.parse(trimmed);
    if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - now) / 1000));
  }
  if (typeof bodyValue === 'number' && Number.isFinite(bodyValue) && bodyValue >= 0) return bodyValue;
  return undefined;
}

function joinUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/\/+$/, '') + path;
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

// Readers for response fields: anything unexpected is a ProtocolError naming the field.

export function bytesField(body: JsonObject, field: string, length?: number | { min: number; max: number }): Uint8Array {
  const value = body[field];
  if (typeof value !== 'string') throw new ProtocolError(`response field ${field} is missing or not a string`);
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64url(value);
  } catch (cause) {
    if (cause instanceof Base64urlError) throw new ProtocolError(`response field ${field} is not base64url`, undefined, { cause });
    throw cause;
  }
  if (typeof length === 'number' && bytes.length !== length) {
    throw new ProtocolError(`response field ${field} has ${bytes.length} bytes, expected ${length}`);
  }
  if (typeof length === 'object' && (bytes.length < length.min || bytes.length > length.max)) {
    throw new ProtocolError(`response field ${field} has ${bytes.length} bytes, expected ${length.min}..${length.max}`);
  }
  return bytes;
}

export function countField(body: JsonObject, field: string): number {
  const value = body[field];
  if (!isCount(value)) throw new ProtocolError(`response field ${field} is missing or not a non-negative integer`);
  return value;
}

export function stringField(body: JsonObject, field: string): string {
  const value = body[field];
  if (typeof value !== 'string') throw new ProtocolError(`response field ${field} is missing or not a string`);
  return value;
}

export function objectField(body: JsonObject, field: string): JsonObject {
  const value = body[field];
  if (!isObject(value)) throw new ProtocolError(`response field ${field} is missing or not an object`);
  return value;
}

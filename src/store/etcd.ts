// Fleet store on an etcd v3 cluster (the `etcd3` gRPC client). A put or delete returns only once
// a majority has committed it, so an attempt counter is durable before KE2 leaves the node.
//
// Versions: the record version IS etcd's per-key `version` (1 at creation, +1 per put, gone on
// delete), and compare-and-swap compares it (`version == expected`; creation compares
// `create_revision == 0`, i.e. no live key). We do not use the mod revision: it is a cluster-wide
// counter, so the version a put produces would only be known after the commit, and the vault must
// seal the record with its new version in the AAD before writing it. Per-key version gives the
// same contract as sqlite and memory (new version = expected + 1).
//
// Retries: the client re-sends a call on another endpoint when it fails in flight (e.g. "leader
// changed"), so a write may be applied once and then fail its own compare on the retry. Each put
// therefore stores a random write id next to the value (a 17-byte envelope: format byte, 16-byte
// id); a failed compare that finds our own write id at the version we were producing is our
// success, exactly, whatever bytes the caller wrote. A retried delete that already succeeded
// reports VersionConflict with current null, as any delete of an absent record does.
//
// Failure: every call carries a gRPC deadline (default 2 s), and a local timer backs it up, so
// a lost quorum, missing leader or dead endpoint surfaces as StoreUnavailable, never as a hang.
// Reads are linearizable (not `serializable`), so they also need the leader and a quorum: a
// minority member never serves a stale version.
//
// TLS and auth: with `tls` the client dials https:// endpoints and verifies the servers against
// the given CA (or the default roots), optionally presenting a client certificate (mutual TLS);
// with `auth` it exchanges user name and password for an etcd token before its first call. A
// refused handshake, a rejected password or a missing permission is StoreAccessDenied: still a
// StoreUnavailable (fail closed, 503), but with a message that says what to fix. The password is
// handed to the client and kept nowhere else; no message carries it.

import { randomBytes } from 'node:crypto';
import {
  Etcd3,
  CompareResult,
  CompareTarget,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCUnauthenticatedError,
  type ICompare,
  type IKeyValue,
  type IOptions,
  type IRequestOp,
  type ITxnResponse,
} from 'etcd3';
import { IncompatibleStore, InvalidStoreArgument, StoreAccessDenied, StoreUnavailable, VersionConflict, type StoreAccessFailure } from './errors.js';
import { checkPut, checkUserId, checkVersion, copyBytes, type RecordStore, type StoreHealth, type StoredRecord } from './store.js';

export const DEFAULT_ETCD_PREFIX = 'hsm-vault/records/';
export const DEFAULT_ETCD_TIMEOUT_MS = 2000;
const ENVELOPE_FORMAT = 1;
const WRITE_ID_BYTES = 16;
const ENVELOPE_HEADER_BYTES = 1 + WRITE_ID_BYTES;
/** Slack for the local timer behind the gRPC deadline: the deadline should win. */
const LOCAL_TIMER_SLACK_MS = 250;

export interface EtcdStoreOptions {
  /** `host:port` endpoints: plain gRPC, or gRPC over TLS when `tls` is given. */
  readonly hosts: readonly string[];
  /** Key prefix; record key = prefix + user id. */
  readonly prefix?: string;
  /** Deadline for each store call, including retries on other endpoints. */
  readonly timeoutMs?: number;
  /** Connect over TLS (an empty object: verify the servers against the default roots). */
  readonly tls?: EtcdTlsOptions;
  /** etcd user authentication. */
  readonly auth?: EtcdAuthOptions;
  /** After etcd rejects the password, how long calls fail at once without asking it again (ms). */
  readonly authRetryMs?: number;
}

/**
 * etcd checks a password with bcrypt, tens of ms of its CPU each: a node with a wrong password
 * under load would spend the cluster's CPU for every request of every node. So a rejected
 * password is not offered again for this long; calls meanwhile fail at once, just as closed.
 */
export const DEFAULT_ETCD_AUTH_RETRY_MS = 5_000;

/** PEM bytes, as read from the store URL's ca-file, cert-file and key-file. */
export interface EtcdTlsOptions {
  /** CA bundle the server certificates must chain to; default: the default roots. */
  readonly rootCertificate?: Buffer;
  /** Client certificate chain and its private key, for mutual TLS: both or neither. */
  readonly certChain?: Buffer;
  readonly privateKey?: Buffer;
}

export interface EtcdAuthOptions {
  readonly username: string;
  readonly password: string;
}

export class EtcdStore implements RecordStore {
  readonly hosts: readonly string[];
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly tls: boolean;
  /** The etcd user this store authenticates as, if any (the password is not kept here). */
  readonly user: string | undefined;
  private readonly client: Etcd3;
  private closed = false;
  /**
   * The last call's access failure, until a call succeeds. After failed handshakes the client's
   * circuit breaker pauses an endpoint for a few seconds and reports only "circuit breaker is
   * open"; this lets those calls still say why.
   */
  private lastAccessFailure: AccessFailure | undefined;
  /** Until then, a rejected password is not offered to etcd again (see DEFAULT_ETCD_AUTH_RETRY_MS). */
  private passwordPausedUntil = 0;
  private readonly authRetryMs: number;

  constructor(options: EtcdStoreOptions) {
    this.hosts = [...options.hosts];
    this.prefix = options.prefix ?? DEFAULT_ETCD_PREFIX;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_ETCD_TIMEOUT_MS;
    this.tls = options.tls !== undefined;
    this.user = options.auth?.username;
    this.authRetryMs = options.authRetryMs ?? DEFAULT_ETCD_AUTH_RETRY_MS;
    const clientOptions: IOptions = {
      hosts: this.hosts.map((h) => `${this.tls ? 'https' : 'http'}://${h}`),
      dialTimeout: this.timeoutMs,
      ...(options.tls && (options.tls.rootCertificate || options.tls.certChain || options.tls.privateKey)
        ? {
            credentials: {
              // etcd3 types the CA as required, but hands it to grpc's createSsl, where a missing
              // CA means the default roots, as with bare https:// hosts.
              rootCertificate: options.tls.rootCertificate as Buffer,
              ...(options.tls.certChain ? { certChain: options.tls.certChain } : {}),
              ...(options.tls.privateKey ? { privateKey: options.tls.privateKey } : {}),
            },
          }
        : {}),
      ...(options.auth ? { auth: { username: options.auth.username, password: options.auth.password } } : {}),
    };
    try {
      // The client connects lazily: opening never fails because the cluster is down; calls do.
      // It does load the TLS material now, so a key that does not match its certificate fails here.
      this.client = new Etcd3(clientOptions);
    } catch (err) {
      throw new InvalidStoreArgument(`etcd TLS material does not load: ${describe(err)}`);
    }
  }

  async get(userId: string): Promise<StoredRecord | null> {
    checkUserId(userId);
    const response = await this.call('read', (deadline) => this.client.kv.range({ key: this.key(userId) }, { deadline }));
    const kv = response.kvs[0];
    return kv ? toRecord(userId, kv) : null;
  }

  async put(userId: string, value: Uint8Array, expectedVersion: number | null): Promise<StoredRecord> {
    const version = checkPut(userId, value, expectedVersion);
    const key = this.key(userId);
    const stored = copyBytes(value);
    const writeId = randomBytes(WRITE_ID_BYTES);
    const envelope = Buffer.concat([Buffer.of(ENVELOPE_FORMAT), writeId, stored]);
    const compare: ICompare =
      expectedVersion === null
        ? { key, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 }
        : { key, target: CompareTarget.Version, result: CompareResult.Equal, version: expectedVersion };
    const response = await this.txn(compare, { request_put: { key, value: envelope } }, key);
    const current = currentKv(response);
    const ours = current !== undefined && Number(current.version) === version && writeIdOf(current).equals(writeId);
    if (!response.succeeded && !ours) {
      throw new VersionConflict(userId, expectedVersion, current ? Number(current.version) : null);
    }
    return { userId, version, value: stored };
  }

  async delete(userId: string, expectedVersion: number): Promise<void> {
    checkUserId(userId);
    checkVersion(expectedVersion, 'expected version');
    const key = this.key(userId);
    const compare: ICompare = { key, target: CompareTarget.Version, result: CompareResult.Equal, version: expectedVersion };
    const response = await this.txn(compare, { request_delete_range: { key } }, key);
    if (!response.succeeded) {
      const current = currentKv(response);
      throw new VersionConflict(userId, expectedVersion, current ? Number(current.version) : null);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  async health(): Promise<StoreHealth> {
    try {
      // A linearizable read needs the leader to confirm it still holds a quorum: exactly the
      // condition writes need. The bare prefix is never a record key (user ids are non-empty).
      const response = await this.call('read', (deadline) =>
        this.client.kv.range({ key: Buffer.from(this.prefix), count_only: true }, { deadline }),
      );
      return { ok: true, detail: `etcd ${this.hosts.join(',')}: quorum read ok at revision ${response.header.revision}` };
    } catch (err) {
      return { ok: false, detail: err instanceof Error ? err.message : 'etcd health check failed' };
    }
  }

  private key(userId: string): Buffer {
    return Buffer.from(this.prefix + userId, 'utf8');
  }

  /** If `compare` holds, run `then`; otherwise read the key so a conflict can name its version. */
  private txn(compare: ICompare, then: IRequestOp, key: Buffer): Promise<ITxnResponse> {
    return this.call('write', (deadline) =>
      this.client.kv.txn({ compare: [compare], success: [then], failure: [{ request_range: { key } }] }, { deadline }),
    );
  }

  /** Runs one etcd call under the store's deadline; every failure becomes StoreUnavailable. */
  private async call<T>(what: 'read' | 'write', fn: (deadline: Date) => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreUnavailable('etcd', 'store is closed');
    const started = Date.now();
    const refused = this.lastAccessFailure;
    if (refused?.reason === 'authentication' && started < this.passwordPausedUntil) {
      const seconds = Math.ceil((this.passwordPausedUntil - started) / 1000);
      throw new StoreAccessDenied('etcd', 'authentication', `${refused.message} (not offered to etcd again for ${seconds} s: each try costs it a password hash)`);
    }
    // One absolute deadline for the whole call: the client's retries on other endpoints share it.
    const deadline = new Date(started + this.timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    const localTimer = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new StoreUnavailable('etcd', `${what} gave no answer within ${this.timeoutMs} ms`)),
        this.timeoutMs + LOCAL_TIMER_SLACK_MS,
      );
    });
    try {
      const result = await Promise.race([fn(deadline), localTimer]);
      this.lastAccessFailure = undefined;
      return result;
    } catch (err) {
      if (err instanceof StoreUnavailable) throw err;
      const denied = accessFailure(err, this.user, this.prefix);
      if (denied) {
        this.lastAccessFailure = denied;
        if (denied.reason === 'authentication' && this.user !== undefined) this.passwordPausedUntil = Date.now() + this.authRetryMs;
        throw new StoreAccessDenied('etcd', denied.reason, denied.message, { cause: err });
      }
      const last = this.lastAccessFailure;
      if (last && isBrokenCircuit(err)) {
        throw new StoreAccessDenied('etcd', last.reason, `${last.message} (calls to the failing endpoints are paused for a few seconds)`, { cause: err });
      }
      // Fail closed on anything the client reports: unavailable, deadline, no leader, lost
      // quorum, circuit open. For a write the outcome is unknown (see StoreUnavailable).
      throw new StoreUnavailable('etcd', `${what} failed after ${Date.now() - started} ms: ${describe(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }
}

interface AccessFailure {
  readonly reason: StoreAccessFailure;
  readonly message: string;
}

/**
 * Failures that no retry fixes: a refused TLS handshake, rejected credentials, a missing
 * permission. grpc reports a failed handshake only as UNAVAILABLE with OpenSSL's words in the
 * message, so that is what we look for. A plain client at a TLS port just sees "Failed to
 * connect", like a dead endpoint: that stays StoreUnavailable.
 */
function accessFailure(err: unknown, user: string | undefined, prefix: string): AccessFailure | undefined {
  if (!(err instanceof Error)) return undefined;
  if (err instanceof EtcdAuthenticationFailedError) {
    return { reason: 'authentication', message: `etcd rejected the user name or password of user "${user}"; check user= and the password in password-file=` };
  }
  if (/user name is empty/.test(err.message)) {
    return { reason: 'authentication', message: 'etcd requires authentication; give the store URL user= and password-file=' };
  }
  if (err instanceof EtcdInvalidAuthTokenError || err instanceof GRPCUnauthenticatedError) {
    return { reason: 'authentication', message: `etcd did not accept the client's authentication${user ? ` as user "${user}"` : ''}: ${describe(err)}` };
  }
  if (err instanceof EtcdPermissionDeniedError) {
    const who = user ? `etcd user "${user}"` : 'this client (no user= given)';
    return { reason: 'permission', message: `${who} may not read and write keys under prefix "${prefix}"; grant its role readwrite on that prefix` };
  }
  const handshake = TLS_FAILURE.exec(err.message) ? tlsDetail(err.message) : undefined;
  if (handshake === undefined) return undefined;
  if (CLIENT_CERT_REFUSED.test(handshake)) {
    return { reason: 'tls', message: `TLS handshake failed: the server refused the client certificate (${handshake}); check cert-file= and key-file= (mutual TLS needs a certificate signed by a CA the server trusts)` };
  }
  if (SERVER_CERT_UNTRUSTED.test(handshake)) {
    return { reason: 'tls', message: `TLS handshake failed: the server certificate is not trusted (${handshake}); check that ca-file= names the CA that signed it and that it covers the host name or IP` };
  }
  return { reason: 'tls', message: `TLS handshake failed (${handshake}); check that the servers speak TLS on these ports and the tls=, ca-file=, cert-file= and key-file= parameters` };
}

const TLS_FAILURE = /certificate|\bSSL\b|\bTLS\b|handshake|wrong version number|altnames/i;
const CLIENT_CERT_REFUSED = /alert (bad certificate|certificate required|unknown ca|certificate unknown|access denied)/i;
const SERVER_CERT_UNTRUSTED = /verify|self[- ]signed|altnames|certificate has expired|not yet valid|issuer/i;

/** grpc's "No connection established. Last error: …": the last error, without OpenSSL's prefix. */
function tlsDetail(message: string): string {
  const last = /Last error: (?:Error: )?([\s\S]*?)(?:\s*\(\d{4}-\d\d-\d\dT[^)]*\))?\.?\s*(?:Resolution note:[\s\S]*)?$/.exec(message)?.[1] ?? message;
  const openssl = /SSL routines:[^:]*:([^:]+)/.exec(last)?.[1];
  return (openssl ?? last).trim().slice(0, 200);
}

/** cockatiel's BrokenCircuitError (etcd3's per-endpoint breaker), without depending on cockatiel. */
function isBrokenCircuit(err: unknown): boolean {
  return err instanceof Error && (err as { isBrokenCircuitError?: boolean }).isBrokenCircuitError === true;
}

function currentKv(response: ITxnResponse): IKeyValue | undefined {
  return response.responses[0]?.response_range?.kvs[0];
}

function toRecord(userId: string, kv: IKeyValue): StoredRecord {
  checkEnvelope(kv);
  return { userId, version: Number(kv.version), value: copyBytes(kv.value.subarray(ENVELOPE_HEADER_BYTES)) };
}

function writeIdOf(kv: IKeyValue): Buffer {
  checkEnvelope(kv);
  return kv.value.subarray(1, ENVELOPE_HEADER_BYTES);
}

function checkEnvelope(kv: IKeyValue): void {
  if (kv.value.length < ENVELOPE_HEADER_BYTES || kv.value[0] !== ENVELOPE_FORMAT) {
    throw new IncompatibleStore(`etcd key under the record prefix was not written by this store (format ${kv.value[0] ?? 'empty'})`);
  }
}

/** gRPC/etcd messages name a status ("etcdserver: request timed out"), never record bytes. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err).slice(0, 200);
  // etcd3's error classes leave `name` as "Error"; the class says which failure it was.
  const kind = err.constructor.name === 'Error' ? err.name : err.constructor.name;
  return `${kind}: ${err.message.replace(/^Error: /, '')}`.slice(0, 300);
}

import { ApiError } from './errors.ts';
import { ExpiringMap } from './expiring.ts';

/** Who made a request, as authentication established it. */
export type Caller = { kind: 'hmac'; keyIndex: number } | { kind: 'bearer'; subject: string };

export interface AuthOptions {
  /** The resource's access keys (base64), the current one first; more than one while rotating. */
  accessKeys?: readonly string[];
  /** How far x-ms-date may be from this clock. Default 15 minutes, Azure's window. */
  clockSkewMs?: number;
  /**
   * Refuse a signature already accepted within the window (401 ReplayedRequest). Off by default:
   * Azure's SDKs sign a request once and re-send the same signature on every retry, and two
   * identical requests within one second of x-ms-date sign alike, so refusing replays refuses
   * those legitimate retries and repeats (TLS and the window are the defence against a replayed
   * capture). When on, every accepted signature is remembered until its x-ms-date leaves the
   * window (about 15 minutes), at most `maxEntries` at once (default 1 000 000, about 160 bytes
   * each: 160 MB, or a steady 1 100 requests a second): past that the service answers 503 with
   * Retry-After rather than forget one early. Several instances behind one load balancer must
   * share where they remember them (`store`: `createRedisReplayStore` from
   * `@call-automation/server/redis`), or a signature one accepted is accepted again by another;
   * a store has its own bound (`maxEntries` here bounds the default, in memory). A store that
   * cannot answer (Redis away) has the request answered 503 with `Retry-After: 1`, and its error
   * goes to the service's `onError`.
   */
  refuseReplays?: boolean | { maxEntries?: number; store?: ReplayStore };
  /** Verifies a bearer token and answers who it belongs to, or undefined to refuse it. */
  verifyToken?: (token: string) => Promise<string | undefined> | string | undefined;
  /** The clock, for tests. */
  now?: () => number;
  /** Verify with Web Crypto even where node:crypto is available (as on runtimes without it). */
  webCrypto?: boolean;
  /**
   * The host (and port) clients sign, for a service behind a proxy that rewrites Host. By default
   * the request's Host header.
   */
  host?: string;
}

/** What a replay store found: the signature is new (and now held), was held already, or there is no room. */
export type ReplayVerdict = { state: 'recorded' } | { state: 'replayed' } | { state: 'full'; retryAfterMs: number };

/**
 * Where accepted signatures are remembered while replays are refused. The default is in memory
 * (`createMemoryReplayStore`), its instance's alone; instances that share a load balancer share
 * one (`createRedisReplayStore`). `remember` must be atomic across the instances sharing it, and
 * keep a signature until `expires`, never forgetting one earlier to make room. A store that fails
 * (throws, rejects) has the request answered 503 with Retry-After.
 */
export interface ReplayStore {
  /** Records `signature` until `expires` (ms since the epoch), unless it is held already or there is no room. */
  remember(signature: string, expires: number): ReplayVerdict | Promise<ReplayVerdict>;
}

const recorded: ReplayVerdict = Object.freeze({ state: 'recorded' });
const replayed: ReplayVerdict = Object.freeze({ state: 'replayed' });

/**
 * Signatures in this process's memory, at most `maxEntries` (default 1 000 000) at once: when
 * full, a new one is refused until the earliest expires.
 */
export function createMemoryReplayStore(options: { maxEntries?: number; now?: () => number } = {}): ReplayStore {
  const seen = new ExpiringMap<true>(options.maxEntries ?? 1_000_000, options.now);
  return {
    remember(signature, expires) {
      if (seen.get(signature)) return replayed;
      return seen.set(signature, true, expires) ? recorded : { state: 'full', retryAfterMs: seen.retryAfterMs() };
    },
  };
}

interface NodeCrypto {
  /** One-shot SHA-256 (Node 20.12+): no Hash object to make and collect. */
  hash(algorithm: 'sha256', data: string | Uint8Array, encoding: 'base64' | 'buffer'): string & Uint8Array;
}

// node:crypto is several times faster than Node's Web Crypto; runtimes without its one-shot hash
// use Web Crypto.
const builtin = (globalThis as { process?: { getBuiltinModule?: (id: string) => { hash?: unknown } | undefined } }).process?.getBuiltinModule?.('node:crypto');
const nodeCrypto = typeof builtin?.hash === 'function' ? (builtin as NodeCrypto) : undefined;
const encoder = new TextEncoder();

/** base64 SHA-256 with node:crypto. */
function nodeSha256(data: string | Uint8Array): string {
  return nodeCrypto!.hash('sha256', data, 'base64');
}

/**
 * HMAC-SHA256 (RFC 2104) on node:crypto's one-shot hash, the key's padded blocks made once. Under
 * load it authenticates about 4 µs faster than createHmac, whose native objects weigh on every
 * garbage collection (measured in the stub with the bench's load).
 */
function nodeHmacSigner(key: Uint8Array): (message: string) => string {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? nodeCrypto!.hash('sha256', key, 'buffer') : key);
  const inner = block.map((byte) => byte ^ 0x36);
  const outer = new Uint8Array(96);
  outer.set(block.map((byte) => byte ^ 0x5c));
  return (message) => {
    const text = encoder.encode(message);
    const first = new Uint8Array(64 + text.length);
    first.set(inner);
    first.set(text, 64);
    outer.set(nodeCrypto!.hash('sha256', first, 'buffer'), 64);
    return nodeCrypto!.hash('sha256', outer, 'base64');
  };
}

const isPromise = <T>(value: T | Promise<T>): value is Promise<T> => typeof (value as { then?: unknown } | undefined)?.then === 'function';

/**
 * The answer to a request whose signature could not be checked against the replay store (Redis
 * away, slow or failing): 503, to retry in a second, the store's error kept as its cause for
 * `onError`.
 */
function storeFailed(error: unknown): ApiError {
  return new ApiError(503, 'ServiceUnavailable', 'The service cannot check the request for replays now; retry after 1 second.', { headers: { 'Retry-After': '1' }, cause: error });
}

function base64(bytes: ArrayBuffer): string {
  let binary = '';
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function decodeKey(key: string): Uint8Array<ArrayBuffer> {
  const binary = atob(key);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Compares two strings (base64 signatures and hashes) in time that depends only on their length,
 * which is checked first: every character is compared, whatever the first difference.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** base64 of the SHA-256 of raw bytes (or of a string's UTF-8 bytes). */
export async function sha256Base64(data: Uint8Array<ArrayBuffer> | string): Promise<string> {
  if (nodeCrypto) return nodeSha256(data);
  return base64(await crypto.subtle.digest('SHA-256', typeof data === 'string' ? encoder.encode(data) : data));
}

async function webHmacBase64(key: Promise<CryptoKey>, text: string): Promise<string> {
  return base64(await crypto.subtle.sign('HMAC', await key, encoder.encode(text)));
}

const hmacHeader = /^HMAC-SHA256 SignedHeaders=([^&\s]+)&Signature=([A-Za-z0-9+/]+={0,2})$/;

export interface SignedRequest {
  method: string;
  /** The path and query exactly as sent. */
  pathAndQuery: string;
  /** The Host header as sent. */
  host: string;
  headers: { get(name: string): string | null | undefined };
  /** The raw body bytes as received, before any decoding or parsing. */
  body: Uint8Array<ArrayBuffer> | string;
}

/**
 * Authenticates requests per the spec's schemes: ACS HMAC-SHA256 (any of the configured keys,
 * x-ms-date within the window, the content hash over the raw body, compared in constant time;
 * with `refuseReplays`, a signature not accepted before within the window) or a bearer token the
 * implementer verifies. Throws an ApiError(401) saying what failed.
 */
export function createAuthenticator(options: AuthOptions) {
  const keys = (options.accessKeys ?? []).map(decodeKey);
  const nodeSigners = nodeCrypto && !options.webCrypto ? keys.map(nodeHmacSigner) : [];
  let webKeys: Array<Promise<CryptoKey>> | undefined;
  const webKey = (index: number) => (webKeys ??= keys.map((key) => crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])))[index]!;
  const skew = options.clockSkewMs ?? 15 * 60_000;
  const now = options.now ?? Date.now;
  const refuse = options.refuseReplays;
  const replays = refuse ? ((typeof refuse === 'object' ? refuse.store : undefined) ?? createMemoryReplayStore({ maxEntries: typeof refuse === 'object' ? refuse.maxEntries : undefined, now })) : undefined;

  const unauthorized = (code: string, message: string, target?: string) => new ApiError(401, code, message, target ? { target } : {});

  return function authenticate(request: SignedRequest): Caller | Promise<Caller> {
    const authorization = request.headers.get('authorization');
    if (nodeSigners.length && authorization && !/^Bearer /i.test(authorization)) return verifyHmac(request, authorization);
    return authenticateAsync(request);
  };

  /** The signature in an HMAC Authorization header; throws 401 when the header is malformed. */
  function signatureOf(authorization: string): string {
    const parsed = hmacHeader.exec(authorization);
    if (!parsed || keys.length === 0) {
      throw unauthorized('InvalidAuthorization', 'Authorization must be "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64>".', 'Authorization');
    }
    if (parsed[1]!.toLowerCase() !== 'x-ms-date;host;x-ms-content-sha256') {
      throw unauthorized('InvalidAuthorization', 'SignedHeaders must be x-ms-date;host;x-ms-content-sha256.', 'Authorization');
    }
    return parsed[2]!;
  }

  /** x-ms-date, and when it was, if it is within the window; throws 401 otherwise. */
  function dateOf(request: SignedRequest): { date: string; sent: number } {
    const date = request.headers.get('x-ms-date');
    const sent = date ? Date.parse(date) : Number.NaN;
    if (!date || Number.isNaN(sent)) throw unauthorized('InvalidDate', 'x-ms-date is missing or not an RFC 1123 date.', 'x-ms-date');
    if (Math.abs(now() - sent) > skew) throw unauthorized('InvalidDate', `x-ms-date is more than ${skew / 60_000} minutes from the service's clock.`, 'x-ms-date');
    return { date, sent };
  }

  /** The string to sign, once the body's hash matches x-ms-content-sha256; throws 401 otherwise. */
  function stringToSign(request: SignedRequest, date: string, contentHash: string): string {
    if (!constantTimeEqual(request.headers.get('x-ms-content-sha256') ?? '', contentHash)) {
      throw unauthorized('ContentHashMismatch', 'x-ms-content-sha256 does not match the body received.', 'x-ms-content-sha256');
    }
    return `${request.method.toUpperCase()}\n${request.pathAndQuery}\n${date};${options.host ?? request.host};${contentHash}`;
  }

  /**
   * The caller, when a key's signature matched (`keyIndex` ≥ 0) and, where replays are refused,
   * is new; throws 401 otherwise, 503 when the store has no room or cannot answer. Synchronous
   * unless the store is not.
   */
  function accept(signature: string, keyIndex: number, sent: number): Caller | Promise<Caller> {
    if (keyIndex < 0) {
      throw unauthorized('InvalidSignature', `The request signature does not match. Check the access key first: it must be the resource's, from its connection string (or a rotated one the service still accepts). If it is, check the signing: the method, the path and query, x-ms-date, host and x-ms-content-sha256, with the decoded key.`);
    }
    const caller: Caller = { kind: 'hmac', keyIndex };
    if (!replays) return caller;
    // The same signature means the same x-ms-date, so it expires with the date's window.
    let verdict: ReplayVerdict | Promise<ReplayVerdict>;
    try {
      verdict = replays.remember(signature, sent + skew);
    } catch (error) {
      throw storeFailed(error);
    }
    if (isPromise(verdict)) return verdict.then((held) => judged(held, caller), (error: unknown) => Promise.reject(storeFailed(error)));
    return judged(verdict, caller);
  }

  function judged(verdict: ReplayVerdict, caller: Caller): Caller {
    if (verdict.state === 'recorded') return caller;
    if (verdict.state === 'replayed') throw unauthorized('ReplayedRequest', 'This signature was already accepted: this service refuses replays, so sign every request, and every retry, anew.');
    const seconds = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
    throw new ApiError(503, 'ServiceUnavailable', `The service cannot record more signatures now; retry after ${seconds} seconds.`, { headers: { 'Retry-After': String(seconds) } });
  }

  /** The HMAC scheme with node:crypto: all at once, with no await (unless the replay store is remote). */
  function verifyHmac(request: SignedRequest, authorization: string): Caller | Promise<Caller> {
    const signature = signatureOf(authorization);
    const { date, sent } = dateOf(request);
    const text = stringToSign(request, date, nodeSha256(request.body));
    return accept(signature, nodeSigners.findIndex((sign) => constantTimeEqual(signature, sign(text))), sent);
  }

  async function authenticateAsync(request: SignedRequest): Promise<Caller> {
    const authorization = request.headers.get('authorization');
    if (!authorization) throw unauthorized('MissingAuthorization', 'The Authorization header is missing: sign the request with HMAC-SHA256 or send a bearer token.', 'Authorization');
    if (/^Bearer /i.test(authorization)) {
      const token = authorization.slice(7).trim();
      const subject = options.verifyToken && token ? await options.verifyToken(token) : undefined;
      if (!subject) throw unauthorized('InvalidToken', 'The bearer token is not valid.', 'Authorization');
      return { kind: 'bearer', subject };
    }
    const signature = signatureOf(authorization);
    const { date, sent } = dateOf(request);
    const text = stringToSign(request, date, await sha256Base64(request.body));
    for (let keyIndex = 0; keyIndex < keys.length; keyIndex++) {
      if (constantTimeEqual(signature, await webHmacBase64(webKey(keyIndex), text))) return accept(signature, keyIndex, sent);
    }
    return accept(signature, -1, sent);
  }
}

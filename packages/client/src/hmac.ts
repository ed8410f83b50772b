import type { Middleware } from 'openapi-fetch';
import { bodyTextOf } from './request.ts';

/** base64(SHA-256 of nothing): the content hash of every request without a body. */
export const EMPTY_CONTENT_HASH = '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=';

const encoder = new TextEncoder();

function toBase64(bytes: ArrayBuffer): string {
  let binary = '';
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export interface HmacAuthOptions {
  /** The clock, in milliseconds since the epoch. */
  now?: () => number;
}

/** Authentication of requests: a middleware for openapi-fetch, and the same signing for retries. */
export interface RequestAuth {
  /** The openapi-fetch middleware that authenticates each request. */
  middleware: Middleware;
  /** Authenticates a request in place (for HMAC: x-ms-date, x-ms-content-sha256 and Authorization) and returns it. */
  sign(request: Request): Promise<Request>;
}

/**
 * ACS HMAC-SHA256 request signing, byte-compatible with Azure's SDKs, on Web Crypto (Node 20+,
 * browsers, Deno, workers). The string to sign is
 * `VERB\n<path?query as sent>\n<x-ms-date>;<host>;<content hash>`, keyed with the decoded access key.
 *
 * `x-ms-date` has one-second resolution and the service refuses a signature it has already seen,
 * so two identical requests in the same second (a quick retry, a repeated cancel) would look like
 * a replay. The signer never reuses a date for the same method, path, host and body: the later
 * request is dated one second on, well within the service's 15-minute window.
 */
export function createHmacAuth(accessKey: string, options: HmacAuthOptions = {}): RequestAuth {
  const now = options.now ?? Date.now;
  let keyBytes: Uint8Array<ArrayBuffer> | undefined;
  try {
    keyBytes = fromBase64(accessKey);
  } catch {}
  if (!keyBytes?.length) throw new TypeError('The access key is not base64: copy it from the connection string');
  const key = crypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const lastSecond = new Map<string, number>();

  function dateFor(signingKey: string): string {
    const current = Math.floor(now() / 1000);
    const previous = lastSecond.get(signingKey);
    const second = previous !== undefined && previous >= current ? previous + 1 : current;
    if (lastSecond.size >= 1024) {
      for (const [k, s] of lastSecond) if (s < current - 1) lastSecond.delete(k);
    }
    lastSecond.set(signingKey, second);
    return new Date(second * 1000).toUTCString();
  }

  async function sign(request: Request): Promise<Request> {
    const url = new URL(request.url);
    const body = await bodyTextOf(request);
    const contentHash = body === '' ? EMPTY_CONTENT_HASH : toBase64(await crypto.subtle.digest('SHA-256', encoder.encode(body)));
    const method = request.method.toUpperCase();
    const pathAndQuery = `${url.pathname}${url.search}`;
    // URL.host carries the port only when it is not the scheme's default, as the scheme wants.
    const date = dateFor(`${method} ${url.host}${pathAndQuery} ${contentHash}`);
    const stringToSign = `${method}\n${pathAndQuery}\n${date};${url.host};${contentHash}`;
    const signature = toBase64(await crypto.subtle.sign('HMAC', await key, encoder.encode(stringToSign)));
    request.headers.set('x-ms-date', date);
    request.headers.set('x-ms-content-sha256', contentHash);
    request.headers.set('Authorization', `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`);
    return request;
  }

  return { sign, middleware: { onRequest: ({ request }) => sign(request) } };
}

/** A source of access tokens, such as an Entra ID credential adapter. */
export interface TokenCredential {
  getToken(): Promise<string>;
}

/** Sends `Authorization: Bearer <token>`, asking the credential for a token on every attempt. */
export function createBearerAuth(credential: TokenCredential): RequestAuth {
  async function sign(request: Request): Promise<Request> {
    const token = await credential.getToken();
    if (!token) throw new Error('The token credential gave no token');
    request.headers.set('Authorization', `Bearer ${token}`);
    return request;
  }
  return { sign, middleware: { onRequest: ({ request }) => sign(request) } };
}

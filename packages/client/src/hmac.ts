import { nodeCrypto, nodeHmacSigner } from '#node-crypto';

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
  /** Sign with Web Crypto even where node:crypto is available. */
  webCrypto?: boolean;
}

/** The headers that authenticate one request. */
export type AuthHeaders = Record<string, string>;

/**
 * Authenticates a request given its method, its absolute URL as sent (normalised, as `new
 * URL(…).href` gives it) and its body: answers the headers to add. Signing with node:crypto
 * answers at once; Web Crypto and token credentials answer a promise.
 */
export type Signer = (method: string, url: string, body: string | Uint8Array) => AuthHeaders | Promise<AuthHeaders>;

/**
 * ACS HMAC-SHA256 request signing, byte-compatible with Azure's SDKs, on Web Crypto (browsers,
 * Deno, workers) or node:crypto where the runtime has it. The string to sign is
 * `VERB\n<path?query as sent>\n<x-ms-date>;<host>;<content hash>`, keyed with the decoded access key.
 *
 * `x-ms-date` has one-second resolution and the service refuses a signature it has already seen,
 * so two identical requests in the same second (a quick retry, a repeated cancel) would look like
 * a replay. The signer never reuses a date for the same method, path, host and body: the later
 * request is dated one second on, well within the service's 15-minute window.
 */
export function createHmacSigner(accessKey: string, options: HmacAuthOptions = {}): Signer {
  const now = options.now ?? Date.now;
  let keyBytes: Uint8Array<ArrayBuffer> | undefined;
  try {
    keyBytes = fromBase64(accessKey);
  } catch {}
  if (!keyBytes?.length) throw new TypeError('The access key is not base64: copy it from the connection string');
  const native = options.webCrypto ? undefined : nodeCrypto;
  const nodeHmac = native && nodeHmacSigner!(native, keyBytes);
  const key = native ? undefined : crypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  /** For each request signed lately (method, host, path and body hash), the second it was dated. */
  const lastSecond = new Map<string, number>();
  /** The second the map was last pruned at: the latest clock reading seen. */
  let prunedAt = -Infinity;
  /** No date before it: raised when the map is cleared while full. */
  let floor = -Infinity;
  let dated = { second: Number.NaN, text: '' };

  function dateFor(signingKey: string): string {
    let current = Math.floor(now() / 1000);
    // A clock set back by a few seconds (a time sync) stays at the latest second seen, so that a
    // request dated in the seconds already forgotten is not dated the same again. Set back
    // further, the clock is followed and the record starts anew.
    if (current < prunedAt && prunedAt - current <= 60) current = prunedAt;
    if (current > prunedAt) {
      // Dates before this second can no longer collide with a new one.
      for (const [k, s] of lastSecond) if (s < current) lastSecond.delete(k);
    } else if (current < prunedAt) {
      lastSecond.clear();
      floor = -Infinity;
    }
    prunedAt = current;
    // Past 10 000 distinct requests within a second (or under a clock that stands still), the
    // record is cleared and every later date follows all those given.
    if (lastSecond.size >= 10_000) {
      for (const s of lastSecond.values()) floor = Math.max(floor, s + 1);
      lastSecond.clear();
    }
    const previous = lastSecond.get(signingKey);
    // (Hundreds of identical requests a second would run the dates ahead until the service
    // refuses them, with a 401 InvalidDate that says so.)
    const second = Math.max(previous !== undefined && previous >= current ? previous + 1 : current, floor);
    lastSecond.set(signingKey, second);
    if (dated.second !== second) dated = { second, text: new Date(second * 1000).toUTCString() };
    return dated.text;
  }

  /** The date and string to sign of a request whose body hashes to `contentHash`. */
  function prepare(method: string, href: string, contentHash: string): { date: string; stringToSign: string } {
    // The URL is normalised by the URL parser: the host (with a port only when it is not the
    // scheme's default, as the scheme wants) and the path and query as sent, read off it.
    const hostStart = href.indexOf('//') + 2;
    const pathStart = href.indexOf('/', hostStart);
    const host = href.slice(hostStart, pathStart === -1 ? undefined : pathStart);
    const pathAndQuery = pathStart === -1 ? '/' : href.slice(pathStart).split('#')[0]!;
    method = method.toUpperCase();
    const date = dateFor(`${method} ${host}${pathAndQuery} ${contentHash}`);
    return { date, stringToSign: `${method}\n${pathAndQuery}\n${date};${host};${contentHash}` };
  }

  function headers(date: string, contentHash: string, signature: string): AuthHeaders {
    return {
      'x-ms-date': date,
      'x-ms-content-sha256': contentHash,
      authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`,
    };
  }

  async function signWithWebCrypto(method: string, url: string, body: string | Uint8Array): Promise<AuthHeaders> {
    const bytes = typeof body === 'string' ? encoder.encode(body) : body;
    const contentHash = bytes.length === 0 ? EMPTY_CONTENT_HASH : toBase64(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
    const { date, stringToSign } = prepare(method, url, contentHash);
    return headers(date, contentHash, toBase64(await crypto.subtle.sign('HMAC', (await key)!, encoder.encode(stringToSign))));
  }

  return native
    ? (method, url, body) => {
        const contentHash = body.length === 0 ? EMPTY_CONTENT_HASH : native.hash('sha256', body, 'base64');
        const { date, stringToSign } = prepare(method, url, contentHash);
        return headers(date, contentHash, nodeHmac!(stringToSign));
      }
    : signWithWebCrypto;
}

/** A source of access tokens, such as an Entra ID credential adapter. */
export interface TokenCredential {
  getToken(): Promise<string>;
}

/** Sends `Authorization: Bearer <token>`, asking the credential for a token on every attempt. */
export function createBearerSigner(credential: TokenCredential): Signer {
  return async () => {
    const token = await credential.getToken();
    if (!token) throw new Error('The token credential gave no token');
    return { authorization: `Bearer ${token}` };
  };
}

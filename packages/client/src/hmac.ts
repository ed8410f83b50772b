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
 * Every attempt is signed when it is sent, dated by the clock (one-second resolution, as Azure's
 * SDKs date it): a retry a second or more later carries a new date and signature.
 */
export function createHmacSigner(accessKey: string, options: HmacAuthOptions = {}): Signer {
  const now = options.now ?? Date.now;
  let keyBytes: Uint8Array<ArrayBuffer> | undefined;
  try {
    keyBytes = fromBase64(accessKey);
  } catch {}
  if (!keyBytes?.length) throw new TypeError('The access key is not base64: copy it from the connection string');
  /** The last second dated and its text: formatting a date costs more than signing. */
  let dated = { second: Number.NaN, text: '' };

  function currentDate(): string {
    const second = Math.floor(now() / 1000);
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
    const date = currentDate();
    return { date, stringToSign: `${method}\n${pathAndQuery}\n${date};${host};${contentHash}` };
  }

  function headers(date: string, contentHash: string, signature: string): AuthHeaders {
    return {
      'x-ms-date': date,
      'x-ms-content-sha256': contentHash,
      authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${signature}`,
    };
  }

  // In a browser build nodeCrypto is the constant undefined (no-node-crypto.ts): the bundler
  // drops this branch whole.
  if (nodeCrypto && !options.webCrypto) {
    const native = nodeCrypto;
    const nodeHmac = nodeHmacSigner!(native, keyBytes);
    return (method, url, body) => {
      const contentHash = body.length === 0 ? EMPTY_CONTENT_HASH : native.hash('sha256', body, 'base64');
      const { date, stringToSign } = prepare(method, url, contentHash);
      return headers(date, contentHash, nodeHmac(stringToSign));
    };
  }

  const key = crypto.subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return async (method, url, body) => {
    const bytes = typeof body === 'string' ? encoder.encode(body) : body;
    const contentHash = bytes.length === 0 ? EMPTY_CONTENT_HASH : toBase64(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
    const { date, stringToSign } = prepare(method, url, contentHash);
    return headers(date, contentHash, toBase64(await crypto.subtle.sign('HMAC', await key, encoder.encode(stringToSign))));
  };
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

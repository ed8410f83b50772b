import type { Middleware } from 'openapi-fetch';
import { createBearerSigner, createHmacSigner, type AuthHeaders, type HmacAuthOptions, type Signer, type TokenCredential } from '../hmac.ts';
import { bodyOf, capturedBody } from './request.ts';

/** Authentication of requests: a middleware for openapi-fetch, and the same signing for retries. */
export interface RequestAuth {
  /** The openapi-fetch middleware that authenticates each request. */
  middleware: Middleware;
  /** Authenticates a request in place (for HMAC: x-ms-date, x-ms-content-sha256 and Authorization) and returns it. */
  sign(request: Request): Request | Promise<Request>;
}

/** Authenticates Requests with a signer: the body is the text the request was built with, else read from a clone. */
export function requestAuth(signer: Signer): RequestAuth {
  function apply(request: Request, headers: AuthHeaders): Request {
    for (const name in headers) request.headers.set(name, headers[name]!);
    return request;
  }
  function signWith(request: Request, body: string | Uint8Array): Request | Promise<Request> {
    const headers = signer(request.method, request.url, body);
    return headers instanceof Promise ? headers.then((h) => apply(request, h)) : apply(request, headers);
  }
  function sign(request: Request): Request | Promise<Request> {
    const captured = capturedBody(request);
    // With the body captured, node:crypto signs at once, with no await.
    return captured !== undefined ? signWith(request, captured) : bodyOf(request).then((body) => signWith(request, body));
  }
  return { sign, middleware: { onRequest: ({ request }) => sign(request) } };
}

/** ACS HMAC-SHA256 signing of Requests, as openapi-fetch middleware (see `createHmacSigner`). */
export function createHmacAuth(accessKey: string, options?: HmacAuthOptions): RequestAuth {
  return requestAuth(createHmacSigner(accessKey, options));
}

/** Sends `Authorization: Bearer <token>`, asking the credential for a token on every attempt. */
export function createBearerAuth(credential: TokenCredential): RequestAuth {
  return requestAuth(createBearerSigner(credential));
}

/**
 * `@call-automation/client/raw`: the typed openapi-fetch client of the API, on the same request
 * path as the named methods, for anything they do not cover; and the pieces it is made of, for a
 * client of your own.
 */
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import { operationRoutes, type OperationRouteEntry, type paths } from '@call-automation/contract';
import { resolveTarget, userAgentOf, type ClientOptions, type ClientTarget } from '../client.ts';
import type { Signer } from '../hmac.ts';
import { repeatabilityHeaders, retrySettings } from '../retry.ts';
import { bodyBytes, createTransport, sendRequest } from '../transport.ts';
import { CallRequest, capturedBody, operationFinder } from './request.ts';

export { createBearerAuth, createHmacAuth, requestAuth } from './auth.ts';
export type { RequestAuth } from './auth.ts';
export { CallRequest } from './request.ts';

/** A fetch as openapi-fetch calls it: with the Request it built, after the middleware. */
export type ClientFetch = (request: Request, init?: RequestInit) => Promise<Response>;

/**
 * The fetch the raw client sends with, for an openapi-fetch client of your own
 * (`createClient<paths>({ baseUrl, fetch: createClientFetch(target), Request: CallRequest })`):
 * the named methods' request path. Each attempt is signed when it is sent; retries follow the
 * operation the request is (found by its method and path), with `retry` and `timeoutMs` as the
 * named methods take them; a failed answer whose body is not a CommunicationError gets one.
 * `options.fetch` is called as `fetch(url, init)`.
 */
export function createClientFetch(target: ClientTarget, options: Pick<ClientOptions, 'retry' | 'timeoutMs' | 'fetch'> = {}): ClientFetch {
  const { endpoint, signer } = resolveTarget(target);
  return clientFetch(endpoint, signer, options);
}

function clientFetch(endpoint: string, signer: Signer, options: Pick<ClientOptions, 'retry' | 'timeoutMs' | 'fetch'>): ClientFetch {
  const fetchImpl: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const transport = createTransport(signer, fetchImpl);
  const findOperation = operationFinder(endpoint);
  const settings = { retry: options.retry === false ? undefined : retrySettings(options.retry), timeoutMs: options.timeoutMs };
  return async (request, init) => {
    // The body text openapi-fetch built the request with, else the bytes of a clone, read once.
    const body = capturedBody(request) ?? (await bodyBytes(request));
    return sendRequest(transport, request, body || undefined, findOperation(request.method, request.url), settings, init);
  };
}

/** The repeatable operations, by method and path template. */
const repeatable = new Set((Object.values(operationRoutes) as OperationRouteEntry[]).filter((entry) => entry.repeatable).map((entry) => `${entry.method} ${entry.path}`));

/**
 * Gives a request to a repeatable operation (createCall) the repeatability headers the caller did
 * not, as the named methods do: it runs before the user's middleware, which sees them.
 */
const repeatability: Middleware = {
  onRequest({ request, schemaPath }) {
    if (!repeatable.has(`${request.method} ${schemaPath}`)) return undefined;
    for (const [name, value] of Object.entries(repeatabilityHeaders())) if (!request.headers.has(name)) request.headers.set(name, value);
    return request;
  },
};

/**
 * The typed openapi-fetch client, from a connection string or an endpoint and a credential, with
 * the options of `createCallAutomationClient`, on the named methods' request path: your own
 * middleware runs first (it sees and may change the request before it is signed, and sees the
 * final answer after retries), then `createClientFetch`'s signing, retries and error bodies;
 * the same User-Agent, and a repeatable operation's repeatability headers unless you give them.
 */
export function createRawClient(target: ClientTarget, options: ClientOptions = {}): Client<paths> {
  const { endpoint, signer } = resolveTarget(target);
  const raw = createClient<paths>({
    baseUrl: endpoint,
    fetch: clientFetch(endpoint, signer, options),
    Request: CallRequest,
    headers: { 'User-Agent': userAgentOf(options) },
  });
  raw.use(repeatability, ...(options.middleware ?? []));
  return raw;
}

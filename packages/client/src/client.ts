import type { MergedOptions, Middleware } from 'openapi-fetch';
import { normalizeEndpoint, parseConnectionString } from './connection-string.ts';
import { operationRoutes, type OperationRouteEntry } from '@call-automation/contract';
import type { CallAutomationOperations } from './generated/operations.gen.ts';
import { createBearerSigner, createHmacSigner, type Signer, type TokenCredential } from './hmac.ts';
import type { OperationOptions } from './options.ts';
import { toCommunicationError, type OperationResult, type OperationId } from './result.ts';
import { repeatabilityHeaders, retrySettings, type RetryOptions } from './retry.ts';
import { bodyBytes, createTransport, sendRequest } from './transport.ts';
import { packageVersion } from './version.ts';

/** An access key (base64), as a string or as Azure's `{ key }` credential, or a token credential. */
export type Credential = string | { key: string } | TokenCredential;

/** What a client is made from: a connection string, or an endpoint and a credential. */
export type ClientTarget = string | { endpoint: string; credential: Credential };

export interface ClientOptions {
  /** Retry settings for every call, or false for none. Default: 3 retries, 500 ms base, 8 s ceiling. */
  retry?: RetryOptions | false;
  /** Each attempt's time limit in milliseconds. Default: none. */
  timeoutMs?: number;
  /** The fetch to use; default the global one. It is called as `fetch(url, init)`. */
  fetch?: typeof fetch;
  /** Put before this package's name in User-Agent, e.g. "my-app/1.2". */
  userAgent?: string;
  /**
   * openapi-fetch middleware of your own, run as openapi-fetch runs it around the raw client's
   * fetch. Their onRequest runs before signing (the method, URL, headers and body of the request
   * they leave are signed and sent, on every attempt); their onResponse sees the answer after
   * retries; their onError, what sending threw after retries (a network error, an abort, a
   * credential that gave no token).
   */
  middleware?: Middleware[];
}

/** A client of the API: one method per operation of the spec (see `CallAutomationOperations`). */
export interface CallAutomationClient extends CallAutomationOperations {
  /** The service's base URL. */
  readonly endpoint: string;
}

export { packageVersion };

/** The endpoint and the signer of a client. */
export function resolveTarget(target: ClientTarget): { endpoint: string; signer: Signer } {
  // No target at all (an unset environment variable) is a missing connection string.
  const { endpoint, accessKey } = typeof target === 'string' || !target ? parseConnectionString(target as string) : { endpoint: normalizeEndpoint(target.endpoint), accessKey: undefined };
  const credential = accessKey ?? (target as { credential: Credential }).credential;
  const key = typeof credential === 'string' ? credential : (credential as { key?: unknown } | undefined)?.key;
  if (typeof key === 'string') return { endpoint, signer: createHmacSigner(key) };
  if (typeof (credential as TokenCredential | undefined)?.getToken === 'function') return { endpoint, signer: createBearerSigner(credential as TokenCredential) };
  throw new TypeError('credential must be an access key, { key } or { getToken() }');
}

/** The User-Agent a client sends. */
export const userAgentOf = (options: ClientOptions) => `${options.userAgent ? `${options.userAgent} ` : ''}call-automation-client/${packageVersion}`;

/**
 * A path template with its parameters filled in, each encoded as one segment, as a URL keeps it
 * (and as it is signed). "." and ".." cannot be sent as a segment: a URL drops them, encoded or not.
 */
const fillPath = (path: string, params: Record<string, unknown>) =>
  path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = encodeURIComponent(String(params[name]));
    if (value === '.' || value === '..') throw new TypeError(`${name} "${value}" cannot be sent as a path segment`);
    return value;
  });

/**
 * A client of the Call Automation API, from a connection string
 * (`endpoint=https://….communication.azure.com/;accesskey=…`) or an endpoint and a credential.
 *
 * Each named method serialises its body once and sends it through the client's transport (each
 * attempt signed, with the same body) and answers as openapi-fetch does: `{ data }` or
 * `{ error }`, with the `response`. For anything else, `createRawClient` from
 * `@call-automation/client/raw` gives the typed openapi-fetch client on the same transport.
 */
export function createCallAutomationClient(connectionString: string, options?: ClientOptions): CallAutomationClient;
export function createCallAutomationClient(config: { endpoint: string; credential: Credential }, options?: ClientOptions): CallAutomationClient;
export function createCallAutomationClient(target: ClientTarget, options: ClientOptions = {}): CallAutomationClient {
  const { endpoint, signer } = resolveTarget(target);
  const fetchImpl: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const transport = createTransport(signer, fetchImpl);
  const userAgent = userAgentOf(options);
  // As openapi-fetch's use(): empty entries are skipped (`[debug && logger]`), others must be middleware.
  const middleware = (options.middleware ?? []).filter(Boolean);
  for (const m of middleware) {
    if (typeof m !== 'object' || !('onRequest' in m || 'onResponse' in m || 'onError' in m)) {
      throw new TypeError('Middleware must be an object with onRequest(), onResponse() or onError()');
    }
  }
  const timeoutMs = options.timeoutMs;
  const clientRetry = options.retry || undefined;
  const retryDefaults = options.retry === false ? undefined : retrySettings(clientRetry);

  async function send<Op extends OperationId>(operation: OperationRouteEntry & { operationId: Op }, path: Record<string, string>, body: unknown, options: OperationOptions | undefined): Promise<OperationResult<Op>> {
    const { method } = operation;
    const url = endpoint + fillPath(operation.path, path);
    const sent = body === undefined ? undefined : JSON.stringify(body);
    // A repeatable operation carries a new id and date, the same on every retry: a repeat answers the first result.
    const headers: Record<string, string> = operation.repeatable ? Object.assign(repeatabilityHeaders(), { 'user-agent': userAgent }) : { 'user-agent': userAgent };
    if (sent !== undefined) headers['content-type'] = 'application/json';
    if (options?.headers) {
      // Header names are kept in lower case, so that the caller's override the client's.
      for (const name in options.headers) {
        const value = options.headers[name];
        if (value === null) delete headers[name.toLowerCase()];
        else if (value !== undefined) headers[name.toLowerCase()] = value;
      }
      // A header that fetch would refuse is refused here, before any attempt, not retried.
      new Headers(headers);
    }
    const retry = options?.retry === false ? undefined : options?.retry ? retrySettings(clientRetry, options.retry) : retryDefaults;
    const callTimeoutMs = options?.timeoutMs ?? timeoutMs;

    // Without middleware the transport is given the request's parts as they are: no Request is
    // built (building one, and reading its headers back, costs 15 to 30 µs a call, as `pnpm bench`
    // shows between the client with and without a middleware).
    if (!middleware.length) {
      return settle(operation.operationId, await transport({ method, url, headers, body: sent, operation, signal: options?.signal, timeoutMs: callTimeoutMs, retry }));
    }

    // The user's middleware, as openapi-fetch runs it around the raw client's fetch: onRequest in
    // order (a Response answers at once), then the transport with the Request they leave, then
    // onError or onResponse in reverse order. Their `options.fetch` sends as the raw client's
    // fetch does: through the transport, as this operation.
    const sendThrough = async (request: Request, init?: RequestInit) => sendRequest(transport, request, await bodyBytes(request), operation, { retry, timeoutMs: callTimeoutMs }, init);
    const middlewareOptions = { baseUrl: endpoint, fetch: sendThrough, parseAs: 'json', bodySerializer: JSON.stringify, querySerializer: () => '', pathSerializer: fillPath } as const;
    const context = { schemaPath: operation.path, params: { path }, id: Math.random().toString(36).slice(2, 11), options: Object.freeze(middlewareOptions) as MergedOptions };
    const original = new Request(url, { method, headers, body: sent, signal: options?.signal });
    let request: Request = original;
    for (const m of middleware) {
      const result: unknown = await m.onRequest?.({ ...context, request });
      if (result instanceof Response) return settle(operation.operationId, result);
      if (result instanceof Request) request = result;
      else if (result) throw misuse('onRequest', 'a Request or a Response');
    }
    let response: Response | undefined;
    try {
      // The body of a Request the middleware replaced is read once; the request is sent with its
      // own signal and the caller's.
      const replaced = request !== original;
      const body = replaced ? await bodyBytes(request) : sent;
      const signal = replaced && options?.signal ? AbortSignal.any([options.signal, request.signal]) : request.signal;
      response = await sendRequest(transport, request, body, operation, { retry, timeoutMs: callTimeoutMs, signal });
    } catch (error) {
      let failure: unknown = error;
      for (let i = middleware.length - 1; i >= 0 && !response; i--) {
        const result: unknown = await middleware[i]!.onError?.({ ...context, request, error: failure });
        if (result instanceof Response) response = result;
        else if (result instanceof Error) failure = result;
        else if (result) throw misuse('onError', 'a Response or an Error');
      }
      if (!response) throw failure;
    }
    for (let i = middleware.length - 1; i >= 0; i--) {
      const result: unknown = await middleware[i]!.onResponse?.({ ...context, request, response: response! });
      if (result instanceof Response) response = result;
      else if (result) throw misuse('onResponse', 'a Response');
    }
    return settle(operation.operationId, response!);
  }

  // One method per operation of the spec: its path parameters in order, then its body if it
  // takes one, then the options (the signature `CallAutomationOperations` declares).
  const client: Record<string, unknown> = { endpoint };
  for (const operation of Object.values(operationRoutes) as OperationRouteEntry[]) {
    const { pathParams } = operation;
    const hasBody = operation.body !== null;
    client[operation.operationId] = (...args: unknown[]) => {
      const path: Record<string, string> = {};
      for (let i = 0; i < pathParams.length; i++) path[pathParams[i]!] = args[i] as string;
      const body = hasBody ? args[pathParams.length] : undefined;
      return send(operation, path, body, args[pathParams.length + (hasBody ? 1 : 0)] as OperationOptions | undefined);
    };
  }
  return client as unknown as CallAutomationClient;
}

/** A middleware hook that answered what it may not. */
const misuse = (hook: string, allowed: string) => new TypeError(`Middleware ${hook} may return only ${allowed}, or nothing`);

/**
 * A result as openapi-fetch makes it: no body for 204 or an empty answer; JSON data on success;
 * on failure the error body (JSON when it parses), as a CommunicationError.
 */
async function settle<Op extends OperationId>(operation: Op, response: Response): Promise<OperationResult<Op>> {
  let body: unknown;
  if (response.status !== 204 && (response.headers.get('content-length') !== '0' || response.headers.get('transfer-encoding')?.includes('chunked'))) {
    const text = await response.text();
    if (response.ok) body = text ? JSON.parse(text) : undefined;
    else {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
  }
  return (response.ok ? { data: body, response, operation } : { error: toCommunicationError(body, response), response, operation }) as OperationResult<Op>;
}

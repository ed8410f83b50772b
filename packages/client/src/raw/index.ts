/**
 * `@call-automation/client/raw`: the typed openapi-fetch client of the API, with the same
 * signing and retries as the named methods, for anything they do not cover; and the openapi-fetch
 * middleware it is built from, to compose a client of your own.
 */
import createClient, { type Client } from 'openapi-fetch';
import { resolveTarget, userAgentOf, type ClientOptions, type ClientTarget } from '../client.ts';
import type { paths } from '@call-automation/contract';
import { requestAuth } from './auth.ts';
import { CallRequest } from './request.ts';
import { createRetryMiddleware } from './retry.ts';

export { createBearerAuth, createHmacAuth, requestAuth } from './auth.ts';
export type { RequestAuth } from './auth.ts';
export { CallRequest } from './request.ts';
export { createRetryMiddleware } from './retry.ts';

/**
 * The typed openapi-fetch client, from a connection string or an endpoint and a credential, with
 * the options of `createCallAutomationClient`: each request signed (again on each retry), retried
 * by the same rules, sent with the same User-Agent, after your own middleware. `timeoutMs` is the
 * named methods' alone: give a raw call `signal: AbortSignal.timeout(ms)`.
 */
export function createRawClient(target: ClientTarget, options: Omit<ClientOptions, 'timeoutMs'> = {}): Client<paths> {
  const { endpoint, signer } = resolveTarget(target);
  const auth = requestAuth(signer);
  const raw = createClient<paths>({
    baseUrl: endpoint,
    fetch: options.fetch ?? ((request: Request) => globalThis.fetch(request)),
    Request: CallRequest,
    headers: { 'User-Agent': userAgentOf(options) },
  });
  // onRequest runs in this order (the user's, then signing, then retries) and onResponse in the
  // reverse, so the user's middleware sees the final answer after any retries.
  raw.use(...(options.middleware ?? []), auth.middleware);
  if (options.retry !== false) raw.use(createRetryMiddleware(auth.sign, options.retry));
  return raw;
}

import type { Middleware } from 'openapi-fetch';
import { operationTable } from '@call-automation/contract';
import { isIdempotent, retryableStatuses, retryDelay, retrySettings, sleep, type Outcome, type RetryOptions } from '../retry.ts';
import { CallRequest } from './request.ts';

/**
 * Retries as openapi-fetch middleware, by the same rules as the named methods: on network errors,
 * 408, 429 (waiting as `Retry-After` asks), 500, 502, 503 and 504, with exponential backoff and
 * full jitter. Each attempt is signed again by `sign` (a fresh x-ms-date) and carries the same
 * body, built from the text the request was made with: a body that cannot be replayed is never
 * retried. A request that is not idempotent is sent again only when the service surely did not
 * act on it (408, 429, or a connection that was never made). Aborting the caller's signal stops
 * the retries at once.
 */
export function createRetryMiddleware(sign: (request: Request) => Request | Promise<Request>, defaults: RetryOptions = {}): Middleware {
  const options = retrySettings(defaults);
  async function retry(request: Request, schemaPath: string, first: Outcome, fetchImpl: typeof fetch): Promise<Outcome> {
    // The caller's signal, which the request follows; it goes on to every retry.
    const { signal } = request;
    // Only a body known as text can be sent again. (Reading `request.body` would build a stream.)
    const replayable = (request instanceof CallRequest && request.bodyText !== undefined) || request.body === null;
    const operation = Object.values(operationTable).find((entry) => entry.path === schemaPath && entry.method === request.method.toUpperCase());
    const idempotent = operation ? isIdempotent(operation, request.headers.has('Repeatability-Request-ID')) : false;
    let outcome = first;
    for (let attempt = 0; replayable && !signal.aborted; attempt++) {
      const delay = retryDelay(outcome, attempt, idempotent, options);
      if (delay === undefined) break;
      await outcome.response?.body?.cancel().catch(() => {});
      await sleep(delay, signal);
      const next = await sign(
        new CallRequest(request.url, {
          method: request.method,
          headers: request.headers,
          body: request instanceof CallRequest ? request.bodyText : undefined,
          redirect: request.redirect,
          signal,
        }),
      );
      try {
        outcome = { response: await fetchImpl(next) };
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        outcome = { error };
      }
    }
    return outcome;
  }

  // A response that the retries produced inside onError still passes through onResponse: it has
  // had its retries already.
  const settled = new WeakSet<Response>();

  async function retryResponse(request: Request, response: Response, schemaPath: string, fetchImpl: typeof fetch): Promise<Response | undefined> {
    const outcome = await retry(request, schemaPath, { response }, fetchImpl);
    if (outcome.error !== undefined) throw outcome.error;
    return outcome.response === response ? undefined : outcome.response;
  }

  return {
    onResponse({ request, response, schemaPath, options }) {
      // The common case, an answer not worth retrying, returns at once, without a promise.
      if (settled.has(response) || !retryableStatuses.has(response.status)) return undefined;
      return retryResponse(request, response, schemaPath, options.fetch);
    },
    async onError({ request, error, schemaPath, options }) {
      const { signal } = request;
      if (signal.aborted) return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
      const outcome = await retry(request, schemaPath, { error }, options.fetch);
      if (outcome.response) {
        settled.add(outcome.response);
        return outcome.response;
      }
      return outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error));
    },
  };
}

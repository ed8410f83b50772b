import type { Signer } from './hmac.ts';
import { toCommunicationError } from './result.ts';
import { attemptSignal, isIdempotent, retryableStatuses, retryDelay, sleep, type Outcome, type RetryOptions } from './retry.ts';

/**
 * One request as the transport sends it: every attempt carries these, with its own signature
 * and signal.
 */
export interface Outgoing {
  method: string;
  /** The absolute URL, normalised as `new URL(…).href` gives it: what is sent and signed. */
  url: string;
  /** The headers, names in lower case. */
  headers: Record<string, string>;
  /** The body, signed and sent as it is on every attempt. */
  body: string | Uint8Array<ArrayBuffer> | undefined;
  /**
   * The operation of the spec that it is, if any: whether it may go again follows from it, and a
   * network error names it.
   */
  operation: { idempotent: boolean; repeatable: boolean; operationId?: string } | undefined;
  /** The caller's signal: aborting it stops the request and its retries at once. */
  signal?: AbortSignal | undefined;
  /** Each attempt's time limit in milliseconds. */
  timeoutMs?: number | undefined;
  /** Retry settings, or undefined for none. */
  retry: Required<RetryOptions> | undefined;
  /** Further settings of each attempt (redirect, credentials, keep-alive). */
  init?: RequestInit | undefined;
}

/**
 * Sends a request: each attempt signed when it is sent, retried by the rules of `retryDelay`,
 * and a failed final answer whose body is not the API's error body made into one.
 */
export type Transport = (outgoing: Outgoing) => Promise<Response>;

/** A fetch as the transport calls it. */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

/**
 * The request path that the named methods and the raw client share: what runs between the
 * user's middleware and the network.
 *
 * Signing fails the request at once, whatever the retries: only what `fetch` throws can be a
 * network error worth another attempt. The last answer is returned and the last network error
 * thrown; an abort of the caller's signal stops at once, with its reason.
 */
export function createTransport(signer: Signer, fetchImpl: FetchLike): Transport {
  return async function send(outgoing) {
    const { method, url, headers, body, signal, retry } = outgoing;
    const idempotent = outgoing.operation !== undefined && isIdempotent(outgoing.operation, 'repeatability-request-id' in headers);
    for (let attempt = 0; ; attempt++) {
      const timed = attemptSignal(outgoing);
      const signed = signer(method, url, body ?? '');
      const auth = signed instanceof Promise ? await signed : signed;
      let outcome: Outcome;
      try {
        // Object.assign, not spread: spreading these objects costs about 5 µs each on Node 20.
        const init: RequestInit = { method, headers: Object.assign({}, headers, auth), body, signal: timed };
        const response = await fetchImpl(url, outgoing.init ? Object.assign({}, outgoing.init, init) : init);
        // The common case, a success, costs one lookup and one comparison. (Status 0, an opaque
        // redirect's, has no body to read.)
        if (!retryableStatuses.has(response.status)) return response.status < 300 ? response : withErrorBody(response);
        outcome = { response };
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        outcome = { error };
      }
      const delay = retry && !signal?.aborted ? retryDelay(outcome, attempt, idempotent, retry) : undefined;
      if (delay === undefined) {
        if (outcome.response) return withErrorBody(outcome.response);
        // What fetch threw (a refused connection, a name that does not resolve, the attempt's time
        // limit), named with the operation (its entry is at hand), the method and the URL, and
        // what failed under fetch: the code of undici's cause, else fetch's message ("Failed to
        // fetch", "The operation was aborted due to timeout"). fetch's error is its cause, and
        // lends it its name: a TimeoutError stays one.
        const error = outcome.error as { name?: string; message?: string; cause?: { code?: string } } | undefined;
        throw Object.assign(new TypeError(`${outgoing.operation?.operationId ?? ''} ${method} ${url} failed: ${error?.cause?.code ?? error?.message}`.trimStart(), { cause: error }), {
          name: error?.name,
        });
      }
      await outcome.response?.body?.cancel().catch(() => {});
      await sleep(delay, signal);
    }
  };
}

/**
 * A failed answer with the API's error body: as it came when its body is a CommunicationError,
 * else with one made by `toCommunicationError` as JSON (for a proxy's HTML page, an empty 502, a
 * JSON body of another shape), with the status and headers it came with. So that whatever reads
 * the answer (the named methods, openapi-fetch, the user's middleware) finds the same error.
 */
export async function withErrorBody(response: Response): Promise<Response> {
  const text = await response.clone().text();
  let body: unknown = text || undefined;
  try {
    body = JSON.parse(text);
  } catch {}
  const error = toCommunicationError(body, response);
  if (error === body) return response;
  const headers = new Headers(response.headers);
  // The body is new: its length and encoding are not those of the one that came.
  for (const name of ['content-length', 'content-encoding', 'transfer-encoding']) headers.delete(name);
  headers.set('content-type', 'application/json');
  return new Response(JSON.stringify(error), { status: response.status, statusText: response.statusText, headers });
}

/** What sending a Request asks beyond the Request itself. */
export interface SendSettings {
  /** Retry settings, or undefined for none. */
  retry: Required<RetryOptions> | undefined;
  /** Each attempt's time limit in milliseconds. */
  timeoutMs: number | undefined;
  /** The signal to follow, if not the request's own. */
  signal?: AbortSignal | undefined;
}

/**
 * Sends a Request (the one openapi-fetch or the user's middleware made) through the transport:
 * its method, URL, headers, redirect, credentials and keep-alive as it has them, with `body`,
 * which the caller knows without reading the request, or `bodyBytes` read.
 */
export function sendRequest(
  transport: Transport,
  request: Request,
  body: string | Uint8Array<ArrayBuffer> | undefined,
  operation: Outgoing['operation'],
  settings: SendSettings,
  init?: RequestInit,
): Promise<Response> {
  return transport({
    method: request.method,
    url: request.url,
    headers: Object.fromEntries(request.headers),
    body,
    operation,
    signal: settings.signal ?? request.signal,
    timeoutMs: settings.timeoutMs,
    retry: settings.retry,
    init: Object.assign({ redirect: request.redirect, credentials: request.credentials, keepalive: request.keepalive }, init),
  });
}

/**
 * A request's body, read once from a clone (the request stays readable for the middleware that
 * sees it afterwards) and sent again on each attempt.
 */
export async function bodyBytes(request: Request): Promise<Uint8Array<ArrayBuffer> | undefined> {
  return request.body === null ? undefined : new Uint8Array(await request.clone().arrayBuffer());
}

import type { Middleware } from 'openapi-fetch';
import { attemptSignal, CallRequest } from './request.ts';

export interface RetryOptions {
  /** Retries after the first attempt. Default 3. */
  maxRetries?: number;
  /** The backoff's first ceiling; each retry doubles it. Default 500 ms. */
  baseDelayMs?: number;
  /** The backoff's largest ceiling. Default 8 s. */
  maxDelayMs?: number;
  /** The longest `Retry-After` to wait for; a longer one ends the retries with that answer. Default 60 s. */
  maxRetryAfterMs?: number;
}

export const defaultRetry: Required<RetryOptions> = { maxRetries: 3, baseDelayMs: 500, maxDelayMs: 8000, maxRetryAfterMs: 60_000 };

/** Statuses worth another attempt: the service was busy, failed, or timed out. */
const retryableStatuses = new Set([408, 429, 500, 502, 503, 504]);
/** Statuses after which the service surely did not act, so that even a non-idempotent request may go again. */
const notProcessedStatuses = new Set([408, 429]);
/** Network errors raised before a request left (undici's codes): nothing reached the service. */
const notSentCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

// POST operations that end in the same state however often they are sent. PlayAudio and
// inviteParticipants are not among them: sent twice, they play twice and invite twice.
const idempotentPosts = new Set(['/calls/{callId}/Hangup', '/calls/{callId}/CancelMediaProcessing']);
const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** Whether a request may be sent again when it is not known whether the service acted on it. */
export function isIdempotent(request: Request, schemaPath: string): boolean {
  const method = request.method.toUpperCase();
  // A Repeatability-Request-ID makes the service answer a repeated createCall with the first result.
  if (method === 'POST' && schemaPath === '/calls') return request.headers.has('Repeatability-Request-ID');
  return idempotentMethods.has(method) || (method === 'POST' && idempotentPosts.has(schemaPath));
}

/** Milliseconds a `Retry-After` header asks for (seconds or an HTTP date), if it is valid. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Exponential backoff with full jitter: a random delay below a ceiling that doubles per retry. */
export function backoffDelay(retry: number, options: Required<RetryOptions>, random = Math.random): number {
  return Math.floor(random() * Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** retry));
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

type Outcome = { response: Response; error?: undefined } | { response?: undefined; error: unknown };

/**
 * Retries as openapi-fetch middleware: on network errors, 408, 429 (waiting as `Retry-After`
 * asks), 500, 502, 503 and 504, with exponential backoff and full jitter. Each attempt is signed
 * again by `sign` (a fresh x-ms-date) and carries the same body, built from the text the request
 * was made with: a body that cannot be replayed is never retried. A request that is not
 * idempotent is sent again only when the service surely did not act on it (408, 429, or a
 * connection that was never made). Aborting the caller's signal stops the retries at once.
 */
export function createRetryMiddleware(sign: (request: Request) => Request | Promise<Request>, defaults: RetryOptions = {}): Middleware {
  async function retry(request: Request, schemaPath: string, first: Outcome, fetchImpl: typeof fetch): Promise<Outcome> {
    // The common case, an answer not worth retrying, costs one lookup.
    if (first.response && !retryableStatuses.has(first.response.status)) return first;
    const call = request instanceof CallRequest ? request.call : undefined;
    if (call?.retry === false) return first;
    const options = { ...defaultRetry, ...defaults, ...call?.retry };
    // Only a body known as text can be sent again. (Reading `request.body` would build a stream.)
    const replayable = (request instanceof CallRequest && request.bodyText !== undefined) || request.body === null;
    const idempotent = isIdempotent(request, schemaPath);
    let outcome = first;
    for (let attempt = 0; attempt < options.maxRetries && replayable; attempt++) {
      if (call?.signal?.aborted) break;
      let delay: number;
      if (outcome.response) {
        const { status } = outcome.response;
        if (!retryableStatuses.has(status) || (!idempotent && !notProcessedStatuses.has(status))) break;
        const asked = parseRetryAfter(outcome.response.headers.get('Retry-After'));
        if (asked !== undefined && asked > options.maxRetryAfterMs) break;
        delay = asked ?? backoffDelay(attempt, options);
        await outcome.response.body?.cancel().catch(() => {});
      } else {
        if (!idempotent && !notSentCodes.has(errorCode(outcome.error))) break;
        delay = backoffDelay(attempt, options);
      }
      await sleep(delay, call?.signal);
      const next = await sign(
        new CallRequest(request.url, {
          method: request.method,
          headers: request.headers,
          body: request instanceof CallRequest ? request.bodyText : undefined,
          redirect: request.redirect,
          signal: attemptSignal(call),
          call,
        }),
      );
      try {
        outcome = { response: await fetchImpl(next) };
      } catch (error) {
        if (call?.signal?.aborted) throw call.signal.reason;
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
      const call = request instanceof CallRequest ? request.call : undefined;
      if (call?.signal?.aborted) return call.signal.reason instanceof Error ? call.signal.reason : new Error(String(call.signal.reason));
      const outcome = await retry(request, schemaPath, { error }, options.fetch);
      if (outcome.response) {
        settled.add(outcome.response);
        return outcome.response;
      }
      return outcome.error instanceof Error ? outcome.error : new Error(String(outcome.error));
    },
  };
}

function errorCode(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  return typeof cause?.code === 'string' ? cause.code : '';
}

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

/**
 * Retry settings: the defaults, then each layer in turn (the client's, a call's). A field left
 * undefined keeps the value below it; a value that is not a finite number ≥ 0 is refused.
 */
export function retrySettings(...layers: Array<RetryOptions | undefined>): Required<RetryOptions> {
  const merged = { ...defaultRetry };
  for (const layer of layers) {
    for (const key in layer) {
      const value = layer[key as keyof RetryOptions];
      if (value === undefined) continue;
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new RangeError(`retry.${key} must be a number ≥ 0, not ${String(value)}`);
      merged[key as keyof RetryOptions] = value;
    }
  }
  return merged;
}

/** What an operation asks of its attempts. */
export interface AttemptSettings {
  /** The caller's own signal: aborting it stops the call and its retries at once. */
  signal?: AbortSignal;
  /** Each attempt's time limit. */
  timeoutMs?: number;
}

/** An attempt's signal: the caller's, limited to `timeoutMs` when set. */
export function attemptSignal(call: AttemptSettings | undefined): AbortSignal | undefined {
  const timeout = call?.timeoutMs ? AbortSignal.timeout(call.timeoutMs) : undefined;
  if (timeout && call?.signal) return AbortSignal.any([call.signal, timeout]);
  return timeout ?? call?.signal;
}

/**
 * Statuses worth another attempt: the service was busy, failed, or timed out; and 409 to a
 * repeatable request (it carries Repeatability-Result), whose first attempt is still running.
 */
export const retryableStatuses = new Set([408, 409, 429, 500, 502, 503, 504]);
/**
 * Statuses after which the service surely did not act, so that even a non-idempotent request may
 * go again: the contract says so of 429 and 503, both with Retry-After.
 */
const notProcessedStatuses = new Set([408, 429, 503]);
/** Network errors raised before a request left (undici's codes): nothing reached the service. */
const notSentCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Whether a request may be sent again when it is not known whether the service acted on it: the
 * spec says so of each operation (`x-idempotent`, or an idempotent method), and a repeatable one
 * (createCall) is when it carries a Repeatability-Request-ID, with which the service answers a
 * repeat with the first result. PlayAudio and inviteParticipants are neither: sent twice, they
 * play twice and invite twice.
 */
export function isIdempotent(operation: { idempotent: boolean; repeatable: boolean }, carriesRepeatabilityId: boolean): boolean {
  return operation.idempotent || (operation.repeatable && carriesRepeatabilityId);
}

/**
 * The headers that make a repeatable request (createCall) safe to send again: a new id and date,
 * the same on every attempt, with which the service answers a repeat with the first result.
 */
export const repeatabilityHeaders = (): Record<string, string> => ({
  'repeatability-request-id': crypto.randomUUID(),
  'repeatability-first-sent': new Date().toUTCString(),
});

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

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
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

/** What an attempt came to: an answer, or the error that fetch threw. */
export type Outcome = { response: Response; error?: undefined } | { response?: undefined; error: unknown };

/**
 * The wait before the retry that follows attempt number `attempt` (0 for the first), or
 * undefined when this outcome is final: an answer not worth retrying, the retries spent, a
 * `Retry-After` longer than allowed, or a request that is not idempotent after an answer or an
 * error that leaves open whether the service acted (only 408, 429 and a connection never made
 * say it did not).
 */
export function retryDelay(outcome: Outcome, attempt: number, idempotent: boolean, options: Required<RetryOptions>): number | undefined {
  if (!(attempt < options.maxRetries)) return undefined;
  if (outcome.response) {
    const { status } = outcome.response;
    if (!retryableStatuses.has(status) || (!idempotent && !notProcessedStatuses.has(status))) return undefined;
    if (status === 409 && !outcome.response.headers.has('Repeatability-Result')) return undefined;
    const asked = parseRetryAfter(outcome.response.headers.get('Retry-After'));
    if (asked !== undefined && asked > options.maxRetryAfterMs) return undefined;
    return asked ?? backoffDelay(attempt, options);
  }
  const cause = (outcome.error as { cause?: { code?: unknown } } | undefined)?.cause;
  if (!idempotent && !notSentCodes.has(typeof cause?.code === 'string' ? cause.code : '')) return undefined;
  return backoffDelay(attempt, options);
}

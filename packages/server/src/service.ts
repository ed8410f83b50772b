import { valueAt, type Validator } from '@call-automation/contract';
import * as validators from '@call-automation/contract/request-validators';
import { createAuthenticator, sha256Base64, type AuthOptions, type Caller } from './auth.ts';
import { ApiError, toDetails } from './errors.ts';
import { createMemoryIdempotencyStore, type Claim, type IdempotencyStore, type StoredReply } from './idempotency.ts';
import { createRouter, type Operation, type RouteMatch } from './router.ts';
import type { CallAutomationHandlers, CallbackEmitter, HandlerContext } from './types.ts';

const validatorNamed = validators as unknown as Record<string, Validator>;

export interface CallAutomationServiceOptions {
  /** The business logic, one handler per operation. */
  handlers: CallAutomationHandlers;
  /** Access keys and the bearer-token hook. */
  auth: AuthOptions;
  /** Where handlers' events go: `createCallbackDelivery(…)`, or your own emitter. */
  callbacks?: CallbackEmitter;
  /**
   * How long an answer waits for the events and registrations its request made to be recorded
   * (`callbacks.settled()`, a shared registry and queue on Redis) before it goes anyway, in ms.
   * Default 2 s. Events not yet recorded then are still, in order, by the delivery.
   */
  settleTimeoutMs?: number;
  /** The store behind Repeatability-Request-ID; false turns idempotent create off. Default in memory (one instance). */
  idempotency?: IdempotencyStore | false;
  limits?: {
    /** The largest request body accepted, in bytes. Default 64 KiB. */
    maxBodyBytes?: number;
  };
  /**
   * Checks a URI the service would contact (the request fields the spec marks `x-contacted-uri`:
   * callbackUri, audioFileUri) when a request names it; throw an ApiError (400 UriNotAllowed) to
   * refuse it. See `createUriGuard`.
   */
  checkUri?: (uri: string, field: string) => Promise<void> | void;
  /**
   * Sees every unexpected error (a handler that throws), with the id its 500 answer carries, and
   * every failure of the idempotency store (answered 503, or an answer that could not be stored).
   */
  onError?: (error: unknown, info: { requestId: string; operationId?: string }) => void;
  /**
   * Hears every answer to a routed request once it is made, for access logs, metrics and
   * inspectors: the operation, the request, the status, and how long it took.
   */
  onAnswer?: (info: AnswerInfo) => void;
  /**
   * Lets browser apps on other origins call the API (CORS). A preflight (OPTIONS with Origin and
   * Access-Control-Request-Method) on a path of the API answers 204 with the path's methods and
   * the headers clients send; every answer to an allowed origin, errors too, names that origin in
   * Access-Control-Allow-Origin and exposes the headers clients read. Without it the API answers
   * no CORS headers, and OPTIONS answers 405.
   */
  cors?: CorsOptions;
}

/** Which browser origins may call the API, and for how long a preflight's answer holds. */
export interface CorsOptions {
  /**
   * The origins allowed, as browsers send them (`https://app.contoso.com`,
   * `http://127.0.0.1:5173`), or `'*'` for any. An allowed request's own origin is answered,
   * with `Vary: Origin`.
   */
  origins: readonly string[] | '*';
  /** How long a browser may reuse a preflight's answer, in seconds. Default 600. */
  maxAgeSeconds?: number;
  /**
   * Request headers to allow beyond those the API's clients send (Authorization, Content-Type,
   * x-ms-date, x-ms-content-sha256, the Repeatability headers, x-ms-client-request-id,
   * x-ms-useragent, User-Agent).
   */
  allowHeaders?: readonly string[];
}

/**
 * The request headers a preflight allows: what the API's clients send (the HMAC headers,
 * Content-Type, the repeatability headers; Azure's SDKs add a client request id and, in browsers,
 * x-ms-useragent).
 */
const corsAllowedHeaders = [
  'Authorization',
  'Content-Type',
  'x-ms-date',
  'x-ms-content-sha256',
  'Repeatability-Request-ID',
  'Repeatability-First-Sent',
  'x-ms-client-request-id',
  'x-ms-useragent',
  'User-Agent',
] as const;

/** The answer headers a page may read: what the API's clients read. */
const corsExposedHeaders = ['Retry-After', 'Repeatability-Result', 'x-ms-request-id'] as const;

/** A request's header by its lower-case name. */
export type HeaderReader = (name: string) => string | undefined;

/** What `onAnswer` hears of one request and its answer. */
export interface AnswerInfo {
  operationId: string;
  method: string;
  /** The path and query as sent. */
  pathAndQuery: string;
  /** The path parameters (callId, participantId), as routed. */
  params: Record<string, string>;
  status: number;
  requestId: string;
  /** From the request's routing to its answer, in ms. */
  ms: number;
}

// Strict: invalid UTF-8 is an error, and a byte-order mark stays (JSON text must not start with one).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const noEmitter: CallbackEmitter = {
  emit() {
    throw new Error('This service has no callback delivery: pass `callbacks: createCallbackDelivery(…)` to it.');
  },
  register() {},
};

/** An answer, ready for any server to write: headers as a plain object, the body as JSON text. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string | null;
}

/** A request as the stub reads it, whichever server received it. */
export interface ApiRequest {
  method: string;
  /** The path and query exactly as sent. */
  pathAndQuery: string;
  /** The Host header as sent. */
  host: string | undefined;
  /** A header by its lower-case name. */
  header(name: string): string | undefined;
  /** The path parameters, as routed. */
  params: Record<string, string>;
  /** The body, read once as bytes; throws ApiError 413 once it passes `limit`, 400 if the client leaves before its end. */
  body(limit: number): Promise<Uint8Array<ArrayBuffer>>;
}

// RFC 9110's token for names; visible characters, spaces and tabs for values (no CR or LF).
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const headerValue = /^[\t\x20-\x7e\x80-\xff]*$/;

const framing = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

/** Every answer says no sniffing of the JSON and no caching of a call's state, and carries its request id. */
function answer(status: number, body: unknown, requestId: string, extra?: Record<string, string>): Answer {
  const headers: Record<string, string> =
    body === undefined
      ? { 'x-content-type-options': 'nosniff', 'cache-control': 'no-store', 'x-ms-request-id': requestId }
      : { 'content-type': 'application/json', 'x-content-type-options': 'nosniff', 'cache-control': 'no-store', 'x-ms-request-id': requestId };
  // Names in lower case, so that an extra header replaces a default one rather than doubling it.
  for (const name in extra) {
    const value = extra[name];
    if (!headerName.test(name) || typeof value !== 'string' || !headerValue.test(value)) {
      throw new Error(`The answer has a header HTTP cannot carry: ${JSON.stringify(name)}.`);
    }
    const lower = name.toLowerCase();
    // The server frames the answer: a length or connection header of a handler's would contradict it.
    if (framing.has(lower)) continue;
    headers[lower] = value;
  }
  return { status, headers, body: body === undefined ? null : JSON.stringify(body) };
}

function problem(error: ApiError, requestId: string): Answer {
  return answer(error.status, error.body, requestId, error.options.headers);
}

const isPromise = <T>(value: T | Promise<T>): value is Promise<T> => typeof (value as { then?: unknown } | undefined)?.then === 'function';

export function incompleteBody(): ApiError {
  return new ApiError(400, 'IncompleteBody', 'The request body ended before its declared length.');
}

export function payloadTooLarge(limit: number): ApiError {
  return new ApiError(413, 'PayloadTooLarge', `The request body exceeds the limit of ${limit} bytes.`);
}

/** The API, independent of any server: route a request, then answer it. Adapters put it on a server. */
export interface CallAutomationService {
  /** What a method and path (without query, as sent) come to: an operation, a 405 or nothing. */
  route(method: string, path: string): RouteMatch;
  /** Answers a routed request; never throws. */
  respond(operation: Operation, request: ApiRequest): Promise<Answer>;
  /**
   * The 405 answer for a path the API has, asked with a method it lacks; with `cors` and the
   * request's headers, a CORS preflight's answer (204, or 403 to an origin not allowed).
   */
  methodNotAllowed(method: string, allow: readonly string[], header?: HeaderReader): Answer;
  /** The 404 answer for a path the API does not have. */
  notFound(method: string, path: string, header?: HeaderReader): Answer;
  /** The 500 answer for an error met outside `respond` (writing an answer); reports it to `onError`. */
  failed(error: unknown, header?: HeaderReader): Answer;
}

const serviceBrand = Symbol.for('@call-automation/server.service');

/** Whether a value is a service made by `createCallAutomationService`. */
export function isCallAutomationService(value: unknown): value is CallAutomationService {
  return typeof value === 'object' && value !== null && serviceBrand in value;
}

/**
 * The Call Automation API from the spec's operation table: authentication, validation of ids,
 * headers and bodies, idempotent create, the URI check and the error bodies are done here;
 * `handlers` hold the business logic and can answer only what the spec allows. Serve it with an
 * adapter: `createCallAutomationApp` (Hono, any runtime) or `serveApp` (Node).
 */
export function createCallAutomationService(options: CallAutomationServiceOptions): CallAutomationService {
  const router = createRouter();
  const missing = router.operations.filter((route) => typeof options.handlers?.[route.operationId] !== 'function').map((route) => route.operationId);
  if (missing.length) throw new TypeError(`No handler for ${missing.join(', ')}: every operation of the spec needs one.`);
  const authenticate = createAuthenticator(options.auth);
  const maxBodyBytes = options.limits?.maxBodyBytes ?? 64 * 1024;
  const idempotency = options.idempotency === false ? undefined : (options.idempotency ?? createMemoryIdempotencyStore());
  const clockSkewMs = options.auth.clockSkewMs ?? 15 * 60_000;
  const events = options.callbacks ?? noEmitter;
  const settleTimeoutMs = options.settleTimeoutMs ?? 2_000;
  // Header validators that accept no headers at all: a request without any of them skips the check.
  const acceptsNoHeaders = new Set(router.operations.flatMap((route) => (route.validators.headers && validatorNamed[route.validators.headers]!({}) ? [route.validators.headers] : [])));
  const cors = options.cors && createCors(options.cors, router.operations);

  /** Handles one request of `route` to its answer; never throws. */
  function respond(route: Operation, request: ApiRequest): Promise<Answer> {
    if (!cors) return respondTo(route, request);
    return respondTo(route, request).then((answered) => cors.answer(answered, request.header));
  }

  async function respondTo(route: Operation, request: ApiRequest): Promise<Answer> {
    if (!options.onAnswer) return answerTo(route, request, crypto.randomUUID());
    const started = performance.now();
    const requestId = crypto.randomUUID();
    const answered = await answerTo(route, request, requestId);
    try {
      options.onAnswer({
        operationId: route.operationId,
        method: request.method,
        pathAndQuery: request.pathAndQuery,
        params: request.params,
        status: answered.status,
        requestId,
        ms: performance.now() - started,
      });
    } catch (error) {
      // A failing listener must not cost the caller their answer.
      reportError(error, requestId, route.operationId);
    }
    return answered;
  }

  async function answerTo(route: Operation, request: ApiRequest, requestId: string): Promise<Answer> {
    try {
      return await handle(route, request, requestId);
    } catch (error) {
      // An ApiError of a status the operation does not document is an unexpected error, as is one
      // that cannot be written (its details do not serialise, a header HTTP cannot carry).
      if (error instanceof ApiError && route.statusSet.has(error.status)) {
        // A store that failed (the replay cache on Redis) is answered 503, and told to onError.
        if (error.options.cause !== undefined) reportError(error.options.cause, requestId, route.operationId);
        try {
          return problem(error, requestId);
        } catch (failure) {
          return internalError(failure, requestId, route.operationId);
        }
      }
      return internalError(error, requestId, route.operationId);
    }
  }

  async function handle(route: Operation, request: ApiRequest, requestId: string): Promise<Answer> {
    // The body is read once, as bytes: the content hash covers exactly what arrived.
    const bytes = await request.body(maxBodyBytes);
    const authenticated = authenticate({ method: request.method, pathAndQuery: request.pathAndQuery, host: request.host ?? '', headers: { get: request.header }, body: bytes });
    const caller = isPromise(authenticated) ? await authenticated : authenticated;
    let body: string;
    try {
      body = utf8.decode(bytes);
    } catch {
      throw new ApiError(400, 'InvalidJson', 'The request body is not valid UTF-8.');
    }

    const params = request.params;
    validate(route.validators.params, params, 'path');
    const headers: Record<string, string> = {};
    let headerCount = 0;
    for (const name of route.headerNames) {
      const value = request.header(name);
      if (value !== undefined) {
        headers[name] = value;
        headerCount++;
      }
    }
    if (headerCount > 0 || !acceptsNoHeaders.has(route.validators.headers!)) validate(route.validators.headers, headers, 'header');

    let parsed: unknown;
    if (route.body !== null) {
      const type = request.header('content-type');
      if (!type || !/^application\/json\s*(;|$)/i.test(type)) {
        throw new ApiError(400, 'InvalidContentType', 'The request body must be sent as application/json.', { target: 'Content-Type' });
      }
      if (body.trim() === '') throw new ApiError(400, 'InvalidJson', 'The request body is empty; this operation takes a JSON object.');
      try {
        parsed = JSON.parse(body);
      } catch (error) {
        throw new ApiError(400, 'InvalidJson', `The request body is not valid JSON: ${(error as Error).message}.`);
      }
      validate(route.validators.body, parsed, 'body');
      if (options.checkUri) {
        for (const pointer of route.contactedUris) {
          const value = valueAt(parsed, pointer);
          if (typeof value !== 'string') continue;
          const checked = options.checkUri(value, pointer.slice(1));
          if (isPromise(checked)) await checked;
        }
      }
    } else if (body !== '') {
      throw new ApiError(400, 'ValidationFailed', 'This operation takes no request body.', { target: '/' });
    }

    const context: HandlerContext = { caller, requestId, events };
    const input = { params, body: parsed, headers };
    const repeatId = headers['repeatability-request-id'];
    if (!idempotency || repeatId === undefined) {
      const pending = runHandler(route, input, context, parsed);
      const result = isPromise(pending) ? await pending : pending;
      const settling = events.settled?.();
      if (settling) await settle(settling);
      return reply(result, requestId);
    }
    const fingerprint = `${request.method.toUpperCase()} ${request.pathAndQuery} ${await sha256Base64(bytes)}`;
    const report = (error: unknown) => reportError(error, requestId, route.operationId);
    const result = await repeatably(idempotency, `${callerKey(caller)}:${repeatId.toLowerCase()}`, fingerprint, headers['repeatability-first-sent'], report, () =>
      runHandler(route, input, context, parsed),
    );
    const settling = events.settled?.();
    if (settling) await settle(settling);
    return reply(result, requestId, 'accepted');
  }

  /** Waits for the request's events to be recorded, at most `settleTimeoutMs`. */
  async function settle(settling: Promise<void>) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([settling, new Promise<void>((resolve) => (timer = setTimeout(resolve, settleTimeoutMs)))]);
    clearTimeout(timer);
  }

  /**
   * Runs a request that carries Repeatability-Request-ID once: a repeat of the same request
   * answers the stored reply, a repeat while the first runs answers 409, the same id with another
   * request 422, a Repeatability-First-Sent outside the window 412 (the IETF Idempotency-Key
   * draft's rules, and ACS's statuses). A store that fails or does not answer (Redis down)
   * answers 503 with Retry-After: the request is not run without a claim, as a repeat could then
   * run it twice.
   */
  async function repeatably(
    store: IdempotencyStore,
    key: string,
    fingerprint: string,
    firstSentHeader: string | undefined,
    report: (error: unknown) => void,
    run: () => StoredReply | Promise<StoredReply>,
  ): Promise<StoredReply> {
    const now = Date.now();
    const rejected = (status: 412 | 422, code: string, message: string, target: string) =>
      new ApiError(status, code, message, { target, headers: { 'Repeatability-Result': 'rejected' } });
    // Without Repeatability-First-Sent, the first request's arrival starts the lifetime.
    const firstSent = firstSentHeader === undefined ? now : Date.parse(firstSentHeader);
    const lifetimeMinutes = store.lifetimeMs / 60_000;
    if (firstSent < now - store.lifetimeMs) {
      throw rejected(412, 'RepeatabilityExpired', `Repeatability-First-Sent is more than ${lifetimeMinutes} minutes in the past; the first result may be forgotten.`, 'Repeatability-First-Sent');
    }
    if (firstSent > now + clockSkewMs) {
      throw rejected(412, 'RepeatabilityExpired', `Repeatability-First-Sent is more than ${clockSkewMs / 60_000} minutes in the future: check the client's clock.`, 'Repeatability-First-Sent');
    }
    let claim: Claim;
    try {
      claim = await store.claim(key, fingerprint, firstSent + store.lifetimeMs);
    } catch (error) {
      report(error);
      throw new ApiError(503, 'ServiceUnavailable', 'The service cannot record repeatable requests now; retry after 1 second.', { headers: { 'Retry-After': '1' } });
    }
    if (claim.state === 'full') {
      const seconds = Math.max(1, Math.ceil(claim.retryAfterMs / 1000));
      throw new ApiError(503, 'ServiceUnavailable', `The service cannot record repeatable requests now; retry after ${seconds} seconds.`, { headers: { 'Retry-After': String(seconds) } });
    }
    if (claim.state !== 'claimed' && claim.fingerprint !== fingerprint) {
      throw rejected(422, 'RepeatabilityMismatch', 'This Repeatability-Request-ID was used for a different request; use a new id for a new request.', 'Repeatability-Request-ID');
    }
    if (claim.state === 'pending') {
      throw new ApiError(409, 'RequestInProgress', 'The request with this Repeatability-Request-ID is still being processed; retry after 1 second.', {
        target: 'Repeatability-Request-ID',
        headers: { 'Retry-After': '1', 'Repeatability-Result': 'accepted' },
      });
    }
    if (claim.state === 'done') return claim.reply;
    let result: StoredReply;
    try {
      result = await run();
    } catch (error) {
      await store.release(key).catch(report);
      throw error;
    }
    // A server error, or an answer that asks to try again later (408, 409, 425, 429), is not an
    // answer to keep: the retry runs the request again. The request has run: if its answer cannot
    // be stored, the caller still gets it, and the claim stays pending until it expires (a repeat
    // answers 409) rather than let a repeat run it a second time.
    if (result.status < 500 && !tryAgainLater.has(result.status)) await store.complete(key, result).catch(report);
    else await store.release(key).catch(report);
    return result;
  }

  /** The handler's reply, checked against the statuses the spec documents; synchronous when the handler is. */
  function runHandler(route: Operation, input: unknown, context: HandlerContext, parsed: unknown): StoredReply | Promise<StoredReply> {
    const handler = options.handlers[route.operationId] as (input: unknown, context: HandlerContext) => Promise<StoredReply> | StoredReply;
    const refused = (error: unknown): StoredReply => {
      if (error instanceof ApiError && route.statusSet.has(error.status)) return { status: error.status, body: error.body, headers: error.options.headers };
      throw error;
    };
    const accepted = (result: StoredReply): StoredReply => {
      if (!route.statusSet.has(result?.status)) {
        throw new Error(`The ${route.operationId} handler answered ${result?.status}, which the spec does not document for it.`);
      }
      // A created call's events go to the URI its request named (the spec's `callbacks`), under the
      // id its answer gives (the spec's `links`).
      if (route.callbackUri && route.createdId && result.status === route.successStatus) {
        const id = valueAt(result.body, route.createdId);
        if (typeof id !== 'string') throw new Error(`The ${route.operationId} handler answered no string at ${route.createdId}, the id its callbacks are about.`);
        events.register(id, valueAt(parsed, route.callbackUri) as string);
      }
      return result;
    };
    let result: StoredReply | Promise<StoredReply>;
    try {
      result = handler(input, context);
    } catch (error) {
      return refused(error);
    }
    return isPromise(result) ? result.then(accepted, refused) : accepted(result);
  }

  function reply(result: StoredReply, requestId: string, repeatability?: string): Answer {
    const extra = repeatability ? { 'Repeatability-Result': repeatability, ...result.headers } : result.headers;
    return answer(result.status, result.body, requestId, extra);
  }

  function validate(name: string | null, value: unknown, place: 'path' | 'header' | 'body') {
    if (!name) return;
    const validator = validatorNamed[name]!;
    if (validator(value)) return;
    const details = toDetails(validator.errors ?? []);
    if (place !== 'body') {
      // Parameters are named by their name, not by a pointer.
      for (const detail of details) detail.target = detail.target?.replace(/^\//, '');
    }
    const what = place === 'body' ? 'The request body does not match the schema.' : `A ${place} parameter is invalid.`;
    throw new ApiError(400, 'ValidationFailed', what, { details });
  }

  function reportError(error: unknown, requestId: string, operationId?: string) {
    try {
      options.onError?.(error, { requestId, operationId });
    } catch {
      // A failing report must not cost the caller their answer.
    }
  }

  function internalError(error: unknown, requestId: string, operationId?: string): Answer {
    reportError(error, requestId, operationId);
    return problem(new ApiError(500, 'InternalServerError', `The service failed to process the request. Correlation id ${requestId}.`), requestId);
  }

  return {
    [serviceBrand]: true,
    route: router.match,
    respond,
    methodNotAllowed: (method, allow, header) => {
      const preflight = cors && header && method === 'OPTIONS' ? cors.preflight(allow, header) : undefined;
      if (preflight) return preflight;
      const refused = problem(new ApiError(405, 'MethodNotAllowed', `${method} is not allowed on this path; use ${allow.join(', ')}.`, { headers: { Allow: allow.join(', ') } }), crypto.randomUUID());
      return cors && header ? cors.answer(refused, header) : refused;
    },
    notFound: (method, path, header) => {
      const missing = problem(new ApiError(404, 'NotFound', `No operation at ${method} ${path}.`), crypto.randomUUID());
      return cors && header ? cors.answer(missing, header) : missing;
    },
    failed: (error, header) => {
      const failure = internalError(error, crypto.randomUUID());
      return cors && header ? cors.answer(failure, header) : failure;
    },
  } as CallAutomationService;
}

/**
 * CORS as `options.cors` says: `preflight` answers a preflight (undefined for an OPTIONS that is
 * not one), `answer` adds to an answer what an allowed origin's page needs to read it.
 */
function createCors(options: CorsOptions, operations: readonly Operation[]) {
  let allowed: Set<string> | undefined;
  if (options.origins !== '*') {
    if (!Array.isArray(options.origins)) throw new TypeError("cors.origins must be a list of origins, or '*'.");
    allowed = new Set(
      options.origins.map((origin) => {
        let url: URL | undefined;
        try {
          url = new URL(origin);
        } catch {
          // Refused below.
        }
        if (!url || url.origin === 'null' || url.pathname !== '/' || url.search || url.hash || url.username || url.password || !/^[^/]+:\/\/[^/]+\/?$/.test(origin)) {
          throw new TypeError(`cors.origins: ${JSON.stringify(origin)} is not an origin; write scheme://host[:port], as browsers send it (https://app.contoso.com).`);
        }
        return url.origin;
      }),
    );
  }
  const maxAge = options.maxAgeSeconds ?? 600;
  if (!Number.isInteger(maxAge) || maxAge < 0) throw new RangeError(`cors.maxAgeSeconds must be a whole number of seconds, not ${maxAge}.`);
  // The clients' headers, the operations' own (from the spec), and any the options add, each once.
  const headerNames = new Map<string, string>();
  for (const name of [...corsAllowedHeaders, ...operations.flatMap((operation) => operation.headers), ...(options.allowHeaders ?? [])]) {
    if (!headerName.test(name)) throw new TypeError(`cors.allowHeaders: ${JSON.stringify(name)} is not a header name.`);
    if (!headerNames.has(name.toLowerCase())) headerNames.set(name.toLowerCase(), name);
  }
  const allowHeaders = [...headerNames.values()].join(', ');
  const exposeHeaders = corsExposedHeaders.join(', ');
  // An origin that a header cannot carry back is never allowed (a parser lets none through anyway).
  const allows = (origin: string) => (allowed ? allowed.has(origin) : headerValue.test(origin));

  return {
    preflight(allow: readonly string[], header: HeaderReader): Answer | undefined {
      const origin = header('origin');
      if (origin === undefined || header('access-control-request-method') === undefined) return undefined;
      const requestId = crypto.randomUUID();
      if (!allows(origin)) {
        return answer(403, { code: 'OriginNotAllowed', message: `Pages from ${origin} may not call this API: it is not among the origins the service allows.`, target: 'Origin' }, requestId, { Vary: 'Origin' });
      }
      return answer(204, undefined, requestId, {
        'Access-Control-Allow-Origin': origin,
        'Access-Control-Allow-Methods': allow.join(', '),
        'Access-Control-Allow-Headers': allowHeaders,
        'Access-Control-Max-Age': String(maxAge),
        Vary: 'Origin',
      });
    },
    answer(answered: Answer, header: HeaderReader): Answer {
      const origin = header('origin');
      if (origin === undefined || !allows(origin)) return answered;
      const { headers } = answered;
      headers['access-control-allow-origin'] = origin;
      headers['access-control-expose-headers'] = exposeHeaders;
      headers.vary = headers.vary ? `${headers.vary}, Origin` : 'Origin';
      return answered;
    },
  };
}

/** Statuses that ask the client to send the request again: no final answer to keep. */
const tryAgainLater = new Set([408, 409, 425, 429]);

function callerKey(caller: Caller): string {
  return caller.kind === 'hmac' ? 'hmac' : `bearer:${caller.subject}`;
}

import { Hono, type Context } from 'hono';
import { createAuthenticator, sha256Base64, type AuthOptions, type Caller } from './auth.ts';
import { ApiError, toDetails, type ValidationIssue } from './errors.ts';
import { routes, type OperationId, type Route } from './generated/routes.gen.ts';
import * as validators from './generated/validators.gen.ts';
import { createMemoryIdempotencyStore, type IdempotencyStore, type StoredReply } from './idempotency.ts';
import type { CallAutomationHandlers, CallbackEmitter, HandlerContext } from './types.ts';

type Validator = ((data: unknown) => boolean) & { errors?: ValidationIssue[] | null };
const validatorNamed = validators as unknown as Record<string, Validator>;

export interface CallAutomationAppOptions {
  /** The business logic, one handler per operation. */
  handlers: CallAutomationHandlers;
  /** Access keys and the bearer-token hook. */
  auth: AuthOptions;
  /** Where handlers' events go: `createCallbackDelivery(…)`, or your own emitter. */
  callbacks?: CallbackEmitter;
  /** The store behind Repeatability-Request-ID; false turns idempotent create off. Default in memory (one instance). */
  idempotency?: IdempotencyStore | false;
  limits?: {
    /** The largest request body accepted, in bytes. Default 64 KiB. */
    maxBodyBytes?: number;
  };
  /**
   * Checks a URI the service would contact (callbackUri, audioFileUri) when a request names it;
   * throw an ApiError (400 UriNotAllowed) to refuse it. See `createUriGuard`.
   */
  checkUri?: (uri: string, field: string) => Promise<void> | void;
  /** Sees every unexpected error (a handler that throws), with the id its 500 answer carries. */
  onError?: (error: unknown, info: { requestId: string; operationId?: string }) => void;
}

const fieldsContacted = ['callbackUri', 'audioFileUri'] as const;
// Strict: invalid UTF-8 is an error, and a byte-order mark stays (JSON text must not start with one).
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const noEmitter: CallbackEmitter = {
  emit() {
    throw new Error('This app has no callback delivery: pass `callbacks: createCallbackDelivery(…)` to createCallAutomationApp.');
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

/** An operation of the spec, ready to serve: its header names in lower case, its statuses as a set. */
type Operation = Route & { headerNames: string[]; statusSet: Set<number> };
const operations: Operation[] = routes.map((route) => ({ ...route, headerNames: route.headers.map((name) => name.toLowerCase()), statusSet: new Set(route.statuses) }));

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

/**
 * A Response built directly, headers as a plain object: @hono/node-server writes such a Response
 * without converting a Headers object.
 */
function toResponse(result: Answer): Response {
  return new Response(result.body, { status: result.status, headers: result.headers });
}

const isPromise = <T>(value: T | Promise<T>): value is Promise<T> => typeof (value as { then?: unknown } | undefined)?.then === 'function';

/** The stub's own handling of its routes, for servers that can reach it without Hono (see `serveApp`). */
export interface DirectRoutes {
  /** The route and its parameters, when the app would run only the stub's own handlers for this request. */
  match(method: string, path: string): { route: Operation; params: Record<string, string> } | undefined;
  respond(route: Operation, request: ApiRequest): Promise<Answer>;
  /** The 500 answer for an error met while writing an answer; reports it to `onError`. */
  failed(error: unknown): Answer;
}

export const directRoutes = Symbol.for('@call-automation/server.directRoutes');

/**
 * The Call Automation API as a Hono app, from the spec: routes, authentication, validation of
 * ids, headers and bodies, idempotent create and the error bodies are done here; `handlers` hold
 * the business logic and can answer only what the spec allows.
 */
export function createCallAutomationApp(options: CallAutomationAppOptions): Hono {
  const authenticate = createAuthenticator(options.auth);
  const maxBodyBytes = options.limits?.maxBodyBytes ?? 64 * 1024;
  const idempotency = options.idempotency === false ? undefined : (options.idempotency ?? createMemoryIdempotencyStore());
  const clockSkewMs = options.auth.clockSkewMs ?? 15 * 60_000;
  const events = options.callbacks ?? noEmitter;
  const app = new Hono();
  // Header validators that accept no headers at all: a request without any of them skips the check.
  const acceptsNoHeaders = new Set(operations.flatMap((route) => (route.validators.headers && validatorNamed[route.validators.headers]!({}) ? [route.validators.headers] : [])));

  /** Handles one request of `route` to its answer; never throws. */
  async function respond(route: Operation, request: ApiRequest): Promise<Answer> {
    const requestId = crypto.randomUUID();
    try {
      return await handle(route, request, requestId);
    } catch (error) {
      // An ApiError of a status the operation does not document is an unexpected error, as is one
      // that cannot be written (its details do not serialise, a header HTTP cannot carry).
      if (error instanceof ApiError && route.statusSet.has(error.status)) {
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
    if (route.hasBody) {
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
        for (const field of fieldsContacted) {
          const value = (parsed as Record<string, unknown>)[field];
          if (typeof value !== 'string') continue;
          const checked = options.checkUri(value, field);
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
      const result = runHandler(route, input, context, parsed);
      return reply(isPromise(result) ? await result : result, requestId);
    }
    const fingerprint = `${request.method.toUpperCase()} ${request.pathAndQuery} ${await sha256Base64(bytes)}`;
    const result = await repeatably(idempotency, `${callerKey(caller)}:${repeatId.toLowerCase()}`, fingerprint, headers['repeatability-first-sent'], () =>
      runHandler(route, input, context, parsed),
    );
    return reply(result, requestId, 'accepted');
  }

  /**
   * Runs a request that carries Repeatability-Request-ID once: a repeat of the same request
   * answers the stored reply, a repeat while the first runs answers 409, the same id with another
   * request 422, a Repeatability-First-Sent outside the window 412 (the IETF Idempotency-Key
   * draft's rules, and ACS's statuses).
   */
  async function repeatably(
    store: IdempotencyStore,
    key: string,
    fingerprint: string,
    firstSentHeader: string | undefined,
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
    const claim = await store.claim(key, fingerprint, firstSent + store.lifetimeMs);
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
    try {
      const result = await run();
      // A server error is not an answer to keep: the retry runs the request again.
      if (result.status < 500) await store.complete(key, result);
      else await store.release(key);
      return result;
    } catch (error) {
      await store.release(key);
      throw error;
    }
  }

  /** The handler's reply, checked against the statuses the spec documents; synchronous when the handler is. */
  function runHandler(route: Operation, input: unknown, context: HandlerContext, parsed: unknown): StoredReply | Promise<StoredReply> {
    const handler = options.handlers[route.operationId as OperationId] as (input: unknown, context: HandlerContext) => Promise<StoredReply> | StoredReply;
    const refused = (error: unknown): StoredReply => {
      if (error instanceof ApiError && route.statusSet.has(error.status)) return { status: error.status, body: error.body, headers: error.options.headers };
      throw error;
    };
    const accepted = (result: StoredReply): StoredReply => {
      if (!route.statusSet.has(result?.status)) {
        throw new Error(`The ${route.operationId} handler answered ${result?.status}, which the spec does not document for it.`);
      }
      // A created call's events go to its callbackUri.
      if (route.operationId === 'createCall' && result.status === 200) {
        events.register((result.body as { callLegId: string }).callLegId, (parsed as { callbackUri: string }).callbackUri);
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

  function internalError(error: unknown, requestId: string, operationId?: string): Answer {
    try {
      options.onError?.(error, { requestId, operationId });
    } catch {
      // A failing report must not cost the caller their answer.
    }
    return problem(new ApiError(500, 'InternalServerError', `The service failed to process the request. Correlation id ${requestId}.`), requestId);
  }

  const routeOf = new Map<unknown, Operation>();
  for (const route of operations) {
    const handler = async (c: Context) => toResponse(await respond(route, fromHono(c, route)));
    routeOf.set(handler, route);
    app.on(route.method, route.honoPath, handler);
  }
  // A path the API has, asked with a method it lacks, answers 405 with Allow: routes of their own
  // for the common methods (so that they stay when the app is mounted in another), and notFound
  // for the rest. Any other path answers 404.
  const pathPatterns = [...new Set(operations.map((route) => route.honoPath))].map((honoPath) => {
    const allowed = operations.filter((route) => route.honoPath === honoPath).map((route) => route.method);
    const allow = allowed.join(', ');
    const notAllowed = (c: Context) =>
      toResponse(problem(new ApiError(405, 'MethodNotAllowed', `${c.req.method} is not allowed on this path; use ${allow}.`, { headers: { Allow: allow } }), crypto.randomUUID()));
    const others = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'].filter((method) => !(allowed as string[]).includes(method));
    if (others.length) app.on(others, honoPath, notAllowed);
    return { pattern: new RegExp(`^${honoPath.replace(/:[^/]+/g, '[^/]+')}$`), notAllowed };
  });
  app.notFound((c) => {
    const known = pathPatterns.find(({ pattern }) => pattern.test(c.req.path));
    if (known) return known.notAllowed(c);
    return toResponse(problem(new ApiError(404, 'NotFound', `No operation at ${c.req.method} ${c.req.path}.`), crypto.randomUUID()));
  });
  app.onError((error) => toResponse(internalError(error, crypto.randomUUID())));

  const direct: DirectRoutes = {
    match(method, path) {
      const [matched, stash] = app.router.match(method, path) as [Array<[[unknown, unknown], Record<string, number | string>]>, string[]?];
      if (matched.length !== 1) return undefined;
      const [[handler], found] = matched[0]!;
      const route = routeOf.get(handler);
      if (!route) return undefined;
      const params: Record<string, string> = {};
      for (const name of route.pathParams) {
        const value = stash ? stash[found[name] as number] : found[name];
        if (typeof value !== 'string') return undefined;
        params[name] = value;
      }
      return { route, params };
    },
    respond,
    failed: (error) => internalError(error, crypto.randomUUID()),
  };
  Object.defineProperty(app, directRoutes, { value: direct });
  return app;
}

/** A Hono request as the stub reads it. */
function fromHono(c: Context, route: Operation): ApiRequest {
  const header = headerReader(c);
  const href = c.req.url;
  // The path and query exactly as sent: everything after the URL's authority.
  const authorityEnd = href.indexOf('/', href.indexOf('://') + 3);
  return {
    method: c.req.method,
    pathAndQuery: authorityEnd === -1 ? '/' : href.slice(authorityEnd),
    host: header('host') ?? new URL(href).host,
    header,
    params: route.pathParams.length ? c.req.param() : {},
    body: (limit) => readBody(c, header('content-length'), limit),
  };
}

export function incompleteBody(): ApiError {
  return new ApiError(400, 'IncompleteBody', 'The request body ended before its declared length.');
}

export function payloadTooLarge(limit: number): ApiError {
  return new ApiError(413, 'PayloadTooLarge', `The request body exceeds the limit of ${limit} bytes.`);
}

/**
 * The request body, refused with 413 past `limit` bytes: at once when Content-Length says so,
 * else as soon as the stream passes it. (Hono's bodyLimit middleware does the same but builds a
 * full Request, which costs three quarters of the throughput on Node.)
 */
async function readBody(c: Context, declared: string | undefined, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  try {
    return await readBodyOf(c, declared, limit);
  } catch (error) {
    // The stream failed: the client went away before the body's end, and no one is left to answer.
    throw error instanceof ApiError ? error : incompleteBody();
  }
}

async function readBodyOf(c: Context, declared: string | undefined, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  // Through c.req, @hono/node-server reads the body without building a full Request.
  if (declared !== undefined) {
    if (Number(declared) > limit) throw payloadTooLarge(limit);
    return new Uint8Array(await c.req.arrayBuffer());
  }
  const stream = c.req.raw.body;
  if (!stream) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      throw payloadTooLarge(limit);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/**
 * Reads request headers by lower-case name. On Node, @hono/node-server hands the incoming message
 * over as `c.env.incoming`, whose headers are a plain object: reading them there is several times
 * cheaper than through a Fetch `Headers`. Other runtimes read `c.req`.
 */
function headerReader(c: Context): (name: string) => string | undefined {
  const incoming = (c.env as { incoming?: { headers?: Record<string, string | string[] | undefined> } } | undefined)?.incoming?.headers;
  if (!incoming) return (name) => c.req.header(name);
  return (name) => {
    const value = incoming[name];
    return Array.isArray(value) ? value.join(', ') : value;
  };
}

function callerKey(caller: Caller): string {
  return caller.kind === 'hmac' ? 'hmac' : `bearer:${caller.subject}`;
}

import { Hono, type Context } from 'hono';
import { createAuthenticator, type AuthOptions, type Caller } from './auth.ts';
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
  /** The store behind Repeatability-Request-ID; false turns idempotent create off. Default in memory. */
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

/** Sent with every answer: no sniffing of the JSON, no caching of a call's state. */
const secureHeaders = { 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' };

/**
 * A Response built directly, headers as a plain object: @hono/node-server writes such a Response
 * without converting a Headers object, which saves several µs a request over c.json(…, headers).
 */
function answer(status: number, body: unknown, headers: Record<string, string>): Response {
  if (body === undefined) return new Response(null, { status, headers: { ...secureHeaders, ...headers } });
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...secureHeaders, ...headers } });
}

function problem(error: ApiError, requestId: string): Response {
  return answer(error.status, error.body, { 'x-ms-request-id': requestId, ...error.options.headers });
}

/**
 * The Call Automation API as a Hono app, from the spec: routes, authentication, validation of
 * ids, headers and bodies, idempotent create and the error bodies are done here; `handlers` hold
 * the business logic and can answer only what the spec allows.
 */
export function createCallAutomationApp(options: CallAutomationAppOptions): Hono {
  const authenticate = createAuthenticator(options.auth);
  const maxBodyBytes = options.limits?.maxBodyBytes ?? 64 * 1024;
  const idempotency = options.idempotency === false ? undefined : (options.idempotency ?? createMemoryIdempotencyStore());
  const events = options.callbacks ?? noEmitter;
  const app = new Hono();


  async function handle(route: Route, c: Context, requestId: string): Promise<Response> {
    const header = headerReader(c);
    // The body is read once, as bytes: the content hash covers exactly what arrived.
    const bytes = await readBody(c, header('content-length'), maxBodyBytes);
    // The path and query exactly as sent: everything after the URL's authority.
    const href = c.req.url;
    const authorityEnd = href.indexOf('/', href.indexOf('://') + 3);
    const caller = await authenticate({
      method: c.req.method,
      pathAndQuery: authorityEnd === -1 ? '/' : href.slice(authorityEnd),
      host: header('host') ?? new URL(href).host,
      headers: { get: header },
      body: bytes,
    });
    let body: string;
    try {
      body = utf8.decode(bytes);
    } catch {
      throw new ApiError(400, 'InvalidJson', 'The request body is not valid UTF-8.');
    }

    const params = route.pathParams.length ? c.req.param() : {};
    validate(route.validators.params, params, 'path');
    const headers: Record<string, string> = {};
    for (const name of route.headers) {
      const value = header(name.toLowerCase());
      if (value !== undefined) headers[name.toLowerCase()] = value;
    }
    validate(route.validators.headers, headers, 'header');

    let parsed: unknown;
    if (route.hasBody) {
      const type = header('content-type');
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
          if (typeof value === 'string') await options.checkUri(value, field);
        }
      }
    } else if (body !== '') {
      throw new ApiError(400, 'ValidationFailed', 'This operation takes no request body.', { target: '/' });
    }

    const context: HandlerContext = { caller, requestId, events };
    const run = async () => {
      const result = await runHandler(route, { params, body: parsed, headers }, context);
      // A created call's events go to its callbackUri.
      if (route.operationId === 'createCall' && result.status === 200) {
        events.register((result.body as { callLegId: string }).callLegId, (parsed as { callbackUri: string }).callbackUri);
      }
      return result;
    };
    const repeatId = headers['repeatability-request-id'];
    if (!idempotency || repeatId === undefined) return reply(await run(), requestId);
    return reply(await once(`${callerKey(caller)}:${repeatId}`, run), requestId, { 'Repeatability-Result': 'accepted' });
  }

  async function once(key: string, run: () => Promise<StoredReply>): Promise<StoredReply> {
    for (let waited = 0; ; waited += 25) {
      const stored = await idempotency!.claim(key);
      if (stored === undefined) break;
      if (stored !== 'pending') return stored;
      if (waited > 10_000) throw new ApiError(500, 'InternalServerError', 'The first request with this Repeatability-Request-ID is still being processed; retry later.');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    try {
      const result = await run();
      if (result.status < 500) await idempotency!.complete(key, result);
      else await idempotency!.release(key);
      return result;
    } catch (error) {
      await idempotency!.release(key);
      throw error;
    }
  }

  async function runHandler(route: Route, input: unknown, context: HandlerContext): Promise<StoredReply> {
    const handler = options.handlers[route.operationId as OperationId] as (input: unknown, context: HandlerContext) => Promise<StoredReply> | StoredReply;
    let result: StoredReply;
    try {
      result = await handler(input, context);
    } catch (error) {
      if (error instanceof ApiError && (route.statuses as readonly number[]).includes(error.status)) {
        return { status: error.status, body: error.body, headers: error.options.headers };
      }
      throw error;
    }
    if (!(route.statuses as readonly number[]).includes(result?.status)) {
      throw new Error(`The ${route.operationId} handler answered ${result?.status}, which the spec does not document for it.`);
    }
    return result;
  }

  function reply(result: StoredReply, requestId: string, extra: Record<string, string> = {}): Response {
    return answer(result.status, result.body, { 'x-ms-request-id': requestId, ...extra, ...result.headers });
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

  const methodsByPath = new Map<string, string[]>();
  for (const route of routes) {
    methodsByPath.set(route.honoPath, [...(methodsByPath.get(route.honoPath) ?? []), route.method]);
    app.on(route.method, route.honoPath, async (c) => {
      const requestId = crypto.randomUUID();
      try {
        return await handle(route, c, requestId);
      } catch (error) {
        if (error instanceof ApiError) return problem(error, requestId);
        return internalError(error, requestId, route.operationId);
      }
    });
  }
  for (const [path, methods] of methodsByPath) {
    app.all(path, (c) => {
      const allow = methods.join(', ');
      return problem(new ApiError(405, 'MethodNotAllowed', `${c.req.method} is not allowed on this path; use ${allow}.`, { headers: { Allow: allow } }), crypto.randomUUID());
    });
  }
  app.notFound((c) => problem(new ApiError(404, 'NotFound', `No operation at ${c.req.method} ${new URL(c.req.url).pathname}.`), crypto.randomUUID()));
  app.onError((error) => internalError(error, crypto.randomUUID()));

  function internalError(error: unknown, requestId: string, operationId?: string): Response {
    options.onError?.(error, { requestId, operationId });
    return problem(new ApiError(500, 'InternalServerError', `The service failed to process the request. Correlation id ${requestId}.`), requestId);
  }

  return app;
}

/**
 * The request body, refused with 413 past `limit` bytes: at once when Content-Length says so,
 * else as soon as the stream passes it. (Hono's bodyLimit middleware does the same but builds a
 * full Request, which costs three quarters of the throughput on Node.)
 */
async function readBody(c: Context, declared: string | undefined, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () => new ApiError(413, 'PayloadTooLarge', `The request body exceeds the limit of ${limit} bytes.`);
  // Through c.req, @hono/node-server reads the body without building a full Request.
  if (declared !== undefined) {
    if (Number(declared) > limit) throw tooLarge();
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
      throw tooLarge();
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

import { Hono, type Context } from 'hono';
import { ApiError } from './errors.ts';
import {
  createCallAutomationService,
  incompleteBody,
  isCallAutomationService,
  payloadTooLarge,
  type Answer,
  type ApiRequest,
  type CallAutomationService,
  type CallAutomationServiceOptions,
} from './service.ts';
import { createRouter, type Operation } from './router.ts';

/** The options of `createCallAutomationService`, which `createCallAutomationApp` also takes. */
export type CallAutomationAppOptions = CallAutomationServiceOptions;

/**
 * A Response built directly, headers as a plain object: @hono/node-server writes such a Response
 * without converting a Headers object.
 */
function toResponse(result: Answer): Response {
  return new Response(result.body, { status: result.status, headers: result.headers });
}

/**
 * The Call Automation API as a Hono app (the Hono adapter): one route per operation of the
 * spec, each answered by the service; a path of the API asked with a method it lacks answers 405
 * with Allow, any other path 404, in the API's error body. Mount it in an app of your own for
 * middleware, or serve it on any runtime Hono serves.
 */
export function createCallAutomationApp(serviceOrOptions: CallAutomationService | CallAutomationServiceOptions): Hono {
  const service = isCallAutomationService(serviceOrOptions) ? serviceOrOptions : createCallAutomationService(serviceOrOptions);
  const app = new Hono();
  for (const entry of createRouter().paths) {
    const honoPath = [...entry.byMethod.values()][0]!.path.replace(/\{([^}]+)\}/g, ':$1');
    for (const operation of entry.byMethod.values()) {
      app.on(operation.method, honoPath, async (c) => toResponse(await service.respond(operation, fromHono(c, operation))));
    }
    // Routes of their own for the common methods a path lacks, so that the 405 stays when the app
    // is mounted in another; notFound answers the rest.
    const others = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS'].filter((method) => !entry.allow.includes(method));
    // (OPTIONS among them: with `cors`, the service answers a preflight there.)
    if (others.length) app.on(others, honoPath, (c) => toResponse(service.methodNotAllowed(c.req.method, entry.allow, headerReader(c))));
  }
  app.notFound((c) => {
    const found = service.route(c.req.method, c.req.path);
    const header = headerReader(c);
    return toResponse(found.kind === 'method-not-allowed' ? service.methodNotAllowed(c.req.method, found.allow, header) : service.notFound(c.req.method, c.req.path, header));
  });
  app.onError((error, c) => toResponse(service.failed(error, headerReader(c))));
  return app;
}

/** A Hono request as the stub reads it. */
function fromHono(c: Context, operation: Operation): ApiRequest {
  const header = headerReader(c);
  const href = c.req.url;
  // The path and query exactly as sent: everything after the URL's authority.
  const authorityEnd = href.indexOf('/', href.indexOf('://') + 3);
  return {
    method: c.req.method,
    pathAndQuery: authorityEnd === -1 ? '/' : href.slice(authorityEnd),
    host: header('host') ?? new URL(href).host,
    header,
    params: operation.pathParams.length ? c.req.param() : {},
    body: (limit) => readBody(c, header('content-length'), limit),
  };
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

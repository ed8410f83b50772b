import { getRequestListener } from '@hono/node-server';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { incompleteBody, isCallAutomationService, payloadTooLarge, type Answer, type ApiRequest, type CallAutomationService } from './service.ts';

/** Anything with a Fetch handler: a Hono app, or your own. */
export interface FetchApp {
  fetch: (request: Request) => Response | Promise<Response>;
}

export interface ServeOptions {
  /** Default 127.0.0.1: loopback only. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Time to receive a request's headers. Default 10 s. */
  headersTimeoutMs?: number;
  /** Time to receive a whole request. Default 30 s. */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /** With a service: what answers the paths the API does not have (a Hono app's `fetch`); else the API's 404. */
  fallback?: FetchApp['fetch'];
  /**
   * After answering a request before its body arrived (413), how much more of the upload is read
   * and discarded, so that the client, still sending, reads the answer rather than a reset
   * connection (nginx's lingering close). Past either bound the connection is closed. Default
   * 30 s and 64 MiB.
   */
  discardUpload?: { ms?: number; bytes?: number };
}

export interface RunningServer {
  url: string;
  server: Server;
  /** Stops accepting connections and closes idle ones; resolves when the server is closed. */
  close(): Promise<void>;
}

/**
 * Serves on Node, hardened: bounded times for headers and bodies (slow-loris), a keep-alive
 * shorter than common load balancers', and at most 16 KiB of headers.
 *
 * Given a service (`createCallAutomationService`), it answers the API with the Node adapter,
 * straight from node:http (routed by the spec's table, no Fetch Request or Response per call);
 * `fallback` answers the paths the API does not have (your own routes, as a Hono app's fetch).
 * Given a Hono app (`createCallAutomationApp`, perhaps mounted in yours with middleware), it
 * serves it through @hono/node-server.
 */
export async function serveApp(target: CallAutomationService | FetchApp, options: ServeOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const listener = isCallAutomationService(target) ? createNodeListener(target, options) : getRequestListener(target.fetch);
  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const requestTimeout = options.requestTimeoutMs ?? 30_000;
  const http = createServer(
    {
      maxHeaderSize: 16 * 1024,
      headersTimeout,
      requestTimeout,
      // Node enforces both timeouts only when it checks its connections, every 30 s by default:
      // a 10 s headers timeout then took up to 40 s. Checking a tenth as often as the shorter
      // timeout keeps each within 10% of its setting.
      connectionsCheckingInterval: Math.max(100, Math.min(headersTimeout || Infinity, requestTimeout || Infinity, 300_000) / 10),
    },
    listener,
  );
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  http.keepAliveTimeout = options.keepAliveTimeoutMs ?? 5_000;
  const { port } = http.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    server: http,
    close: () =>
      new Promise<void>((resolve, reject) => {
        http.close((error) => (error ? reject(error) : resolve()));
        http.closeIdleConnections();
      }),
  };
}

/**
 * The Node adapter: a node:http listener that answers the service's API, and hands the paths
 * the API does not have to `fallback` (through @hono/node-server), or answers them 404.
 */
export function createNodeListener(service: CallAutomationService, options: Pick<ServeOptions, 'fallback' | 'discardUpload'> = {}) {
  const fallback = options.fallback && getRequestListener(options.fallback);
  const discard = { ms: options.discardUpload?.ms ?? 30_000, bytes: options.discardUpload?.bytes ?? 64 * 1024 * 1024 };
  return (req: IncomingMessage, res: ServerResponse) => {
    // The path as sent, without its query: what the client signed and what the spec's paths name.
    const url = req.url ?? '/';
    const end = url.search(/[?#]/);
    const path = end === -1 ? url : url.slice(0, end);
    const method = req.method ?? 'GET';
    const found = service.route(method, path);
    const headers = req.headers;
    const header = (name: string) => {
      const value = headers[name];
      return typeof value === 'object' ? value.join(', ') : value;
    };
    if (found.kind === 'operation') {
      const request: ApiRequest = {
        method,
        pathAndQuery: url,
        host: headers.host,
        header,
        params: found.params,
        body: (limit) => readBody(req, limit),
      };
      const fail = (error: unknown) => {
        if (res.headersSent) res.destroy();
        else write(req, res, service.failed(error, header), discard);
      };
      service.respond(found.operation, request).then((answer) => {
        try {
          write(req, res, answer, discard);
        } catch (error) {
          // Whatever Node refuses to write is answered as any other unexpected error.
          fail(error);
        }
      }, fail);
    } else if (found.kind === 'method-not-allowed') write(req, res, service.methodNotAllowed(method, found.allow, header), discard);
    else if (fallback) void fallback(req, res);
    else write(req, res, service.notFound(method, path, header), discard);
  };
}

interface Discard {
  ms: number;
  bytes: number;
}

function write(req: IncomingMessage, res: ServerResponse, answer: Answer, discard: Discard) {
  const body = answer.body ?? '';
  // Each answer is made for its request, and its header names are in lower case: set in place.
  // (A copy made with spread here cost about 10 µs of CPU a request under the bench's load.)
  const { headers } = answer;
  // A 204 (a CORS preflight's) carries no Content-Length (RFC 9110, 8.6).
  if (answer.status !== 204) headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(answer.status, headers).end(body);
  if (!req.complete) discardRest(req, discard);
}

/**
 * Reads and drops the rest of an upload answered before its end (a 413), within bounds. A client
 * still sending when the server closes gets EPIPE or a reset instead of the answer; read to its
 * end, the connection even stays open for the client's next request. Past the bounds, the
 * connection is closed.
 */
function discardRest(req: IncomingMessage, bounds: Discard) {
  let received = 0;
  const stop = () => {
    clearTimeout(timer);
    req.off('data', count);
  };
  const close = () => {
    stop();
    req.socket.destroy();
  };
  const count = (chunk: Buffer) => {
    received += chunk.length;
    if (received > bounds.bytes) close();
  };
  const timer = setTimeout(close, bounds.ms);
  req.on('data', count).once('end', stop).once('close', stop);
  req.resume();
}

/** The request body, refused with 413 past `limit` bytes: at once when Content-Length says so, else as soon as the stream passes it. */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(payloadTooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData).pause();
        reject(payloadTooLarge(limit));
      } else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve((chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)) as Uint8Array<ArrayBuffer>));
    // The client went away before the body's end: there is no one left to answer.
    req.once('close', () => {
      if (!req.complete) reject(incompleteBody());
    });
  });
}
